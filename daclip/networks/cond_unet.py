"""Noise-predicting UNets of IR-SDE and of "ours" (IR-SDE + DA-CLIP).

One class covers all of them: "ours" is the DA-CLIP ConditionalUNet (``universal-ir.pth``,
``universal-ir-mix.pth``) with cross-attention on the DA-CLIP content embedding at the
deepest level and in the middle, and a prompt module that adds the degradation embedding to
the time embedding; "wild-ir" is the follow-up paper's UNet (``wild-ir.pth``: ViT-L-14
context of 768, no degradation prompt, a learned 2x down-sampling after the first
convolution and a learned up-sampling before the last block, ``scale=0.5``); "irsde" is the
plain IR-SDE UNet (channels doubling per level, no DA-CLIP), whose denoising-sde variant
(``irsde-denoising``) sees only the noisy state: its first convolution takes 3 channels and
it is called ``net(x, t)``. Key names and shapes of the default configs equal the released
checkpoints (``tests/fixtures/keys_<network>.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from .attention import (
    FullAttention,
    LinearAttention,
    PreNorm,
    ResBlock,
    Residual,
    SinusoidalPosEmb,
    SpatialTransformer,
    conv_nobias,
)
from .loading import resolve_preset
from .restormer import reflect_pad
from .registry import register_network


@dataclass(frozen=True)
class UNetConfig:
    in_nc: int = 3
    out_nc: int = 3
    nf: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    #: DA-CLIP embedding size (512 for ViT-B-32); None disables all DA-CLIP conditioning.
    context_dim: int | None = 512
    use_degra_context: bool = True
    use_image_context: bool = True
    #: "linear" (DA-CLIP UNet) or "full" softmax attention (IR-SDE UNet) in the middle block.
    mid_attention: str = "linear"
    #: Levels (0-based, from the top) whose attention becomes cross-attention; upstream: >= 3.
    cross_attn_from_level: int = 3
    head_channels: int = 32
    #: Heads x channels of the linear / full self-attention (upstream fixes 4 x 32).
    attn_heads: int = 4
    attn_dim_head: int = 32
    #: 0.5: learned 2x down-sampling after the first convolution and up-sampling before the
    #: last block (wild-ir); 1: none.
    scale: float = 1.0
    #: False: the network sees only x_t (IR-SDE's denoising-sde UNet: init_conv on 3 channels).
    concat_cond: bool = True


class ConditionalUNet(nn.Module):
    """forward(x_t, lq, t, text_context=None, image_context=None) -> predicted noise.

    The input is cat([x_t - lq, lq]) (x_t alone when ``concat_cond`` is off); it is
    reflect-padded to a multiple of 2**depth and the output is cropped back, so any H, W works.
    """

    def __init__(self, cfg: UNetConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or UNetConfig(**kwargs)
        self.cfg = cfg
        nf = cfg.nf
        self.depth = len(cfg.ch_mult)
        ctx = cfg.context_dim if cfg.context_dim and cfg.context_dim > 0 else None
        self.context_dim = ctx or -1
        self.use_degra_context = bool(ctx) and cfg.use_degra_context
        self.use_image_context = bool(ctx) and cfg.use_image_context

        if cfg.scale not in (1, 0.5):
            raise ValueError(f"scale must be 1 or 0.5, got {cfg.scale}")
        self.init_conv = conv_nobias(cfg.in_nc * (2 if cfg.concat_cond else 1), nf, 7)
        if cfg.scale == 0.5:
            # Upstream names: Downsample (strided 4x4 conv) and Upsample (nearest + 3x3 conv).
            self.downsample = nn.Conv2d(nf, nf, 4, 2, 1)
            self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1))
        time_dim = nf * 4
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(nf), nn.Linear(nf, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
        )
        if self.use_degra_context:
            # Prompt module: a learnable prompt weighted by the softmax of the projected
            # degradation embedding, added to the time embedding.
            self.prompt = nn.Parameter(torch.rand(1, time_dim))
            self.text_mlp = nn.Sequential(nn.Linear(ctx, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
            self.prompt_mlp = nn.Linear(time_dim, time_dim)

        def attention(dim: int, level: int) -> nn.Module:
            if self.use_image_context and level >= cfg.cross_attn_from_level:
                heads = max(1, dim // cfg.head_channels)
                return SpatialTransformer(dim, heads, cfg.head_channels, depth=1, context_dim=ctx)
            return LinearAttention(dim, cfg.attn_heads, cfg.attn_dim_head)

        mult = [1] + list(cfg.ch_mult)
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in range(self.depth):
            dim_in, dim_out = nf * mult[i], nf * mult[i + 1]
            last = i == self.depth - 1
            self.downs.append(
                nn.ModuleList(
                    [
                        ResBlock(dim_in, dim_in, time_dim),
                        ResBlock(dim_in, dim_in, time_dim),
                        Residual(PreNorm(dim_in, attention(dim_in, i))),
                        conv_nobias(dim_in, dim_out) if last else nn.Conv2d(dim_in, dim_out, 4, 2, 1),
                    ]
                )
            )
            up = (
                conv_nobias(dim_out, dim_in)
                if i == 0
                else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_out, dim_in, 3, 1, 1))
            )
            self.ups.insert(
                0,
                nn.ModuleList(
                    [
                        ResBlock(dim_out + dim_in, dim_out, time_dim),
                        ResBlock(dim_out + dim_in, dim_out, time_dim),
                        Residual(PreNorm(dim_out, attention(dim_out, i))),
                        up,
                    ]
                ),
            )

        mid = nf * mult[-1]
        self.mid_block1 = ResBlock(mid, mid, time_dim)
        if self.use_image_context:
            mid_attn = SpatialTransformer(mid, max(1, mid // cfg.head_channels), cfg.head_channels, 1, ctx)
        elif cfg.mid_attention == "full":
            mid_attn = FullAttention(mid, cfg.attn_heads, cfg.attn_dim_head)
        else:
            mid_attn = LinearAttention(mid, cfg.attn_heads, cfg.attn_dim_head)
        self.mid_attn = Residual(PreNorm(mid, mid_attn))
        self.mid_block2 = ResBlock(mid, mid, time_dim)
        self.final_res_block = ResBlock(nf * 2, nf, time_dim)
        self.final_conv = nn.Conv2d(nf, cfg.out_nc, 3, 1, 1)

    @property
    def pad_multiple(self) -> int:
        return 2**self.depth

    def time_embedding(self, t, batch: int, device, text_context=None) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            t = t.to(device=device, dtype=torch.float32).reshape(-1)
            if t.numel() == 1:
                t = t.expand(batch)
        else:
            # A Python number becomes a fill on the device: no host-to-device copy per step.
            t = torch.full((batch,), float(t), device=device)
        emb = self.time_mlp(t)
        if self.use_degra_context and text_context is not None:
            weights = torch.softmax(self.text_mlp(text_context.to(emb.dtype)), dim=1)
            emb = emb + self.prompt_mlp(weights * self.prompt)
        return emb

    def forward(self, xt, cond, time, text_context=None, image_context=None):
        x = torch.cat([xt - cond, cond], dim=1) if self.cfg.concat_cond else xt
        H, W = x.shape[-2:]
        s = self.pad_multiple
        x = reflect_pad(x, s)  # replicate where a side is too short to reflect (1x1 images)

        x = self.init_conv(x)
        skip0 = x
        if self.cfg.scale == 0.5:
            x = self.downsample(x)
        t = self.time_embedding(time, x.shape[0], x.device, text_context)
        context = None
        if self.use_image_context and image_context is not None:
            context = image_context.unsqueeze(1) if image_context.dim() == 2 else image_context

        hs = []
        for b1, b2, attn, down in self.downs:
            x = b1(x, t)
            hs.append(x)
            x = attn(b2(x, t), context=context)
            hs.append(x)
            x = down(x)

        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t), context=context), t)

        for b1, b2, attn, up in self.ups:
            x = b1(torch.cat([x, hs.pop()], dim=1), t)
            x = b2(torch.cat([x, hs.pop()], dim=1), t)
            x = up(attn(x, context=context))

        if self.cfg.scale == 0.5:
            x = self.upsample(x)
        x = self.final_res_block(torch.cat([x, skip0], dim=1), t)
        return self.final_conv(x)[..., :H, :W].contiguous()


#: The released DA-CLIP universal-ir UNet (options/test.yml of the official code), 48.98 M.
OURS_PRESETS: dict[str, UNetConfig] = {
    "default": UNetConfig(),
    # Small enough for CPU tests and minutes-long training; conditioned by the tiny DA-CLIP.
    "tiny": UNetConfig(nf=16, ch_mult=(1, 2, 2, 4), context_dim=32, head_channels=16, attn_dim_head=8),
}
#: IR-SDE's restoration UNet (codes/config/deraining upstream): nf 64, depth 4 (channels
#: 128..1024), linear attention everywhere, 137 M. Its denoising-sde variant uses full
#: attention in the middle block: ``mid_attention="full"``.
IRSDE_PRESETS: dict[str, UNetConfig] = {
    "default": UNetConfig(ch_mult=(2, 4, 8, 16), context_dim=None),
    "tiny": UNetConfig(nf=16, ch_mult=(1, 2, 2, 4), context_dim=None, attn_dim_head=8),
}


#: The follow-up paper's wild-ir UNet (config/wild-ir/options/test.yml): nf 64, ch_mult
#: [1,2,4,8], context_dim 768 (ViT-L-14 DA-CLIP), use_degra_context false, scale 0.5.
WILD_PRESETS: dict[str, UNetConfig] = {
    "default": UNetConfig(context_dim=768, use_degra_context=False, scale=0.5),
    "tiny": UNetConfig(nf=16, ch_mult=(1, 2, 2, 4), context_dim=32, head_channels=16, attn_dim_head=8,
                       use_degra_context=False, scale=0.5),
}
#: IR-SDE's denoising-sde UNet (codes/config/denoising-sde): the deraining UNet with full
#: attention in the middle and init_conv on x alone (3 channels).
IRSDE_DENOISING_PRESETS: dict[str, UNetConfig] = {
    name: replace(cfg, mid_attention="full", concat_cond=False) for name, cfg in IRSDE_PRESETS.items()
}


class DenoisingUNet(ConditionalUNet):
    """IR-SDE's denoising-sde network with its official signature ``forward(x, time)``."""

    def forward(self, x, time):  # type: ignore[override]
        return super().forward(x, None, time)


