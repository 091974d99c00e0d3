"""What each method costs: FLOPs at 256x256 and peak memory on the run's device.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs;
convolutions and matrix products are counted, elementwise operations are not), on one
256x256 RGB image:

- ``flops_per_call``: one call of the restoration network, with the inputs the method really
  gives it (padding to its multiple, DA-CLIP contexts, the diffusion time step);
- ``calls_per_image``: how often the method calls it for one image (1 for a feed-forward
  network, the configured number of steps for a diffusion method), counted by running the
  method with the network replaced by a free stand-in, so no sampler is re-derived here;
- ``other_flops_per_image``: everything else of that run (the DA-CLIP encoder, ...);
- ``flops_per_image`` = per call x calls + other.

Peak memory of a method's stage of a run: on CUDA ``torch.cuda.max_memory_allocated`` (reset
before the method); on the CPU the process's peak resident set (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``), which includes the worker threads that decode and score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FLOP_SIZE = 256
COST_FILE = "cost.json"


class _Stop(Exception):
    pass


def network_flops(method, size: int = FLOP_SIZE) -> dict | None:
    """FLOPs of a prepared neural method at ``size`` x ``size`` (None for a method without a
    network the toolkit calls through ``_call``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(getattr(method, "net", None), torch.nn.Module) or not callable(getattr(method, "_call", None)):
        return None
    real_call = method._call
    calls, first = 0, []

    def counting_call():
        def run(*xs, **ctx):
            nonlocal calls
            calls += 1
            if not first:
                first.append((xs, ctx))
            return xs[0].float()  # a stand-in of the output's shape: the method runs on for free

        return run

    img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    method._call = counting_call  # this instance only, for this count
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as other:
            if callable(getattr(method, "restore_tensor", None)):  # the network methods' own path
                dev = next(method.net.parameters()).device
                x = torch.from_numpy(img).permute(2, 0, 1)[None].to(dev, torch.float32) / 255.0
                method.restore_tensor(x, ["flop-count"])
            else:
                method.restore_batch([img], ["noisy"], keys=["flop-count"])
    finally:
        del method._call
    if not first:
        return None
    xs, ctx = first[0]
    with torch.no_grad(), FlopCounterMode(display=False) as one:
        real_call()(*xs, **ctx)
    per_call = int(one.get_total_flops())
    rest = int(other.get_total_flops())
    return {"size": size, "flops_per_call": per_call, "calls_per_image": calls,
            "other_flops_per_image": rest, "flops_per_image": per_call * calls + rest}


def cached_flops(run_dir: Path, method) -> dict | None:
    """:func:`network_flops`, kept in ``<run>/cost.json`` per method and weights id."""
    from builders.io import atomic_write_text

    path = Path(run_dir) / COST_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        data = {}
    key = f"{method.name}:{method.weights_id}:{FLOP_SIZE}"
    if key not in data:
        try:
            data[key] = network_flops(method)
        except Exception as exc:  # noqa: BLE001 - a count that fails must not cost the benchmark its run
            import sys

            print(f"{method.name}: FLOPs not counted ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    return data[key]


class PeakMemory:
    """Peak memory of the block on ``device``: ``.bytes`` and ``.kind`` after it (None when unknown)."""

    def __init__(self, device: str):
        self.device = str(device)
        self.bytes: int | None = None
        self.kind = "cuda max allocated" if self.device.startswith("cuda") else "process peak RSS"

    def __enter__(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._reset = _reset_peak_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        elif self._reset:
            self.bytes = peak_rss()


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_rss() -> int | None:
    """The process's peak resident set in bytes (Linux VmHWM), None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
