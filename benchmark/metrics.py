"""Name -> metric registry, in the paper's evaluation convention.

Per-image metrics take the restored output and the GT as HxWx3 uint8 RGB arrays (so outputs
are uint8-rounded before scoring, as in the official test script) and crop a 4-pixel border.

- ``psnr``: BasicSR's calculate_psnr on RGB (float64 mean squared error, inf when it is 0;
  the squared errors of uint8 images are summed exactly as integers).
- ``ssim``: BasicSR's calculate_ssim (11x11 Gaussian window, sigma 1.5, valid region, float64,
  mean over RGB channels). pyiqa's ``ssimc`` is *not* used: it clamps the contrast-structure
  term at zero (F.relu), which changes the score wherever local structure is anti-correlated.
  This equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`` on the cropped image (skimage also filters
  the whole image and averages the valid region only).
- ``psnr_y`` / ``ssim_y``: the same on BasicSR's BT.601 Y channel (logged, not headline).
- ``lpips``: LPIPS v0.1 with AlexNet: pyiqa's own network (daclip.iqa.lpips_alex) and weight
  files, full image, inputs scaled to [-1, 1].
- ``fid`` / ``kid``: per-type set metrics on Inception features (see benchmark.set_metrics).

Two implementations of each per-image formula: numpy/OpenCV in float64 for the CPU (each
call releases the GIL, so the runner scores images on every core in threads), and a batched
torch one (``Metric.batch_fn``, float64, [N,3,H,W] uint8 tensors on any device) that the
runner uses on a GPU. Tests hold the two to 1e-9 of each other. Neither imports torch unless
it is used, so a CPU run of PSNR/SSIM starts fast.

Images too small for a metric (the border crop and the SSIM window, or AlexNet's receptive
field for LPIPS) are skipped with the reason (:meth:`Metric.too_small`), never scored wrongly.

Metrics that need weights read them from the weights folder (benchmark.weights), verified
and unpickled by the toolkit's restricted loader, and are reported unavailable, with the
file and the reason named, when they are missing, fail their digest or are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from builders.errors import UserError
from daclip.psnr import psnr_from_mse

from .metric_base import METRICS, Metric, MetricUnavailable, register_metric  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # torch is imported only by the code paths that use it
    import torch

CROP_BORDER = 4
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def metric_names() -> list[str]:
    _load_set_metrics()
    return METRICS.names()


def default_metrics() -> list[str]:
    _load_set_metrics()
    return [n for n, m in METRICS.items() if m.headline]


def _load_set_metrics() -> None:
    from . import set_metrics  # noqa: F401  (registers fid, kid; imports torch)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        _load_set_metrics()
    if name not in METRICS:
        raise UserError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return METRICS.get(name)


def parse_metrics(text: str | None) -> list[str]:
    if text is None or text.strip() in ("", "default"):
        return default_metrics()
    if text.strip() == "all":
        return metric_names()
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for n in names:
        get_metric(n)
    return names


# ---------------------------------------------------------------- numpy / OpenCV (CPU)


def _crop(img: np.ndarray, border: int = CROP_BORDER) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def _y_channel(img: np.ndarray) -> np.ndarray:
    """BasicSR's Y (BT.601, 16..235) of uint8 RGB, on the 0..255 scale, float64."""
    rgb = img.astype(np.float64)
    return 16.0 + (rgb @ np.array([65.481, 128.553, 24.966])) / 255.0


def psnr(out: np.ndarray, gt: np.ndarray) -> float:
    d = _crop(out).astype(np.int32) - _crop(gt)
    # Squares of uint8 differences are integers: their sum is exact, so this equals the
    # float64 mean BasicSR computes.
    sse = int(np.einsum("ijk,ijk->", d, d, dtype=np.int64))
    return psnr_from_mse(sse / d.size)


def psnr_y(out: np.ndarray, gt: np.ndarray) -> float:
    d = _y_channel(_crop(out)) - _y_channel(_crop(gt))
    return psnr_from_mse(float(np.mean(d * d)))


@lru_cache(maxsize=None)
def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_np(x: np.ndarray) -> np.ndarray:
    """The 11x11 Gaussian window over an HxW(xC) float64 array, same size; only the valid
    region (``WINDOW // 2`` pixels in from each side) is meaningful, the rest is cut later.

    Separable, in float64: OpenCV's sepFilter2D (vectorised, and it releases the GIL) when
    it is installed, else scipy.ndimage. The border mode does not matter: the border is cut.
    Keeping the full size keeps every array contiguous, which makes the arithmetic on them
    about three times faster than on cropped views.
    """
    g = gaussian_window_1d()
    if _cv2() is None:  # pragma: no cover - opencv ships with pyiqa
        from scipy.ndimage import correlate1d

        return correlate1d(correlate1d(x, g, axis=0), g, axis=1)
    cv2 = _cv2()
    return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)


