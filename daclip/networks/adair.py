"""AdaIR (Cui et al., ICLR 2025) with the parameter names of c-yn/AdaIR.

A Restormer backbone plus three frequency-mining modules (``fre1`` at H/8, ``fre2`` at H/4,
``fre3`` at H/2) applied after the latent and decoder levels 3 and 2. Keys and shapes equal the
released Lightning checkpoints (``adair3d.ckpt``, ``adair5d.ckpt``) once their ``net.`` prefix is
stripped. ``FreModule.conv`` and ``score_gen`` are unused by upstream's forward but are in the
files, so they exist here too (strict loading).

Sizes: three pixel-unshuffle levels need sides divisible by 8, and upstream crashes on others.
This port reflect-pads to 8 and crops back, no further: the FFT mask, the attention statistics
and the input resize of each ``FreModule`` all depend on the size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .registry import register_network
from .restormer import ChannelCrossAttention, Downsample, OverlapPatchEmbed, Upsample, blocks, reflect_pad


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return torch.sigmoid(self.spatial(pooled))


class ChannelGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, dim // 16, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(dim // 16, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class FreRefine(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.SpatialGate = SpatialGate()
        self.ChannelGate = ChannelGate(dim)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.proj(low * self.SpatialGate(high) + high * self.ChannelGate(low))


class FreModule(nn.Module):
    """Adaptive frequency learning: splits the (resized) input image into a low and a high band
    with an FFT box mask whose half-size is learned, and mixes both into the features."""

    def __init__(self, dim: int, num_heads: int, bias: bool, in_dim: int = 3, n: int = 128):
        super().__init__()
        self.n = n
        self.conv = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)  # unused upstream (kept for the keys)
        self.conv1 = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        self.score_gen = nn.Conv2d(2, 2, 7, padding=3)  # unused upstream (kept for the keys)
        self.para1 = nn.Parameter(torch.zeros(dim, 1, 1))
        self.para2 = nn.Parameter(torch.ones(dim, 1, 1))
        self.channel_cross_l = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_h = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_agg = ChannelCrossAttention(dim, num_heads, bias)
        self.frequency_refine = FreRefine(dim)
        self.rate_conv = nn.Sequential(nn.Conv2d(dim, dim // 8, 1, bias=False), nn.GELU(),
                                       nn.Conv2d(dim // 8, 2, 1, bias=False))
        for unused in (self.conv, self.score_gen):
            unused.requires_grad_(False)

    def bands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(high, low): magnitudes of the inverse FFT outside / inside the centred box mask."""
        x = self.conv1(x)
        b, c, h, w = x.shape
        rate = torch.sigmoid(self.rate_conv(x.mean((2, 3), keepdim=True)))  # B x 2 x 1 x 1
        mask = torch.zeros_like(x)
        for i in range(b):
            # Upstream's integer arithmetic: (side // n) * rate, truncated; often an empty box.
            hh = int((h // self.n * rate[i, 0, 0, 0]).int())
            ww = int((w // self.n * rate[i, 1, 0, 0]).int())
            mask[i, :, h // 2 - hh:h // 2 + hh, w // 2 - ww:w // 2 + ww] = 1
        shift = (int(h / 2), int(w / 2))
        spec = torch.roll(torch.fft.fft2(x, norm="forward", dim=(-2, -1)), shifts=shift, dims=(2, 3))
        back = (-shift[0], -shift[1])

        def band(s: torch.Tensor) -> torch.Tensor:
            return torch.fft.ifft2(torch.roll(s, shifts=back, dims=(2, 3)), norm="forward", dim=(-2, -1)).abs()

        return band(spec * (1 - mask)), band(spec * mask)

    def forward(self, img: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(img, y.shape[-2:], mode="bilinear", align_corners=False)
        high, low = self.bands(x)
        high = self.channel_cross_l(high, y)
        low = self.channel_cross_h(low, y)
        out = self.channel_cross_agg(y, self.frequency_refine(low, high))
        return out * self.para1 + y * self.para2


@dataclass(frozen=True)
class AdaIRConfig:
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


ADAIR_CONFIGS: dict[str, AdaIRConfig] = {
    # test.py: AdaIR(decoder=True), the rest default; the 3D and 5D releases share it.
    "default": AdaIRConfig(),
    "tiny": AdaIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2)),
}


class AdaIR(nn.Module):
    """``forward(inp_img, noise_emb=None)`` returns the restored image (``noise_emb`` is unused, as upstream)."""

    pad_multiple = 8

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias", decoder=True):
        super().__init__()
        f, ln = ffn_expansion_factor, LayerNorm_type
        self.decoder = decoder
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        if decoder:
            self.fre1 = FreModule(dim * 8, heads[2], bias)
            self.fre2 = FreModule(dim * 4, heads[2], bias)
            self.fre3 = FreModule(dim * 2, heads[2], bias)
        self.encoder_level1 = blocks(num_blocks[0], dim, heads[0], f, bias, ln)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = blocks(num_blocks[1], dim * 2, heads[1], f, bias, ln)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = blocks(num_blocks[2], dim * 4, heads[2], f, bias, ln)
        self.down3_4 = Downsample(dim * 4)
        self.latent = blocks(num_blocks[3], dim * 8, heads[3], f, bias, ln)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], dim * 4, heads[2], f, bias, ln)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], dim * 2, heads[1], f, bias, ln)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = blocks(num_blocks[0], dim * 2, heads[0], f, bias, ln)
        self.refinement = blocks(num_refinement_blocks, dim * 2, heads[0], f, bias, ln)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor, noise_emb=None) -> torch.Tensor:
        h, w = inp_img.shape[-2:]
        x0 = reflect_pad(inp_img, self.pad_multiple)
        e1 = self.encoder_level1(self.patch_embed(x0))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        if self.decoder:
            lat = self.fre1(x0, lat)
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        if self.decoder:
            d3 = self.fre2(x0, d3)
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        if self.decoder:
            d2 = self.fre3(x0, d2)
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        return (self.output(d1) + x0)[..., :h, :w]


@register_network("adair")
def build_adair(preset: str = "default", **overrides) -> AdaIR:
    """AdaIR from a preset (default = the released 3D/5D configuration, tiny) plus overrides."""
    cfg = resolve_preset(ADAIR_CONFIGS, preset, "adair", overrides)
    return AdaIR(**asdict(cfg))
