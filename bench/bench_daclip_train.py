"""Throughput of DA-CLIP controller training (images/s) and peak memory.

    python bench/bench_daclip_train.py                       # ViT-B-32, batch 256, bf16 on GPU
    python bench/bench_daclip_train.py --precision fp16 --clip-dtype fp16 --compile
    python bench/bench_daclip_train.py --model-cfg tiny --batch-size 8 --steps 2   # CPU smoke run

Random weights and synthetic batches (speed does not depend on the values); each step is
the real training step of daclip.train_clip (forward through both towers, both InfoNCE
losses, backward into the controller, AdamW). Reference on one H100: the official code
reaches 2644 images/s at batch 256 with fp16 AMP (10.5 GB peak); target 4000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daclip.losses import DaClipLoss
from daclip.model import create_daclip, load_model_cfg
from daclip.train_clip import autocast_dtype, build_optimizer, train_step

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--model-cfg", help="'tiny' or a YAML/JSON open_clip config")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (allocator, autotuning, compile)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast dtype (auto: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--clip-dtype", default="fp32", choices=list(DTYPES),
                   help="store the FROZEN CLIP in this dtype (saves the per-step weight casts of autocast)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--label-aware", action="store_true")
    p.add_argument("--device", help="default: cuda when available, else cpu")
    args = p.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    model = create_daclip(args.model, None, model_cfg=load_model_cfg(args.model_cfg), device=device)
    if args.clip_dtype != "fp32":
        model.clip.to(DTYPES[args.clip_dtype])
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    amp = autocast_dtype(args.precision, device)
    if args.clip_dtype != "fp32" and amp is None:
        p.error("--clip-dtype bf16/fp16 needs autocast (a GPU and --precision bf16/fp16/auto)")
    optimizer = build_optimizer(model, 3e-5, 0.05, device=device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    loss_fn = DaClipLoss(label_aware=args.label_aware)
    run_model = torch.compile(model) if args.compile else model
    model.train()

    size = model.image_size
    ctx = int(model.clip.context_length)
    b = args.batch_size
    images = torch.randn(b, 3, size, size, device=device)
    labels = torch.randint(0, 10, (b,), device=device)
    caption = torch.randint(1, 49000, (b, ctx), device=device)
    caption[:, -1] = 49407  # end-of-text token, where open_clip pools the text features
    words = torch.randint(1, 49000, (10, ctx), device=device)
    words[:, -1] = 49407
    texts = torch.cat([caption, words[labels]], dim=1)

    def step():
        return train_step(run_model, images, texts, labels, loss_fn, optimizer, scaler, amp, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        losses = step()
    sync()
    elapsed = time.perf_counter() - t0
    ips = b * args.steps / elapsed
    n_train = sum(p.numel() for p in model.trainable_parameters())
    name = args.model_cfg or args.model
    print(f"model {name}, device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"batch {b}, autocast {amp}, frozen CLIP {args.clip_dtype}, compile {args.compile}")
    print(f"trainable parameters: {n_train / 1e6:.2f} M; last loss {float(losses.total.detach()):.4f}")
    print(f"step time: {1000 * elapsed / args.steps:.1f} ms; throughput: {ips:.1f} images/s")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        import resource

        print(f"peak host memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