@lru_cache(maxsize=None)
def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover
        return None
    return cv2


def _valid_mean(m: np.ndarray) -> np.ndarray:
    """Per-channel mean of the valid region of a filtered HxW(xC) map."""
    r = SSIM_WINDOW // 2
    valid = m[r:-r, r:-r]
    channels = 1 if m.ndim == 2 else m.shape[2]
    cv2 = _cv2()
    if cv2 is not None and channels <= 4:
        return np.array(cv2.mean(valid)[:channels])
    return valid.reshape(-1, channels).mean(axis=0)  # pragma: no cover


def ssim_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean SSIM per channel of two HxW(xC) float64 arrays on the 0..255 scale (valid region).

    Four filtered maps instead of five (the variances appear only as their sum, so
    E[x^2 + y^2] is filtered once), and the arithmetic in place on contiguous arrays.
    """
    f = _filter_np
    mu_x, mu_y = f(x), f(y)
    t = np.multiply(x, x)
    t += np.multiply(y, y)
    sum_sq = f(t)  # E[x^2 + y^2]
    np.multiply(x, y, out=t)
    cross = f(t)  # E[xy]
    mu_xy = np.multiply(mu_x, mu_y)
    np.multiply(mu_x, mu_x, out=mu_x)
    np.multiply(mu_y, mu_y, out=mu_y)
    mu_sq = mu_x
    mu_sq += mu_y  # mu_x^2 + mu_y^2
    sum_sq -= mu_sq
    sum_sq += C2  # var_x + var_y + C2
    mu_sq += C1
    den = mu_sq
    den *= sum_sq
    cross -= mu_xy
    cross *= 2
    cross += C2  # 2 cov + C2
    num = mu_xy
    num *= 2
    num += C1
    num *= cross
    num /= den
    return _valid_mean(num)


def ssim(out: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(ssim_np(_crop(out).astype(np.float64), _crop(gt).astype(np.float64))))


def ssim_y(out: np.ndarray, gt: np.ndarray) -> float:
    return float(ssim_np(_y_channel(_crop(out)), _y_channel(_crop(gt)))[0])


# ---------------------------------------------------------------- batched torch (GPU, or CPU in tests)


def to_tensor(img: np.ndarray) -> "torch.Tensor":
    """HxWx3 uint8 -> 1x3xHxW float64 in [0, 1]."""
    import torch

    return torch.tensor(img, dtype=torch.float64).permute(2, 0, 1)[None] / 255.0


def images_to_batch(images: list[np.ndarray], device="cpu") -> "torch.Tensor":
    """Same-size HxWx3 uint8 arrays -> one [N,3,H,W] uint8 tensor on ``device``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(np.stack(images)))
    return t.to(device, non_blocking=True).permute(0, 3, 1, 2)


def crop(t: "torch.Tensor", border: int = CROP_BORDER) -> "torch.Tensor":
    return t[..., border:-border, border:-border] if border else t


