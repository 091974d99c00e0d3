"""Classical (learning-free) restorers, one per degradation type.

They are *task-aware*: they are told the degradation type (an oracle a blind all-in-one
model does not get), so the report marks the row and ``daclip.restore`` asks for ``--task``.
They give a reference point that needs no weights and runs in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter, minimum_filter
from skimage import restoration

from builders.synth.base import to_float, to_uint8
from builders.tasks import DEGRADATIONS

from .registry import Method, register_method

#: Images above this many pixels are restored in tiles of TILE x TILE (plus each restorer's
#: margin), so peak memory is the uint8 input and output plus a few float tiles, whatever the
#: size (a 144-MP image as float64 would be 3.5 GB per copy). Smaller images run whole.
STREAM_PIXELS = 2048 * 2048
TILE = 1024
#: Smallest side a restorer gets: smaller images (1x1 ...) are edge-padded to it, restored and
#: cropped back, so every filter and estimator has pixels to work with.
MIN_SIDE = 16
#: Global statistics of a streamed image are taken on an evenly strided view of at most this
#: many pixels (an NL-means noise level, a haze airlight), not on a float copy of it all.
STATS_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class Restorer:
    """One type's restorer: ``fn(float tile, **params)``; ``stats(uint8 image)`` gives the
    parameters taken from the whole image (noise level, mean brightness, ...); ``margin`` is
    the context each tile needs (its receptive radius; approximate for the iterative ones)."""

    fn: Callable[..., np.ndarray]
    margin: int
    stats: Callable[[np.ndarray], dict] = lambda img: {}
    #: Streamed images: parameters that need the tile's place (hazy's transmission map).
    tile_params: Callable[[dict, tuple[int, int, int, int], tuple[int, int]], dict] | None = None


_RESTORERS: dict[str, Restorer] = {}


def restorer(*tasks: str, margin: int, stats=None, tile_params=None):
    def deco(fn):
        for t in tasks:
            _RESTORERS[t] = Restorer(fn, margin, stats or (lambda img: {}), tile_params)
        return fn

    return deco


def _strided(img: np.ndarray, limit: int = STATS_PIXELS) -> np.ndarray:
    """A float view of ``img`` with at most ``limit`` pixels (every k-th row and column)."""
    k = max(1, int(np.ceil(np.sqrt(img.shape[0] * img.shape[1] / limit))))
    return to_float(img[::k, ::k])


def _noise_sigma(img: np.ndarray) -> dict:
    f = _strided(img)
    return {"sigma": float(np.mean(restoration.estimate_sigma(f, channel_axis=-1)))}


@restorer("noisy", margin=16, stats=_noise_sigma)  # patch 5 + search distance 6: radius 8
def nl_means(img: np.ndarray, sigma: float) -> np.ndarray:
    return restoration.denoise_nl_means(img, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                        fast_mode=True, channel_axis=-1)


@restorer("jpeg-compressed", margin=32)  # iterative: tiles are a close approximation
def tv_deblock(img: np.ndarray) -> np.ndarray:
    return restoration.denoise_tv_chambolle(img, weight=0.04, channel_axis=-1)


@restorer("motion-blurry", margin=8)  # Gaussian sigma 1.5, truncated at 4 sigma
def sharpen(img: np.ndarray) -> np.ndarray:
    # Unsharp masking per channel (skimage's unsharp_mask mixes channels in 0.26).
    return img + 1.0 * (img - gaussian_filter(img, (1.5, 1.5, 0)))


def _haze(img: np.ndarray) -> dict:
    """Airlight and the transmission map, on the image or (streamed) its strided view."""
    f = _strided(img)
    h, w = img.shape[:2]
    patch = max(3, round(min(f.shape[:2]) / 32)) | 1
    dark = minimum_filter(f.min(axis=2), size=patch)
    brightest = np.argsort(dark.ravel())[-max(1, dark.size // 1000):]
    airlight = f.reshape(-1, 3)[brightest].max(axis=0).clip(1e-3, 1)
    t = 1 - 0.95 * minimum_filter((f / airlight).min(axis=2), size=patch)
    t = np.clip(gaussian_filter(t, patch), 0.1, 1)  # smooth the blocky estimate
    return {"airlight": airlight, "t": t, "scale": (t.shape[0] / h, t.shape[1] / w)}


def _haze_tile(params: dict, box: tuple[int, int, int, int], shape: tuple[int, int]) -> dict:
    """The transmission map of one tile: the strided map sampled (bilinear) at the tile's pixels."""
    from scipy.ndimage import map_coordinates

    y0, y1, x0, x1 = box
    sy, sx = params["scale"]
    yy, xx = np.meshgrid((np.arange(y0, y1) + 0.5) * sy - 0.5, (np.arange(x0, x1) + 0.5) * sx - 0.5, indexing="ij")
    t = map_coordinates(params["t"], [yy, xx], order=1, mode="nearest")
    return {"airlight": params["airlight"], "t": t}


