"""AirNet (Li et al., CVPR 2022) with the parameter names of XLearning-SCU/2022-CVPR-AirNet.

AirNet = R (DGRN restorer: degradation-guided groups with modulated deformable convs and
SFT) + E (CBDE: a MoCo contrastive encoder whose query path yields the degradation
map). Checkpoints are raw ``net.state_dict()`` files with ``R.``/``E.`` prefixes.

Upstream uses ``mmcv.ops.modulated_deform_conv2d``; ``torchvision.ops.deform_conv2d`` with
a mask computes the same thing with the same offset layout (per kernel tap, (dy, dx)
pairs, then the mask), so the released weights load and run without mmcv. The MoCo queue
length is ``batch_size * 256`` of the authors' run (it differs between released files); it
is only used in training, and loading resizes it to whatever the file holds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from .loading import resolve_preset
from .registry import register_network


def conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class DCNLayer(nn.Module):
    """Modulated deformable conv whose offsets and mask come from [features, degradation map]."""

    def __init__(self, cin: int, cout: int, k: int, padding: int, bias: bool = False):
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.conv_offset_mask = nn.Conv2d(cin * 2, 3 * k * k, k, padding=padding)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        bound = 1.0 / math.sqrt(cin * k * k)
        nn.init.uniform_(self.weight, -bound, bound)
        # Zero offsets and mask 0.5 at start: a plain (scaled) convolution until trained.
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        om = self.conv_offset_mask(torch.cat([x, inter], dim=1))
        n = om.shape[1] // 3
        offset, mask = om[:, : 2 * n], torch.sigmoid(om[:, 2 * n:])
        # fp32 always: torchvision's CPU kernel has no bf16 and its CUDA autocast rule upcasts anyway.
        with torch.autocast(device_type=x.device.type, enabled=False):
            bias = None if self.bias is None else self.bias.float()
            return deform_conv2d(x.float().contiguous(), offset.float(), self.weight.float(), bias,
                                 padding=self.padding, mask=mask.float())


class SFTLayer(nn.Module):
    """Spatial feature transform: x * gamma(inter) + beta(inter)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_gamma = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.LeakyReLU(0.1, True),
                                        nn.Conv2d(cout, cout, 1, bias=False))
        self.conv_beta = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.LeakyReLU(0.1, True),
                                       nn.Conv2d(cout, cout, 1, bias=False))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x * self.conv_gamma(inter) + self.conv_beta(inter)


