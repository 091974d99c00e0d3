"""Train the DA-CLIP controller (python -m daclip.train_clip).

    python -m daclip.train_clip --root DATASET --out runs/daclip            # manifest + captions CSV
    python -m daclip.train_clip --root DATASET --captions none --out ...     # before captioning
    python -m daclip.train_clip --csv daclip_train.csv --val-csv daclip_val.csv --out ...
    torchrun --nproc_per_node 4 -m daclip.train_clip --root DATASET --out ...

Defaults follow the official recipe (ViT-B-32 laion2b_s34b_b79k, batch 784 per GPU,
lr 3e-5, wd 0.05, warmup 100 steps then cosine, AdamW betas (0.9, 0.98) eps 1e-6,
mixed precision). Only the controller and the logit-scale copy are trained.

The classes are the dataset's vocabulary (its types, prompted with their texts; the ten DA-CLIP
words for the presets), recorded in ``<out>/config.json``. ``--pretrained`` may name a DA-CLIP
checkpoint (the released daclip_ViT-B-32.pt or a trained daclip.pt): training continues from
its controller, and the vocabulary is that checkpoint's followed by the dataset's new types. Every epoch
writes ``<out>/last.pt`` (atomic; ``--resume`` continues from it) and ``<out>/metrics.json``
with the validation loss and degradation accuracy; the end writes ``<out>/daclip.pt`` in
the released format.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from builders.errors import UserError, cli_entry
from builders.io import atomic_write_text
from builders.lock import rank0_lock
from builders.vocabulary import Vocabulary

from .checkpoint import load_state_dict_strict, save_daclip
from .dist import barrier, cleanup, default_device, init_distributed
from .losses import DaClipLoss, LossOutput
from .model import (
    LOGIT_SCALE_MAX,
    DaCLIP,
    create_daclip,
    degradation_text_features,
    get_tokenizer,
    load_model_cfg,
)
from .precision import choices as precision_choices, precision_dtype, resolve_precision
from .safe_load import load_checkpoint

# -- optimisation helpers -------------------------------------------------------------------

def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's rule: no weight decay for gains, biases, 1-d tensors and the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "ln" in name or "bn" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def lr_at(step: int, total_steps: int, warmup: int, base_lr: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to 0 at ``total_steps``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span))) * base_lr


DEFAULT_PRETRAINED = {"ViT-B-32": "laion2b_s34b_b79k", "ViT-L-14": "laion2b_s32b_b82k"}

def autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """'auto' is bf16 on a GPU that supports it (else fp16) and fp32 on the CPU."""
    name = resolve_precision(name, device, gpu="bf16")
    if device.type == "cpu":
        return None  # autocast on CPU is slow and not what the recipe means: plain fp32
    return precision_dtype(name)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.98), eps=1e-6,
                    device: torch.device | None = None) -> torch.optim.Optimizer:
    kwargs = {}
    if device is not None and device.type == "cuda":
        kwargs["fused"] = True  # one kernel for all parameter updates
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, **kwargs)


def unwrap(model: nn.Module) -> DaCLIP:
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)


def train_step(model: nn.Module, images: torch.Tensor, texts: torch.Tensor, labels: torch.Tensor,
               loss_fn: DaClipLoss, optimizer: torch.optim.Optimizer, scaler, amp_dtype,
               device: torch.device) -> LossOutput:
    """One optimiser step on one (local) batch; clamps the logit scale like open_clip."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp_dtype):
        out = model(images, texts)
        losses = loss_fn(out, labels)
    if scaler is not None:
        scaler.scale(losses.total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        losses.total.backward()
        optimizer.step()
    with torch.no_grad():
        unwrap(model).logit_scale.clamp_(0, LOGIT_SCALE_MAX)
    return losses


@torch.no_grad()
def evaluate(model: DaCLIP, loader, device: torch.device, amp_dtype, word_features: torch.Tensor,
             label_aware: bool = False, vocabulary: Vocabulary | None = None) -> dict:
    """Validation loss (per batch, averaged) and degradation accuracy (overall and per type)."""
    from builders.vocabulary import DACLIP

    words = (vocabulary or DACLIP).types
    model.eval()
    loss_fn = DaClipLoss(label_aware=label_aware, distributed=False)
    total = content = degra = 0.0
    batches = 0
    correct = torch.zeros(len(words))
    count = torch.zeros(len(words))
    for images, texts, labels in loader:
        images, texts, labels = images.to(device), texts.to(device), labels.to(device)
        with autocast(device, amp_dtype):
            out = model(images, texts)
            losses = loss_fn(out, labels)
        total += float(losses.total)
        content += float(losses.content)
        degra += float(losses.degradation)
        batches += 1
        pred = (out["image_degra_features"].float() @ word_features.T).argmax(dim=-1)
        for lab, ok in zip(labels.cpu(), (pred == labels).cpu()):
            count[lab] += 1
            correct[lab] += float(ok)
    n = max(batches, 1)
    per_type = {w: (float(correct[i] / count[i]) if count[i] else None) for i, w in enumerate(words)}
    return {
        "val_loss": total / n, "val_content_loss": content / n, "val_degradation_loss": degra / n,
        "val_accuracy": float(correct.sum() / max(count.sum(), 1)), "val_accuracy_per_type": per_type,
        "val_n": int(count.sum()),
    }


# -- command line ---------------------------------------------------------------------------

@dataclass
class TrainConfig:
    root: str | None = None
    csv: str | None = None
    val_csv: str | None = None
    captions: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    out: str = "runs/daclip"
    model: str = "ViT-B-32"
    pretrained: str | None = "auto"
    model_cfg: str | None = None
    epochs: int = 100
    batch_size: int = 784
    lr: float = 3e-5
    weight_decay: float = 0.05
    warmup: int = 100
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    precision: str = "auto"
    label_aware: bool = False
    content_weight: float = 1.0
    workers: int = 4
    seed: int = 0
    device: str | None = None
    resume: str | None = None
    grad_checkpointing: bool = False
    compile: bool = False
    keep_epochs: bool = False
    max_steps: int | None = None


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m daclip.train_clip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("data")
    src.add_argument("--root", help="built dataset (manifest.parquet + <split>/<type>/LQ)")
    src.add_argument("--csv", help="official captions CSV for training (filepath<TAB>title)")
    src.add_argument("--val-csv", help="captions CSV for validation (with --csv)")
    src.add_argument("--captions", default=d.captions,
                     help="with --root: 'auto' (<root>/daclip_<split>.csv), 'none' (template caption; "
                          "trains the degradation branch before captioning) or a CSV path")
    src.add_argument("--train-split", default=d.train_split)
    src.add_argument("--val-split", default=d.val_split, help="'' to skip validation")
    src.add_argument("--workers", type=int, default=d.workers, help="data loader processes per rank")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=d.model, help="open_clip model name (default %(default)s)")
    m.add_argument("--pretrained", default=d.pretrained,
                   help="open_clip tag or CLIP checkpoint file; or a DA-CLIP checkpoint (daclip_ViT-B-32.pt, a "
                        "trained daclip.pt) to continue from, its types kept and the dataset's new ones added; "
                        "'none' for random weights; 'auto' (default): laion2b_s34b_b79k for ViT-B-32, random "
                        "weights with --model-cfg")
    m.add_argument("--model-cfg", help="custom open_clip config: 'tiny' or a YAML/JSON file (overrides --model)")
    m.add_argument("--grad-checkpointing", action="store_true", help="trade compute for activation memory")
    m.add_argument("--compile", action="store_true", help="torch.compile the training model (GPU; slow start)")
    o = p.add_argument_group("optimisation (defaults: the official recipe)")
    o.add_argument("--epochs", type=int, default=d.epochs)
    o.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (default %(default)s)")
    o.add_argument("--lr", type=float, default=d.lr)
    o.add_argument("--weight-decay", type=float, default=d.weight_decay)
    o.add_argument("--warmup", type=int, default=d.warmup, help="linear warmup steps before cosine decay")
    o.add_argument("--beta1", type=float, default=d.beta1)
    o.add_argument("--beta2", type=float, default=d.beta2)
    o.add_argument("--eps", type=float, default=d.eps)
    o.add_argument("--precision", default=d.precision, choices=precision_choices(),
                   help="autocast dtype on GPU (auto: bf16 where supported); the CPU always runs fp32")
    o.add_argument("--label-aware", action="store_true",
                   help="degradation loss treats every same-type pair in the batch as a positive")
    o.add_argument("--content-weight", type=float, default=d.content_weight,
                   help="weight of the caption (content) InfoNCE term (default %(default)s)")
    o.add_argument("--max-steps", type=int, help="stop after this many steps in all (smoke tests)")
    o.add_argument("--seed", type=int, default=d.seed)
    r = p.add_argument_group("run")
    r.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    r.add_argument("--resume", help="checkpoint to continue from, or 'auto' for <out>/last.pt when present")
    r.add_argument("--keep-epochs", action="store_true", help="also keep <out>/epoch_<N>.pt (weights only)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: this rank's GPU, else CPU)")
    return p


