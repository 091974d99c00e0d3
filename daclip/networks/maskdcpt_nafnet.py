"""MaskDCPT's NAFNet (``NAFNetBaseline`` of MILab-PKU/MaskDCPT), a variant of the toolkit's NAFNet.

The toolkit's ``nafnet`` cannot load these files as they are: the keys differ
(``encoders.i.blocks.j``, ``middle_blks.blocks.j``, ``decoder{i}.blocks.j`` here), the channel
LayerNorm uses eps 1e-5 (``nn.LayerNorm``; megvii's is 1e-6) and pooling is plain global
(not the TLC "local" pooling of the GoPro presets). The blocks themselves are the toolkit's
:class:`~daclip.networks.nafnet.NAFBlock`.

The network does not pad (sides must be multiples of 16); as BasicSR's test does, this port
reflect-pads bottom/right to a multiple of 16 and crops back (zero padding would move the
output). The released files are BasicSR dicts read ``params_ema`` first, else ``params``
(:attr:`MaskDCPTNAFNet.container_keys`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .loading import resolve_preset
from .nafnet import NAFBlock
from .registry import register_network
from .restormer import reflect_pad


class ChannelLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of NCHW (eps 1e-5), computed as upstream does it."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2).contiguous()


class NAFBlocks(nn.Module):
    """A run of NAFBlocks under the key ``blocks``, with ``nn.LayerNorm`` channel norms."""

    def __init__(self, chan: int, num: int):
        super().__init__()
        self.blocks = nn.ModuleList([NAFBlock(chan) for _ in range(num)])
        for block in self.blocks:
            block.norm1, block.norm2 = ChannelLayerNorm(chan), ChannelLayerNorm(chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@dataclass(frozen=True)
class MaskDCPTNAFNetConfig:
    img_channel: int = 3
    width: int = 64
    middle_blk_num: int = 1
    enc_blk_nums: tuple[int, ...] = (1, 1, 1, 28)
    dec_blk_nums: tuple[int, ...] = (1, 1, 1, 1)
    window_size: int = 16


MASKDCPT_NAFNET_CONFIGS: dict[str, MaskDCPTNAFNetConfig] = {
    # options/all_in_one/test/test_NAFNet_{5d,12d,mixed}.yml
    "default": MaskDCPTNAFNetConfig(),
    "tiny": MaskDCPTNAFNetConfig(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1)),
}


class MaskDCPTNAFNet(nn.Module):
    """``forward(inp)`` returns the restored image (global residual)."""

    #: BasicSR's rule for its test: the EMA weights when the file has them.
    container_keys = ("params_ema", "params")

    def __init__(self, img_channel=3, width=64, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28),
                 dec_blk_nums=(1, 1, 1, 1), window_size=16):
        super().__init__()
        self.pad_multiple = window_size  # the BasicSR test's reflect padding (the net itself does not pad)
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs, self.ups = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(NAFBlocks(chan, num))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = NAFBlocks(chan, middle_blk_num)
        self.num_decoders = len(dec_blk_nums)
        for i, num in enumerate(dec_blk_nums):
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            setattr(self, f"decoder{i}", NAFBlocks(chan, num))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = reflect_pad(inp, self.pad_multiple)
        x = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for i, (up, skip) in enumerate(zip(self.ups, reversed(skips))):
            x = getattr(self, f"decoder{i}")(up(x) + skip)
        return (self.ending(x) + inp)[..., :h, :w]


@register_network("maskdcpt-nafnet")
def build_maskdcpt_nafnet(preset: str = "default", **overrides) -> MaskDCPTNAFNet:
    """MaskDCPT's NAFNet from a preset (default = the released 5D/12D configuration, tiny) plus overrides."""
    cfg = resolve_preset(MASKDCPT_NAFNET_CONFIGS, preset, "maskdcpt-nafnet", overrides)
    return MaskDCPTNAFNet(**asdict(cfg))
