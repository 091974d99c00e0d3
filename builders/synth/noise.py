"""noisy: additive white Gaussian noise, sigma 50 on the 0..255 scale, per channel, clipped.

Two ways to store the result as uint8: ``round`` (the nearest value; the mini and --images
sets) and ``truncate``, the way DA-CLIP's scripts/generate_LQ.py stores its test LQ: the image
read as float64 / 255, float32 noise ``randn * sigma / 255`` added, clipped to [0, 1] and saved
as ``(x * 255).astype(uint8)``, which truncates (up to one level darker than rounding).
"""

from __future__ import annotations

import numpy as np

from .base import Degraded, register_synth

SIGMA = 50.0


def add_gaussian(clean: np.ndarray, z: np.ndarray, sigma: float) -> np.ndarray:
    """The PromptIR family's noisy image (3D/5D protocols): ``clean + z * sigma`` in float64 on
    the 0..255 scale, clipped and **truncated** to uint8; ``z`` is unit normal noise."""
    return np.clip(clean + z * sigma, 0, 255).astype(np.uint8)


@register_synth("noisy")
def noisy(gt: np.ndarray, rng: np.random.Generator, sigma: float = SIGMA, store: str = "round") -> Degraded:
    if store == "truncate":
        # The same arithmetic and dtypes as the official script (float32 noise, float64 image).
        noise = rng.standard_normal(gt.shape).astype(np.float32) * np.float32(sigma) / np.float32(255.0)
        x = np.clip(gt.astype(np.float64) / 255.0 + noise, 0.0, 1.0)
        lq = (x * 255.0).astype(np.uint8)
        return Degraded(lq, {"sigma": sigma, "uint8_store": "truncate"}, {"noise": noise})
    if store != "round":
        raise ValueError(f"unknown uint8 store convention {store!r} (round, truncate)")
    noise = rng.standard_normal(gt.shape) * sigma
    lq = np.clip(np.round(gt.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    return Degraded(lq, {"sigma": sigma}, {"noise": noise})