@restorer("hazy", margin=0, stats=_haze, tile_params=_haze_tile)
def dark_channel_prior(img: np.ndarray, airlight: np.ndarray, t: np.ndarray, **_scale) -> np.ndarray:
    """He et al. (2009): airlight from the haziest pixels, transmission from the dark channel."""
    return (img - airlight) / t[..., None] + airlight


def _mean_brightness(img: np.ndarray) -> dict:
    if img.size <= 3 * STREAM_PIXELS:
        return {"mean": float(to_float(img).mean())}
    total = sum(int(img[y:y + 256].sum(dtype=np.uint64)) for y in range(0, img.shape[0], 256))
    return {"mean": total / img.size / 255.0}


@restorer("low-light", margin=8, stats=_mean_brightness)  # Gaussian sigma 0.7
def gamma_gain(img: np.ndarray, mean: float) -> np.ndarray:
    """Brighten with a gamma that maps the mean luminance to mid-grey."""
    gamma = np.log(0.45) / np.log(max(mean, 1e-3)) if mean < 0.45 else 1.0
    return gaussian_filter(img, (0.7, 0.7, 0)) ** gamma


@restorer("rainy", "snowy", margin=2)
def median(img: np.ndarray) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(img, size=(3, 3, 1))


@restorer("uncompleted", margin=32)  # a local solve around each hole: tiles approximate it
def biharmonic(img: np.ndarray) -> np.ndarray:
    holes = binary_dilation((img >= 1.0).all(axis=2), iterations=1)
    if not holes.any():
        return img
    return restoration.inpaint_biharmonic(img, holes, channel_axis=-1)


def run_restorer(r: Restorer, lq: np.ndarray) -> np.ndarray:
    """``r`` on an HxWx3 uint8 image: whole when small, else tile by tile into a uint8 output."""
    h, w = lq.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        ph, pw = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        return run_restorer(r, np.pad(lq, ((0, ph), (0, pw), (0, 0)), mode="edge"))[:h, :w]
    params = r.stats(lq)
    if h * w <= STREAM_PIXELS:  # whole (its statistics were taken on all of it: scale 1)
        return to_uint8(r.fn(to_float(lq), **params))
    out = np.empty_like(lq)
    m = r.margin
    for y in range(0, h, TILE):
        for x in range(0, w, TILE):
            y1, x1 = min(h, y + TILE), min(w, x + TILE)
            ya, yb, xa, xb = max(0, y - m), min(h, y1 + m), max(0, x - m), min(w, x1 + m)
            p = r.tile_params(params, (ya, yb, xa, xb), (h, w)) if r.tile_params else params
            res = r.fn(to_float(lq[ya:yb, xa:xb]), **p)
            out[y:y1, x:x1] = to_uint8(res[y - ya:y - ya + (y1 - y), x - xa:x - xa + (x1 - x)])
    return out


@register_method("classical", display_name="Classical (type-aware)",
                 description="learning-free restorer chosen by the degradation type (NL-means, dark channel, ...)")
class Classical(Method):
    uses_task_label = True

    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        r = _RESTORERS.get(task)
        if r is None:  # shadowed, raindrop (or a type of the user's own): keep the input
            return lq
        return run_restorer(r, lq)

    def cannot_restore(self, task: str) -> str | None:
        # shadowed and raindrop keep their rows (the input, as the paper's ten-type tables show);
        # a type outside the ten has no classical restorer at all.
        if task in _RESTORERS or task in DEGRADATIONS:
            return None
        return f"no classical restorer for type {task}"
