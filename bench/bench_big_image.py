"""Peak memory of ``daclip.restore`` on one huge, highly compressible PNG (12000x12000 = 144 MP).

    python bench/bench_big_image.py                       # classical low-light + tiny-NAFNet
    python bench/bench_big_image.py --side 6000 --repo /tmp/base17   # another checkout, smaller

Each command runs as its own child process; its peak resident set size is the kernel's
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper that runs only that child). Rows:

- the default pixel limit (refused from the header: time and memory of the refusal);
- the limit raised (``--max-megapixels 0``), for ``classical --task low-light`` and for
  ``nafnet`` with random weights of its tiny preset saved to a temp file (memory depends on
  the tiles and the image, not on the weights' values; the tiny preset keeps the CPU time
  short). ``--full-nafnet S`` adds the default NAFNet width, stopped after S seconds (peak so far).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_WRAP = """
import resource, subprocess, sys, time, json
t = time.perf_counter()
try:
    p = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=float(sys.argv[1]))
    rc, err = p.returncode, p.stderr
except subprocess.TimeoutExpired as e:
    rc, err = "timeout", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "err": err.strip().splitlines()[-1:] }))
"""


def make_png(path: Path, side: int) -> None:
    """A dark, smooth image (low-light), row by row into Pillow: compresses to well under 1 MB."""
    from PIL import Image

    y = np.linspace(0, 1, side, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, side, dtype=np.float32)[None, :]
    img = np.empty((side, side, 3), np.uint8)
    for c, k in enumerate((20, 30, 40)):
        img[..., c] = (k + 15 * x + 10 * y).astype(np.uint8)
    Image.fromarray(img).save(path, compress_level=9)


def measure(cmd: list[str], env: dict, timeout: float, cwd: Path) -> dict:
    # cwd outside any checkout: ``-m`` puts the working folder first on sys.path, before PYTHONPATH
    out = subprocess.run([sys.executable, "-c", _WRAP, str(timeout), *cmd], env=env, capture_output=True, text=True,
                         cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=12000)
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose code runs (PYTHONPATH)")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--full-nafnet", type=float, default=0, metavar="S")
    ap.add_argument("--skip", default="", help="comma-separated rows to leave out (classical, nafnet)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_big_"))
    try:
        big = tmp / "big.png"
        make_png(big, args.side)
        print(f"{big.name}: {args.side}x{args.side} ({args.side ** 2 / 1e6:.0f} MP), {big.stat().st_size / 1e3:.0f} KB; "
              f"code from {args.repo}")
        import torch

        sys.path.insert(0, str(ROOT))
        from daclip.networks import build_network

        torch.manual_seed(0)
        tiny = tmp / "nafnet_tiny.pth"
        torch.save(build_network("nafnet", preset="tiny").state_dict(), tiny)
        Path(str(tiny) + ".json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
        full = tmp / "nafnet_default.pth"
        torch.save(build_network("nafnet").state_dict(), full)
        env = {**os.environ, "PYTHONPATH": str(args.repo), "OMP_NUM_THREADS": "2"}
        base = [sys.executable, "-m", "daclip.restore", str(big), "--quiet", "--device", "cpu"]
        rows = [("classical low-light", "classical", ["--method", "classical", "--task", "low-light"]),
                ("nafnet (tiny preset, random weights)", "nafnet", ["--method", "nafnet", "--weights", str(tiny)])]
        skip = set(filter(None, args.skip.split(",")))
        print(f"{'command':40s} {'limit':>10s} {'rc':>8s} {'seconds':>8s} {'peak RSS MiB':>13s}  last line")
        for label, key, extra in rows:
            if key in skip:
                continue
            for limit, opt in (("default", []), ("raised", ["--max-megapixels", "0"])):
                out = tmp / f"out_{key}_{limit}"
                r = measure([*base, *extra, "--out", str(out), *opt], env, args.timeout, tmp)
                print(f"{label:40s} {limit:>10s} {str(r['rc']):>8s} {r['seconds']:8.1f} {r['peak_rss_mib']:13.0f}  "
                      f"{(r['err'] or [''])[0][:110]}")
                shutil.rmtree(out, ignore_errors=True)
        if args.full_nafnet:
            r = measure([*base, "--method", "nafnet", "--weights", str(full), "--out", str(tmp / "out_full"),
                         "--max-megapixels", "0"], env, args.full_nafnet, tmp)
            print(f"{'nafnet (default width, random weights)':40s} {'raised':>10s} {str(r['rc']):>8s} "
                  f"{r['seconds']:8.1f} {r['peak_rss_mib']:13.0f}  (stopped after {args.full_nafnet:g} s: peak so far)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
