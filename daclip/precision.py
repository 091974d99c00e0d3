"""Precision names, one vocabulary for every command: ``auto``, ``none``, ``fp16``, ``bf16``.

``none`` is no autocast / no cast: fp32 (``fp32`` is accepted as its other name, as the
commands documented it). ``auto`` has one meaning: on a GPU, the precision the command's
recipe runs at (the official code's: fp16 for the DA-CLIP encoder and BLIP, bf16 for training
where the GPU has it), and ``none`` on the CPU.
"""

from __future__ import annotations

import torch

from builders.errors import UserError

PRECISIONS = ("auto", "none", "fp16", "bf16")
ALIASES = {"fp32": "none"}
DTYPES: dict[str, torch.dtype | None] = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def choices(*, auto: bool = True) -> list[str]:
    """The names a command line accepts (the aliases included)."""
    return [p for p in PRECISIONS if auto or p != "auto"] + list(ALIASES)


def parse_precision(name: str, option: str = "--precision", *, auto: bool = True) -> str:
    """The canonical name of ``name`` (``fp32`` -> ``none``); one UserError for anything else."""
    canonical = ALIASES.get(name, name)
    if canonical not in PRECISIONS or (canonical == "auto" and not auto):
        raise UserError(f"{option} {name!r}: choose from {', '.join(choices(auto=auto))}")
    return canonical


def resolve_precision(name: str, device: torch.device | str, gpu: str = "fp16") -> str:
    """``auto`` -> ``gpu`` on a CUDA device (bf16 falls back to fp16 where the GPU lacks it), else
    ``none``; any other name as parsed."""
    name = parse_precision(name)
    if name != "auto":
        return name
    if torch.device(device).type != "cuda":
        return "none"
    if gpu == "bf16" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return gpu


def precision_dtype(name: str) -> torch.dtype | None:
    """The autocast dtype of a resolved name (None for ``none``)."""
    return DTYPES[parse_precision(name, auto=False)]
