"""rainy: a layer of oriented rain streaks, screen-blended onto the image.

Sparse random seeds are smeared along one direction with a line kernel, slightly blurred,
and blended as 1 - (1 - J)(1 - S): streaks only ever brighten the scene.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve, gaussian_filter

from .base import Degraded, register_synth, scale_of, to_float, to_uint8


def line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line of the given length; angle measured from vertical, clockwise."""
    size = length | 1
    k = np.zeros((size, size))
    c = (size - 1) / 2
    a = np.deg2rad(angle_deg)
    for s in np.linspace(-c, c, 4 * size):
        x, y = c + s * np.sin(a), c + s * np.cos(a)
        k[int(round(y)), int(round(x))] = 1.0
    return k / k.sum()


@register_synth("rainy")
def rainy(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    h, w = gt.shape[:2]
    s = scale_of(gt)
    angle = rng.uniform(-30, 30)
    length = max(5, int(rng.uniform(12, 30) * s))
    density = rng.uniform(0.004, 0.012)
    intensity = rng.uniform(0.6, 0.9)
    seeds = (rng.uniform(size=(h, w)) < density) * rng.uniform(0.5, 1.0, size=(h, w))
    layer = convolve(seeds, line_kernel(length, angle), mode="wrap") * length
    layer = np.clip(gaussian_filter(layer, 0.5) * intensity, 0, 1)
    out = 1 - (1 - to_float(gt)) * (1 - layer[..., None])
    params = {"angle_deg": round(angle, 6), "length": length, "density": round(density, 6), "intensity": round(intensity, 6)}
    return Degraded(to_uint8(out), params, {"streaks": layer})
