"""snowy: falling snow in several depth layers.

Far layers have many small sharp flakes, near layers fewer, larger and defocused ones; each
layer is alpha-composited in white, so snow only ever brightens the scene.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from .base import Degraded, register_synth, scale_of, to_float, to_uint8

# (flakes per 256x256 area, radius in pixels at 256 px, defocus blur, opacity range)
LAYERS = ((500, 0.8, 0.3, (0.5, 0.8)), (160, 1.6, 0.7, (0.6, 0.9)), (40, 3.0, 1.5, (0.7, 1.0)))


@register_synth("snowy")
def snowy(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    h, w = gt.shape[:2]
    s = scale_of(gt)
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.zeros((h, w))
    layers = []
    for count, radius, blur, (lo, hi) in LAYERS:
        n = max(1, int(count * h * w / 65536 * rng.uniform(0.6, 1.4)))
        r = radius * max(s, 0.5)
        layer = np.zeros((h, w))
        for cy, cx, op in zip(rng.uniform(0, h, n), rng.uniform(0, w, n), rng.uniform(lo, hi, n)):
            y0, y1 = max(0, int(cy - r - 1)), min(h, int(cy + r + 2))
            x0, x1 = max(0, int(cx - r - 1)), min(w, int(cx + r + 2))
            d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx)
            layer[y0:y1, x0:x1] = np.maximum(layer[y0:y1, x0:x1], op * np.clip(r + 0.5 - d, 0, 1))
        layer = np.clip(gaussian_filter(layer, blur * max(s, 0.5)) * 1.3, 0, 1)
        alpha = 1 - (1 - alpha) * (1 - layer)
        layers.append({"flakes": n, "radius": round(r, 4), "blur": blur})
    out = to_float(gt) * (1 - alpha[..., None]) + alpha[..., None]
    return Degraded(to_uint8(out), {"layers": layers}, {"alpha": alpha})
