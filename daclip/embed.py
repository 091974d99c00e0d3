"""DA-CLIP content and degradation embeddings for every LQ image of a built dataset.

    python -m daclip.embed --root DATASET --checkpoint daclip_ViT-B-32.pt

The embeddings (unnormalised, as the restoration networks consume them) are cached in
``<root>/embeddings/<model fingerprint>-v<format>.pt``, keyed by the LQ file's sha256 from the
manifest; a second run (or restoration training, or the benchmark) reuses them and only
computes images that are new. The fingerprint is a hash of the model weights, so a
different checkpoint never reads stale vectors.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from builders.errors import UserError, cli_entry
from builders.io import read_image
from builders.manifest import select

from .checkpoint import load_daclip, save_torch_atomic
from .dist import default_device
from .model import DaCLIP, clip_preprocess, create_daclip, load_model_cfg
from .precision import choices as precision_choices, precision_dtype, resolve_precision
from .safe_load import load_checkpoint

CACHE_DIR = "embeddings"
# 2: the official test-time preprocessing (PIL bicubic on the uint8 LQ, torchvision rounding);
# caches of version 1 (tensor-side resize) are not reused.
FORMAT_VERSION = 2


def model_fingerprint(model: DaCLIP) -> str:
    """sha256 (16 hex digits) of the weights, in key order, each shared tensor once."""
    h = hashlib.sha256()
    seen = set()
    for name, t in sorted(model.state_dict().items()):
        ident = (t.data_ptr(), tuple(t.shape), t.dtype)
        if ident in seen:
            continue
        seen.add(ident)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(f"image_size={model.image_size}".encode())
    return h.hexdigest()[:16]


def embeddings_path(root: str | Path, fingerprint: str) -> Path:
    return Path(root) / CACHE_DIR / f"{fingerprint}-v{FORMAT_VERSION}.pt"


@dataclass
class EmbeddingTable:
    """Cached vectors: row i of ``content``/``degradation`` belongs to LQ sha256 ``keys[i]``."""

    keys: list[str]
    content: torch.Tensor
    degradation: torch.Tensor
    fingerprint: str = ""

    def __post_init__(self):
        self.index = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def lookup(self, sha256s: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(content [N,D], degradation [N,D]) for LQ files given by sha256."""
        missing = [s for s in sha256s if s not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} images have no cached embedding, e.g. {missing[0]}")
        idx = torch.tensor([self.index[s] for s in sha256s], dtype=torch.long)
        return self.content[idx], self.degradation[idx]

    def to_file(self, path: Path) -> None:
        save_torch_atomic({"version": FORMAT_VERSION, "fingerprint": self.fingerprint, "keys": list(self.keys),
                           "content": self.content, "degradation": self.degradation}, path)


def load_embeddings(path: str | Path) -> EmbeddingTable:
    obj = load_checkpoint(path, what="embedding cache")
    if not isinstance(obj, dict) or obj.get("version") != FORMAT_VERSION:
        raise UserError(f"{path} is not a DA-CLIP embedding cache (version {FORMAT_VERSION})")
    return EmbeddingTable(list(obj["keys"]), obj["content"], obj["degradation"], obj.get("fingerprint", ""))


def _load_batch(root: Path, relpaths: Iterable[str], image_size: int) -> torch.Tensor:
    out = []
    for rel in relpaths:
        img = torch.from_numpy(np.array(read_image(root / rel))).permute(2, 0, 1)
        out.append(clip_preprocess(img[None].float() / 255.0, image_size)[0])
    return torch.stack(out)


@torch.no_grad()
def encode_lq(model: DaCLIP, images: torch.Tensor, amp_dtype: torch.dtype | None = None):
    """(content, degradation) features of preprocessed images, unnormalised, fp32."""
    device = images.device
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else torch.no_grad()
    with ctx:
        content, degra = model.encode_image(images, control=True, normalize=False)
    return content.float(), degra.float()


