"""shadowed: a soft-edged cast shadow with the bluish colour shift of skylight-only areas."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from .base import Degraded, register_synth, scale_of, to_float, to_uint8


def shadow_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    n = int(rng.integers(5, 9))
    # Evenly spread vertex angles (with jitter) keep the polygon from collapsing into a sliver.
    angles = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.3, 0.3, n) * np.pi / n
    radii = rng.uniform(0.25, 0.6, n) * min(h, w)
    pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii)]
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img, dtype=np.float64) / 255.0


@register_synth("shadowed")
def shadowed(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    h, w = gt.shape[:2]
    softness = rng.uniform(1.5, 6.0) * scale_of(gt)
    mask = np.clip(gaussian_filter(shadow_mask(rng, h, w), softness), 0, 1)
    mask[mask < 1e-3] = 0.0  # keep the lit area exactly unchanged
    darkness = rng.uniform(0.35, 0.65)
    # Shadows are lit by the sky only: red loses more than blue.
    colour = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.95, 1.0), rng.uniform(1.05, 1.15)])
    factor = np.clip(darkness * colour, 0, 1)
    out = to_float(gt) * (1 - mask[..., None] * (1 - factor))
    params = {"factor": [round(float(f), 6) for f in factor], "softness": round(softness, 6), "area": round(float((mask > 0.5).mean()), 6)}
    return Degraded(to_uint8(out), params, {"mask": mask, "factor": factor})
