"""The ``--device`` every command takes, checked before any work.

A CPU device needs no torch import, so a weight-free run starts fast; anything else must be a
torch device this machine has. One check for every command (daclip's, the captioner's and the
benchmark's), so a typo is one ``error:`` line everywhere, never a traceback halfway through.
"""

from __future__ import annotations

from builders.errors import UserError


def check_device(text: str) -> str:
    """The device string if torch can use it here, else a UserError naming it."""
    text = (text or "").strip()
    if text in ("cpu", "cpu:0"):
        return text
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"--device {text!r} is not a torch device ({exc}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {text}: CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {text}: MPS is not available here; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {text}: unsupported device type {dev.type!r}; use cpu, cuda or cuda:N")
    return text
