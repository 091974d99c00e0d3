"""Metric conventions, named and registered: how each family of papers turns an output and its
GT into the PSNR and SSIM it publishes (facts: protocols.md, section 4).

A :class:`Convention` is a PSNR and an SSIM metric (registered in benchmark.metrics under
``psnr-<name>`` / ``ssim-<name>``; ``basicsr``, the toolkit's unified one, is ``psnr`` / ``ssim``)
plus what the family does around them. The geometry that happens *before inference* (the
PromptIR family's centre crop to 16) belongs to the protocol's test set, which the builder
stores cropped, so no convention crops at scoring time except BasicSR's border.

- ``promptir`` (PromptIR, AirNet, AdaIR, BioIR, DFPIR ``utils/val_utils.py``): skimage
  ``peak_signal_noise_ratio(data_range=1)`` and ``structural_similarity(data_range=1)``:
  7x7 uniform window, sample covariance (49/48), per channel, mean; full image.
- ``moce-ir`` (MoCE-IR ``src/test.py``): the same PSNR; SSIM with ``gaussian_weights=True``
  (11x11, sigma 1.5, sample covariance 121/120).
- ``instructir`` (InstructIR ``metrics.py``): ``20 log10(1 / rmse)`` and
  ``pytorch_msssim.ssim(data_range=1)``: 11x11 Gaussian (its float32 taps), sigma 1.5, valid
  region, no covariance correction. PSNR here is float64; upstream's float32 result is one
  float32 step (~2e-6 dB) coarser. Its Y-channel rain numbers are not reproduced here.
- ``onerestore`` (OneRestore ``img_file/cal_psnr_ssim.py``): the skimage pair of ``promptir``
  on the saved 8-bit PNGs / 255, full image.
- ``maskdcpt`` (BasicSR with ``crop_border: 0``): BasicSR's formulas, no border.
- ``basicsr`` (DA-CLIP, RAM; the unified convention): benchmark.metrics ``psnr`` / ``ssim``.

Every method of this toolkit returns an 8-bit image, so each convention scores that image / 255.
Families that score the float output (PromptIR's clipped float32, InstructIR's unclamped one)
differ from it by the quantisation alone; ``output`` records what upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from builders.registry import Registry
from daclip.psnr import psnr_from_mse

from .metrics import Metric, _cv2, gaussian_window_1d, register_metric, ssim_np

K1, K2 = 0.01, 0.03  # on the [0, 1] scale (data_range=1)


@dataclass(frozen=True)
class Convention:
    name: str
    display: str
    psnr: str  # metric names in benchmark.metrics
    ssim: str
    families: str  # who publishes under it
    output: str  # what upstream scores (the float output, 8-bit PNGs, ...)
    reference: str  # upstream file and library call

    @property
    def metrics(self) -> list[str]:
        return [self.psnr, self.ssim]


CONVENTIONS: Registry[Convention] = Registry("metric convention")


def register_convention(c: Convention) -> Convention:
    return CONVENTIONS.add(c.name, c)


def get_convention(name: str) -> Convention:
    return CONVENTIONS.get(name)


def convention_names() -> list[str]:
    return CONVENTIONS.names()


def convention_of_metric(metric: str) -> Convention | None:
    return next((c for _, c in CONVENTIONS.items() if metric in c.metrics), None)


# ---------------------------------------------------------------- formulas (float64, numpy/OpenCV)


def psnr_unit(out: np.ndarray, gt: np.ndarray) -> float:
    """skimage's PSNR with data_range=1 on image / 255, full image: the toolkit's one PSNR
    formula on the exact integer sum of squared differences (10 log10(1 / mse) on [0, 1] equals
    10 log10(255^2 / mse) on 0..255)."""
    d = out.astype(np.int32) - gt
    sse = int(np.einsum("ijk,ijk->", d, d, dtype=np.int64))
    return psnr_from_mse(sse / d.size)


def _box7(x: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    if cv2 is None:  # pragma: no cover - opencv ships with pyiqa
        from scipy.ndimage import uniform_filter

        return uniform_filter(x, size=7, mode="reflect")
    return cv2.blur(x, (7, 7), borderType=cv2.BORDER_REFLECT)


def _gauss11(x: np.ndarray) -> np.ndarray:
    g = gaussian_window_1d(11, 1.5)
    cv2 = _cv2()
    if cv2 is None:  # pragma: no cover
        from scipy.ndimage import correlate1d

        return correlate1d(correlate1d(x, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")
    return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)


def _ssim_sample_cov(x: np.ndarray, y: np.ndarray, filt, win: int) -> float:
    """skimage's structural_similarity of two HxWxC float64 arrays in [0, 1] (data_range=1,
    channel_axis=-1): the window's sample covariance (n/(n-1)), each channel's map averaged
    over the region ``win // 2`` in from each side (skimage filters the whole image, then
    crops), then the mean over channels."""
    n = win * win
    cov_norm = n / (n - 1)
    ux, uy = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - ux * ux)
    vy = cov_norm * (filt(y * y) - uy * uy)
    vxy = cov_norm * (filt(x * y) - ux * uy)
    c1, c2 = K1**2, K2**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return _channel_mean(s, win // 2)


def _channel_mean(s: np.ndarray, p: int) -> float:
    valid = s[p:-p, p:-p].reshape(-1, s.shape[2])
    return float(np.mean([valid[:, c].mean(dtype=np.float64) for c in range(s.shape[2])]))


def _unit(out: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return out.astype(np.float64) / 255.0, gt.astype(np.float64) / 255.0


def ssim_uniform7(out: np.ndarray, gt: np.ndarray) -> float:
    """skimage structural_similarity(data_range=1, channel_axis=-1): 7x7 uniform window."""
    return _ssim_sample_cov(*_unit(out, gt), _box7, 7)


def ssim_gauss11_sample(out: np.ndarray, gt: np.ndarray) -> float:
    """skimage structural_similarity(data_range=1, gaussian_weights=True, channel_axis=-1)."""
    return _ssim_sample_cov(*_unit(out, gt), _gauss11, 11)


@lru_cache(maxsize=1)
def msssim_window() -> np.ndarray:
    """pytorch_msssim's 11-tap Gaussian (sigma 1.5) computed as it does, in torch float32: the
    taps' rounding moves SSIM by about 1e-5, so the convention keeps them (torch's float32 exp
    and sum, not numpy's, which round differently)."""
    import torch

    coords = torch.arange(11, dtype=torch.float)
    coords -= 11 // 2
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    return g.double().numpy()


