"""NAFNet + DA-CLIP: NAFNet conditioned on DA-CLIP's two embeddings.

The paper describes it only in words (cross-attention on the content embedding in the
bottom blocks; degradation embedding -> MLP -> scale/shift modulation of blocks) and no
checkpoint was released, so this layout is our own:

* ``text_context`` (degradation embedding, B x 512) -> ``degra_mlp`` (Linear-SiLU-Linear)
  -> per block a zero-initialised Linear giving (scale, shift) applied after ``norm1``:
  ``norm1(x) * (1 + scale) + shift`` (AdaLN style).
* ``image_context`` (content embedding, B x 512, or B x L x 512 tokens) -> one
  cross-attention layer after each middle block, with a zero-initialised output
  projection.

Both start as exact no-ops, so the network starts as plain NAFNet and the backbone keys are
NAFNet's (``intro``, ``encoders``, ...): a released NAFNet checkpoint can initialise it
with :func:`init_from_nafnet`. With both contexts ``None`` it is plain NAFNet.

"NAFNet + Degradation" (the Table 3 ablation, network ``nafnet-degradation``) is the same
network without the content branch (``cross_attention=False``: no ``middle_attn`` modules):
it is conditioned on the degradation embedding only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .nafnet import NAFBlock, NAFNet, NAFNET_CONFIGS, LayerNorm2d
from .registry import register_network


class ModulatedNAFBlock(NAFBlock):
    """NAFBlock whose first normalisation is scaled and shifted by a condition vector."""

    def __init__(self, c: int, cond_dim: int):
        super().__init__(c)
        self.modulation = nn.Linear(cond_dim, 2 * c)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, inp: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(inp)
        if cond is not None:
            scale, shift = self.modulation(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        y = inp + self.spatial(h) * self.beta
        return y + self.channel(y) * self.gamma


class CrossAttention(nn.Module):
    """Pixels of a feature map attend to context tokens; residual, zero-initialised output."""

    def __init__(self, c: int, context_dim: int, num_heads: int):
        super().__init__()
        if c % num_heads:
            raise ValueError(f"{c} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = LayerNorm2d(c)
        self.to_q = nn.Linear(c, c, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * c, bias=False)
        self.proj = nn.Linear(c, c)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        nh = self.num_heads
        q = self.to_q(self.norm(x).flatten(2).transpose(1, 2))  # B, HW, C
        k, v = self.to_kv(context).chunk(2, dim=-1)  # B, L, C
        q, k, v = (t.reshape(b, -1, nh, c // nh).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, h, w)


@dataclass(frozen=True)
class NAFNetDAClipConfig:
    img_channel: int = 3
    width: int = 32
    middle_blk_num: int = 12
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)
    dec_blk_nums: tuple[int, ...] = (2, 2, 2, 2)
    context_dim: int = 512  # DA-CLIP ViT-B-32 embedding width
    cond_dim: int = 256  # width of the degradation MLP's output
    head_channels: int = 32  # cross-attention heads = channels // head_channels
    cross_attention: bool = True  # False: degradation embedding only ("NAFNet + Degradation")


def _backbone(cfg) -> dict:
    """The NAFNet preset's backbone sizes (its test-time pooling option does not apply here)."""
    own = {f.name for f in fields(NAFNetDAClipConfig)}
    return {k: v for k, v in asdict(cfg).items() if k in own}


NAFNET_DACLIP_CONFIGS: dict[str, NAFNetDAClipConfig] = {
    name: NAFNetDAClipConfig(**_backbone(cfg)) for name, cfg in NAFNET_CONFIGS.items() if name != "tiny"
}
NAFNET_DACLIP_CONFIGS["tiny"] = NAFNetDAClipConfig(
    # context_dim 32 = the embedding width of the tiny DA-CLIP test config (daclip/configs/tiny.yaml).
    **_backbone(NAFNET_CONFIGS["tiny"]), context_dim=32, cond_dim=8, head_channels=8)
NAFNET_DEGRADATION_CONFIGS: dict[str, NAFNetDAClipConfig] = {
    name: replace(cfg, cross_attention=False) for name, cfg in NAFNET_DACLIP_CONFIGS.items()
}


class NAFNetDAClip(NAFNet):
    """``forward(inp, text_context=None, image_context=None)`` -> restored image."""

    def __init__(self, img_channel=3, width=32, middle_blk_num=12, enc_blk_nums=(2, 2, 4, 8),
                 dec_blk_nums=(2, 2, 2, 2), context_dim=512, cond_dim=256, head_channels=32,
                 cross_attention=True):
        nn.Module.__init__(self)
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums need the same length")
        block = lambda ch: ModulatedNAFBlock(ch, cond_dim)  # noqa: E731
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.ModuleList([block(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = nn.ModuleList([block(chan) for _ in range(middle_blk_num)])
        heads = max(1, chan // head_channels)
        self.middle_attn = (nn.ModuleList([CrossAttention(chan, context_dim, heads) for _ in range(middle_blk_num)])
                            if cross_attention else None)
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.ModuleList([block(chan) for _ in range(num)]))
        self.context_dim = context_dim  # callers check it against the DA-CLIP embedding width
        self.degra_mlp = nn.Sequential(nn.Linear(context_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.pad_multiple = 2 ** len(self.encoders)

    def forward(self, inp: torch.Tensor, text_context: torch.Tensor | None = None,
                image_context: torch.Tensor | None = None) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = self.pad(inp)
        if image_context is not None and self.middle_attn is None:
            raise ValueError("this network has no content branch (cross_attention=False): pass text_context only")
        cond = None if text_context is None else self.degra_mlp(text_context.to(inp.dtype))
        if image_context is not None and image_context.dim() == 2:
            image_context = image_context[:, None, :]  # one content token per image
        x = self.intro(inp)
        skips = []
        for stage, down in zip(self.encoders, self.downs):
            for blk in stage:
                x = blk(x, cond)
            skips.append(x)
            x = down(x)
        for i, blk in enumerate(self.middle_blks):
            x = blk(x, cond)
            if image_context is not None:
                x = self.middle_attn[i](x, image_context.to(x.dtype))
        for stage, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = up(x) + skip
            for blk in stage:
                x = blk(x, cond)
        x = self.ending(x) + inp
        return x[..., :h, :w]


def init_from_nafnet(model: NAFNetDAClip, nafnet_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a NAFNet state_dict into the shared backbone; returns the keys left at their init."""
    own = model.state_dict()
    shared = {k: v for k, v in nafnet_state.items() if k in own and own[k].shape == v.shape}
    result = model.load_state_dict(shared, strict=False)
    return sorted(result.missing_keys)


@register_network("nafnet-daclip")
def build_nafnet_daclip(preset: str = "sidd-w32", **overrides) -> NAFNetDAClip:
    """NAFNet + DA-CLIP from a NAFNet preset name plus overrides (context_dim, cond_dim, ...)."""
    cfg = resolve_preset(NAFNET_DACLIP_CONFIGS, preset, "nafnet-daclip", overrides)
    return NAFNetDAClip(**asdict(cfg))


@register_network("nafnet-degradation")
def build_nafnet_degradation(preset: str = "sidd-w32", **overrides) -> NAFNetDAClip:
    """NAFNet + Degradation: NAFNet modulated by the DA-CLIP degradation embedding only."""
    cfg = resolve_preset(NAFNET_DEGRADATION_CONFIGS, preset, "nafnet-degradation", overrides)
    return NAFNetDAClip(**asdict(cfg))
