"""Throughput of the full-dataset builder's conversion step (pairs per second vs --workers).

Makes a LOL-style archive of N random WxH pairs in a temp folder, then builds it with
``--from-dir`` (no network) once per worker count, from scratch each time, and prints the
figures. Run: python bench/bench_builders_full.py --pairs 64 --size 600x400 --workers 1,2 [--format jpg]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from builders.download import DownloadConfig
from builders.full import FullBuildConfig, build_full
from builders.sources import get_recipe


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG" if fmt == "png" else "JPEG", **({"quality": 95} if fmt == "jpg" else {}))
    return buf.getvalue()


def make_lol(folder: Path, pairs: int, w: int, h: int, fmt: str = "png") -> None:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(folder / "LOLdataset.zip", "w", zipfile.ZIP_STORED) as zf:
        for i in range(pairs):
            sub = "our485" if i % 10 else "eval15"
            # Smooth-ish content compresses like photographs rather than like noise.
            base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
            gt = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))
            zf.writestr(f"LOLdataset/{sub}/high/{i}.{fmt}", _encode(gt, fmt))
            zf.writestr(f"LOLdataset/{sub}/low/{i}.{fmt}", _encode((gt // 4).astype(np.uint8), fmt))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--size", default="600x400", help="WxH of the images")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--format", choices=["png", "jpg"], default="png",
                    help="source format: png sources are copied as is, jpg sources are decoded and re-encoded as PNG")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        make_lol(src, args.pairs, w, h, args.format)
        for n in map(int, args.workers.split(",")):
            root = Path(tmp) / f"root{n}"
            cfg = FullBuildConfig(root=root, tasks=("low-light",), workers=n, progress=False,
                                  download=DownloadConfig(cache_dir=root / ".downloads", from_dir=src, progress=False))
            t0 = time.perf_counter()
            build_full(cfg, [get_recipe("lol")])
            t1 = time.perf_counter()
            rep = build_full(cfg, [get_recipe("lol")])  # re-run: verification only
            t2 = time.perf_counter()
            built = rep["recipes"]["lol"]["skipped"]
            print(f"workers={n} pairs={built} size={w}x{h} format={args.format}: build {t1 - t0:.2f}s "
                  f"({built / (t1 - t0):.1f} pairs/s incl. extraction), re-run check {t2 - t1:.2f}s")


if __name__ == "__main__":
    main()