def _ssim_valid(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    """SSIM with population statistics over the valid region of a separable window ``g``."""
    cv2 = _cv2()

    def filt(a):
        if cv2 is None:  # pragma: no cover
            from scipy.ndimage import correlate1d

            return correlate1d(correlate1d(a, g, axis=0), g, axis=1)
        return cv2.sepFilter2D(a, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)

    ux, uy = filt(x), filt(y)
    vx, vy, vxy = filt(x * x) - ux * ux, filt(y * y) - uy * uy, filt(x * y) - ux * uy
    c1, c2 = K1**2, K2**2
    s = ((2 * ux * uy + c1) / (ux * ux + uy * uy + c1)) * ((2 * vxy + c2) / (vx + vy + c2))
    return _channel_mean(s, len(g) // 2)


def ssim_msssim(out: np.ndarray, gt: np.ndarray) -> float:
    """pytorch_msssim.ssim(data_range=1): 11x11 Gaussian (its float32 taps), population
    statistics, valid region, mean over channels."""
    return _ssim_valid(*_unit(out, gt), msssim_window())


def ssim_basicsr_full(out: np.ndarray, gt: np.ndarray) -> float:
    """BasicSR's SSIM with crop_border 0 (the toolkit's ``ssim`` without its border)."""
    return float(np.mean(ssim_np(out.astype(np.float64), gt.astype(np.float64))))


# ---------------------------------------------------------------- registration


def _metric(name: str, display: str, fn, fmt: str, description: str, min_side: int, why: str) -> str:
    register_metric(Metric(name, display, True, fn, fmt, headline=False, description=description,
                           min_side=min_side, min_side_reason=why))
    return name


_FULL = "full image"
for _c in (
    Convention("promptir", "PromptIR family", "psnr-promptir", "ssim-promptir",
               "PromptIR, AirNet, AdaIR, BioIR, DFPIR (3D/5D tables)",
               "float32 output clipped to [0, 1], not quantised; LQ and GT centre-cropped to 16 before inference",
               "utils/val_utils.py: skimage peak_signal_noise_ratio / structural_similarity(data_range=1)"),
    Convention("moce-ir", "MoCE-IR", "psnr-moce-ir", "ssim-moce-ir", "MoCE-IR (3D/5D cropped to 16, CDD-11 full)",
               "float32 output clamped to [0, 1]",
               "src/test.py: skimage, structural_similarity(gaussian_weights=True, data_range=1)"),
    Convention("instructir", "InstructIR", "psnr-instructir", "ssim-instructir", "InstructIR",
               "raw float output, not clamped; LQ and GT centre-cropped to 16",
               "metrics.py: 20*log10(1/rmse) in torch float32; pytorch_msssim.ssim(data_range=1)"),
    Convention("onerestore", "OneRestore", "psnr-onerestore", "ssim-onerestore", "OneRestore (CDD-11)",
               "saved 8-bit PNGs / 255, full image",
               "img_file/cal_psnr_ssim.py: skimage peak_signal_noise_ratio / structural_similarity(data_range=1)"),
    Convention("maskdcpt", "MaskDCPT (BasicSR, no border)", "psnr-maskdcpt", "ssim-maskdcpt", "MaskDCPT",
               "rounded uint8", "basicsr/metrics/psnr_ssim.py with crop_border 0"),
    Convention("basicsr", "unified (BasicSR)", "psnr", "ssim", "DA-CLIP, RAM; this toolkit's unified convention",
               "rounded uint8, 4-pixel border cropped", "basicsr/metrics/psnr_ssim.py, crop_border 4"),
):
    register_convention(_c)

_metric("psnr-promptir", "PSNR (PromptIR convention)", psnr_unit, ".2f", "dB, skimage data_range=1, " + _FULL, 1, "")
_metric("ssim-promptir", "SSIM (PromptIR convention)", ssim_uniform7, ".3f",
        "skimage 7x7 uniform window, " + _FULL, 7, "the 7x7 window")
_metric("psnr-moce-ir", "PSNR (MoCE-IR convention)", psnr_unit, ".2f", "dB, skimage data_range=1, " + _FULL, 1, "")
_metric("ssim-moce-ir", "SSIM (MoCE-IR convention)", ssim_gauss11_sample, ".3f",
        "skimage 11x11 Gaussian window, " + _FULL, 11, "the 11x11 window")
_metric("psnr-instructir", "PSNR (InstructIR convention)", psnr_unit, ".2f", "dB, 20 log10(1/rmse), " + _FULL, 1, "")
_metric("ssim-instructir", "SSIM (InstructIR convention)", ssim_msssim, ".3f",
        "pytorch_msssim 11x11 Gaussian, valid region", 11, "the 11x11 window")
_metric("psnr-onerestore", "PSNR (OneRestore convention)", psnr_unit, ".2f", "dB, skimage data_range=1, " + _FULL, 1, "")
_metric("ssim-onerestore", "SSIM (OneRestore convention)", ssim_uniform7, ".4f",
        "skimage 7x7 uniform window, " + _FULL, 7, "the 7x7 window")
_metric("psnr-maskdcpt", "PSNR (MaskDCPT convention)", psnr_unit, ".2f", "dB, BasicSR, no border", 1, "")
_metric("ssim-maskdcpt", "SSIM (MaskDCPT convention)", ssim_basicsr_full, ".3f",
        "BasicSR 11x11 Gaussian, no border", 11, "the 11x11 window")
