"""MoCE-IR (Zamir et al., CVPR 2025) with the parameter names of eduardzamfir/MoCE-IR.

A Restormer-like encoder and a decoder whose blocks route each image to one of four
low-rank experts (FFT attention at patch sizes 4..32). Keys and shapes equal the released
Lightning ``last.ckpt`` files once their ``net.`` prefix is stripped (1262 keys, including
the 10 ``complexity`` buffers).

Kept from upstream on purpose:
- the router adds Gaussian noise (std 1/num_experts) to its logits in eval too; dropping it
  would be another model. The noise comes from ``generator`` when one is set (the method
  seeds one per image), else from the global torch RNG in upstream's order;
- ``HighPassConv2d``'s kernel is a trained weight (upstream's freeze is a no-op assignment).

Changed: upstream's eval path is correct only at batch size 1 (with B > 1 every selected
expert runs on the whole batch and the outputs are summed across images); here each image
goes through its own expert, which equals upstream at B = 1.

Sides must be multiples of 8 (three pixel-unshuffle levels); the port reflect-pads to 8 and
crops back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .registry import register_network
from .restormer import Attention, ChannelCrossAttention, ChannelLayerNorm, Downsample, FeedForward, OverlapPatchEmbed, Upsample, reflect_pad


class FFTAttention(nn.Module):
    """Per-patch circular correlation of q and k (rFFT in fp32), normalised, gating v."""

    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 7, padding=3, groups=dim * 2)
        self.norm = ChannelLayerNorm(dim, "WithBias")
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        b, c, h, w = x.shape
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        hp, wp = x.shape[-2] // p, x.shape[-1] // p
        return x.reshape(b, c, hp, p, wp, p).permute(0, 1, 2, 4, 3, 5)  # b c hp wp p p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch_size
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        corr = torch.fft.irfft2(torch.fft.rfft2(self._patches(q).float()) * torch.fft.rfft2(self._patches(k).float()),
                                s=(p, p))
        hp, wp = corr.shape[2], corr.shape[3]
        corr = corr.permute(0, 1, 2, 4, 3, 5).reshape(b, c, hp * p, wp * p)[:, :, :h, :w]
        return self.proj_out(self.norm(corr) * v)


class ModExpert(nn.Module):
    """Low-rank expert: project to ``rank``, FFT attention gated by the shared branch, project back."""

    def __init__(self, dim: int, rank: int, depth: int, patch_size: int):
        super().__init__()
        self.depth = depth
        self.proj = nn.ModuleList([nn.Conv2d(dim, rank, 1, bias=False), nn.Conv2d(dim, rank, 1, bias=False),
                                   nn.Conv2d(rank, dim, 1, bias=False)])
        self.body = FFTAttention(rank, patch_size)

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        # Upstream applies the expert ``depth`` times to the same input and keeps the last.
        out = x
        for _ in range(self.depth):
            out = self.proj[2](self.body(self.proj[0](x)) * F.silu(self.proj[1](shared))) + x
        return out


class ExpertSlot(nn.Sequential):
    """Holds one expert at index 0 (upstream's ``MySequential``; keys ``experts.i.0.*``)."""

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, shared)
        return x


class RoutingFunction(nn.Module):
    def __init__(self, dim: int, freq_dim: int, num_experts: int, k: int, complexity: torch.Tensor):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(dim, num_experts, bias=False))
        self.freq_gate = nn.Linear(freq_dim, num_experts, bias=False)
        self.register_buffer("complexity", complexity)
        self.k = k
        self.noise_std = 1.0 / num_experts
        #: Source of the eval-time noise (None: the global RNG, as upstream).
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.gate(x) + self.freq_gate(freq_emb)
        if self.generator is None:
            noise = torch.randn_like(logits)
        else:
            noise = torch.randn(logits.shape, generator=self.generator, device=self.generator.device,
                                dtype=logits.dtype).to(logits.device)
        scores = (logits + noise * self.noise_std).softmax(dim=-1)
        return torch.topk(scores, self.k, dim=-1)  # (values, indices), B x k


