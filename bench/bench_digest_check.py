"""Cost of the runner's digest check (every LQ and GT file against the manifest's sha256).

    python bench/bench_digest_check.py                  # 1,000 pairs at 1280x720
    python bench/bench_digest_check.py --n 100          # quicker look

Builds N 1280x720 pairs (crops of scikit-image photographs with noise: PNGs of realistic
size) with an index, then times ``run_benchmark`` (identity, PSNR) in one process:

- first run of a fresh run folder, without the check and with it (cold: every file hashed,
  in the worker threads, and its (size, mtime_ns, inode) remembered in the run folder);
- re-run of the finished folder (everything cached: the check is all the work left),
  without the check and with it (warm: a stat per file, nothing read);
- the check alone, cold and warm.

Each figure is the best of --repeats. The page cache is warm for every timing (the files were
just written), which is the worst case for the check's share: on a cold disk reading the files
costs the same with or without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_dataset(root: Path, n: int, w: int = 1280, h: int = 720) -> None:
    import skimage.data
    from skimage.transform import resize

    from builders.index import index_folder
    from builders.io import save_image

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    bases = [(resize(p, (h, w), order=1, preserve_range=True, anti_aliasing=False)).astype(np.uint8) for p in photos]
    rng = np.random.default_rng(0)

    def one(i: int) -> None:
        gt = np.roll(bases[i % len(bases)], shift=(i * 7) % h, axis=0)
        lq = np.clip(gt + rng.normal(0, 15, gt.shape), 0, 255).astype(np.uint8)
        save_image(root / "val" / "noisy" / "GT" / f"{i:04d}.png", gt)
        save_image(root / "val" / "noisy" / "LQ" / f"{i:04d}.png", lq)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(one, range(n)))
    index_folder(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    from benchmark.runner import DIGESTS_FILE, RunConfig, run_benchmark, verify_files
    from builders.manifest import read_manifest

    tmp = Path(tempfile.mkdtemp(prefix="bench_digest_"))
    try:
        t0 = time.perf_counter()
        make_dataset(tmp / "ds", args.n)
        total = sum(p.stat().st_size for p in (tmp / "ds").rglob("*.png"))
        print(f"dataset: {args.n} pairs at 1280x720, {total / 1e9:.2f} GB of PNG, built in "
              f"{time.perf_counter() - t0:.0f} s")

        def cfg(out: Path, check: bool) -> RunConfig:
            return RunConfig(dataset=tmp / "ds", out=out, methods=["identity"], tasks=None, metrics=["psnr"],
                             progress=False, workers=args.workers, check_digests=check)

        def timed(fn) -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        warm = cfg(tmp / "warm-up", False)
        warm.limit = 2
        run_benchmark(warm)  # imports and first-call set-up, outside every timing
        rows: dict[str, list[float]] = {}
        for r in range(args.repeats):
            for check in (False, True):
                out = tmp / f"run_{check}_{r}"
                rows.setdefault(f"first run, check {'on (cold)' if check else 'off'}", []).append(
                    timed(lambda: run_benchmark(cfg(out, check))))
                rows.setdefault(f"re-run (all cached), check {'on (warm)' if check else 'off'}", []).append(
                    timed(lambda: run_benchmark(cfg(out, check))))
            items = read_manifest(tmp / "ds")
            out = tmp / f"alone_{r}"
            out.mkdir()
            with ThreadPoolExecutor(args.workers or len(os.sched_getaffinity(0))) as pool:
                rows.setdefault("check alone, cold", []).append(
                    timed(lambda: verify_files(cfg(out, True), items, pool)))
                rows.setdefault("check alone, warm", []).append(
                    timed(lambda: verify_files(cfg(out, True), items, pool)))
            (out / DIGESTS_FILE).unlink()
        print(f"\n{'what':45s} {'best s':>8s}  (of {args.repeats}; {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f})")
        for k, v in rows.items():
            print(f"{k:45s} {min(v):8.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
