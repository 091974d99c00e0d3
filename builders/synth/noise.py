"""noisy: additive white Gaussian noise, sigma 50 on the 0..255 scale, per channel, clipped."""

from __future__ import annotations

import numpy as np

from .base import Degraded, register_synth

SIGMA = 50.0


@register_synth("noisy")
def noisy(gt: np.ndarray, rng: np.random.Generator, sigma: float = SIGMA) -> Degraded:
    noise = rng.standard_normal(gt.shape) * sigma
    lq = np.clip(np.round(gt.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    return Degraded(lq, {"sigma": sigma}, {"noise": noise})
