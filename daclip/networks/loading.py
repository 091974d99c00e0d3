"""Reading released checkpoints into the toolkit's networks.

One path for every network: ``torch.load(weights_only=True)`` (never executes pickled
code), unwrap the container the authors used (BasicSR ``{'params': ...}``, Lightning
``{'state_dict': ...}``, ``{'model': ...}``), strip wrapper prefixes (``module.`` from
DataParallel, ``net.`` from Lightning, ``_orig_mod.`` from torch.compile), then a strict
load whose error names the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from builders.errors import UserError

# Checked in this order: EMA weights first because BasicSR saves both and the EMA ones are
# what the authors evaluate.
CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "network")
WRAPPER_PREFIXES = ("module.", "net.", "_orig_mod.", "model.")
# Lightning and other trainers pickle small helper objects next to the weights (hyper-
# parameter dicts, enums); weights_only refuses them. They are replaced by inert stand-ins.
MAX_STUBBED_GLOBALS = 32
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


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
    return replace(base, **fixed)


class _Stub:
    """Inert stand-in for a pickled class or function that weights_only refuses.

    Constructing or calling it yields a plain empty dict (which the weights-only unpickler
    may fill, e.g. Lightning's AttributeDict); the original code never runs.
    """

    def __new__(cls, *args, **kwargs):
        return {}


def _stub_for(qualname: str) -> type:
    module, _, name = qualname.rpartition(".")
    return type(name, (_Stub,), {"__module__": module, "__qualname__": name})


def _reason(exc: BaseException) -> str:
    """The informative line of a torch.load error (weights_only errors start with boilerplate)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def torch_load_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` that stands in inert stubs for refused non-tensor globals."""
    stubs: list[tuple[type, str]] = []
    # safe_globals with (object, "module.name") pairs arrived in torch 2.6; older ones just refuse.
    can_stub = hasattr(torch.serialization, "safe_globals")
    while True:
        try:
            if stubs:
                with torch.serialization.safe_globals(stubs):
                    return torch.load(path, map_location="cpu", weights_only=True)
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            match = _UNSUPPORTED_GLOBAL.search(str(exc))
            if not can_stub or match is None or len(stubs) >= MAX_STUBBED_GLOBALS:
                raise UserError(f"{path}: not a readable weights file ({_reason(exc)})") from None
            name = match.group(1)
            if any(n == name for _, n in stubs):
                raise UserError(f"{path}: cannot read {name} safely; re-save the file as a plain state_dict") from None
            stubs.append((_stub_for(name), name))
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable weights file ({_reason(exc)})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def unwrap_state_dict(obj: Any, key: str | None = None, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint container (``key`` picks the container entry)."""
    for _ in range(4):  # containers nest at most a few levels ({'state_dict': {'model': ...}})
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        if key is not None:
            if key not in obj:
                raise UserError(f"{source}: no entry {key!r}; entries: {', '.join(map(str, obj))}")
            obj, key = obj[key], None
            continue
        found = next((k for k in CONTAINER_KEYS if k in obj), None)
        if found is None:
            break
        obj = obj[found]
    raise UserError(f"{source}: no state_dict found (looked for {', '.join(CONTAINER_KEYS)} or a dict of tensors)")


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


def read_state_dict(path_or_state_dict: str | os.PathLike | Mapping[str, Any], key: str | None = None
                    ) -> tuple[dict[str, torch.Tensor], str]:
    """(tensor dict, description of its source) from a file path or an in-memory checkpoint."""
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise UserError(f"weights file not found: {path}")
        obj, source = torch_load_weights_only(path), str(path)
    elif isinstance(path_or_state_dict, Mapping):
        obj, source = path_or_state_dict, "in-memory checkpoint"
    else:
        raise TypeError(f"expected a path or a state_dict, got {type(path_or_state_dict).__name__}")
    return unwrap_state_dict(obj, key=key, source=source), source


def load_weights(model: nn.Module, path_or_state_dict, key: str | None = None) -> nn.Module:
    """Load released weights into ``model`` strictly (wrapper containers and prefixes handled)."""
    state, source = read_state_dict(path_or_state_dict, key=key)
    state = strip_prefixes(state, set(model.state_dict()))
    load_state_dict_strict(model, state, source)
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
