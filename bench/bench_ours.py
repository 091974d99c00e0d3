"""Seconds per image of "ours" (IR-SDE + DA-CLIP UNet, posterior sampling) per precision mode.

    python bench/bench_ours.py                          # H100: 256x256, 100 steps, batch 1 and 8
    python bench/bench_ours.py --preset tiny --size 32 --steps 3 --batches 1,2 --device cpu   # smoke

Random weights by default (speed does not depend on their values; --weights loads a real
file so the PSNR columns mean something), the full-size released config by default. Every mode restores the same LQ batch from the same seed; the table reports
seconds per image, the speed-up over fp32 at the same batch size, the PSNR of the output
against the clean image, its difference to the fp32 output's PSNR (target: within
0.05 dB) and the PSNR between the two outputs. DA-CLIP embeddings are random tensors of
the right size (encode_image costs ~10 ms per batch on an H100, see performance.md).

Modes: fp32, bf16 (autocast), bf16-cl (+ channels_last), bf16-compile (+ torch.compile),
bf16-cl-compile. The official code runs fp32 at batch 1: 2.09 s/image on an H100.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daclip.networks import build_network  # noqa: E402
from daclip.sde import IRSDE, SDEConfig, make_generator  # noqa: E402

MODES = ("fp32", "bf16", "bf16-cl", "bf16-compile", "bf16-cl-compile")


def synthetic_pair(batch: int, size: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth clean images and their noisy versions (sigma 25/255), both in 0..1."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(2, size // 16), max(2, size // 16), generator=g)
    gt = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    lq = (gt + 25 / 255 * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    return gt.to(device), lq.to(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    qa, qb = (a.clamp(0, 1) * 255).round().double(), (b.clamp(0, 1) * 255).round().double()
    mse = torch.mean((qa - qb) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_runner(net, mode: str, device: torch.device):
    """(noise-predictor call, input converter) for one precision mode."""
    channels_last = "-cl" in mode
    model = net.to(memory_format=torch.channels_last) if channels_last else net.to(memory_format=torch.contiguous_format)
    if "compile" in mode:
        model = torch.compile(model, dynamic=False)
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if mode != "fp32" else nullcontext()

    def call(x, lq, t, ctx):
        if channels_last:
            x, lq = x.contiguous(memory_format=torch.channels_last), lq.contiguous(memory_format=torch.channels_last)
        with amp:
            return model(x, lq, t, **ctx).float()

    return call


def run(args) -> list[dict]:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the official baseline)
        torch.backends.cudnn.allow_tf32 = False
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.weights:  # trained weights make the PSNR columns meaningful; speed is the same
        from daclip.networks.loading import load_network

        net = load_network("ours", args.weights, preset=args.preset).to(device).eval()
    else:
        net = build_network("ours", preset=args.preset).to(device).eval()
    ctx_dim = net.context_dim
    sde = IRSDE(SDEConfig(max_sigma=50), steps=args.steps)
    rows = []
    for batch in args.batches:
        gt, lq = synthetic_pair(batch, args.size, args.seed, device)
        g = torch.Generator().manual_seed(args.seed + 1)
        ctx = {"text_context": torch.randn(batch, ctx_dim, generator=g).to(device),
               "image_context": torch.randn(batch, ctx_dim, generator=g).to(device)}
        reference = None
        for mode in args.modes:
            call = make_runner(net, mode, device)
            fn = lambda x, t: call(x, lq, t, ctx)  # noqa: E731
            with torch.no_grad():
                # Warm-up (and compilation) on a short run of the same shapes.
                IRSDE(SDEConfig(max_sigma=50), steps=min(3, args.steps)).sample(fn, lq, generator=make_generator(0, device))
                sync(device)
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    out = sde.sample(fn, lq, sampler="posterior", generator=make_generator(args.seed, device))
                    sync(device)
                    times.append(time.perf_counter() - t0)
            sec = min(times) / batch
            row = {"batch": batch, "mode": mode, "s_per_image": sec, "psnr": psnr(out, gt)}
            if mode == "fp32":
                reference = (out, row)
            if reference is not None:
                ref_out, ref_row = reference
                row["speedup_vs_fp32"] = ref_row["s_per_image"] / sec
                row["dpsnr_vs_fp32"] = row["psnr"] - ref_row["psnr"]
                row["psnr_to_fp32_output"] = psnr(out, ref_out)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    extra = ""
    if "speedup_vs_fp32" in r:
        extra = (f"  x{r['speedup_vs_fp32']:.2f} vs fp32, dPSNR {r['dpsnr_vs_fp32']:+.3f} dB, "
                 f"PSNR to fp32 output {r['psnr_to_fp32_output']:.2f} dB")
    return f"batch {r['batch']:>2}  {r['mode']:<16} {r['s_per_image']:.4f} s/image  PSNR {r['psnr']:.2f} dB{extra}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", help="UNet preset: default (released, 48.98 M) or tiny")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--steps", type=int, default=100, help="posterior sampling steps")
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    p.add_argument("--modes", default="fp32,bf16,bf16-cl", help=f"comma-separated, from {', '.join(MODES)}")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per mode (the fastest is reported)")
    p.add_argument("--device", default="auto", help="auto, cuda, cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="optional UNet weights (e.g. universal-ir.pth) instead of random ones")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    if "fp32" in args.modes:  # fp32 first: the reference for the other modes
        args.modes = ["fp32"] + [m for m in args.modes if m != "fp32"]
    dev = "cuda " + torch.cuda.get_device_name() if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    print(f"ours UNet preset {args.preset}, {args.size}x{args.size}, {args.steps} posterior steps, device {dev}, "
          f"torch {torch.__version__}", flush=True)
    rows = run(args)
    if args.json:
        from builders.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
