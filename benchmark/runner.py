"""Run restoration methods over a built dataset and score them, resuming where it stopped.

Restored images are cached per (method, weights id, image, LQ hash) and metric values per
(method, weights id, image, metric), so a re-run, an added method or an added metric computes
only what is new. Under ``torchrun`` the images are sharded over ranks; rank 0 merges the
ranks' results and computes the per-type set metrics (FID, KID).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from builders.errors import UserError
from builders.io import read_image, save_image, sha256_bytes, sha256_file
from builders.manifest import read_manifest
from builders.tasks import DEGRADATIONS

from .methods import Method, create_method
from .metrics import Metric, MetricUnavailable, get_metric
from .store import ResultStore, merge_rank_files

FLUSH_EVERY = 20  # images; bounds the work lost to a crash (Ctrl-C flushes everything)


@dataclass
class RunConfig:
    dataset: Path
    out: Path
    methods: list[str]
    tasks: list[str] | None  # None: every type present in the split
    metrics: list[str]
    split: str = "val"
    weights: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # method -> its options
    weights_dir: Path | None = None
    device: str = "cpu"
    limit: int | None = None  # images per type, for quick looks
    progress: bool = True


@dataclass
class RunResult:
    items: pd.DataFrame
    methods: list[Method]
    store: ResultStore
    metrics: list[str]  # the metrics that were computed
    unavailable: dict[str, str]  # metric -> reason


def select_items(cfg: RunConfig) -> pd.DataFrame:
    df = read_manifest(cfg.dataset)
    if cfg.split not in set(df["split"]):
        raise UserError(f"dataset {cfg.dataset} has no {cfg.split!r} split (has: {', '.join(sorted(set(df['split'])))})")
    if cfg.tasks is None:
        present = set(df.loc[df["split"] == cfg.split, "type"])
        cfg.tasks = [t for t in DEGRADATIONS if t in present]
    df = df[(df["split"] == cfg.split) & (df["type"].isin(cfg.tasks))]
    missing = [t for t in cfg.tasks if t not in set(df["type"])]
    if missing:
        raise UserError(f"dataset {cfg.dataset} has no {cfg.split} images of type {', '.join(missing)}")
    df = df.sort_values(["type", "name"], kind="stable")
    if cfg.limit:
        df = df.groupby("type", sort=False).head(cfg.limit)
    for col in ("lq_path", "gt_path"):
        absent = [p for p in df[col] if not (cfg.dataset / p).is_file()]
        if absent:
            raise UserError(f"{len(absent)} image(s) listed in the manifest are missing, e.g. {cfg.dataset / absent[0]}")
    return df.reset_index(drop=True)


def setup_metrics(names: list[str], weights_dir: Path, device: str) -> tuple[list[Metric], dict[str, str]]:
    ready, unavailable = [], {}
    for name in names:
        m = get_metric(name)
        try:
            m.setup(weights_dir, device)
            ready.append(m)
        except MetricUnavailable as exc:
            unavailable[name] = str(exc)
    return ready, unavailable


def run_benchmark(cfg: RunConfig) -> RunResult | None:
    """Run everything; returns None on ranks other than 0 of a torchrun job."""
    from daclip.dist import barrier, init_distributed

    from .weights import weights_dir

    dist = init_distributed()
    device = f"cuda:{dist.local_rank}" if dist.enabled and cfg.device == "cuda" else cfg.device
    items = select_items(cfg)
    metrics, unavailable = setup_metrics(cfg.metrics, weights_dir(cfg.weights_dir), device)
    image_metrics = [m for m in metrics if m.kind == "image"]
    set_metrics = [m for m in metrics if m.kind == "set"]
    # Create every method first: an unknown method or a bad option fails before any work.
    methods = [create_method(name, **({"weights": cfg.weights[name]} if name in cfg.weights else {}),
                             **cfg.options.get(name, {}))
               for name in cfg.methods]
    shard = items.iloc[dist.rank::dist.world_size] if dist.enabled else items
    store = ResultStore(cfg.out, rank=dist.rank if dist.enabled else None)
    try:
        for method in methods:
            method.prepare(device)  # loads weights and sets weights_id, part of every cache key
            _run_method(cfg, method, shard, image_metrics, store, progress=cfg.progress and dist.is_main)
            store.flush()
    finally:
        store.flush()
    if dist.enabled:
        barrier()
        if not dist.is_main:
            return None
        merge_rank_files(cfg.out)
        store = ResultStore(cfg.out)
    if set_metrics:
        for method in methods:
            _run_set_metrics(cfg, method, items, set_metrics, store)
        store.flush()
    return RunResult(items, methods, store, [m.name for m in metrics], unavailable)


def set_hash(group: pd.DataFrame) -> str:
    """Identifies the exact image set a FID value was computed on (ids and LQ hashes)."""
    return hashlib.sha256("\n".join(sorted(group["id"] + ":" + group["sha256"])).encode()).hexdigest()[:16]


def _output_relpath(method: Method, row) -> str:
    return f"outputs/{method.name}/{row['split']}/{row['type']}/{Path(row['name']).with_suffix('.png').name}"


def _restore(method: Method, lq: np.ndarray, task: str, where: str) -> np.ndarray:
    out = method.restore(lq, task)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != lq.shape:
        raise RuntimeError(f"method {method.name!r} returned {getattr(out, 'dtype', type(out))} "
                           f"{getattr(out, 'shape', '')} for {where}; expected uint8 {lq.shape}")
    return out


def _cached_output(cfg: RunConfig, store: ResultStore, method: Method, row) -> tuple[dict | None, Path]:
    cached = store.output(method.name, method.weights_id, row["id"], row["sha256"])
    return cached, cfg.out / (cached["output_path"] if cached else _output_relpath(method, row))


def _run_method(cfg: RunConfig, method: Method, items: pd.DataFrame, metrics: list[Metric], store: ResultStore,
                progress: bool) -> None:
    wid = method.weights_id
    todo = 0
    bar = tqdm(items.to_dict("records"), desc=f"{method.name:>12}", unit="img", disable=not progress)
    for row in bar:
        lq_path, gt_path = cfg.dataset / row["lq_path"], cfg.dataset / row["gt_path"]
        missing = [m for m in metrics if not store.has_value(method.name, wid, row["id"], m.name)]
        cached, out_path = _cached_output(cfg, store, method, row)
        if cached and not missing and out_path.exists():
            continue
        todo += 1
        gt = read_image(gt_path)
        output = None
        if cached and out_path.exists() and sha256_file(out_path) == cached["output_sha256"]:
            output = read_image(out_path)
        if output is None:
            lq = read_image(lq_path)
            if lq.shape != gt.shape:
                raise UserError(f"LQ {lq_path} is {lq.shape[1]}x{lq.shape[0]} but its GT {gt_path} is "
                                f"{gt.shape[1]}x{gt.shape[0]}")
            t0 = time.perf_counter()
            output = _restore(method, lq, row["type"], str(lq_path))
            seconds = time.perf_counter() - t0
            data = save_image(out_path, output)
            store.add_output(method=method.name, weights_id=wid, id=row["id"], lq_sha256=row["sha256"],
                             output_path=out_path.relative_to(cfg.out).as_posix(),
                             output_sha256=sha256_bytes(data), seconds=seconds)
            missing = metrics  # a fresh output invalidates earlier values
        for m in missing:
            store.add_value(method=method.name, weights_id=wid, id=row["id"], type=row["type"], split=row["split"],
                            name=row["name"], metric=m.name, value=m(output, gt))
        if todo % FLUSH_EVERY == 0:
            store.flush()
    bar.close()


def _run_set_metrics(cfg: RunConfig, method: Method, items: pd.DataFrame, metrics: list[Metric],
                     store: ResultStore) -> None:
    from .set_metrics import FEATURES, SET_FUNCTIONS, FeatureCache

    gt_cache = FeatureCache(cfg.out, "_gt", "none")
    cache = FeatureCache(cfg.out, method.name, method.weights_id)
    try:
        for task, group in items.groupby("type", sort=False):
            ids_hash = set_hash(group)
            todo = [m for m in metrics
                    if store.set_value(method.name, method.weights_id, task, cfg.split, m.name, ids_hash) is None]
            if not todo:
                continue
            real, fake = [], []
            for row in group.to_dict("records"):
                key = f"{row['id']}:{row['gt_sha256']}"
                vec = gt_cache.get(key)
                if vec is None:
                    vec = FEATURES([read_image(cfg.dataset / row["gt_path"])])[0]
                    gt_cache.put(key, vec)
                real.append(vec)
                cached, out_path = _cached_output(cfg, store, method, row)
                if cached is None:
                    raise RuntimeError(f"no restored output of {method.name} for {row['id']}")
                key = f"{row['id']}:{cached['output_sha256']}"
                vec = cache.get(key)
                if vec is None:
                    vec = FEATURES([read_image(out_path)])[0]
                    cache.put(key, vec)
                fake.append(vec)
            for m in todo:
                value = SET_FUNCTIONS[m.name](np.stack(fake), np.stack(real)) if len(real) >= 2 else float("nan")
                store.add_set_value(method=method.name, weights_id=method.weights_id, type=task, split=cfg.split,
                                    metric=m.name, value=value, n=len(real), ids_hash=ids_hash)
    finally:
        gt_cache.save()
        cache.save()
        store.flush()