@register_network("ours")
def build_ours(preset: str = "default", **overrides) -> ConditionalUNet:
    """The DA-CLIP ConditionalUNet from a preset (default = released, tiny) plus overrides."""
    return ConditionalUNet(resolve_preset(OURS_PRESETS, preset, "ours", overrides))


@register_network("irsde")
def build_irsde(preset: str = "default", **overrides) -> ConditionalUNet:
    """The IR-SDE UNet from a preset (default = released IR-SDE size, tiny) plus overrides."""
    return ConditionalUNet(resolve_preset(IRSDE_PRESETS, preset, "irsde", overrides))


@register_network("wild-ir")
def build_wild_ir(preset: str = "default", **overrides) -> ConditionalUNet:
    """The wild-ir UNet from a preset (default = released wild-ir.pth, tiny) plus overrides.

    Same signature as "ours": ``net(x_t, lq, t, text_context=None, image_context=None)``;
    conditioned by the ViT-L-14 DA-CLIP's content embedding (no degradation prompt).
    """
    return ConditionalUNet(resolve_preset(WILD_PRESETS, preset, "wild-ir", overrides))


@register_network("irsde-denoising")
def build_irsde_denoising(preset: str = "default", **overrides) -> DenoisingUNet:
    """IR-SDE's denoising-sde UNet (init_conv on 3 channels, ``net(x, t)``) from a preset."""
    return DenoisingUNet(resolve_preset(IRSDE_DENOISING_PRESETS, preset, "irsde-denoising", overrides))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
