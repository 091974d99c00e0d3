"""Name -> metric registry, in the paper's evaluation convention.

Per-image metrics take the restored output and the GT as HxWx3 uint8 RGB arrays (so outputs
are uint8-rounded before scoring, as in the official test script) and crop a 4-pixel border.

- ``psnr``: pyiqa's PSNR on RGB (data range 1, eps 0): exactly BasicSR's calculate_psnr.
- ``ssim``: BasicSR's calculate_ssim (11x11 Gaussian window, sigma 1.5, valid region, float64,
  mean over RGB channels). pyiqa's ``ssimc`` is *not* used: it clamps the contrast-structure
  term at zero (F.relu), which changes the score wherever local structure is anti-correlated.
- ``psnr_y`` / ``ssim_y``: the same on BasicSR's BT.601 Y channel (logged, not headline).
- ``lpips``: LPIPS v0.1 with AlexNet (pyiqa's formula and weight files), full image, inputs
  scaled to [-1, 1].
- ``fid`` / ``kid``: per-type set metrics on Inception features (see benchmark.set_metrics).

Metrics that need weights read them from the weights folder (benchmark.weights), verified
and unpickled by the toolkit's restricted loader, and are reported unavailable, with the
file and the reason named, when they are missing, fail their digest or are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from builders.errors import UserError

CROP_BORDER = 4


class MetricUnavailable(Exception):
    """The metric cannot be computed here (its weights are missing); the message says why."""


@dataclass(frozen=True)
class Metric:
    name: str
    display: str
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray], float] | None
    fmt: str = ".2f"
    headline: bool = True
    description: str = ""
    kind: str = "image"  # "image": mean of per-image values; "set": one value per type (FID)
    prepare: Callable[[Path, str], None] | None = None  # (weights_dir, device); may raise MetricUnavailable

    def __call__(self, output: np.ndarray, gt: np.ndarray) -> float:
        if self.fn is None:
            raise TypeError(f"{self.name} is a set metric: it has one value per type, not per image")
        if output.shape != gt.shape:
            raise ValueError(f"output {output.shape} and GT {gt.shape} differ in size")
        return float(self.fn(output, gt))

    def setup(self, weights_dir: Path, device: str = "cpu") -> None:
        if self.prepare is not None:
            self.prepare(Path(weights_dir), device)


_METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    if metric.name in _METRICS:
        raise KeyError(f"metric {metric.name!r} registered twice")
    _METRICS[metric.name] = metric
    return metric


def metric_names() -> list[str]:
    _load_set_metrics()
    return list(_METRICS)


def default_metrics() -> list[str]:
    _load_set_metrics()
    return [n for n, m in _METRICS.items() if m.headline]


def _load_set_metrics() -> None:
    from . import set_metrics  # noqa: F401  (registers fid, kid)


def get_metric(name: str) -> Metric:
    _load_set_metrics()
    if name not in _METRICS:
        raise UserError(f"unknown metric {name!r}; known metrics: {', '.join(_METRICS)}")
    return _METRICS[name]


def parse_metrics(text: str | None) -> list[str]:
    _load_set_metrics()
    if text is None or text.strip() in ("", "default"):
        return default_metrics()
    if text.strip() == "all":
        return metric_names()
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for n in names:
        get_metric(n)
    return names


# ---------------------------------------------------------------- helpers


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float64 in [0, 1]."""
    return torch.tensor(img, dtype=torch.float64).permute(2, 0, 1)[None] / 255.0


def crop(t: torch.Tensor, border: int = CROP_BORDER) -> torch.Tensor:
    return t[..., border:-border, border:-border] if border else t


