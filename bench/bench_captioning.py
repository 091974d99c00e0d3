"""Captioning throughput, end to end (PNG decoding and preprocessing included), in images/s.

Compares the official one-image loop (decode, preprocess, generate one image at a time in
the main process) with the batched pipeline of ``captioning.run`` (DataLoader workers
decode while the model generates) at several batch sizes. Greedy, 32 new tokens.

    python bench/bench_captioning.py                       # BLIP large, GPU if available
    python bench/bench_captioning.py --batch-sizes 1,32,128 --n 512 --dtype fp16
    python bench/bench_captioning.py --tiny --n 16         # CPU smoke run, random tiny BLIP
    python bench/bench_captioning.py --random-large        # BLIP-large shapes, random weights (offline)

Anchors (one H100, BLIP large, fp16): official loop 1.87 images/s; target 150 images/s.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from captioning.blip import (
    DEFAULT_MODEL,
    DTYPES,
    MAX_NEW_TOKENS,
    Captioner,
    CaptionerConfig,
)
from captioning.pipeline import caption_batches


def make_images(folder: Path, n: int, w: int, h: int) -> list[Path]:
    """n distinct PNGs with photo-like (smooth) content, so decoding costs what it does on photos."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
        p = folder / f"{i:05d}.png"
        img.save(p)
        paths.append(p)
    return paths


def official_loop(captioner: Captioner, paths: list[Path]) -> int:
    """One image at a time, decoded in the main process (what the official script does)."""
    for p in paths:
        with Image.open(p) as im:
            img = im.convert("RGB")
        captioner.generate(captioner.preprocess([img]))
    return len(paths)


def pipeline(captioner: Captioner, paths: list[Path], batch_size: int, workers: int) -> int:
    n = 0
    for idx, _ in caption_batches(captioner, paths, batch_size, workers):
        n += len(idx)
    return n


def timed(fn, *args) -> tuple[int, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="BLIP hub id or folder (default BLIP large)")
    ap.add_argument("--tiny", action="store_true", help="use a random tiny BLIP built in a temp folder (CPU smoke run)")
    ap.add_argument("--random-large", action="store_true",
                    help="BLIP-large architecture with random weights, built in memory (where the real "
                    "weights cannot be downloaded; captions run to the token limit: worst case)")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="default fp16 on GPU, fp32 on CPU")
    ap.add_argument("--n", type=int, default=None, help="images per measurement (default 512 on GPU, 32 on CPU)")
    ap.add_argument("--loop-n", type=int, default=None,
                    help="images for the one-image loop and batch sizes below 8, which are slow "
                    "(default: min(n, 64))")
    ap.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,32,128 on GPU, 1,32 on CPU)")
    ap.add_argument("--workers", type=int, default=8, help="DataLoader decoding processes (default 8)")
    ap.add_argument("--size", default="512x512", help="WxH of the generated PNGs (default 512x512)")
    ap.add_argument("--images", type=Path, default=None, help="use the PNG/JPEG files of this folder instead")
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="default 32, as the paper")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cuda = torch.cuda.is_available() and (args.device is None or args.device.startswith("cuda"))
    n = args.n or (512 if cuda else 32)
    sizes = [int(b) for b in (args.batch_sizes or ("1,32,128" if cuda else "1,32")).split(",")]
    w, h = map(int, args.size.lower().split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if args.tiny:
            from captioning.tiny import build_tiny_blip

            model = str(build_tiny_blip(tmp / "tiny-blip"))
        if args.images:
            paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
            if not paths:
                print(f"error: no images in {args.images}", file=sys.stderr)
                return 2
        else:
            (tmp / "img").mkdir()
            paths = make_images(tmp / "img", n, w, h)
        loaded = None
        if args.random_large:
            from captioning.tiny import random_blip_large

            model, loaded = "random BLIP-large", random_blip_large()
        cap = Captioner(CaptionerConfig(model=model, device=args.device, dtype=args.dtype,
                                        max_new_tokens=args.max_new_tokens), loaded=loaded)
        dev = torch.cuda.get_device_name(cap.device) if cap.device.type == "cuda" else platform.processor() or "cpu"
        print(f"model {model} | device {cap.device} ({dev}) | dtype {str(cap.dtype).replace('torch.', '')} | "
              f"torch {torch.__version__} | {len(paths)} images {args.size if not args.images else args.images} | "
              f"max_new_tokens {cap.cfg.max_new_tokens} | workers {args.workers}")
        # Warm-up: CUDA context, kernels, allocator; not timed.
        pipeline(cap, paths[: max(sizes)], max(sizes), 0)

        rows = []
        loop_paths = paths[: (args.loop_n or min(len(paths), 64))]
        k, s = timed(official_loop, cap, loop_paths)
        rows.append(("official loop (1 image, main-process decode)", 1, k, s))
        for b in sizes:
            # Small batches are slow: they get the loop's image count (at least one batch).
            sub = paths if b >= 8 else paths[: max(len(loop_paths), b)]
            k, s = timed(pipeline, cap, sub, b, args.workers)
            rows.append((f"pipeline (DataLoader, {args.workers} workers)", b, k, s))

        base = rows[0][2] / rows[0][3]
        print(f"{'mode':<46} {'batch':>5} {'images':>6} {'seconds':>8} {'images/s':>9} {'x loop':>7}")
        for mode, b, k, s in rows:
            ips = k / s
            print(f"{mode:<46} {b:>5} {k:>6} {s:>8.2f} {ips:>9.2f} {ips / base:>7.1f}")
        if cap.device.type == "cuda":
            print(f"peak GPU memory {torch.cuda.max_memory_allocated(cap.device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
