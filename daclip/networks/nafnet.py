"""NAFNet (Chen et al., ECCV 2022) with the parameter names of megvii-research/NAFNet.

State-dict keys and shapes equal the released BasicSR checkpoints (``{'params': ...}``), so
``NAFNet-SIDD-width32.pth`` and friends load strictly. The network zero-pads its input to a
multiple of ``2 ** len(enc_blk_nums)`` and crops back, exactly as upstream does, so any
input size works.

The GoPro presets run as upstream tests them: NAFNetLocal ("TLC", test-time local
statistics): the global average pooling of each block's channel attention becomes a local
box average whose window is what the global pool saw at the 256 x 256 training size, times
1.5 (a 384 x 384 window at full resolution, halving per level), replicate-padded back to the
feature size. ``tlc_train_size=0`` restores global pooling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .registry import register_network


@dataclass(frozen=True)
class NAFNetConfig:
    img_channel: int = 3
    width: int = 32
    middle_blk_num: int = 12
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)
    dec_blk_nums: tuple[int, ...] = (2, 2, 2, 2)
    #: NAFNetLocal: training patch size whose statistics the test-time pooling imitates
    #: (256 for the GoPro models); 0: plain global pooling (the SIDD models).
    tlc_train_size: int = 0


# Released configurations (options/test/*/NAFNet-*.yml upstream) plus a tiny one for tests.
NAFNET_CONFIGS: dict[str, NAFNetConfig] = {
    "sidd-w32": NAFNetConfig(width=32, middle_blk_num=12, enc_blk_nums=(2, 2, 4, 8), dec_blk_nums=(2, 2, 2, 2)),
    "sidd-w64": NAFNetConfig(width=64, middle_blk_num=12, enc_blk_nums=(2, 2, 4, 8), dec_blk_nums=(2, 2, 2, 2)),
    # options/test/GoPro/NAFNet-width*.yml: type NAFNetLocal (train_size 1x3x256x256).
    "gopro-w32": NAFNetConfig(width=32, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28), dec_blk_nums=(1, 1, 1, 1),
                              tlc_train_size=256),
    "gopro-w64": NAFNetConfig(width=64, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28), dec_blk_nums=(1, 1, 1, 1),
                              tlc_train_size=256),
    "tiny": NAFNetConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1)),
}


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (eps 1e-6, as upstream)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()  # upstream's division (not rsqrt): same rounding
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class LocalAvgPool(nn.Module):
    """TLC's test-time pooling: the mean over a ``kernel`` x ``kernel`` window around each pixel.

    Windows are the valid positions of the box (computed with a summed-area table, so a
    384-pixel window costs the same as a 3-pixel one), replicate-padded back to the input
    size; a feature map no larger than the window gets the global mean, as in training.
    """

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = int(kernel)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.kernel >= h and self.kernel >= w:
            return F.adaptive_avg_pool2d(x, 1)
        kh, kw = min(h, self.kernel), min(w, self.kernel)
        acc = x.to(torch.promote_types(x.dtype, torch.float32))  # summed in fp32 at least, as upstream
        table = F.pad(acc.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
        box = (table[..., kh:, kw:] - table[..., :-kh, kw:] - table[..., kh:, :-kw] + table[..., :-kh, :-kw])
        box = (box / (kh * kw)).to(x.dtype)
        ph, pw = h - box.shape[-2], w - box.shape[-1]
        return F.pad(box, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")


def tlc_kernel(train_size: int, level: int) -> int:
    """NAFNetLocal's window at ``level`` (0 = full resolution): 1.5 x the level's training size."""
    return (train_size >> level) * int(train_size * 1.5) // train_size


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: depthwise conv + SimpleGate + simplified channel attention, then an FFN."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, pool: nn.Module | None = None):
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        # Index 0 is the pooling (no weights); the key of the 1x1 conv stays "sca.1".
        self.sca = nn.Sequential(pool if pool is not None else nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        ffn = ffn_expand * c
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        # Zero-initialised residual scales: every block starts as the identity (upstream init).
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def spatial(self, h: torch.Tensor) -> torch.Tensor:
        """The first branch applied to an already normalised input."""
        h = self.sg(self.conv2(self.conv1(h)))
        return self.conv3(h * self.sca(h))

    def channel(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.sg(self.conv4(self.norm2(y))))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        y = inp + self.spatial(self.norm1(inp)) * self.beta
        return y + self.channel(y) * self.gamma


class NAFNet(nn.Module):
    """U-shaped NAFNet; ``forward(inp)`` returns the restored image (global residual)."""

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(),
                 tlc_train_size=0):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums need the same length")
        self.tlc_train_size = int(tlc_train_size)

        def block(ch: int, level: int) -> NAFBlock:
            pool = LocalAvgPool(tlc_kernel(self.tlc_train_size, level)) if self.tlc_train_size else None
            return NAFBlock(ch, pool=pool)

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        chan = width
        for level, num in enumerate(enc_blk_nums):
            self.encoders.append(nn.Sequential(*[block(chan, level) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        depth = len(enc_blk_nums)
        self.middle_blks = nn.Sequential(*[block(chan, depth) for _ in range(middle_blk_num)])
        for i, num in enumerate(dec_blk_nums):
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[block(chan, depth - 1 - i) for _ in range(num)]))
        self.pad_multiple = 2 ** len(self.encoders)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad bottom/right to the network's multiple (upstream check_image_size)."""
        m = self.pad_multiple
        h, w = x.shape[-2:]
        return F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = self.pad(inp)
        x = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = dec(up(x) + skip)
        x = self.ending(x) + inp
        return x[..., :h, :w]


@register_network("nafnet")
def build_nafnet(preset: str = "sidd-w32", **overrides) -> NAFNet:
    """NAFNet from a preset (sidd-w32, sidd-w64, gopro-w32, gopro-w64, tiny) plus overrides.

    The GoPro presets are NAFNetLocal (``tlc_train_size=256``), as upstream tests them.
    """
    cfg = resolve_preset(NAFNET_CONFIGS, preset, "nafnet", overrides)
    return NAFNet(**asdict(cfg))
