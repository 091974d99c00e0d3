"""OneRestore (Guo et al., ECCV 2024) with the parameter names of gy65896/OneRestore.

Two networks, each a plain state dict as released (``.tar`` names, torch zip files inside):

- ``onerestore``: the restorer, ``net(x, embedding)`` with ``x`` RGB in [0, 1] and
  ``embedding`` one of the 12 scene vectors (B x 324). It maps x to [-1, 1] itself and
  returns ``((conv + x) + 1) / 2``. Any size works (ceil-free max-pooling, the decoder
  interpolates to the skip sizes): no padding. Each cross-attention resizes its keys to 18 x 18
  *without* antialiasing, as in the authors' environment (torchvision 0.14), not with a newer
  torchvision's antialiased default.
- ``onerestore-embedder``: the scene-type classifier (``embedder_model.tar``). Blind mode:
  :meth:`Embedder.image_embedding` on a 224 x 224 resize predicts one of the 12 scene types
  and returns that type's vector; :meth:`Embedder.type_embedding` gives the vector of a named
  type. Its ResNet18 weights are part of the released file, so nothing comes from torchvision's
  download. The word vectors of the type names (``embedder.weight``) are in the file as well;
  the repository's trimmed GloVe file (:func:`glove_type_vectors`) rebuilds them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_network
from .restormer import Attention, ChannelLayerNorm, FeedForward

SCENE_TYPES = ("clear", "low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain",
               "haze_snow", "low_haze_rain", "low_haze_snow")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CrossAttention(nn.Module):
    """Channel attention whose query is the (linear-mapped) scene vector, repeated per channel;
    keys are resized to sqrt(q_dim) squared (18 x 18) with plain bilinear interpolation."""

    def __init__(self, dim: int, num_heads: int, bias: bool, q_dim: int = 324):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.key_side = int(math.sqrt(q_dim))
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Linear(q_dim, q_dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, per = self.num_heads, self.dim // self.num_heads
        q = self.q(query)[:, None, None, :].expand(b, heads, per, query.shape[-1])
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        k = F.interpolate(k, (self.key_side, self.key_side), mode="bilinear", align_corners=False, antialias=False)
        k = k.reshape(b, heads, per, -1)
        v = v.reshape(b, heads, per, h * w)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, ffn_expansion_factor: float = 2.66, bias: bool = False):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, "WithBias")
        self.cross_attn = CrossAttention(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, "WithBias")
        self.self_attn = Attention(dim, num_heads, bias)
        self.norm3 = ChannelLayerNorm(dim, "WithBias")
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm1(x), query)
        x = x + self.self_attn(self.norm2(x))
        return x + self.ffn(self.norm3(x))


class Residual(nn.Module):
    """Upstream's ``ResidualBlock``: one transformer block under the key ``el``."""

    def __init__(self, dim: int):
        super().__init__()
        self.el = TransformerBlock(dim)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.el(x, query)


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=False)


