"""Classical (learning-free) restorers, one per degradation type.

They are *task-aware*: they are told the degradation type (an oracle a blind all-in-one
model does not get), so the report marks the row and ``daclip.restore`` asks for ``--task``.
They give a reference point that needs no weights and runs in seconds on a CPU.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter, minimum_filter
from skimage import restoration

from builders.synth.base import to_float, to_uint8
from builders.tasks import DEGRADATIONS

from .registry import Method, register_method

Restorer = Callable[[np.ndarray], np.ndarray]  # float RGB in [0, 1] -> float RGB
_RESTORERS: dict[str, Restorer] = {}


def restorer(*tasks: str):
    def deco(fn: Restorer) -> Restorer:
        for t in tasks:
            _RESTORERS[t] = fn
        return fn

    return deco


@restorer("noisy")
def nl_means(img: np.ndarray) -> np.ndarray:
    sigma = float(np.mean(restoration.estimate_sigma(img, channel_axis=-1)))
    return restoration.denoise_nl_means(img, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                        fast_mode=True, channel_axis=-1)


@restorer("jpeg-compressed")
def tv_deblock(img: np.ndarray) -> np.ndarray:
    return restoration.denoise_tv_chambolle(img, weight=0.04, channel_axis=-1)


@restorer("motion-blurry")
def sharpen(img: np.ndarray) -> np.ndarray:
    # Unsharp masking per channel (skimage's unsharp_mask mixes channels in 0.26).
    return img + 1.0 * (img - gaussian_filter(img, (1.5, 1.5, 0)))


@restorer("hazy")
def dark_channel_prior(img: np.ndarray) -> np.ndarray:
    """He et al. (2009): airlight from the haziest pixels, transmission from the dark channel."""
    patch = max(3, round(min(img.shape[:2]) / 32)) | 1
    dark = minimum_filter(img.min(axis=2), size=patch)
    brightest = np.argsort(dark.ravel())[-max(1, dark.size // 1000):]
    airlight = img.reshape(-1, 3)[brightest].max(axis=0).clip(1e-3, 1)
    t = 1 - 0.95 * minimum_filter((img / airlight).min(axis=2), size=patch)
    t = np.clip(gaussian_filter(t, patch), 0.1, 1)  # smooth the blocky estimate
    return (img - airlight) / t[..., None] + airlight


@restorer("low-light")
def gamma_gain(img: np.ndarray) -> np.ndarray:
    """Brighten with a gamma that maps the mean luminance to mid-grey."""
    mean = float(img.mean())
    gamma = np.log(0.45) / np.log(max(mean, 1e-3)) if mean < 0.45 else 1.0
    return gaussian_filter(img, (0.7, 0.7, 0)) ** gamma


@restorer("rainy", "snowy")
def median(img: np.ndarray) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(img, size=(3, 3, 1))


@restorer("uncompleted")
def biharmonic(img: np.ndarray) -> np.ndarray:
    holes = binary_dilation((img >= 1.0).all(axis=2), iterations=1)
    if not holes.any():
        return img
    return restoration.inpaint_biharmonic(img, holes, channel_axis=-1)


@register_method("classical", display_name="Classical (type-aware)",
                 description="learning-free restorer chosen by the degradation type (NL-means, dark channel, ...)")
class Classical(Method):
    uses_task_label = True

    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        fn = _RESTORERS.get(task)
        if fn is None:  # shadowed, raindrop (or a type of the user's own): keep the input
            return lq
        return to_uint8(fn(to_float(lq)))

    def cannot_restore(self, task: str) -> str | None:
        # shadowed and raindrop keep their rows (the input, as the paper's ten-type tables show);
        # a type outside the ten has no classical restorer at all.
        if task in _RESTORERS or task in DEGRADATIONS:
            return None
        return f"no classical restorer for type {task}"
