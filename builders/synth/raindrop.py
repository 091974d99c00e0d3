"""raindrop: water drops on the lens or window.

Each drop is a small lens: it shows an inverted, shrunken and defocused view of the scene
around it, with a soft edge and a slightly darker rim. Pixels outside every drop are
unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from .base import Degraded, register_synth, scale_of, to_float, to_uint8


@register_synth("raindrop")
def raindrop(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    h, w = gt.shape[:2]
    s = scale_of(gt)
    img = to_float(gt)
    blur_sigma = rng.uniform(1.5, 3.0) * max(s, 0.5)
    defocused = np.stack([gaussian_filter(img[..., c], blur_sigma, mode="reflect") for c in range(3)], -1)
    out = img.copy()
    alpha_total = np.zeros((h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n = int(rng.integers(10, 22))
    drops = []
    for _ in range(n):
        r = rng.uniform(8, 22) * s
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        aspect = rng.uniform(0.7, 1.0)  # drops sag: a little taller than wide
        dist = np.sqrt(((xx - cx) / (r * aspect)) ** 2 + ((yy - cy) / r) ** 2)
        inside = dist < 1.0
        if not inside.any():
            continue
        # Smooth edge over the outer 25 % of the radius; exactly 0 outside the drop.
        alpha = np.clip((1.0 - dist) / 0.25, 0, 1) * inside
        mag = rng.uniform(0.4, 0.8)
        sy = np.clip(cy - (yy - cy) * mag, 0, h - 1)
        sx = np.clip(cx - (xx - cx) * mag, 0, w - 1)
        view = np.stack([map_coordinates(defocused[..., c], [sy, sx], order=1, mode="nearest") for c in range(3)], -1)
        rim = 1.0 - 0.25 * np.clip((dist - 0.7) / 0.3, 0, 1) * inside
        view = view * rim[..., None] + 0.04  # water adds a faint sheen
        out = out * (1 - alpha[..., None]) + view * alpha[..., None]
        alpha_total = np.maximum(alpha_total, alpha)
        drops.append([round(cx, 3), round(cy, 3), round(r, 3)])
    return Degraded(to_uint8(out), {"drops": drops, "blur_sigma": round(blur_sigma, 6)}, {"alpha": alpha_total})
