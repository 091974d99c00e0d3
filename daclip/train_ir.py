"""Train a restoration network on a built dataset (``<root>/{train,val}/<type>/{LQ,GT}``).

    python -m daclip.train_ir --method ours --root datasets/universal --out runs/ours \\
        --daclip pretrained/daclip_ViT-B-32.pt
    torchrun --nproc_per_node 4 -m daclip.train_ir --method nafnet --root ... --out ...

Class-balanced sampling over degradation types, paired random crops with flips/rot90,
AdamW + cosine learning rate, EMA weights, bf16 autocast on GPU, validation PSNR on the
val split, atomic checkpoints every ``--save-every`` steps (``last.pt``; ``--resume``
continues from it). The EMA weights are also written as ``ema.pth`` (a plain state_dict
in the released key layout) with ``ema.pth.json`` holding the network config, so
``python -m benchmark.run --methods NAME --weights NAME=OUT/ema.pth`` runs the result.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from builders.errors import UserError, cli_entry
from builders.io import atomic_write_text, read_image
from builders.lock import rank0_lock
from builders.options import parse_options
from builders.tasks import parse_tasks

from . import dist as dist_utils
from .catalogue import SPECS
from .checkpoint import save_torch_atomic
from .families import Family
from .inference import DaclipConditioner, resolve_daclip_amp, to_tensor
from .pair_data import BalancedSampler, PairDataset, load_pairs
from .precision import resolve_precision
from .psnr import psnr_from_mse
from .safe_load import load_checkpoint
from .sde import make_generator

TINY_DACLIP_CFG = Path(__file__).with_name("configs") / "tiny.yaml"


# -- method adapters ------------------------------------------------------------------------

@dataclass
class TrainConfig:
    method: str
    root: str
    out: str
    preset: str = ""
    net_options: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    patch: int = 128
    batch: int = 16
    iters: int = 10000
    minutes: float = 0.0
    lr: float = 2e-4
    lr_min: float = 1e-6
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    ema_every: int = 1
    amp: str = "auto"
    grad_clip: float = 0.0
    val_every: int = 1000
    val_limit: int = 5
    val_steps: int = 20
    save_every: int = 1000
    workers: int = 2
    seed: int = 0
    daclip: str = ""
    daclip_model: str = ""  # '' = recorded beside the weights, else the method's (ViT-B-32; ViT-L-14 for wild-ir)
    device: str = ""
    threads: int = 0


class EMA:
    """Exponential moving average of a module's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # Warm-up: early on the average follows the weights closely, so short runs (and
        # the first checkpoints of long ones) are not dominated by the random init.
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        src = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.lerp_(src[k].detach(), 1 - decay)
            else:
                v.copy_(src[k])


# -- DA-CLIP --------------------------------------------------------------------------------

def load_conditioner(cfg: TrainConfig, out: Path, device, info) -> tuple[DaclipConditioner | None, dict | None, str]:
    """(conditioner, open_clip config when not a named model, weights path) for DA-CLIP methods.

    ``--daclip tiny`` builds a random tiny DA-CLIP (configs/tiny.yaml), saves it in OUT and
    loads it back through the same loader as a released file, for CPU runs and tests.
    """
    if not SPECS[cfg.method].spec.uses_daclip:
        return None, None, ""
    from .checkpoint import load_daclip, save_daclip
    from .model import create_daclip, daclip_architecture

    if not cfg.daclip:
        raise UserError(f"--method {cfg.method} needs DA-CLIP weights: --daclip PATH (or --daclip tiny)")
    path = Path(cfg.daclip)
    if cfg.daclip == "tiny":
        model_name, model_cfg = "custom", yaml.safe_load(TINY_DACLIP_CFG.read_text())
        path = out / "daclip_tiny.pt"
        if info.is_main and not path.is_file():
            torch.manual_seed(cfg.seed)
            save_daclip(create_daclip(model_cfg=model_cfg), path)
        dist_utils.barrier()
    elif not path.is_file():
        raise UserError(f"DA-CLIP weights not found: {path}")
    else:
        # --daclip-model, else the architecture recorded by train_clip beside the file (config.json),
        # else the method's released DA-CLIP.
        model_name, model_cfg = daclip_architecture(path, cfg.daclip_model, default=SPECS[cfg.method].spec.daclip_model)
    model = load_daclip(path, model_name=model_name, device=device, model_cfg=model_cfg)
    # fp16 autocast on a GPU, as the official training and test scripts encode.
    return DaclipConditioner(model, amp=resolve_daclip_amp("auto", device)), model_cfg, str(path.resolve())


