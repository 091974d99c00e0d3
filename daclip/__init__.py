"""DA-CLIP (degradation-aware CLIP) and the restoration networks built on it.

``daclip.restore(image, method=...)`` restores one image with any registry method (see
:mod:`daclip.restore`, also ``python -m daclip.restore``).

The heavy names are resolved lazily so ``import daclip`` stays light (no open_clip,
no transformers until a model is built).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DaCLIP": "daclip.model",
    "create_daclip": "daclip.model",
    "clip_preprocess": "daclip.model",
    "classify": "daclip.model",
    "degradation_text_features": "daclip.model",
    "load_daclip": "daclip.checkpoint",
    "save_daclip": "daclip.checkpoint",
    "load_network": "daclip.networks.loading",
    "build_network": "daclip.networks.registry",
    "Restorer": "daclip.restore",
    "Restored": "daclip.restore",
    "load_checkpoint": "daclip.safe_load",
}

__all__ = ["DaCLIP", "classify", "clip_preprocess", "create_daclip", "degradation_text_features",
           "load_daclip", "save_daclip", "load_network", "build_network", "load_checkpoint", "restore",
           "Restorer", "Restored"]


def __getattr__(name: str):
    if name == "restore":
        # The module daclip.restore is callable: daclip.restore(image, method=...) restores one image
        # and ``python -m daclip.restore`` is its command line.
        return importlib.import_module("daclip.restore")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'daclip' has no attribute {name!r}")
