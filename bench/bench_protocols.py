"""Time building and scoring a 3D-sized test set on the CPU.

Writes replica sources of the 3D protocol in a temp folder (SOTS-outdoor: 500 hazy .jpg at
550x413 over 492 GT .png; Rain100L: 100 PReNet pairs at 481x321; CBSD68: 68 original_png at
481x321, their digests registered in place of the published ones), builds them with
``builders.build --preset 3d --from-dir`` (500 + 100 + 3 x 68 = 804 pairs, centre-cropped to 16,
seeded noise), then scores ``--methods identity`` under the protocol's convention and the
unified one (four per-image metrics) with ``benchmark.run --protocol 3d``, and prints the times.
Run: python bench/bench_protocols.py [--workers 1,2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image


def _photo(rng, h, w):
    # Smooth-ish content compresses like photographs rather than like noise.
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))


def _save(path: Path, a, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)
    return path


def make_sources(src: Path) -> dict:
    rng = np.random.default_rng(0)
    for i in range(1, 493):
        gt = _photo(rng, 413, 550)
        _save(src / "SOTS" / "outdoor" / "gt" / f"{i:04d}.png", gt)
        for k in range(2 if i <= 8 else 1):
            haze = (gt * 0.6 + 90).astype(np.uint8)
            _save(src / "SOTS" / "outdoor" / "hazy" / f"{i:04d}_0.{8 + k}_0.2.jpg", haze, quality=95)
    for i in range(1, 101):
        gt = _photo(rng, 321, 481)
        _save(src / "Rain100L" / f"norain-{i:03d}.png", gt)
        _save(src / "Rain100L" / "rainy" / f"rain-{i:03d}.png", np.clip(gt + 40 * (rng.random(gt.shape) > 0.97), 0, 255).astype(np.uint8))
    digests = {}
    for k in range(68):
        p = _save(src / "CBSD68-dataset" / "CBSD68" / "original_png" / f"{k:04d}.png", _photo(rng, 321, 481))
        digests[p.name] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return digests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    args = ap.parse_args()
    from benchmark.run import main as run_main
    from builders.build import main as build_main
    from builders.sources import base

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        t0 = time.perf_counter()
        digests = make_sources(work / "src")
        print(f"sources written: {time.perf_counter() - t0:.1f} s")
        base.RECIPES._entries["cbsd68-test"] = replace(base.RECIPES.get("cbsd68-test"), member_digests=digests)
        root = None
        for w in [int(x) for x in args.workers.split(",")]:
            root = work / f"3d-w{w}"
            t0 = time.perf_counter()
            rc = build_main(["--preset", "3d", "--from-dir", str(work / "src"), "--root", str(root),
                             "--workers", str(w), "--quiet"])
            dt = time.perf_counter() - t0
            print(f"build --preset 3d --workers {w}: {dt:.1f} s for 804 pairs ({804 / dt:.1f} pairs/s; rc {rc})")
        out = work / "run"
        t0 = time.perf_counter()
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):
            run_main(["--protocol", "3d", "--dataset", str(root), "--methods", "identity", "--out", str(out), "--quiet"])
        dt = time.perf_counter() - t0
        print(f"benchmark.run --protocol 3d --methods identity (psnr-promptir, ssim-promptir, psnr, ssim): "
              f"{dt:.1f} s for 804 images ({804 / dt:.1f} images/s, report included)")
        from benchmark.metrics import get_metric
        from builders.io import read_image
        from builders.manifest import read_manifest

        rows = read_manifest(root).to_dict("records")[:40]
        pairs = [(read_image(root / r["lq_path"]), read_image(root / r["gt_path"])) for r in rows]
        for name in ("psnr-promptir", "ssim-promptir", "ssim-moce-ir", "ssim-instructir", "psnr", "ssim"):
            m = get_metric(name)
            m(*pairs[0])  # first call outside the timing (imports, window set-up)
            t0 = time.perf_counter()
            for a, b in pairs:
                m(a, b)
            print(f"  {name:16s} {1000 * (time.perf_counter() - t0) / len(pairs):6.1f} ms/image (one thread)")


if __name__ == "__main__":
    main()