# -- training loop --------------------------------------------------------------------------

def psnr_tensor(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of uint8-rounded images in 0..1 ([3,H,W])."""
    qa = (a.clamp(0, 1) * 255).round()
    qb = (b.clamp(0, 1) * 255).round()
    return psnr_from_mse(torch.mean((qa.double() - qb.double()) ** 2).item())


@torch.no_grad()
def validate(family: Family, net, pairs, device, cfg: TrainConfig, amp_ctx) -> dict:
    """Mean PSNR of restored vs GT, and of the input itself, per type and overall."""
    net.eval()
    per_type: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, int] = {}
    for task, lq_path, gt_path in pairs:
        if counts.get(task, 0) >= cfg.val_limit:
            continue
        counts[task] = counts.get(task, 0) + 1
        lq = to_tensor(read_image(lq_path), device)
        gt = to_tensor(read_image(gt_path), device)
        with amp_ctx():
            out = family.restore(net, lq, make_generator(cfg.seed, device), cfg.val_steps)
        per_type.setdefault(task, []).append((psnr_tensor(out[0].float(), gt[0]), psnr_tensor(lq[0], gt[0])))
    summary = {t: {"psnr": float(np.mean([v[0] for v in vals])), "input_psnr": float(np.mean([v[1] for v in vals]))}
               for t, vals in per_type.items()}
    allv = [v for vals in per_type.values() for v in vals]
    summary["mean"] = {"psnr": float(np.mean([v[0] for v in allv])) if allv else float("nan"),
                       "input_psnr": float(np.mean([v[1] for v in allv])) if allv else float("nan")}
    return summary


def network_config(cfg: TrainConfig) -> dict:
    out = dict(cfg.net_options)
    if cfg.preset:
        out["preset"] = cfg.preset
    return out


def write_ema(out: Path, name: str, ema_model: nn.Module, cfg: TrainConfig, step: int,
              daclip_cfg: dict | None, daclip_path: str) -> None:
    state = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
    save_torch_atomic(state, out / "ema.pth")
    side = {"network": name, "config": network_config(cfg), "method": cfg.method, "step": step}
    if daclip_cfg is not None:
        side["daclip_cfg"] = daclip_cfg
    if daclip_path:
        side["daclip_weights"] = daclip_path
    atomic_write_text(out / "ema.pth.json", json.dumps(side, indent=2) + "\n")


def train(cfg: TrainConfig, progress: bool = True, resume: bool = False) -> dict:
    """Run training (``resume``: from OUT/last.pt); returns the last validation summary.

    The writing rank (rank 0, the only one that writes OUT) holds OUT's writer lock, so a second
    training into the same folder stops with one line instead of overwriting its checkpoints.
    """
    with rank0_lock(cfg.out, "training output folder"):
        return _train(cfg, progress, resume)


def _train(cfg: TrainConfig, progress: bool, resume: bool) -> dict:
    from tqdm import tqdm

    from .networks import build_network

    if cfg.method not in SPECS:
        raise UserError(f"unknown --method {cfg.method!r}; choose from {', '.join(SPECS)}")
    if not SPECS[cfg.method].family.trainable:
        raise UserError(f"--method {cfg.method}: a released model evaluated with its authors' files, not trained here")
    spec = SPECS[cfg.method].spec
    root, out = Path(cfg.root), Path(cfg.out)
    from builders.manifest import read_vocabulary

    # Class-balanced over the dataset's vocabulary (its own types, or the ten DA-CLIP words).
    tasks = parse_tasks(",".join(cfg.tasks) if cfg.tasks else None, read_vocabulary(root).types)
    train_pairs = load_pairs(root, "train", tasks)
    val_pairs = load_pairs(root, "val", tasks)
    if not train_pairs:
        raise UserError(f"{root}: no training pairs for types {', '.join(tasks)}")

    info = dist_utils.init_distributed()
    device = dist_utils.default_device(cfg.device or None, info)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")

    conditioner, daclip_cfg, daclip_path = load_conditioner(cfg, out, device, info)
    if conditioner is not None and "context_dim" not in cfg.net_options:
        # The network's context width follows the DA-CLIP in use (512 for ViT-B-32).
        cfg.net_options["context_dim"] = conditioner.embed_dim
    net = build_network(spec.network, **network_config(cfg)).to(device)
    if conditioner is not None and cfg.net_options["context_dim"] != conditioner.embed_dim:
        raise UserError(f"--net-option context_dim={cfg.net_options['context_dim']} does not match the "
                        f"DA-CLIP embedding size {conditioner.embed_dim}")
    ema = EMA(net, cfg.ema_decay)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                            betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.iters), eta_min=cfg.lr_min)
    step = 0
    last_path = out / "last.pt"
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path, what="training checkpoint")
        needed = ("model", "ema", "optimizer", "scheduler", "step")
        if not isinstance(ck, dict) or any(k not in ck for k in needed):
            raise UserError(f"{last_path} is not a daclip.train_ir checkpoint (needs {', '.join(needed)}); "
                            "delete it or pick another --out to start afresh")
        try:
            net.load_state_dict(ck["model"])
            ema.model.load_state_dict(ck["ema"])
            ema.updates = int(ck.get("ema_updates", 0))
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            step = int(ck["step"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{last_path} does not fit this run ({str(exc).splitlines()[0]}); resume with "
                            "the options it was trained with, or pick another --out") from None
        sched.T_max = max(1, cfg.iters)  # a resumed run may extend --iters: stretch the cosine
    elif resume and info.is_main:
        print(f"no checkpoint at {last_path}; starting from scratch")

    model = net
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    use_amp = resolve_precision(cfg.amp, device, gpu="bf16") == "bf16"

    def amp_ctx():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp)

    family = SPECS[cfg.method].family(spec, conditioner)
    dataset = PairDataset(train_pairs, cfg.patch, seed=cfg.seed, key_view=family.key_view)
    per_rank = max(1, cfg.batch // info.world_size)
    sampler = BalancedSampler([t for t, _, _ in train_pairs], samples_per_epoch=max(len(train_pairs), cfg.batch * 50),
                              seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=cfg.workers,
                        drop_last=True, persistent_workers=cfg.workers > 0)
    gen = make_generator(cfg.seed * 1000 + info.rank + step)

    def save(step_now: int) -> None:
        if not info.is_main:
            return
        save_torch_atomic({"model": net.state_dict(), "ema": ema.model.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "step": step_now, "ema_updates": ema.updates,
                           "config": json.dumps(asdict(cfg))},
                          last_path)
        write_ema(out, spec.network, ema.model, cfg, step_now, daclip_cfg, daclip_path)

    def log(record: dict) -> None:
        if info.is_main:
            with open(out / "log.jsonl", "a") as fh:  # append-only log; a torn last line is harmless
                fh.write(json.dumps(record) + "\n")

    summary: dict = {}
    start = time.monotonic()
    bar = tqdm(total=cfg.iters, initial=step, disable=not (progress and info.is_main), desc=f"train {cfg.method}")
    epoch = step // max(1, len(sampler) // per_rank)
    saved_at = step
    try:
        while step < cfg.iters:
            sampler.set_epoch(epoch)
            for batch in loader:
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                model.train()
                with amp_ctx():
                    loss = family.loss(model, batch, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                step += 1
                if step % cfg.ema_every == 0:
                    ema.update(net)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
                if step % 50 == 0 or step == 1:
                    log({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0],
                         "elapsed_s": round(time.monotonic() - start, 1)})
                timed_out = cfg.minutes > 0 and time.monotonic() - start > cfg.minutes * 60
                if step % cfg.save_every == 0:
                    save(step)
                    saved_at = step
                if info.is_main and val_pairs and cfg.val_every > 0 and step % cfg.val_every == 0:
                    summary = validate(family, ema.model, val_pairs, device, cfg, amp_ctx)
                    log({"step": step, "val": summary})
                if step >= cfg.iters or timed_out:
                    break
            epoch += 1
            if cfg.minutes > 0 and time.monotonic() - start > cfg.minutes * 60:
                break
    except KeyboardInterrupt:
        save(step)
        raise
    finally:
        bar.close()
    if saved_at != step:
        save(step)
    if info.is_main and val_pairs and (not summary or cfg.val_every <= 0 or step % cfg.val_every):
        summary = validate(family, ema.model, val_pairs, device, cfg, amp_ctx)
        log({"step": step, "val": summary})
    if info.is_main and summary:
        atomic_write_text(out / "val.json", json.dumps({"step": step, **summary}, indent=2) + "\n")
    dist_utils.barrier()
    dist_utils.cleanup()
    return summary


# -- CLI ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daclip.train_ir", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=list(SPECS), help="network to train")
    p.add_argument("--root", required=True, help="built dataset folder (with manifest.parquet)")
    p.add_argument("--out", required=True, help="output folder: last.pt, ema.pth(+.json), log.jsonl, val.json")
    p.add_argument("--preset", default="", help="network preset (e.g. tiny; default: the released size)")
    p.add_argument("--net-option", action="append", default=[], metavar="KEY=VALUE",
                   help="network config override, repeatable (e.g. width=16)")
    p.add_argument("--tasks", default="all", help="comma-separated types of the dataset's vocabulary (default all)")
    p.add_argument("--patch", type=int, default=128, help="training crop size (official: 256)")
    p.add_argument("--batch", type=int, default=16, help="global batch size (split over ranks)")
    p.add_argument("--iters", type=int, default=10000, help="optimizer steps (cosine schedule length)")
    p.add_argument("--minutes", type=float, default=0.0, help="stop after this wall time (0: no limit)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-min", type=float, default=1e-6)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--ema-every", type=int, default=1, help="update the EMA every N steps")
    p.add_argument("--amp", choices=["auto", "none", "bf16", "fp32"], default="auto",
                   help="bf16 autocast (auto: on GPU only; none or fp32: off)")
    p.add_argument("--grad-clip", type=float, default=0.0, help="max gradient norm (0: off)")
    p.add_argument("--val-every", type=int, default=1000, help="validate every N steps (0: only at the end)")
    p.add_argument("--val-limit", type=int, default=5, help="val images per type")
    p.add_argument("--val-steps", type=int, default=20, help="sampling steps for diffusion validation")
    p.add_argument("--save-every", type=int, default=1000, help="checkpoint every N steps")
    p.add_argument("--workers", type=int, default=2, help="data loader workers per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--daclip", default="", help="DA-CLIP weights for the DA-CLIP methods (ours, ours-mix, wild-ir, "
                   "nafnet-daclip, nafnet-degradation), or 'tiny' for a random tiny one")
    p.add_argument("--daclip-model", default="",
                   help="architecture of the --daclip weights: an open_clip name (ViT-B-32, ViT-L-14), a toolkit "
                        "config (tiny) or a YAML/JSON file (default: the config.json that daclip.train_clip wrote "
                        "beside the file, else the method's: ViT-B-32, ViT-L-14 for wild-ir)")
    p.add_argument("--device", default="", help="cpu, cuda, cuda:1 (default: this rank's GPU, else CPU)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads per process (0: torch default; 1 is fastest on a busy CPU)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("patch", "batch", "iters", "save_every", "val_limit", "val_steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if not Path(args.root).is_dir():
        raise UserError(f"--root {args.root}: not a folder")
    cfg = TrainConfig(
        method=args.method, root=args.root, out=args.out, preset=args.preset,
        net_options=parse_options(args.net_option, "--net-option"),
        # checked against the dataset's vocabulary by train(); empty: all of it
        tasks=[] if args.tasks.strip() == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()],
        patch=args.patch, batch=args.batch, iters=args.iters,
        minutes=args.minutes, lr=args.lr, lr_min=args.lr_min, weight_decay=args.weight_decay,
        ema_decay=args.ema_decay, ema_every=args.ema_every, amp=args.amp, grad_clip=args.grad_clip,
        val_every=args.val_every, val_limit=args.val_limit, val_steps=args.val_steps,
        save_every=args.save_every, workers=args.workers, seed=args.seed, daclip=args.daclip,
        daclip_model=args.daclip_model, device=args.device, threads=args.threads,
    )
    summary = train(cfg, progress=not args.quiet, resume=args.resume)
    if summary and "mean" in summary:
        m = summary["mean"]
        print(f"val PSNR {m['psnr']:.2f} dB (input {m['input_psnr']:.2f} dB); weights: {Path(args.out) / 'ema.pth'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
