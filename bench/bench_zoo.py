"""Cost of the released all-in-one models (issue 21) on the CPU, with random weights.

    python bench/bench_zoo.py                               # all six, 1 repetition
    python bench/bench_zoo.py --methods adair,onerestore --reps 3
    python bench/bench_zoo.py --skip-4k                     # parameters, FLOPs and s/MP only

Per method: parameters of the restoration network (plus its second network: InstructIR's
language head, OneRestore's embedder), FLOPs of one forward at 256x256
(torch.utils.flop_counter: convolutions and matrix products; FFTs and element-wise work are
not counted), seconds per megapixel at 1280x720 (one whole-image pass, as the method runs it:
below the tiling threshold), and the peak resident memory of a child process that restores a
3840x2160 image through the method itself (``restore``: tiles of 768 with 64 overlap, the
default), from random-weight files in the released containers.

Weights are random (speed and memory do not depend on their values). InstructIR's text
encoder (bge-micro-v2, a hub model) is replaced by a random 384-d sentence vector: its cost is
one sentence per image. GPU figures: run the same on a GPU machine (``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("adair", "moce-ir", "moce-ir-s", "instructir", "onerestore", "maskdcpt-nafnet")


def extra_inputs(name: str, batch: int, device) -> tuple:
    if name == "instructir":
        return (torch.nn.functional.normalize(torch.randn(batch, 256, device=device), dim=1),)
    if name == "onerestore":
        return (torch.relu(torch.randn(batch, 324, device=device)),)
    return ()


def network(name: str, device):
    from daclip.networks import build_network

    torch.manual_seed(0)
    return build_network(name).to(device).eval()


def count_params(name: str) -> tuple[int, int]:
    """(restoration network, second network) parameters."""
    from daclip.networks import build_network

    second = {"instructir": "instructir-lm", "onerestore": "onerestore-embedder"}.get(name)
    with torch.device("meta"):
        a = sum(p.numel() for p in build_network(name).parameters())
        b = sum(p.numel() for p in build_network(second).parameters()) if second else 0
    return a, b


def flops_256(name: str) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    net = network(name, "cpu")
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, *extra_inputs(name, 1, "cpu"))
    return int(counter.get_total_flops())


def seconds_per_mp(name: str, device, reps: int) -> float:
    net = network(name, device)
    x = torch.rand(1, 3, 720, 1280, device=device)
    extra = extra_inputs(name, 1, device)
    with torch.no_grad():
        times = []
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            net(x, *extra)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return min(times) / (1280 * 720 / 1e6)


def _write_weights(name: str, folder: Path) -> str:
    """Random-weight files in the released containers; the method's ``weights`` value."""
    from daclip.networks import build_network

    torch.manual_seed(0)
    net = build_network(name)
    state = net.state_dict()
    main = folder / f"{name}.pth"
    if name in ("adair", "moce-ir", "moce-ir-s"):
        torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}, "epoch": 0}, main)
    elif name == "maskdcpt-nafnet":
        torch.save({"params_ema": state}, main)
    else:
        torch.save(state, main)
    second = {"instructir": "instructir-lm", "onerestore": "onerestore-embedder"}.get(name)
    if not second:
        return str(main)
    torch.save(build_network(second).state_dict(), folder / f"{second}.pth")
    return f"{main},{folder / f'{second}.pth'}"


def child_4k(name: str, device: str) -> dict:
    """Restore one 3840x2160 image through the method (in this process); peak RSS and time."""
    import resource

    import numpy as np

    import daclip.networks.instructir as iir
    from daclip.registry import method_spec

    class RandomSentence:  # stands in for the hub's bge-micro-v2 (see the module docstring)
        def __init__(self, model, device):
            self.device = device

        def __call__(self, texts):
            return torch.nn.functional.normalize(torch.randn(len(texts), 384), dim=1).to(self.device)

    iir.InstructionEncoder = RandomSentence
    with tempfile.TemporaryDirectory() as tmp:
        weights = _write_weights(name, Path(tmp))
        method = method_spec(name).factory(weights=weights)
        method.prepare(device)
    lq = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    out = method.restore(lq, "noisy")
    seconds = time.perf_counter() - t0
    assert out.shape == lq.shape
    return {"seconds": seconds, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "tiling": f"{method.tiling.tile}/{method.tiling.overlap}"}


def run_4k(name: str, device: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--device", device], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--reps", type=int, default=1, help="timed passes at 1280x720 (the fastest counts)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-4k", action="store_true", help="no 3840x2160 restoration")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_4k(args.child, args.device)))
        return 0
    device = torch.device(args.device)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    print(f"random weights; {torch.get_num_threads()} threads; device {device}")
    print("| method | params | 2nd net params | GFLOPs @256x256 | s/MP @1280x720 | 4K time (s) | peak RSS @3840x2160 (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        a, b = count_params(name)
        gflops = flops_256(name) / 1e9
        spm = seconds_per_mp(name, device, args.reps)
        big = {} if args.skip_4k else run_4k(name, args.device)
        four_k = (f"{big['seconds']:.0f} | {big['peak_rss_gib']:.2f}" if "seconds" in big
                  else f"- | {big.get('error', 'skipped')}")
        print(f"| {name} | {a:,} | {b:,} | {gflops:.1f} | {spm:.2f} | {four_k} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
