"""PromptIR (Potlapalli et al., NeurIPS 2023) with the parameter names of va1shn9v/PromptIR.

A Restormer backbone whose decoder receives learned prompts at three levels. Keys and
shapes equal the released Lightning checkpoint once its ``net.`` prefix is stripped
(``ckpt['state_dict']``, see :mod:`daclip.networks.loading`). Upstream hard-codes the
prompt widths for dim 48; here they are config fields with the released values as
defaults, so tiny test models keep the same structure. ``chnl_reduce*`` and
``reduce_noise_channel_*`` are unused in upstream's forward but are in the checkpoint, so
they exist here too (strict loading).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .registry import register_network
from .restormer import Downsample, OverlapPatchEmbed, TransformerBlock, Upsample, blocks, reflect_pad


class PromptGenBlock(nn.Module):
    """Mixes ``prompt_len`` learned prompt maps with weights predicted from the pooled features."""

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int):
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)  # B x len
        prompt = torch.einsum("bl,lchw->bchw", weights, self.prompt_param[0])
        prompt = F.interpolate(prompt, (h, w), mode="bilinear", align_corners=False)
        return self.conv3x3(prompt)


@dataclass(frozen=True)
class PromptIRConfig:
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    LayerNorm_type: str = "WithBias"
    decoder: bool = True
    prompt_dims: tuple[int, int, int] = (64, 128, 320)
    prompt_sizes: tuple[int, int, int] = (64, 32, 16)
    prompt_len: int = 5
    unused_reduce3_out: int = 256


PROMPTIR_CONFIGS: dict[str, PromptIRConfig] = {
    "default": PromptIRConfig(),
    "tiny": PromptIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2),
                           prompt_dims=(4, 8, 12), prompt_sizes=(8, 4, 2), prompt_len=3, unused_reduce3_out=8),
}


class PromptIR(nn.Module):
    """``forward(inp_img)`` returns the restored image. Needs ``decoder=True`` (the released setting)."""

    pad_multiple = 8

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias", decoder=True,
                 prompt_dims=(64, 128, 320), prompt_sizes=(64, 32, 16), prompt_len=5, unused_reduce3_out=256):
        super().__init__()
        if not decoder:
            # Upstream's up4_3 expects 4*dim channels, which only the prompt path produces.
            raise ValueError("PromptIR without decoder prompts does not run upstream either; use decoder=True")
        f, ln = ffn_expansion_factor, LayerNorm_type
        p1, p2, p3 = prompt_dims
        self.decoder = decoder
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], lin_dim=dim * 2)
        self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], lin_dim=dim * 4)
        self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], lin_dim=dim * 8)
        self.chnl_reduce1 = nn.Conv2d(p1, p1, 1, bias=bias)
        self.chnl_reduce2 = nn.Conv2d(p2, p2, 1, bias=bias)
        self.chnl_reduce3 = nn.Conv2d(p3, unused_reduce3_out, 1, bias=bias)
        self.reduce_noise_channel_1 = nn.Conv2d(dim + p1, dim, 1, bias=bias)
        self.encoder_level1 = blocks(num_blocks[0], dim, heads[0], f, bias, ln)
        self.down1_2 = Downsample(dim)
        self.reduce_noise_channel_2 = nn.Conv2d(dim * 2 + p2, dim * 2, 1, bias=bias)
        self.encoder_level2 = blocks(num_blocks[1], dim * 2, heads[1], f, bias, ln)
        self.down2_3 = Downsample(dim * 2)
        self.reduce_noise_channel_3 = nn.Conv2d(dim * 4 + unused_reduce3_out, dim * 4, 1, bias=bias)
        self.encoder_level3 = blocks(num_blocks[2], dim * 4, heads[2], f, bias, ln)
        self.down3_4 = Downsample(dim * 4)
        self.latent = blocks(num_blocks[3], dim * 8, heads[3], f, bias, ln)
        # Decoder level 3: latent (8d) + prompt3 -> transformer -> 4d, then up to 2d, concat skip (4d).
        self.up4_3 = Upsample(dim * 4)
        self.reduce_chan_level3 = nn.Conv2d(dim * 6, dim * 4, 1, bias=bias)
        self.noise_level3 = TransformerBlock(dim * 8 + p3, heads[2], f, bias, ln)
        self.reduce_noise_level3 = nn.Conv2d(dim * 8 + p3, dim * 4, 1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], dim * 4, heads[2], f, bias, ln)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.noise_level2 = TransformerBlock(dim * 4 + p2, heads[2], f, bias, ln)
        self.reduce_noise_level2 = nn.Conv2d(dim * 4 + p2, dim * 4, 1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], dim * 2, heads[1], f, bias, ln)
        self.up2_1 = Upsample(dim * 2)
        self.noise_level1 = TransformerBlock(dim * 2 + p1, heads[2], f, bias, ln)
        self.reduce_noise_level1 = nn.Conv2d(dim * 2 + p1, dim * 2, 1, bias=bias)
        self.decoder_level1 = blocks(num_blocks[0], dim * 2, heads[0], f, bias, ln)
        self.refinement = blocks(num_refinement_blocks, dim * 2, heads[0], f, bias, ln)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)
        # Unused by the forward pass (kept for the checkpoint keys): frozen, so DDP does not wait
        # for their gradients and optimisers skip them.
        for unused in (self.chnl_reduce1, self.chnl_reduce2, self.chnl_reduce3,
                       self.reduce_noise_channel_1, self.reduce_noise_channel_2, self.reduce_noise_channel_3):
            unused.requires_grad_(False)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        h, w = inp_img.shape[-2:]
        x0 = reflect_pad(inp_img, self.pad_multiple)
        e1 = self.encoder_level1(self.patch_embed(x0))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        lat = self.reduce_noise_level3(self.noise_level3(torch.cat([lat, self.prompt3(lat)], 1)))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d3 = self.reduce_noise_level2(self.noise_level2(torch.cat([d3, self.prompt2(d3)], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d2 = self.reduce_noise_level1(self.noise_level1(torch.cat([d2, self.prompt1(d2)], 1)))
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        return (self.output(d1) + x0)[..., :h, :w]


@register_network("promptir")
def build_promptir(preset: str = "default", **overrides) -> PromptIR:
    """PromptIR from a preset (default = the released all-in-one model, tiny) plus overrides."""
    cfg = resolve_preset(PROMPTIR_CONFIGS, preset, "promptir", overrides)
    return PromptIR(**asdict(cfg))
