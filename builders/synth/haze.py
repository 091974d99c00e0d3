"""hazy: atmospheric scattering I = J t + A (1 - t) with t = exp(-beta d).

The depth proxy d mixes a vertical ramp (upper image parts tend to be farther away) with a
smooth random field, so the haze thickens smoothly and non-uniformly like real fog.
"""

from __future__ import annotations

import numpy as np

from .base import Degraded, register_synth, smooth_field, to_float, to_uint8


@register_synth("hazy")
def hazy(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    h, w = gt.shape[:2]
    ramp = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, w))
    mix = rng.uniform(0.3, 0.7)
    depth = mix * ramp + (1 - mix) * smooth_field(rng, (h, w), sigma=max(h, w) / 6)
    beta = rng.uniform(0.8, 2.0)
    t = np.clip(np.exp(-beta * depth), 0.15, 1.0)
    grey = rng.uniform(0.75, 0.95)
    airlight = np.clip(grey + rng.normal(0, 0.02, 3), 0, 1)
    hazy_img = to_float(gt) * t[..., None] + airlight * (1 - t[..., None])
    params = {"beta": round(beta, 6), "airlight": [round(float(a), 6) for a in airlight], "t_mean": round(float(t.mean()), 6)}
    return Degraded(to_uint8(hazy_img), params, {"transmission": t, "airlight": airlight})
