"""Restormer (Zamir et al., CVPR 2022) with the parameter names of swz30/Restormer.

Keys and shapes equal the released checkpoints (``{'params': ...}``). Its building blocks
(MDTA attention, GDFN feed-forward, transformer block, pixel-(un)shuffle resizers) are
reused by PromptIR. Three 2x downsamplings need sides divisible by 8; other sizes are
reflect-padded and cropped back, which is what the official test script does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .registry import register_network


class BiasFreeLayerNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + 1e-5) * self.weight  # upstream's division (not rsqrt): same rounding


class WithBiasLayerNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of NCHW; the parameters live in ``body`` as upstream names them."""

    def __init__(self, dim: int, kind: str):
        super().__init__()
        if kind not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm_type must be WithBias or BiasFree, got {kind!r}")
        self.body = BiasFreeLayerNorm(dim) if kind == "BiasFree" else WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Upstream's to_3d/to_4d (einops): a view of a contiguous input, a copy of a sliced one;
        # the same memory order gives the same rounding.
        b, c, h, w = x.shape
        y = self.body(x.permute(0, 2, 3, 1).reshape(b, h * w, c))
        return y.reshape(b, h, w, c).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN)."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): attention across channels, not pixels."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class ChannelCrossAttention(nn.Module):
    """MDTA with queries from ``x`` and keys/values from ``y`` (AdaIR's frequency modulation,
    MoCE-IR's decoder mixer with ``kv_kernel=7``)."""

    def __init__(self, dim: int, num_heads: int, bias: bool, kv_kernel: int = 3):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, kv_kernel, padding=kv_kernel // 2, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(y)).chunk(2, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, LayerNorm_type: str):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Conv to half the channels, then pixel-unshuffle: 2x smaller, 2x the channels."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Conv to twice the channels, then pixel-shuffle: 2x larger, half the channels."""

    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def blocks(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)])


def reflect_pad(x: torch.Tensor, m: int) -> torch.Tensor:
    """Reflect-pad bottom/right to a multiple of ``m`` (replicate where the side is too short to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (m - h % m) % m, (m - w % m) % m
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@dataclass(frozen=True)
class RestormerConfig:
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    LayerNorm_type: str = "WithBias"
    dual_pixel_task: bool = False


RESTORMER_CONFIGS: dict[str, RestormerConfig] = {
    "default": RestormerConfig(),
    # The released real-denoising model uses the bias-free LayerNorm.
    "real-denoising": RestormerConfig(LayerNorm_type="BiasFree"),
    "tiny": RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2)),
}


class Restormer(nn.Module):
    """Four-level Restormer; ``forward(inp_img)`` returns the restored image."""

    pad_multiple = 8

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias",
                 dual_pixel_task=False):
        super().__init__()
        f, ln = ffn_expansion_factor, LayerNorm_type
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
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
        # Level 1 keeps 2*dim channels after the skip concat (no reduction), as upstream.
        self.decoder_level1 = blocks(num_blocks[0], dim * 2, heads[0], f, bias, ln)
        self.refinement = blocks(num_refinement_blocks, dim * 2, heads[0], f, bias, ln)
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        h, w = inp_img.shape[-2:]
        x0 = reflect_pad(inp_img, self.pad_multiple)
        e1_in = self.patch_embed(x0)
        e1 = self.encoder_level1(e1_in)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        if self.dual_pixel_task:
            out = self.output(d1 + self.skip_conv(e1_in))
        else:
            out = self.output(d1) + x0
        return out[..., :h, :w]


@register_network("restormer")
def build_restormer(preset: str = "default", **overrides) -> Restormer:
    """Restormer from a preset (default, real-denoising, tiny) plus overrides."""
    cfg = resolve_preset(RESTORMER_CONFIGS, preset, "restormer", overrides)
    return Restormer(**asdict(cfg))
