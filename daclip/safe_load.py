"""The one loader for every checkpoint the toolkit reads: unpickling that can never run code.

Every reader goes through :func:`load_checkpoint`: restoration networks, DA-CLIP, training
resume, plain CLIP weights and the metric networks (LPIPS, Inception). It is
``torch.load(weights_only=True)`` with a fixed, explicit allow-list of exactly what the
released files hold beyond tensors and plain containers:

- numpy scalars and dtypes (open_clip's trainer stores numpy ``float64`` learning rates in
  its optimizer state), under their numpy-1 names (``numpy.core.multiarray.scalar``, as the
  released ``daclip_ViT-B-32.pt`` spells them) and their numpy-2 names
  (``numpy._core.multiarray.scalar``), plus ``numpy.dtype`` and the dtype classes;
- Lightning's hyper-parameter dict (``AttributeDict``, which Lightning 1.x pickled), read
  as an inert plain ``dict``: Lightning is never imported and none of its code runs.

Anything else a pickle names (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a
class with a ``__reduce__`` payload, ...) makes the file *refused*: the error names the file
and the offending globals. There is deliberately no switch to unpickle with
``weights_only=False``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from builders.errors import UserError

ALLOWED_DESCRIPTION = ("tensors, plain containers, numpy scalars and dtypes, Lightning's "
                       "hyper-parameter dicts")

# Lightning's AttributeDict, by every module path it has been pickled from.
LIGHTNING_ATTRIBUTE_DICTS = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
)

# The informative part of torch's refusal messages: the global, or the type it would build.
_REFUSAL = (
    re.compile(r"Unsupported global: GLOBAL ([\w.]+)"),
    re.compile(r"unsupported GLOBAL ([\w.]+) whose module"),
    re.compile(r"Can only build .* but got (<class '[\w.]+'>)"),
    re.compile(r"Can only create new object .* but got (<class '[\w.]+'>)"),
    re.compile(r"Trying to call reduce for unrecognized function (.+)"),
    re.compile(r"Can only (?:SETITEMS?|append) .* but got (<class '[\w.]+'>)"),
)


class CheckpointRefused(UserError):
    """The file's pickle needs a global outside the allow-list: it is not unpickled."""


class _InertDict:
    """Stand-in for Lightning's AttributeDict: unpickles into a plain ``dict``.

    The weights-only unpickler fills dicts only, and a plain dict is all the
    hyper-parameters ever were; no Lightning code is imported or run.
    """

    def __new__(cls, *args, **kwargs):
        return dict(*args, **kwargs)


def _numpy_core():
    import numpy as np

    try:  # numpy 2 (and 1.26's forward-compatibility alias)
        return np, importlib.import_module("numpy._core.multiarray")
    except ImportError:  # older numpy 1.x
        return np, importlib.import_module("numpy.core.multiarray")


def allowed_globals() -> list[tuple[Any, str]]:
    """(object, pickled name) pairs allowed beyond torch's own weights-only defaults."""
    np, multiarray = _numpy_core()
    out: list[tuple[Any, str]] = [
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
        (np.dtype, "numpy.dtype"),
    ]
    # dtype instances are rebuilt with BUILD, which torch allows only for allow-listed
    # types: the classes of the builtin dtypes (numpy.dtypes.Float64DType, ...).
    seen = set()
    for code in "?bBhHiIlLqQefdgFDGSUVOMm":
        cls = type(np.dtype(code))
        if cls in seen:
            continue
        seen.add(cls)
        out.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    out += [(_InertDict, name) for name in LIGHTNING_ATTRIBUTE_DICTS]
    return out


def _allowed_names() -> set[str]:
    return {name for _, name in allowed_globals()}


def _reason(exc: BaseException) -> str:
    """The informative line of a torch.load error (weights_only errors start with boilerplate)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    # torch's own hint ("Please use `torch.serialization.add_safe_globals(...)` ...") is advice
    # to trust the file: not ours to give.
    return line.split(" was not an allowed global")[0].split(" Please use")[0].strip()


def _offending(path: Path, exc: BaseException) -> list[str] | None:
    """Globals that made torch refuse the file, or None when the error is not a refusal."""
    text = str(exc)
    found = None
    for rx in _REFUSAL:
        m = rx.search(text)
        if m:
            found = m.group(1).strip().rstrip(".")
            break
    if found is None:
        return None
    # The scan lists every global the pickle names, without unpickling anything; torch's own
    # message names only the first (and drops the "builtins." of builtins).
    return scan_unsafe_globals(path) or [found]


def _default_allowed() -> set[str]:
    from torch import _weights_only_unpickler as wou

    return set(wou._get_allowed_globals())


def _py3_name(module: str, name: str) -> str:
    """The Python 3 spelling of a pickled global (protocol 2 writes __builtin__, commands, ...)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _pickle_globals(data: bytes) -> list[str]:
    """Every global named by the pickles in ``data`` (read with pickletools: nothing runs)."""
    import io
    import pickletools

    names: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(8):  # a legacy torch file is a few pickles in a row, then raw storage bytes
        if stream.tell() >= len(data):
            break
        strings: list[str] = []  # string pushes, for STACK_GLOBAL (protocol 4) operands
        memo: dict[int, str] = {}
        last: str | None = None
        try:
            for op, arg, _pos in pickletools.genops(stream):
                pushed = None
                if op.name == "GLOBAL":
                    names.append(_py3_name(*str(arg).split(" ", 1)))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(_py3_name(strings[-2], strings[-1]))
                elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                    pushed = str(arg)
                elif op.name == "MEMOIZE":  # stores the top of the stack; pushes nothing
                    if last is not None:
                        memo[len(memo)] = last
                    continue
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    if last is not None:
                        memo[int(arg)] = last
                    continue
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    pushed = memo[int(arg)]
                if pushed is not None:
                    strings.append(pushed)
                last = pushed
        except Exception:  # noqa: BLE001 - the raw storage bytes after the pickles end the scan
            break
    return names