class DGM(nn.Module):
    """Degradation-guided module: x + DCN(x | inter) + SFT(x | inter)."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.dcn = DCNLayer(cin, cout, k, padding=(k - 1) // 2, bias=False)
        self.sft = SFTLayer(cin, cout)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x + self.dcn(x, inter) + self.sft(x, inter)


class DGB(nn.Module):
    def __init__(self, n_feat: int, k: int):
        super().__init__()
        self.dgm1 = DGM(n_feat, n_feat, k)
        self.dgm2 = DGM(n_feat, n_feat, k)
        self.conv1 = conv(n_feat, n_feat, k)
        self.conv2 = conv(n_feat, n_feat, k)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.dgm1(x, inter), 0.1)
        out = F.leaky_relu(self.conv1(out), 0.1)
        out = F.leaky_relu(self.dgm2(out, inter), 0.1)
        return self.conv2(out) + x


class DGG(nn.Module):
    """Group of DGBs plus a closing conv, with a group residual; blocks live in ``body``."""

    def __init__(self, n_feat: int, k: int, n_blocks: int):
        super().__init__()
        self.n_blocks = n_blocks
        self.body = nn.Sequential(*[DGB(n_feat, k) for _ in range(n_blocks)], conv(n_feat, n_feat, k))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        res = x
        for i in range(self.n_blocks):
            res = self.body[i](res, inter)
        return self.body[-1](res) + x


class DGRN(nn.Module):
    """The restorer R: head conv, ``n_groups`` DGGs + conv with a long residual, tail conv."""

    def __init__(self, n_feats: int = 64, n_groups: int = 5, n_blocks: int = 5, kernel_size: int = 3,
                 channels: int = 3):
        super().__init__()
        self.n_groups = n_groups
        self.head = nn.Sequential(conv(channels, n_feats, kernel_size))
        self.body = nn.Sequential(*[DGG(n_feats, kernel_size, n_blocks) for _ in range(n_groups)],
                                  conv(n_feats, n_feats, kernel_size))
        self.tail = nn.Sequential(conv(n_feats, channels, kernel_size))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        res = x
        for i in range(self.n_groups):
            res = self.body[i](res, inter)
        return self.tail(self.body[-1](res) + x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.backbone(x) + self.shortcut(x), 0.1)


class ResEncoder(nn.Module):
    """Returns (pooled feature, projection for the contrastive loss, full-resolution degradation map)."""

    def __init__(self, n_feats: int = 64, dim: int = 256, channels: int = 3):
        super().__init__()
        self.E_pre = ResBlock(channels, n_feats, 1)
        self.E = nn.Sequential(ResBlock(n_feats, dim // 2, 2), ResBlock(dim // 2, dim, 2), nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.1, True), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor):
        inter = self.E_pre(x)
        fea = self.E(inter).flatten(1)
        return fea, self.mlp(fea), inter


class MoCo(nn.Module):
    """Momentum contrast over degradation representations (query/key encoders, negative queue)."""

    def __init__(self, n_feats: int = 64, dim: int = 256, queue_size: int = 5 * 256, m: float = 0.999, T: float = 0.07,
                 channels: int = 3):
        super().__init__()
        self.m, self.T = m, T
        self.encoder_q = ResEncoder(n_feats, dim, channels)
        self.encoder_k = ResEncoder(n_feats, dim, channels)
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        self.encoder_k.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def prepare_load(self, state_dict, prefix: str) -> None:
        """The queue length records the authors' batch size: adopt the file's before a strict load."""
        q = state_dict.get(prefix + "queue")
        if q is not None and q.dim() == 2 and q.shape[0] == self.queue.shape[0] and q.shape != self.queue.shape:
            self.queue = torch.zeros(q.shape, dtype=self.queue.dtype, device=self.queue.device)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.mul_(self.m).add_(pq.detach(), alpha=1.0 - self.m)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        n, size = keys.shape[0], self.queue.shape[1]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % size
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % size

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor):
        if not self.training:
            fea, _, inter = self.encoder_q(im_q)
            return fea, inter
        fea, q, inter = self.encoder_q(im_q)
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            self._momentum_update()
            k = F.normalize(self.encoder_k(im_k)[1], dim=1)
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        self._enqueue(k)
        return fea, logits, labels, inter


class CBDE(nn.Module):
    """Contrastive-based degradation encoder; its MoCo lives in ``E`` as upstream names it."""

    def __init__(self, n_feats: int = 64, dim: int = 256, queue_size: int = 5 * 256, channels: int = 3):
        super().__init__()
        self.E = MoCo(n_feats, dim, queue_size, channels=channels)

    def forward(self, x_query: torch.Tensor, x_key: torch.Tensor):
        return self.E(x_query, x_key)


@dataclass(frozen=True)
class AirNetConfig:
    n_feats: int = 64
    n_groups: int = 5
    n_blocks: int = 5
    encoder_dim: int = 256
    # Upstream: batch_size * encoder_dim; the all-in-one release trained with batch 5.
    queue_size: int = 5 * 256
    channels: int = 3


AIRNET_CONFIGS: dict[str, AirNetConfig] = {
    "default": AirNetConfig(),
    "tiny": AirNetConfig(n_feats=8, n_groups=1, n_blocks=1, encoder_dim=16, queue_size=32),
}


class AirNet(nn.Module):
    """``forward(x_query, x_key)``: training returns (restored, logits, labels); eval returns restored.

    ``restore(x)`` is the inference path (query encoder + restorer only). Any input size works.
    """

    pad_multiple = 1

    def __init__(self, n_feats=64, n_groups=5, n_blocks=5, encoder_dim=256, queue_size=5 * 256, channels=3):
        super().__init__()
        self.R = DGRN(n_feats, n_groups, n_blocks, 3, channels)
        self.E = CBDE(n_feats, encoder_dim, queue_size, channels)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        _, _, inter = self.E.E.encoder_q(x)
        return self.R(x, inter)

    def forward(self, x_query: torch.Tensor, x_key: torch.Tensor | None = None):
        if not self.training:
            return self.restore(x_query)
        if x_key is None:
            raise ValueError("training AirNet needs a key view (x_key) of the same degradation")
        _, logits, labels, inter = self.E(x_query, x_key)
        return self.R(x_query, inter), logits, labels

    def training_loss(self, x_query: torch.Tensor, x_key: torch.Tensor, gt: torch.Tensor | None = None,
                      contrast_weight: float = 0.1):
        """Upstream objective: contrastive CE only while the encoder warms up (``gt`` None), then
        L1(restored, gt) + 0.1 * CE. ``x_key`` is another crop of the same degraded image.
        Returns (loss, restored or None)."""
        if gt is None:
            _, logits, labels, _ = self.E(x_query, x_key)
            return F.cross_entropy(logits, labels), None
        restored, logits, labels = self(x_query, x_key)
        return F.l1_loss(restored, gt) + contrast_weight * F.cross_entropy(logits, labels), restored


@register_network("airnet")
def build_airnet(preset: str = "default", **overrides) -> AirNet:
    """AirNet from a preset (default = released all-in-one, tiny) plus overrides."""
    cfg = resolve_preset(AIRNET_CONFIGS, preset, "airnet", overrides)
    return AirNet(**asdict(cfg))
