"""uncompleted: thin random stroke masks in the style of RePaint's "thin" face masks.

The mask is 255 where pixels are kept and 0 in the holes; holes are filled with white, as in
the paper: LQ = mask * GT + (1 - mask) * 255.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .base import Degraded, register_synth, scale_of


def stroke_mask(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, int]:
    s = scale_of(np.empty((height, width)))
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    n_strokes = int(rng.integers(6, 13))
    for _ in range(n_strokes):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        stroke_w = max(1, int(round(rng.uniform(3, 8) * s)))
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 8))):
            # A wandering polyline: each segment turns a little from the previous one.
            angle += rng.normal(0, 0.9)
            length = rng.uniform(10, 40) * s
            nx = float(np.clip(x + length * np.cos(angle), 0, width - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, height - 1))
            draw.line([(x, y), (nx, ny)], fill=0, width=stroke_w)
            r = stroke_w / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=0)
            x, y = nx, ny
    return np.asarray(img, dtype=np.uint8), n_strokes


@register_synth("uncompleted")
def uncompleted(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    mask, n = stroke_mask(rng, *gt.shape[:2])
    return apply_mask(gt, mask, {"strokes": n})


def apply_mask(gt: np.ndarray, mask: np.ndarray, params: dict | None = None) -> Degraded:
    """Fill the holes (mask == 0) with white; also used with the official RePaint masks."""
    keep = mask > 127
    lq = np.where(keep[..., None], gt, np.uint8(255)).astype(np.uint8)
    info = {**(params or {}), "hole_fraction": round(float(1 - keep.mean()), 6)}
    return Degraded(lq, info, {"mask": np.where(keep, 255, 0).astype(np.uint8)})
