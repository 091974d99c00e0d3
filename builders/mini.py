"""The offline "mini" preset: ten synthetic degradation types on scikit-image's photographs.

Nothing is downloaded: the photographs ship inside the scikit-image wheel. Validation uses
other photographs than training, so held-out numbers are really held out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .synthset import BuildSummary, Source, SynthSetConfig, build_synthetic_set

_LICENCE = "scikit-image sample data (public domain / CC0 / CC-BY; see skimage.data.{} docstring)"

# (function in skimage.data, split). stereo_motorcycle returns (left, right, disparity).
_PHOTOS = (
    ("coffee", "train"), ("motorcycle_left", "train"), ("motorcycle_right", "train"),
    ("hubble_deep_field", "train"), ("immunohistochemistry", "train"), ("retina", "train"),
    ("camera", "train"), ("astronaut", "val"), ("chelsea", "val"), ("rocket", "val"),
)


def _loader(name: str):
    def load() -> np.ndarray:
        import skimage.data as data

        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            return left if name.endswith("left") else right
        return getattr(data, name)()

    return load


def mini_sources() -> list[Source]:
    return [
        Source(name, _loader(name), split, f"scikit-image:{name}",
               _LICENCE.format("stereo_motorcycle" if name.startswith("motorcycle") else name))
        for name, split in _PHOTOS
    ]


MINI = SynthSetConfig()


def build_mini(root: str | Path, *, seed: int = 0, force: bool = False, progress: bool = True) -> BuildSummary:
    cfg = SynthSetConfig(seed=seed) if seed != MINI.seed else MINI
    return build_synthetic_set(Path(root), mini_sources(), cfg, force=force, progress=progress)
