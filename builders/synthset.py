"""Build a ten-type dataset by synthesising every degradation from clean photographs.

Used by the offline "mini" preset (scikit-image's bundled photographs) and by
``--images DIR`` (any folder of clean photos). Deterministic: crop positions and degradation
seeds derive from (seed, split, type, index), so two builds are byte-identical.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from . import manifest as mf
from .errors import UserError
from .io import save_image, sha256_bytes, sha256_file
from .layout import item_id, pair_relpaths
from .lock import FolderLock
from .naming import unique_stems
from .synth import seed_for, synthesize
from .synth.base import SYNTH_VERSION
from .tasks import DEGRADATIONS, SPLITS


@dataclass(frozen=True)
class Source:
    name: str  # short, file-name safe
    load: Callable[[], np.ndarray]  # -> HxWx3 uint8
    split: str
    origin: str  # shown in the manifest's source column
    licence: str


@dataclass(frozen=True)
class SynthSetConfig:
    crop: int = 128  # 0 keeps the whole (resized) image
    short_side: int = 256  # sources are resized so their short side has this length
    train_per_type: int = 16
    val_per_type: int = 5
    seed: int = 0
    tasks: tuple[str, ...] = DEGRADATIONS


@dataclass
class BuildSummary:
    root: Path
    generated: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.generated + self.skipped


@dataclass(frozen=True)
class _Item:
    split: str
    task: str
    name: str
    source: Source
    box: tuple[int, int, int, int]  # top, left, height, width in the resized source
    seed: int

    @property
    def id(self) -> str:
        return item_id(self.split, self.task, self.name)


def _prepared(source: Source, short_side: int, cache: dict) -> np.ndarray:
    if source.name not in cache:
        img = source.load()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
        if short_side:
            h, w = img.shape[:2]
            f = short_side / min(h, w)
            size = (max(1, round(w * f)), max(1, round(h * f)))
            img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
        cache[source.name] = img
    return cache[source.name]


def plan(sources: Sequence[Source], cfg: SynthSetConfig) -> list[_Item]:
    # Two sources of one name (x.png beside x.jpg) are both used, under builders.naming's rule.
    suffixes = [Path(s.origin.rpartition(":")[2]).suffix or ".src" for s in sources]
    stems = unique_stems([s.name + sfx for s, sfx in zip(sources, suffixes)])
    sources = [s if s.name == n else replace(s, name=n) for s, n in zip(sources, stems)]
    items: list[_Item] = []
    cache: dict = {}
    for split in SPLITS:
        pool = [s for s in sources if s.split == split]
        n = cfg.train_per_type if split == "train" else cfg.val_per_type
        if not pool or n == 0:
            continue
        for task in cfg.tasks:
            for i in range(n):
                src = pool[i % len(pool)]
                h, w = _prepared(src, cfg.short_side, cache).shape[:2]
                rng = np.random.default_rng(seed_for(cfg.seed, "crop", split, task, i))
                if cfg.crop and cfg.crop <= min(h, w):
                    top, left = int(rng.integers(0, h - cfg.crop + 1)), int(rng.integers(0, w - cfg.crop + 1))
                    box = (top, left, cfg.crop, cfg.crop)
                else:
                    box = (0, 0, h, w)
                name = f"{src.name}_{i:03d}.png"
                items.append(_Item(split, task, name, src, box, seed_for(cfg.seed, "degrade", split, task, name)))
    return items


def _is_current(row: pd.Series | None, item: _Item, root: Path) -> bool:
    """True when the manifest row was built from this exact recipe and its files are intact."""
    if row is None:
        return False
    params = json.loads(row["parameters"])
    if (params.get("seed") != item.seed or params.get("crop_box") != list(item.box)
            or params.get("synth_version") != SYNTH_VERSION):
        return False
    lq, gt = root / row["lq_path"], root / row["gt_path"]
    return lq.exists() and gt.exists() and sha256_file(lq) == row["sha256"] and sha256_file(gt) == row["gt_sha256"]


FLUSH_EVERY_S = 2.0  # the manifest is rewritten (atomically) at most this often while building
FLUSH_EVERY_ROWS = 500


def build_synthetic_set(root: Path, sources: Sequence[Source], cfg: SynthSetConfig, *, force: bool = False,
                        progress: bool = True) -> BuildSummary:
    """Build (or complete) the set under ``root``, holding the root's writer lock throughout.

    Finished pairs are flushed to the manifest every FLUSH_EVERY_S seconds (each flush an atomic
    rewrite), so a run killed at any instant leaves a manifest of complete pairs that a re-run
    trusts and skips; Ctrl-C flushes what is finished.
    """
    root = Path(root)
    if not sources:
        raise UserError("no source images to build from")
    with FolderLock(root, "dataset root"):
        return _build_locked(root, sources, cfg, force, progress)


def _build_locked(root: Path, sources: Sequence[Source], cfg: SynthSetConfig, force: bool, progress: bool) -> BuildSummary:
    items = plan(sources, cfg)
    old = mf.read_manifest(root, required=False)
    by_id = {r["id"]: r for _, r in old.iterrows()}
    summary = BuildSummary(root)
    rows: list[dict] = []
    cache: dict = {}
    state = {"manifest": old, "flushed": time.monotonic()}

    def flush() -> None:
        if rows:
            state["manifest"] = mf.upsert(state["manifest"], rows)
            mf.write_manifest(root, state["manifest"])
            rows.clear()
        elif state["manifest"].empty and not mf.manifest_path(root).exists():
            mf.write_manifest(root, [])
        state["flushed"] = time.monotonic()

    try:
        for item in tqdm(items, desc="building", unit="pair", disable=not progress):
            row = by_id.get(item.id)
            if not force and _is_current(row, item, root):
                summary.skipped += 1
                continue
            top, left, ch, cw = item.box
            gt = np.ascontiguousarray(_prepared(item.source, cfg.short_side, cache)[top:top + ch, left:left + cw])
            out = synthesize(item.task, gt, item.seed)
            lq_rel, gt_rel = pair_relpaths(item.split, item.task, item.name)
            gt_bytes = save_image(root / gt_rel, gt)
            lq_bytes = save_image(root / lq_rel, out.lq)
            if "mask" in out.aux and item.task == "uncompleted":
                save_image(root / item.split / item.task / "mask" / item.name, np.repeat(out.aux["mask"][..., None], 3, 2))
            rows.append({
                "id": item.id, "type": item.task, "split": item.split, "name": item.name,
                "lq_path": lq_rel, "gt_path": gt_rel, "source": item.source.origin,
                "licence": item.source.licence, "width": cw, "height": ch,
                "parameters": {**out.params, "crop_box": list(item.box), "build": asdict(cfg) | {"tasks": None}},
                "sha256": sha256_bytes(lq_bytes), "gt_sha256": sha256_bytes(gt_bytes),
            })
            summary.generated += 1
            if len(rows) >= FLUSH_EVERY_ROWS or time.monotonic() - state["flushed"] >= FLUSH_EVERY_S:
                flush()
    finally:
        # Even on Ctrl-C, record the pairs that were finished so a re-run skips them.
        flush()
    return summary
