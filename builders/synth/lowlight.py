"""low-light: exposure drop and gamma darkening, then signal-dependent (Poisson-Gaussian)
sensor noise, as a short exposure at a dim scene would give."""

from __future__ import annotations

import numpy as np

from .base import Degraded, register_synth, to_float, to_uint8


@register_synth("low-light")
def low_light(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    exposure = rng.uniform(0.1, 0.3)
    gamma = rng.uniform(1.3, 2.0)
    photons = rng.uniform(300, 1500)  # photons at full scale: fewer -> stronger shot noise
    read = rng.uniform(0.002, 0.008)
    dark = exposure * to_float(gt) ** gamma
    noise = rng.standard_normal(dark.shape) * np.sqrt(dark / photons + read**2)
    params = {"exposure": round(exposure, 6), "gamma": round(gamma, 6), "photons": round(photons, 3), "read_noise": round(read, 6)}
    return Degraded(to_uint8(dark + noise), params, {"clean_dark": dark})
