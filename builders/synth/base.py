"""Registry and shared helpers of the synthetic degradations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UserError
from ..registry import Registry


@dataclass
class Degraded:
    lq: np.ndarray  # HxWx3 uint8
    params: dict[str, Any]  # JSON-able, stored in the manifest
    aux: dict[str, Any] = field(default_factory=dict)  # masks, kernels, encoded streams


# Bump when any generator's output changes: builds made with another version are rebuilt.
SYNTH_VERSION = 1

SynthFn = Callable[[np.ndarray, np.random.Generator], Degraded]
SYNTHESIZERS: Registry[SynthFn] = Registry("degradation")
register_synth = SYNTHESIZERS.register


def synth_names() -> list[str]:
    return SYNTHESIZERS.names()


def seed_for(*keys: object) -> int:
    """A 63-bit seed derived from any keys; stable across processes and Python versions."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# How a float result is stored as uint8: "round" (nearest) or "truncate" ((x*255).astype(uint8),
# as DA-CLIP's scripts/generate_LQ.py). Only the generators that the paper's script makes take it.
STORE_CONVENTIONS = ("round", "truncate")
STORE_AWARE = ("noisy", "jpeg-compressed")


def synthesize(name: str, gt: np.ndarray, seed: int, *, store: str | None = None) -> Degraded:
    if name not in SYNTHESIZERS:
        raise UserError(f"no synthetic generator for {name!r}; known: {', '.join(SYNTHESIZERS)}")
    if gt.dtype != np.uint8 or gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {gt.dtype} {gt.shape}")
    if store is not None and name not in STORE_AWARE:
        raise ValueError(f"{name} has no uint8 store convention (only {', '.join(STORE_AWARE)})")
    kwargs = {} if store is None else {"store": store}
    out = SYNTHESIZERS.get(name)(gt, np.random.default_rng(seed), **kwargs)
    out.params = {"generator": name, "seed": int(seed), "synth_version": SYNTH_VERSION, **out.params}
    return out


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth random field in [0, 1] (Gaussian-filtered white noise)."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    f -= f.min()
    return f / max(f.max(), 1e-12)


def scale_of(img: np.ndarray) -> float:
    """Size factor relative to a 256-pixel short side, so effects look alike at any size."""
    return min(img.shape[:2]) / 256.0