def parse_config(argv=None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    cfg = TrainConfig(**{k: v for k, v in vars(ns).items()})
    if cfg.pretrained and cfg.pretrained.lower() == "none":
        cfg.pretrained = None
    elif cfg.pretrained == "auto":
        cfg.pretrained = None if cfg.model_cfg else DEFAULT_PRETRAINED.get(cfg.model)
    if cfg.batch_size < 2:
        raise UserError("--batch-size must be at least 2 (contrastive loss)")
    if cfg.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if not cfg.root and not cfg.csv:
        raise UserError("give --root (a built dataset) or --csv (a captions CSV)")
    return cfg


def _load_items(cfg: TrainConfig):
    from .data import load_items, read_captions_csv

    train_items = load_items(root=cfg.root if not cfg.csv else None, csv_path=cfg.csv,
                             split=cfg.train_split, captions=cfg.captions)
    if cfg.csv:
        val_items = read_captions_csv(cfg.val_csv) if cfg.val_csv else []
    elif cfg.val_split:
        val_items = load_items(root=cfg.root, csv_path=None, split=cfg.val_split, captions=cfg.captions)
    else:
        val_items = []
    return train_items, val_items


def _data_vocabulary(cfg: TrainConfig, train_items, val_items) -> Vocabulary:
    """The dataset's vocabulary (its manifest's), or a bare CSV's (its words)."""
    if cfg.root and not cfg.csv:
        from builders.manifest import read_vocabulary

        return read_vocabulary(cfg.root)
    from .data import items_vocabulary

    return items_vocabulary([*train_items, *val_items])


def _daclip_state(path: str | None):
    """The state dict of ``path`` when it is a DA-CLIP checkpoint (it has controller weights), else None."""
    import os

    if not path or not os.path.isfile(path):
        return None
    from .safe_load import extract_state_dict

    try:
        sd = extract_state_dict(load_checkpoint(path), source=str(path))
    except UserError:
        return None  # not a DA-CLIP file: build_clip reads it as CLIP weights and names what is wrong
    keys = [k.removeprefix("module.") for k in sd]
    return sd if any(k.startswith("visual_control.") for k in keys) else None


def _datasets(train_items, val_items, tokenizer, image_size: int, vocabulary: Vocabulary | None = None):
    from .data import DaClipDataset, eval_transform, train_transform

    train = DaClipDataset(train_items, train_transform(image_size), tokenizer, vocabulary)
    val = DaClipDataset(val_items, eval_transform(image_size), tokenizer, vocabulary) if val_items else None
    return train, val


def _write_metrics(out: Path, history: list[dict]) -> None:
    atomic_write_text(out / "metrics.json", json.dumps(history, indent=2))


@cli_entry
def main(argv=None) -> int:
    cfg = parse_config(argv)
    info = init_distributed()
    # The writing rank holds the output folder's lock: a second training into it stops with one
    # line instead of overwriting its checkpoints.
    try:
        with rank0_lock(cfg.out, "training output folder"):
            return _train(cfg, info)
    finally:
        cleanup()


def _train(cfg: TrainConfig, info) -> int:
    from tqdm import tqdm

    from .data import make_loader

    device = default_device(cfg.device, info)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    model_cfg = load_model_cfg(cfg.model_cfg)
    train_items, val_items = _load_items(cfg)  # bad data fails before the model is built
    vocabulary = _data_vocabulary(cfg, train_items, val_items)

    resume_path = None
    if cfg.resume:
        resume_path = out / "last.pt" if cfg.resume == "auto" else Path(cfg.resume)
        if cfg.resume == "auto" and not resume_path.is_file():
            resume_path = None
    ckpt = None
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path)
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise UserError(f"{resume_path} is not a training checkpoint")
    start = None if resume_path else _daclip_state(cfg.pretrained)
    if ckpt is not None and ckpt.get("vocabulary") is not None:
        # The classes of the run being resumed: its label indices must not move.
        vocabulary = Vocabulary.from_json(ckpt["vocabulary"], str(resume_path)).extended(vocabulary)
    elif start is not None:
        from .model import checkpoint_vocabulary

        # Continue from a DA-CLIP: its types keep their places, the dataset's new ones follow.
        vocabulary = checkpoint_vocabulary(cfg.pretrained).extended(vocabulary)
    # Resuming (or starting from a DA-CLIP) restores every weight: no CLIP weights to fetch.
    model = create_daclip(cfg.model, None if (resume_path or start is not None) else cfg.pretrained,
                          model_cfg=model_cfg)
    if start is not None:
        load_state_dict_strict(model, start, str(cfg.pretrained))
        model.lock_clip()
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    tokenizer = get_tokenizer(model)
    train_set, val_set = _datasets(train_items, val_items, tokenizer, model.image_size, vocabulary)

    state = {"epoch": 0, "step": 0, "history": []}
    if ckpt is not None:
        load_state_dict_strict(model, ckpt["state_dict"], str(resume_path))
        model.lock_clip()
        state.update(epoch=int(ckpt.get("epoch", 0)), step=int(ckpt.get("step", 0)),
                     history=list(ckpt.get("history", [])))
    model.to(device)

    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.eps, device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    if ckpt is not None:
        if "optimizer" in ckpt:
            optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])

    train_model: nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    loader = make_loader(train_set, cfg.batch_size, train=True, world_size=info.world_size, rank=info.rank,
                         workers=cfg.workers, seed=cfg.seed, pin_memory=device.type == "cuda")
    val_loader = (make_loader(val_set, cfg.batch_size, train=False, workers=cfg.workers)
                  if val_set is not None and info.is_main else None)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    loss_fn = DaClipLoss(label_aware=cfg.label_aware, content_weight=cfg.content_weight)
    word_features = degradation_text_features(model, tokenizer, vocabulary.prompts).to(device)

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # The resolved architecture too, so a custom-config DA-CLIP loads anywhere (train_ir --daclip).
        # The vocabulary too, so daclip.restore --daclip, the demo and daclip.evaluate classify over its types.
        atomic_write_text(out / "config.json", json.dumps({**asdict(cfg), "open_clip_cfg": model_cfg,
                                                           "vocabulary": vocabulary.to_json()}, indent=2))
        n_train = sum(p.numel() for p in model.trainable_parameters())
        print(f"training {n_train / 1e6:.2f} M controller parameters on {len(train_set)} images of "
              f"{len(vocabulary)} types ({', '.join(vocabulary.types)}), "
              f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs, world size {info.world_size}, "
              f"device {device}, autocast {amp_dtype}", flush=True)

    step = state["step"]
    for epoch in range(state["epoch"], cfg.epochs):
        if step >= total_steps:
            break
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        else:
            loader.generator.manual_seed(cfg.seed + epoch)  # reproducible order across resumes
        train_model.train()
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "content": 0.0, "degradation": 0.0}
        seen = batches = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not info.is_main, leave=False)
        for images, texts, labels in bar:
            if step >= total_steps:
                break
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total_steps, cfg.warmup, cfg.lr)
            images = images.to(device, non_blocking=True)
            texts, labels = texts.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            losses = train_step(train_model, images, texts, labels, loss_fn, optimizer, scaler, amp_dtype, device)
            step += 1
            batches += 1
            seen += images.shape[0] * info.world_size
            sums["loss"] += float(losses.total.detach())
            sums["content"] += float(losses.content)
            sums["degradation"] += float(losses.degradation)
            bar.set_postfix(loss=f"{float(losses.total.detach()):.3f}")
        elapsed = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                  "train_loss": sums["loss"] / max(batches, 1),
                  "train_content_loss": sums["content"] / max(batches, 1),
                  "train_degradation_loss": sums["degradation"] / max(batches, 1),
                  "images_per_s": seen / max(elapsed, 1e-9),
                  "logit_scale": float(model.logit_scale.detach().exp())}
        if val_loader is not None:
            record.update(evaluate(model, val_loader, device, amp_dtype, word_features, cfg.label_aware, vocabulary))
        if info.is_main:
            state["history"].append(record)
            extra = {"epoch": epoch + 1, "step": step, "history": state["history"],
                     "optimizer": optimizer.state_dict(), "config": asdict(cfg),
                     "vocabulary": vocabulary.to_json(),
                     "name": cfg.model_cfg or cfg.model}
            if scaler is not None:
                extra["scaler"] = scaler.state_dict()
            save_daclip(model, out / "last.pt", **extra)
            if cfg.keep_epochs:
                save_daclip(model, out / f"epoch_{epoch + 1}.pt", epoch=epoch + 1)
            _write_metrics(out, state["history"])
            msg = f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}"
            if "val_loss" in record:
                msg += f", val loss {record['val_loss']:.4f}, val degradation accuracy {record['val_accuracy']:.3f}"
            print(msg + f", {record['images_per_s']:.1f} images/s", flush=True)
        barrier()
    if info.is_main:
        save_daclip(model, out / "daclip.pt", epoch=state["history"][-1]["epoch"] if state["history"] else 0,
                    name=cfg.model_cfg or cfg.model)
        print(f"wrote {out / 'daclip.pt'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