class AdapterLayer(nn.Module):
    def __init__(self, dim: int, rank: int, num_experts: int, top_k: int, stage_depth: int, depth_type: str,
                 rank_type: str, freq_dim: int, complexity_scale: str):
        super().__init__()
        patch_sizes = [2 ** (i + 2) for i in range(num_experts)]
        depths = {"constant": [stage_depth] * num_experts,
                  "lin": [stage_depth + i for i in range(num_experts)],
                  "double": [stage_depth + 2 * i for i in range(num_experts)],
                  "exp": [2 ** i for i in range(num_experts)]}[depth_type]
        ranks = {"constant": [rank] * num_experts,
                 "lin": [rank + i for i in range(num_experts)],
                 "double": [rank + 2 * i for i in range(num_experts)],
                 "exp": [rank ** (i + 1) for i in range(num_experts)],
                 "spread": [dim // (2 ** i) for i in range(num_experts)][::-1]}[rank_type]
        self.experts = nn.ModuleList([ExpertSlot(ModExpert(dim, r, d, p)) for d, r, p in zip(depths, ranks, patch_sizes)])
        self.proj_out = nn.Conv2d(dim, dim, 1, bias=False)
        complexity = torch.tensor([sum(p.numel() for p in e.parameters()) for e in self.experts])
        complexity = complexity / (complexity.max() if complexity_scale == "max" else complexity.min())
        self.routing = RoutingFunction(dim, freq_dim, num_experts, top_k, complexity)

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        values, indices = self.routing(x, freq_emb)
        outs = []
        for i in range(x.shape[0]):  # each image through its own top-k experts
            xi, si = x[i:i + 1], shared[i:i + 1]
            # Stacked, weighted and summed over k as upstream: the stack copies the expert output
            # (channels-last strided after the FFT branch's LayerNorm) to a contiguous one. Left
            # strided, the layout carries on to the cross attention, whose normalise over h*w
            # then sums in another order (1.7e-5 off upstream at the full-size output).
            y = torch.stack([self.experts[int(e)](xi, si) for e in indices[i]], dim=1)
            outs.append((values[i:i + 1, :, None, None, None] * y).sum(dim=1))
        return self.proj_out(torch.cat(outs))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn: float, bias: bool, ln: str):
        super().__init__()
        self.norms = nn.ModuleList([ChannelLayerNorm(dim, ln), ChannelLayerNorm(dim, ln)])
        self.mixer = Attention(dim, num_heads, bias)
        self.ffn = FeedForward(dim, ffn, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norms[0](x))
        return x + self.ffn(self.norms[1](x))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn: float, bias: bool, ln: str, **adapter):
        super().__init__()
        self.norms = nn.ModuleList([ChannelLayerNorm(dim, ln), ChannelLayerNorm(dim, ln)])
        self.proj = nn.ModuleList([nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)])
        self.shared = Attention(dim, num_heads, bias)
        self.mixer = ChannelCrossAttention(dim, num_heads, bias, kv_kernel=7)
        self.ffn = FeedForward(dim, ffn, bias)
        self.adapter = AdapterLayer(dim, **adapter)

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor) -> torch.Tensor:
        h = self.norms[0](x)
        shared = self.shared(self.proj[0](h))
        x = self.mixer(self.adapter(self.proj[1](h), freq_emb, shared), shared) + x
        return x + self.ffn(self.norms[1](x))


