"""Reading released checkpoints into the toolkit's networks.

One path for every network: :func:`daclip.safe_load.load_checkpoint` (the toolkit's one
restricted unpickler: it never executes pickled code and refuses files that would), unwrap
the container the authors used (BasicSR ``{'params': ...}``, Lightning
``{'state_dict': ...}``, ``{'model': ...}``), strip wrapper prefixes (``module.`` from
DataParallel, ``net.`` from Lightning, ``_orig_mod.`` from torch.compile), then a strict
load whose error names the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from builders.errors import UserError

from ..safe_load import load_checkpoint

# Checked in this order. BasicSR files may hold both 'params' and 'params_ema'; the NAFNet and
# Restormer test scripts evaluate 'params' (pass key="params_ema" for the EMA weights).
CONTAINER_KEYS = ("params", "params_ema", "state_dict", "model", "net", "network")
WRAPPER_PREFIXES = ("module.", "net.", "_orig_mod.", "model.")


def resolve_preset(presets: Mapping[str, Any], preset: str, kind: str, overrides: Mapping[str, Any]):
    """The dataclass config named ``preset`` with fields replaced by ``overrides``."""
    if preset not in presets:
        raise UserError(f"unknown {kind} preset {preset!r}; known: {', '.join(sorted(presets))}")
    base = presets[preset]
    known = set(asdict(base))
    bad = sorted(set(overrides) - known)
    if bad:
        raise UserError(f"unknown {kind} option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    # YAML/JSON give lists where the dataclasses hold tuples.
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    for k, v in fixed.items():
        if not _same_kind(getattr(base, k), v):
            raise UserError(f"{kind} option {k}={v!r}: expected {type(getattr(base, k)).__name__}")
    return replace(base, **fixed)


def _same_kind(default: Any, value: Any) -> bool:
    """``value`` may replace ``default`` (an int where a float is expected; anything for None)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) == isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    for kind in (int, str, tuple):
        if isinstance(default, kind):
            return isinstance(value, kind)
    return True


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def unwrap_state_dict(obj: Any, key: str | None = None, source: str = "checkpoint",
                      order: tuple[str, ...] = CONTAINER_KEYS, trail: list[str] | None = None
                      ) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint container (``key`` picks the container entry, else
    the first of ``order`` present); the entries taken are appended to ``trail``."""
    for _ in range(4):  # containers nest at most a few levels ({'state_dict': {'model': ...}})
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        if key is not None:
            if key not in obj:
                raise UserError(f"{source}: no entry {key!r}; entries: {', '.join(map(str, obj))}")
            found, key = key, None
        else:
            found = next((k for k in order if k in obj), None)
            if found is None:
                break
        if trail is not None:
            trail.append(f"{found} (of {', '.join(map(str, obj))})")
        obj = obj[found]
    raise UserError(f"{source}: no state_dict found (looked for {', '.join(order)} or a dict of tensors)")


def strip_prefixes(state: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes that every checkpoint key carries and the model's keys do not."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in model_keys):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _preview(names: list[str], limit: int = 8) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load; a mismatch raises a UserError naming missing, unexpected and mis-shaped keys."""
    # Modules whose buffer sizes are recorded in the file (AirNet's MoCo queue) adapt first.
    for prefix, module in model.named_modules():
        if hasattr(module, "prepare_load"):
            module.prepare_load(state, f"{prefix}." if prefix else "")
    own = model.state_dict()
    # Listed in network order (first layers first), which points at the cause faster than a sort.
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_preview(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (file vs network): {_preview(shapes)}")
        raise UserError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Is it the right method, and the right preset/config for this file?"
        )
    model.load_state_dict(state, strict=True)


def read_state_dict(path_or_state_dict: str | os.PathLike | Mapping[str, Any], key: str | None = None,
                    order: tuple[str, ...] = CONTAINER_KEYS, trail: list[str] | None = None
                    ) -> tuple[dict[str, torch.Tensor], str]:
    """(tensor dict, description of its source) from a file path or an in-memory checkpoint."""
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        obj, source = load_checkpoint(path, what="weights file"), str(path)
    elif isinstance(path_or_state_dict, Mapping):
        obj, source = path_or_state_dict, "in-memory checkpoint"
    else:
        raise TypeError(f"expected a path or a state_dict, got {type(path_or_state_dict).__name__}")
    return unwrap_state_dict(obj, key=key, source=source, order=order, trail=trail), source


def load_weights(model: nn.Module, path_or_state_dict, key: str | None = None) -> nn.Module:
    """Load released weights into ``model`` strictly (wrapper containers and prefixes handled).

    A network may name its own container order (``container_keys``: MaskDCPT reads BasicSR's
    ``params_ema`` first). ``model.loaded_from`` records the container entries taken and the
    prefix stripped, so a caller can say which form of a file it met.
    """
    trail: list[str] = []
    order = tuple(getattr(model, "container_keys", CONTAINER_KEYS))
    state, source = read_state_dict(path_or_state_dict, key=key, order=order, trail=trail)
    first = next(iter(state), "")
    state = strip_prefixes(state, set(model.state_dict()))
    stripped = first[: len(first) - len(next(iter(state), ""))] if state else ""
    load_state_dict_strict(model, state, source)
    model.loaded_from = {"entries": trail, "prefix": stripped, "keys": len(state)}
    return model


def load_network(name: str, path_or_state_dict, *, key: str | None = None, **cfg) -> nn.Module:
    """Build registered network ``name`` with ``cfg`` and load its weights; returned in eval mode.

    Weights are required: a network with random weights never stands in for a method.
    """
    from .registry import build_network

    if path_or_state_dict is None:
        raise UserError(f"no weights given for {name!r}; pass a checkpoint path or state_dict")
    model = build_network(name, **cfg)
    load_weights(model, path_or_state_dict, key=key)
    return model.eval()


def pad_multiple(model: nn.Module) -> int:
    """Side multiple the network needs (it pads internally otherwise); 1 when it takes any size."""
    return int(getattr(model, "pad_multiple", 1))