def scan_unsafe_globals(path: str | os.PathLike) -> list[str]:
    """Globals the file's pickle names beyond torch's defaults and this allow-list (no unpickling)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
                data = zf.read(pkl[0]) if pkl else b""
        else:
            with open(path, "rb") as fh:
                data = fh.read(64 << 20)  # the pickles come first; storage bytes are not scanned
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    ok = _default_allowed() | _allowed_names()
    return list(dict.fromkeys(n for n in _pickle_globals(data) if n not in ok))


def refused_message(path: str | os.PathLike, names: list[str]) -> str:
    verb = "which is" if len(names) == 1 else "which are"
    return (f"{path}: refused: its pickle names {', '.join(names)}, {verb} not among what a checkpoint may "
            f"hold ({ALLOWED_DESCRIPTION}); unpickling it could run code, so it was not loaded and nothing "
            "in it ran. Use the file from its official source, or re-save the weights as a plain state_dict")


def _unreadable(path: Path, exc: BaseException) -> str:
    """Why torch could not read the file, in words a user can act on."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        head = b""
    if not head:
        return "the file is empty"
    if head[:2] != b"PK" and head[:1] != b"\x80":
        return "not a PyTorch file: neither a zip archive nor a pickle"
    return _reason(exc)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    what: str = "checkpoint") -> Any:
    """The object stored in ``path`` (a torch file, or ``.safetensors``), never running its code.

    Raises UserError: ``CheckpointRefused`` naming the offending globals, or a readable
    reason when the file is missing, truncated or not a checkpoint at all.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UserError(f"{path}: reading .safetensors files needs the safetensors package") from None
        try:
            return load_file(str(path), device=str(map_location))
        except Exception as exc:  # noqa: BLE001 - header/IO errors come in several types
            raise UserError(f"{path}: not a readable {what} ({_reason(exc)})") from None
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the outcome is reported instead.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # A refusal, or a pickle torch cannot even step through (protocol 4 frames of a raw
        # pickle.dump) that names code: both are refused by name.
        names = _offending(path, exc) or scan_unsafe_globals(path)
        if names:
            raise CheckpointRefused(refused_message(path, names)) from None
        raise UserError(f"{path}: not a readable {what} ({_unreadable(path, exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, zipfile.BadZipFile, UnicodeDecodeError, MemoryError) as exc:
        raise UserError(f"{path}: not a readable {what} ({_reason(exc)})") from None


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: a ``{'state_dict': ...}`` wrapper (open_clip's trainer)
    or a bare state dict, with DDP's ``module.`` prefixes stripped; UserError naming ``source``."""
    from collections.abc import Mapping

    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(f"{source} holds no state_dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise UserError(f"{source}: entry {k!r} is not a tensor")
        out[str(k).removeprefix("module.")] = v
    return out


def load_mat(path: str | os.PathLike, keys: tuple[str, ...], what: str = "parameter file") -> dict:
    """Numeric arrays ``keys`` of a MATLAB v5 ``.mat`` file (NIQE's and BRISQUE's parameters).

    scipy's reader decodes data only (it has no code objects to run); this also refuses any
    variable that is not a plain numeric array (MATLAB objects, function handles, cells), so
    what reaches a metric is exactly numbers. UserError naming the file and the variable.
    """
    import numpy as np
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = scipy.io.loadmat(str(path), variable_names=list(keys), mat_dtype=False)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, EOFError, KeyError) as exc:
        raise UserError(f"{path}: not a readable MATLAB v5 {what} ({exc})") from None
    out = {}
    for k in keys:
        v = data.get(k)
        if v is None:
            raise UserError(f"{path}: {what} has no variable {k!r}")
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiu" or v.dtype.hasobject:
            raise UserError(f"{path}: variable {k!r} is {getattr(v, 'dtype', type(v))}, not a numeric array; refused")
        out[k] = np.array(v)
    return out