def rgb_to_y(t: torch.Tensor) -> torch.Tensor:
    """BasicSR's Y (BT.601, 16..235) on [0, 1] RGB input, returned on the 0..255 scale."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
    return (t * w).sum(1, keepdim=True) + 16.0


@lru_cache(maxsize=None)
def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Valid-region filtering with the 11x11 Gaussian window, done as two 1-D passes (same result)."""
    g = _gaussian_1d().to(x)
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def ssim_basicsr(x: torch.Tensor, y: torch.Tensor) -> float:
    """SSIM of two Nx C x H x W tensors on the 0..255 scale (valid region, mean over channels)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mu_x**2
    syy = _filter_valid(y * y) - mu_y**2
    sxy = _filter_valid(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(ssim_map.mean())


@lru_cache(maxsize=None)
def _pyiqa_psnr(y_channel: bool):
    import pyiqa

    extra = {"color_space": "ycbcr"} if y_channel else {}
    return pyiqa.create_metric("psnr", test_y_channel=y_channel, crop_border=CROP_BORDER, eps=0.0,
                               device="cpu", **extra)


def psnr(out: np.ndarray, gt: np.ndarray) -> float:
    return float(_pyiqa_psnr(False)(to_tensor(out), to_tensor(gt)).item())


def psnr_y(out: np.ndarray, gt: np.ndarray) -> float:
    return float(_pyiqa_psnr(True)(to_tensor(out), to_tensor(gt)).item())


def ssim(out: np.ndarray, gt: np.ndarray) -> float:
    return ssim_basicsr(crop(to_tensor(out)) * 255.0, crop(to_tensor(gt)) * 255.0)


def ssim_y(out: np.ndarray, gt: np.ndarray) -> float:
    return ssim_basicsr(rgb_to_y(crop(to_tensor(out))), rgb_to_y(crop(to_tensor(gt))))


register_metric(Metric("psnr", "PSNR", True, psnr, ".2f", description="dB, RGB, 4-px border cropped"))
register_metric(Metric("ssim", "SSIM", True, ssim, ".3f", description="RGB, 4-px border cropped"))
register_metric(Metric("psnr_y", "PSNR-Y", True, psnr_y, ".2f", headline=False, description="dB, BT.601 Y"))
register_metric(Metric("ssim_y", "SSIM-Y", True, ssim_y, ".3f", headline=False, description="BT.601 Y"))


# ---------------------------------------------------------------- LPIPS


class LpipsAlex(torch.nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), as pyiqa and the lpips package
    compute it; module names follow pyiqa's so its weight files load by key.

    The networks are built empty and filled from state dicts that the caller read (the
    restricted loader): no library loads or unpickles a weights file.
    """

    CHANNELS = (64, 192, 384, 256, 256)
    SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # AlexNet.features up to each ReLU

    def __init__(self):
        super().__init__()
        from torchvision.models import alexnet

        features = alexnet(weights=None).features
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = torch.nn.Module()
        for n, (lo, hi) in enumerate(self.SLICES, start=1):
            sl = torch.nn.Sequential()
            for i in range(lo, hi):
                sl.add_module(str(i), features[i])
            setattr(self.net, f"slice{n}", sl)
        for k, c in enumerate(self.CHANNELS):
            # index 0 is the (test-time inert) dropout of the original; the 1x1 conv is "model.1"
            lin = torch.nn.Module()
            lin.model = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Conv2d(c, 1, 1, bias=False))
            setattr(self, f"lin{k}", lin)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, alexnet_sd: dict, lpips_sd: dict, source: str = "LPIPS weights") -> None:
        """AlexNet ImageNet weights (torchvision keys) and the LPIPS linear layers, strictly."""
        from daclip.networks.loading import load_state_dict_strict

        feats = {k[len("features."):]: v for k, v in alexnet_sd.items() if k.startswith("features.")}
        slice_of = {i: n for n, (lo, hi) in enumerate(self.SLICES, start=1) for i in range(lo, hi)}
        state = {f"net.slice{slice_of[int(k.split('.')[0])]}.{k}": v for k, v in feats.items()
                 if k.split(".")[0].isdigit() and int(k.split(".")[0]) in slice_of}
        # pyiqa's file holds lin<k>.model.1.weight (and, saved from the whole module, lins.<k>.*
        # duplicates and the backbone): the same keys, loaded the way pyiqa does.
        lins = {k: v for k, v in lpips_sd.items() if k.startswith(("lin0.", "lin1.", "lin2.", "lin3.", "lin4."))}
        backbone = {k: v for k, v in lpips_sd.items() if k.startswith("net.slice")}
        state.update(backbone)
        state.update(lins)
        load_state_dict_strict(self, state, source)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Distance per image of [B,3,H,W] images in 0..1 (scaled to -1..1 first)."""
        a, b = (self._scaled(2 * t - 1) for t in (x, ref))
        total = 0
        for k in range(len(self.CHANNELS)):
            sl = getattr(self.net, f"slice{k + 1}")
            a, b = sl(a), sl(b)
            d = (self._unit(a) - self._unit(b)) ** 2
            total = total + getattr(self, f"lin{k}").model(d).mean(dim=(2, 3), keepdim=True)
        return total.flatten()

    def _scaled(self, t: torch.Tensor) -> torch.Tensor:
        return (t - self.shift) / self.scale

    @staticmethod
    def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class _Lpips:
    """LPIPS (AlexNet, v0.1) from the weights folder only: both files verified against their
    digests and read by the restricted loader."""

    KEYS = ("alexnet-imagenet", "lpips-alex-v0.1")

    def __init__(self):
        self.model = None
        self.source: tuple = ()  # (digests, device) the model was built from

    def prepare(self, weights_dir: Path, device: str) -> None:
        from .weights import WeightsProblem, file_digest, load_state_dict, unavailable_reason

        reason = unavailable_reason("lpips", weights_dir)
        if reason:
            raise MetricUnavailable(reason)
        source = (tuple(file_digest(k, weights_dir) for k in self.KEYS), str(device))
        if self.model is not None and self.source == source:
            return  # the same files: reuse (another folder or file is loaded afresh)
        self.model = None
        try:
            alex, lin = load_state_dict("alexnet-imagenet", weights_dir), load_state_dict("lpips-alex-v0.1", weights_dir)
        except WeightsProblem as exc:
            raise MetricUnavailable(str(exc)) from None
        model = LpipsAlex()
        try:
            model.load_weights(alex, lin, source=f"LPIPS weights in {weights_dir}")
        except UserError as exc:
            raise MetricUnavailable(str(exc)) from None
        self.model, self.source = model.to(device), source

    def __call__(self, out: np.ndarray, gt: np.ndarray) -> float:
        if self.model is None:
            raise MetricUnavailable("lpips used before setup()")
        dev = self.model.shift.device
        t = lambda x: to_tensor(x).to(device=dev, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            return float(self.model(t(out), t(gt)).item())


_lpips = _Lpips()
register_metric(Metric("lpips", "LPIPS", False, _lpips, ".3f", description="AlexNet, v0.1, full image",
                       prepare=_lpips.prepare))