def compute_embeddings(model: DaCLIP, root: str | Path, *, splits: Sequence[str] | None = None,
                       batch_size: int = 64, device: str | torch.device | None = None,
                       amp_dtype: torch.dtype | None = None, progress: bool = True,
                       save_every: int = 50) -> tuple[Path, EmbeddingTable]:
    """Fill the cache for every LQ image of ``root`` (optionally only some splits); reuse old rows."""
    from tqdm import tqdm

    root = Path(root)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    df = select(root, splits or None)
    fingerprint = model_fingerprint(model)
    path = embeddings_path(root, fingerprint)
    table = load_embeddings(path) if path.is_file() else None
    keys = list(table.keys) if table else []
    contents = [table.content] if table else []
    degras = [table.degradation] if table else []
    have = set(keys)
    todo = df[~df["sha256"].isin(have)].drop_duplicates("sha256")
    rows = list(todo[["sha256", "lq_path"]].itertuples(index=False))

    def flush() -> EmbeddingTable:
        dim = model.embed_dim
        tab = EmbeddingTable(list(keys),
                             torch.cat(contents) if contents else torch.empty(0, dim),
                             torch.cat(degras) if degras else torch.empty(0, dim), fingerprint)
        tab.to_file(path)
        return tab

    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    try:
        for n, batch in enumerate(tqdm(batches, desc="DA-CLIP embeddings", disable=not progress)):
            images = _load_batch(root, [r.lq_path for r in batch], model.image_size).to(device)
            c, d = encode_lq(model, images, amp_dtype)
            keys.extend(r.sha256 for r in batch)
            contents.append(c.cpu())
            degras.append(d.cpu())
            if save_every and (n + 1) % save_every == 0:
                flush()
    finally:
        # Also on Ctrl-C: finished batches are kept and the next run continues from them.
        if batches or table is None:
            table = flush()
    return path, table


def load_model_for_cli(checkpoint: str | None, model_name: str, pretrained: str | None,
                       model_cfg: str | None, device: torch.device) -> DaCLIP:
    cfg = load_model_cfg(model_cfg)
    if checkpoint:
        return load_daclip(checkpoint, model_name, device=device, model_cfg=cfg)
    if pretrained is None and cfg is None:
        raise UserError("give --checkpoint (DA-CLIP weights), or --pretrained (plain CLIP weights, "
                        "untrained controller), or --model-cfg alone (random weights, for tests)")
    return create_daclip(model_name, pretrained, model_cfg=cfg, device=device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daclip.embed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="built dataset (manifest.parquet)")
    p.add_argument("--checkpoint", help="DA-CLIP weights (released daclip_ViT-B-32.pt or a trained daclip.pt)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip model name of the checkpoint")
    p.add_argument("--model-cfg", help="custom open_clip config ('tiny' or YAML/JSON)")
    p.add_argument("--pretrained", help="without --checkpoint: plain CLIP weights (open_clip tag or file); the "
                                        "controller is then an untrained copy (DA-CLIP = CLIP)")
    p.add_argument("--split", default="all", help="train, val or all (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda, ... (default: GPU when available)")
    p.add_argument("--precision", default="auto", choices=precision_choices(),
                   help="autocast on GPU (auto: fp16, as the official code); CPU runs fp32")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (--model-cfg without --checkpoint)")
    return p


@cli_entry
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch-size must be positive")
    torch.manual_seed(args.seed)
    device = default_device(args.device)
    model = load_model_for_cli(args.checkpoint, args.model, args.pretrained, args.model_cfg, device)
    amp = None
    if device.type == "cuda":
        amp = precision_dtype(resolve_precision(args.precision, device, gpu="fp16"))
    splits = None if args.split == "all" else [args.split]
    path, table = compute_embeddings(model, args.root, splits=splits, batch_size=args.batch_size,
                                     device=device, amp_dtype=amp)
    print(f"{len(table)} embeddings (dim {table.content.shape[1]}) in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