class EncoderGroup(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_blocks: int, ffn: float, ln: str, bias: bool):
        super().__init__()
        self.layers = nn.ModuleList([EncoderBlock(dim, num_heads, ffn, bias, ln) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DecoderGroup(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_blocks: int, ffn: float, ln: str, bias: bool, **adapter):
        super().__init__()
        self.layers = nn.ModuleList([DecoderBlock(dim, num_heads, ffn, bias, ln, **adapter) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, freq_emb)
        return x


class HighPass(nn.Module):
    """Depthwise 3x3 initialised to a Laplacian; trained, so the file's kernel is what counts."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False, groups=dim)
        with torch.no_grad():
            lap = torch.full((3, 3), -1.0)
            lap[1, 1] = 8.0
            self.conv.weight.copy_(lap.expand(dim, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FrequencyEmbedding(nn.Module):
    """High-pass + GELU, global mean, MLP: the routers' view of the bottleneck."""

    def __init__(self, dim: int):
        super().__init__()
        self.high_conv = nn.Sequential(HighPass(dim), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.high_conv(x).mean(dim=(-2, -1)))


@dataclass(frozen=True)
class MoCEIRConfig:
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    levels: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_dec_blocks: tuple[int, ...] = (2, 4, 4)
    ffn_expansion_factor: float = 2.0
    num_refinement_blocks: int = 4
    LayerNorm_type: str = "WithBias"
    bias: bool = False
    rank: int = 2
    num_experts: int = 4
    depth_type: str = "constant"
    stage_depth: tuple[int, ...] = (1, 1, 1)
    rank_type: str = "spread"
    topk: int = 1
    complexity_scale: str = "max"


MOCE_IR_CONFIGS: dict[str, MoCEIRConfig] = {
    # src/test.py with src/options.py defaults: MoCE-IR (dim 48) and MoCE-IR-S (dim 32).
    "default": MoCEIRConfig(),
    "small": MoCEIRConfig(dim=32),
    "tiny": MoCEIRConfig(dim=16, heads=(1, 1, 2, 2), num_blocks=(1, 1, 1, 1), num_dec_blocks=(1, 1, 1),
                         num_refinement_blocks=1),
}


class MoCEIR(nn.Module):
    """``forward(x, labels=None)`` returns the restored image (``labels`` is unused, as upstream)."""

    pad_multiple = 8

    def __init__(self, inp_channels=3, out_channels=3, dim=48, levels=4, heads=(1, 2, 4, 8), num_blocks=(4, 6, 6, 8),
                 num_dec_blocks=(2, 4, 4), ffn_expansion_factor=2.0, num_refinement_blocks=4, LayerNorm_type="WithBias",
                 bias=False, rank=2, num_experts=4, depth_type="constant", stage_depth=(1, 1, 1), rank_type="spread",
                 topk=1, complexity_scale="max"):
        super().__init__()
        ffn, ln = ffn_expansion_factor, LayerNorm_type
        dims = [dim * 2 ** i for i in range(levels)]
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.freq_embed = FrequencyEmbedding(dims[-1])
        # Encoder, latent and refinement groups use biases upstream whatever ``bias`` says.
        self.enc = nn.ModuleList([
            nn.ModuleList([EncoderGroup(dims[i], heads[i], num_blocks[i], ffn, ln, True), Downsample(dims[i])])
            for i in range(levels - 1)])
        self.latent = EncoderGroup(dims[-1], heads[-1], num_blocks[-1], ffn, ln, True)
        rdims, rheads, rdec = dims[::-1], list(heads)[::-1], list(num_dec_blocks)[::-1]
        self.dec = nn.ModuleList()
        for i in range(levels - 1):
            adapter = dict(rank=rank, num_experts=num_experts, top_k=topk, stage_depth=stage_depth[i],
                           depth_type=depth_type, rank_type=rank_type, freq_dim=rdims[0],
                           complexity_scale=complexity_scale)
            self.dec.append(nn.ModuleList([
                Upsample(rdims[i]),
                nn.Conv2d(rdims[i], rdims[i + 1], 1, bias=bias),
                DecoderGroup(rdims[i + 1], rheads[i + 1], rdec[i], ffn, ln, bias, **adapter)]))
        self.refinement = EncoderGroup(dim, heads[0], num_refinement_blocks, ffn, ln, True)
        self.output = nn.Conv2d(dim, out_channels, 3, padding=1, bias=bias)

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Draw the routers' eval-time noise from ``generator`` (None: the global RNG)."""
        for m in self.modules():
            if isinstance(m, RoutingFunction):
                m.generator = generator

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        h, w = x.shape[-2:]
        x0 = reflect_pad(x, self.pad_multiple)
        feats = self.patch_embed(x0)
        skips = []
        for group, down in self.enc:
            feats = group(feats)
            skips.append(feats)
            feats = down(feats)
        feats = self.latent(feats)
        freq_emb = self.freq_embed(feats)
        for up, fuse, group in self.dec:
            feats = group(fuse(torch.cat([up(feats), skips.pop()], 1)), freq_emb)
        return (self.output(self.refinement(feats)) + x0)[..., :h, :w]


def _build(preset: str, overrides: dict) -> MoCEIR:
    cfg = resolve_preset(MOCE_IR_CONFIGS, preset, "moce-ir", overrides)
    return MoCEIR(**asdict(cfg))


@register_network("moce-ir")
def build_moce_ir(preset: str = "default", **overrides) -> MoCEIR:
    """MoCE-IR from a preset (default = the released MoCE-IR, small = MoCE-IR-S, tiny) plus overrides."""
    return _build(preset, overrides)


@register_network("moce-ir-s")
def build_moce_ir_s(preset: str = "small", **overrides) -> MoCEIR:
    """MoCE-IR-S (dim 32): the ``small`` preset of moce-ir."""
    return _build(preset, overrides)