def rgb_to_y(t: "torch.Tensor") -> "torch.Tensor":
    """BasicSR's Y (BT.601, 16..235) on [0, 1] RGB input, returned on the 0..255 scale."""
    import torch

    w = torch.tensor([65.481, 128.553, 24.966], dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
    return (t * w).sum(1, keepdim=True) + 16.0


def _filter_valid(x: "torch.Tensor") -> "torch.Tensor":
    """Valid-region filtering with the 11x11 Gaussian window, done as two 1-D passes (same result)."""
    import torch
    import torch.nn.functional as F

    g = torch.from_numpy(gaussian_window_1d()).to(x)
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def ssim_per_image(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """SSIM of each image of two N x C x H x W tensors on the 0..255 scale (valid region,
    mean over channels): an [N] tensor."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    sum_sq = _filter_valid(x * x + y * y)
    cross = _filter_valid(x * y)
    ssim_map = ((2 * mu_xy + C1) * (2 * (cross - mu_xy) + C2)) / ((mu_sq + C1) * (sum_sq - mu_sq + C2))
    return ssim_map.reshape(n, -1).mean(1)


def ssim_basicsr(x: "torch.Tensor", y: "torch.Tensor") -> float:
    """SSIM of two N x C x H x W tensors on the 0..255 scale (mean over images and channels)."""
    return float(ssim_per_image(x, y).mean())


def _t64(t: "torch.Tensor") -> "torch.Tensor":
    import torch

    return crop(t).to(torch.float64)


def _psnr_t(mse: "torch.Tensor") -> "torch.Tensor":
    return 10.0 * (255.0**2 / mse).log10()  # mse 0 -> inf


def psnr_batch(out: "torch.Tensor", gt: "torch.Tensor") -> "torch.Tensor":
    d = _t64(out) - _t64(gt)
    return _psnr_t((d * d).mean(dim=(1, 2, 3)))


def psnr_y_batch(out: "torch.Tensor", gt: "torch.Tensor") -> "torch.Tensor":
    d = rgb_to_y(_t64(out) / 255.0) - rgb_to_y(_t64(gt) / 255.0)
    return _psnr_t((d * d).mean(dim=(1, 2, 3)))


def ssim_batch(out: "torch.Tensor", gt: "torch.Tensor") -> "torch.Tensor":
    return ssim_per_image(_t64(out), _t64(gt))


def ssim_y_batch(out: "torch.Tensor", gt: "torch.Tensor") -> "torch.Tensor":
    return ssim_per_image(rgb_to_y(_t64(out) / 255.0), rgb_to_y(_t64(gt) / 255.0))


_CROP_ONLY = 2 * CROP_BORDER + 1
_CROP_WHY = f"{CROP_BORDER}-pixel border crop"
_SSIM_MIN = 2 * CROP_BORDER + SSIM_WINDOW
_SSIM_WHY = f"{CROP_BORDER}-pixel border crop, then the {SSIM_WINDOW}x{SSIM_WINDOW} window"
register_metric(Metric("psnr", "PSNR", True, psnr, ".2f", description="dB, RGB, 4-px border cropped",
                       batch_fn=psnr_batch, min_side=_CROP_ONLY, min_side_reason=_CROP_WHY))
register_metric(Metric("ssim", "SSIM", True, ssim, ".3f", description="RGB, 4-px border cropped",
                       batch_fn=ssim_batch, min_side=_SSIM_MIN, min_side_reason=_SSIM_WHY))
register_metric(Metric("psnr_y", "PSNR-Y", True, psnr_y, ".2f", headline=False, description="dB, BT.601 Y",
                       batch_fn=psnr_y_batch, min_side=_CROP_ONLY, min_side_reason=_CROP_WHY))
register_metric(Metric("ssim_y", "SSIM-Y", True, ssim_y, ".3f", headline=False, description="BT.601 Y",
                       batch_fn=ssim_y_batch, min_side=_SSIM_MIN, min_side_reason=_SSIM_WHY))


# ---------------------------------------------------------------- LPIPS


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
        from daclip.iqa import lpips_alex

        try:
            model = lpips_alex(alex, lin)  # pyiqa's own LPIPS network, built without its loader
        except UserError as exc:
            raise MetricUnavailable(f"LPIPS weights in {weights_dir}: {exc}") from None
        self.model, self.source = model.to(device), source

    def __call__(self, out: np.ndarray, gt: np.ndarray) -> float:
        return float(self.batch(images_to_batch([out]), images_to_batch([gt]))[0])

    def batch(self, out: "torch.Tensor", gt: "torch.Tensor") -> "torch.Tensor":
        """LPIPS of each pair of two [N,3,H,W] uint8 tensors of one size: an [N] float64 tensor."""
        import torch

        if self.model is None:
            raise MetricUnavailable("lpips used before setup()")
        device = self.model.scaling_layer.shift.device
        t = lambda x: x.to(device, torch.float32) / 255.0  # noqa: E731
        with torch.no_grad():
            return self.model(t(out), t(gt), normalize=True).reshape(-1).to(torch.float64)


_lpips = _Lpips()
# AlexNet's first conv and two max-pools leave nothing of an image under 31 pixels.
register_metric(Metric("lpips", "LPIPS", False, _lpips, ".3f", description="AlexNet, v0.1, full image",
                       prepare=_lpips.prepare, batch_fn=_lpips.batch, network=True, min_side=31,
                       min_side_reason="AlexNet's receptive field"))


from . import nr_metrics  # noqa: E402,F401  (registers niqe, brisque, musiq, clipiqa, maniqa; torch only when used)
