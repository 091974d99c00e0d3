"""motion-blurry: camera-shake blur with a random trajectory kernel.

The trajectory follows Boracchi and Foi (2012): a particle with inertia, Gaussian
acceleration noise and occasional impulsive jerks, rasterised with sub-pixel (bilinear)
splatting into a normalised kernel.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve

from .base import Degraded, register_synth, scale_of, to_float, to_uint8


def trajectory_kernel(rng: np.random.Generator, size: int, steps: int = 256) -> tuple[np.ndarray, float]:
    anxiety = rng.uniform(0.0, 0.05)
    max_len = rng.uniform(0.5, 1.0) * (size - 2)
    v = np.exp(1j * rng.uniform(0, 2 * np.pi)) * max_len / (steps - 1)
    x = np.zeros(steps, dtype=complex)
    for t in range(1, steps):
        jerk = (rng.uniform() < anxiety) * rng.uniform(0.5, 2.0) * np.exp(1j * rng.uniform(0, 2 * np.pi))
        dv = rng.normal(0, 0.03, 2) @ np.array([1, 1j]) * abs(v) + jerk * abs(v)
        v = v + dv
        v = v / max(abs(v), 1e-12) * max_len / (steps - 1)
        x[t] = x[t - 1] + v
    # Centre the path and fit it inside the kernel support.
    x -= (x.real.min() + x.real.max()) / 2 + 1j * (x.imag.min() + x.imag.max()) / 2
    extent = max(np.ptp(x.real), np.ptp(x.imag), 1e-6)
    x *= min(1.0, (size - 2) / extent)
    c = (size - 1) / 2
    k = np.zeros((size, size))
    for p in x:
        px, py = p.real + c, p.imag + c
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        fx, fy = px - x0, py - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                k[y0 + dy, x0 + dx] += w
    k /= k.sum()
    length = float(np.abs(np.diff(x)).sum())
    return k, length


def blur_with(gt: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    img = to_float(gt)
    out = np.stack([convolve(img[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
    return to_uint8(out)


@register_synth("motion-blurry")
def motion_blurry(gt: np.ndarray, rng: np.random.Generator) -> Degraded:
    size = int(rng.integers(9, 18) * max(scale_of(gt), 0.75)) | 1  # odd
    kernel, length = trajectory_kernel(rng, size)
    return Degraded(blur_with(gt, kernel), {"kernel_size": size, "trajectory_length": round(length, 4)}, {"kernel": kernel})