class Encoder(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.el, self.em, self.es, self.ess = Residual(c), Residual(c * 2), Residual(c * 4), Residual(c * 8)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv_eltem = _conv1x1(c, 2 * c)
        self.conv_emtes = _conv1x1(2 * c, 4 * c)
        self.conv_estess = _conv1x1(4 * c, 8 * c)
        self.conv_esstesss = _conv1x1(8 * c, 16 * c)  # unused upstream (kept for the keys)
        self.conv_esstesss.requires_grad_(False)

    def forward(self, x, e):
        l = self.el(x, e)
        m = self.em(self.conv_eltem(self.maxpool(l)), e)
        s = self.es(self.conv_emtes(self.maxpool(m)), e)
        ss = self.ess(self.conv_estess(self.maxpool(s)), e)
        return l, m, s, ss


class Middle(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.s1, self.s2 = Residual(c * 8), Residual(c * 8)

    def forward(self, x, e):
        return self.s2(self.s1(x, e), e)


class Decoder(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.dss, self.ds, self.dm, self.dl = Residual(c * 8), Residual(c * 4), Residual(c * 2), Residual(c)
        self.conv_dsstds = _conv1x1(8 * c, 4 * c)
        self.conv_dstdm = _conv1x1(4 * c, 2 * c)
        self.conv_dmtdl = _conv1x1(2 * c, c)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x, ss, s, m, l, e):
        x = self.dss(x + ss, e)
        x = self.ds(self.conv_dsstds(self._up(x, s)) + s, e)
        x = self.dm(self.conv_dstdm(self._up(x, m)) + m, e)
        return self.dl(self.conv_dmtdl(self._up(x, l)) + l, e)


class OneRestore(nn.Module):
    """``forward(x, embedding)``: x RGB in [0, 1], embedding B x 324 (a scene vector)."""

    def __init__(self, channel: int = 32):
        super().__init__()
        self.in_conv = _conv1x1(3, channel)
        self.encoder = Encoder(channel)
        self.middle = Middle(channel)
        self.decoder = Decoder(channel)
        self.out_conv = _conv1x1(channel, 3)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        l, m, s, ss = self.encoder(self.in_conv((x - 0.5) / 0.5), embedding)
        out = self.decoder(self.middle(ss, embedding), ss, s, m, l, embedding)
        return (self.out_conv(out) + x + 1) / 2


class ResNet18Features(nn.Module):
    """torchvision's ResNet18 up to layer4 under upstream's names (``block0`` .. ``block4``),
    built without weights: the released embedder file carries them."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet18

        r = resnet18(weights=None)
        self.block0 = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.block1, self.block2, self.block3, self.block4 = r.layer1, r.layer2, r.layer3, r.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in (self.block0, self.block1, self.block2, self.block3, self.block4):
            x = block(x)
        return x


class Embedder(nn.Module):
    """OneRestore's scene embedder (image and type-name encoders sharing 12 scene vectors)."""

    def __init__(self, types: tuple[str, ...] = SCENE_TYPES, feat_dim: int = 512, mid_dim: int = 1024,
                 out_dim: int = 324, word_dim: int = 300, drop_rate: float = 0.35, cosine_temp: float = 0.05):
        super().__init__()
        self.types = tuple(types)
        self.cosine_temp = cosine_temp
        self.feat_extractor = ResNet18Features()
        self.img_embedder = nn.Sequential(nn.Conv2d(feat_dim, mid_dim, 1, bias=False), nn.BatchNorm2d(mid_dim),
                                          nn.ReLU(), nn.Dropout2d(drop_rate))
        self.img_final = nn.Linear(mid_dim, out_dim)
        self.embedder = nn.Embedding(len(self.types), word_dim)  # the type names' word vectors (GloVe)
        self.mlp = nn.Sequential(nn.Linear(word_dim, out_dim), nn.ReLU(True))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def scene_vectors(self) -> torch.Tensor:
        """The 12 scene vectors (12 x 324, non-negative): ReLU(Linear(word vectors))."""
        return self.mlp(self.embedder.weight)

    def classify(self, img224: torch.Tensor) -> torch.Tensor:
        """Scene-type index per image (``img224``: B x 3 x 224 x 224 RGB in [0, 1])."""
        f = self.feat_extractor((img224 - self.mean) / self.std)
        f = self.img_final(self.img_embedder(f).mean((2, 3)))
        logits = F.normalize(f, dim=-1) @ F.normalize(self.scene_vectors(), dim=-1).t() / self.cosine_temp
        return logits.argmax(dim=1)

    def image_embedding(self, img224: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """(B x 324 scene vectors, predicted type names): upstream's ``image_encoder`` mode."""
        idx = self.classify(img224)
        return self.scene_vectors()[idx], [self.types[i] for i in idx.tolist()]

    def type_embedding(self, names: list[str]) -> torch.Tensor:
        """B x 324 scene vectors of named types (upstream's ``text_encoder`` mode, ``--prompt``)."""
        bad = [n for n in names if n not in self.types]
        if bad:
            raise ValueError(f"unknown OneRestore scene type(s) {', '.join(bad)}; known: {', '.join(self.types)}")
        return self.scene_vectors()[[self.types.index(n) for n in names]]


def read_glove(path: str | Path) -> dict[str, torch.Tensor]:
    """Word -> vector from a GloVe text file (``word v1 v2 ...`` per line)."""
    out: dict[str, torch.Tensor] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(" ")
        if len(parts) > 1:
            out[parts[0]] = torch.tensor([float(v) for v in parts[1:]])
    return out


def glove_type_vectors(path: str | Path, types: tuple[str, ...] = SCENE_TYPES) -> torch.Tensor:
    """The embedder's initial word vectors: a type's vector, or the mean of its ``_``-joined words'."""
    words = read_glove(path)
    missing = sorted({w for t in types for w in t.lower().split("_")} - set(words))
    if missing:
        raise ValueError(f"{path}: no GloVe vector for {', '.join(missing)}")
    return torch.stack([torch.stack([words[w] for w in t.lower().split("_")]).mean(0) for t in types])


@register_network("onerestore")
def build_onerestore(preset: str = "default", channel: int | None = None) -> OneRestore:
    """OneRestore restorer: default = the released ``OneRestore(channel=32)``, tiny = channel 8."""
    from builders.errors import UserError

    presets = {"default": 32, "tiny": 8}
    if preset not in presets:
        raise UserError(f"unknown onerestore preset {preset!r}; known: {', '.join(presets)}")
    return OneRestore(channel or presets[preset])


@register_network("onerestore-embedder")
def build_onerestore_embedder(preset: str = "default") -> Embedder:
    """OneRestore's scene embedder as released (12 types, ResNet18, 324-d scene vectors)."""
    from builders.errors import UserError

    if preset != "default":
        raise UserError(f"unknown onerestore-embedder preset {preset!r}; known: default")
    return Embedder()
