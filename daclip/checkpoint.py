"""Load and save DA-CLIP weights in the format of the authors' released ``daclip_ViT-B-32.pt``.

The released file is what open_clip's trainer writes: ``{'epoch', 'name', 'state_dict',
'optimizer'}`` with keys of the :class:`daclip.model.DaCLIP` tree (optionally prefixed
``module.`` by DDP); its optimizer state holds numpy float64 learning rates, pickled under
numpy-1 names, which :mod:`daclip.safe_load` reads without running code. A bare state_dict
is accepted too. Saved files use the same layout, so they load in the
official code and vice versa.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from builders.io import atomic_path

from .model import DaCLIP, create_daclip
from .safe_load import extract_state_dict, load_checkpoint

_ALIAS_PREFIXES = ("visual.", "clip.visual.")


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through a temporary file in the same folder, then rename into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _fill_aliases(sd: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Fill ``visual.*`` from ``clip.visual.*`` (or back): the two names hold one tensor.

    Files written by code that does not register the alias still load strictly.
    """
    sd = dict(sd)
    for key in expected - set(sd):
        for src, dst in (("clip.visual.", "visual."), ("visual.", "clip.visual.")):
            if key.startswith(dst) and src + key[len(dst):] in sd:
                sd[key] = sd[src + key[len(dst):]]
                break
    return sd


def load_state_dict_strict(model: DaCLIP, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load after filling the ``visual.*`` alias keys; mismatches are named (UserError)."""
    from .networks.loading import load_state_dict_strict as strict

    strict(model, _fill_aliases(dict(sd), set(model.state_dict())), source)


def load_daclip(path: str | os.PathLike, model_name: str = "ViT-B-32", device: str | torch.device = "cpu",
                model_cfg: dict | None = None) -> DaCLIP:
    """A DA-CLIP model with the weights of a released or saved checkpoint (strict)."""
    sd = extract_state_dict(load_checkpoint(path), source=str(path))
    model = create_daclip(model_name, None, model_cfg=model_cfg)
    load_state_dict_strict(model, sd, source=str(path))
    model.lock_clip()
    return model.to(device)


def daclip_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict of a (possibly DDP- or compile-wrapped) DA-CLIP with plain official keys."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    out, moved = {}, {}
    for k, v in inner.state_dict().items():
        # The alias visual.* shares storage with clip.visual.*: copy it to the CPU once, so
        # the file (torch.save keeps sharing) stores it once.
        key = (v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
        if key not in moved:
            moved[key] = v.detach().cpu()
        out[k] = moved[key]
    return out


def save_daclip(model: torch.nn.Module, path: str | os.PathLike, **extra: Any) -> None:
    """Write ``{'state_dict': ..., **extra}`` atomically (the released layout)."""
    save_torch_atomic({"state_dict": daclip_state_dict(model), **extra}, path)
