"""PSNR of uint8-scale images from their mean squared error: the one formula the benchmark's
metrics and the trainer's validation share (no torch, no numpy needed)."""

from __future__ import annotations

import math


def psnr_from_mse(mse: float) -> float:
    """10 log10(255^2 / mse) in dB; inf for identical images (mse 0)."""
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
