"""Building blocks of the IR-SDE / DA-CLIP conditional UNet.

Attribute names (``fn``, ``norm``, ``to_qkv``, ``transformer_blocks`` ...) are part of the
checkpoint format: the released ``universal-ir.pth`` and IR-SDE state dicts use them as
key names, so they must not be renamed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_nobias(dim_in: int, dim_out: int, kernel_size: int = 3) -> nn.Conv2d:
    """'Same' convolution without bias (the upstream ``default_conv``)."""
    return nn.Conv2d(dim_in, dim_out, kernel_size, padding=kernel_size // 2, bias=False)


class SinusoidalPosEmb(nn.Module):
    """Transformer-style sinusoidal embedding of a (possibly fractional) time step."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -scale)
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat((args.sin(), args.cos()), dim=-1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of an NCHW tensor, scale only (key ``g`` [1, C, 1, 1])."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Upstream uses a larger eps below fp32 so half-precision runs stay finite.
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.g


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x, *args, **kwargs):
        return self.fn(self.norm(x), *args, **kwargs)


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


class ConvBlock(nn.Module):
    """conv -> optional FiLM (scale, shift) from the time embedding -> SiLU."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = conv_nobias(dim_in, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.proj(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResBlock(nn.Module):
    """Two 3x3 conv blocks, time-conditioned through FiLM on the first."""

    def __init__(self, dim_in: int, dim_out: int, time_emb_dim: int | None = None):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if time_emb_dim else None
        self.block1 = ConvBlock(dim_in, dim_out)
        self.block2 = ConvBlock(dim_out, dim_out)
        self.res_conv = conv_nobias(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        scale_shift = None
        if self.mlp is not None and time_emb is not None:
            scale_shift = self.mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, scale_shift=scale_shift))
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear (channel) attention: cost linear in the number of pixels.

    ``context`` is accepted and ignored so every attention slot has one signature.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x, context=None):
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        kv = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", kv, q)
        return self.to_out(out.reshape(b, -1, h, w))


class FullAttention(nn.Module):
    """Softmax self-attention over pixels (IR-SDE's middle block)."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x, context=None):
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w).transpose(-1, -2) for t in self.to_qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)  # default scale dim_head**-0.5 as upstream
        return self.to_out(out.transpose(-1, -2).reshape(b, -1, h, w))


class CrossAttention(nn.Module):
    """Multi-head attention of tokens ``x`` over ``context`` (self-attention when None)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        # Index 1 is a Dropout upstream; keeping the Sequential keeps the key "to_out.0".
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x, context=None):
        context = x if context is None else context
        b, n, _ = x.shape

        def heads(t):
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention on the context, gated feed-forward (pre-norm)."""

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads=n_heads, dim_head=d_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, context=None):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """LDM-style transformer on an image: GroupNorm, 1x1 in, blocks, zero-initialised 1x1 out."""

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, context_dim: int | None = None):
        super().__init__()
        inner = n_heads * d_head
        # 32 groups as upstream; tiny test widths fall back to a divisor of the width.
        self.norm = nn.GroupNorm(math.gcd(32, in_channels), in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, n_heads, d_head, context_dim) for _ in range(depth)]
        )
        self.proj_out = nn.Conv2d(inner, in_channels, 1)
        # Zero init: the block starts as the identity, so adding it does not disturb training.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, context=None):
        b, _, h, w = x.shape
        y = self.proj_in(self.norm(x))
        y = y.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            y = block(y, context=context)
        y = y.transpose(1, 2).reshape(b, -1, h, w)
        return self.proj_out(y) + x
