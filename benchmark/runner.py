"""Run restoration methods over a built dataset and score them, resuming where it stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from builders.errors import UserError
from builders.io import read_image, save_image, sha256_bytes, sha256_file
from builders.manifest import read_manifest

from .methods import Method, create_method
from .metrics import get_metric
from .store import ResultStore

FLUSH_EVERY = 20  # images; bounds the work lost to a crash (Ctrl-C flushes everything)


@dataclass
class RunConfig:
    dataset: Path
    out: Path
    methods: list[str]
    tasks: list[str]
    metrics: list[str]
    split: str = "val"
    weights: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    limit: int | None = None  # images per type, for quick looks
    progress: bool = True


def select_items(cfg: RunConfig) -> pd.DataFrame:
    df = read_manifest(cfg.dataset)
    if cfg.split not in set(df["split"]):
        raise UserError(f"dataset {cfg.dataset} has no {cfg.split!r} split (has: {', '.join(sorted(set(df['split'])))})")
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


def _output_relpath(method: Method, row) -> str:
    return f"outputs/{method.name}/{row['split']}/{row['type']}/{Path(row['name']).with_suffix('.png').name}"


def _restore(method: Method, lq: np.ndarray, task: str, where: str) -> np.ndarray:
    out = method.restore(lq, task)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != lq.shape:
        raise RuntimeError(f"method {method.name!r} returned {getattr(out, 'dtype', type(out))} "
                           f"{getattr(out, 'shape', '')} for {where}; expected uint8 {lq.shape}")
    return out


@dataclass
class RunResult:
    items: pd.DataFrame
    methods: list[Method]
    store: ResultStore


def run_benchmark(cfg: RunConfig) -> RunResult:
    items = select_items(cfg)
    metrics = [get_metric(m) for m in cfg.metrics]
    # Create every method first: an unknown method or a bad option fails before any work.
    methods = [create_method(name, **({"weights": cfg.weights[name]} if name in cfg.weights else {}))
               for name in cfg.methods]
    store = ResultStore(cfg.out)
    try:
        for method in methods:
            _run_method(cfg, method, items, metrics, store)
            store.flush()
    finally:
        store.flush()
    return RunResult(items, methods, store)


def _run_method(cfg: RunConfig, method: Method, items: pd.DataFrame, metrics, store: ResultStore) -> None:
    method.prepare(cfg.device)  # loads weights and sets weights_id, part of every cache key
    wid = method.weights_id
    todo = 0
    bar = tqdm(items.to_dict("records"), desc=f"{method.name:>12}", unit="img", disable=not cfg.progress)
    for row in bar:
        lq_path, gt_path = cfg.dataset / row["lq_path"], cfg.dataset / row["gt_path"]
        missing = [m for m in metrics if not store.has_value(method.name, wid, row["id"], m.name)]
        cached = store.output(method.name, wid, row["id"], row["sha256"])
        out_path = cfg.out / (cached["output_path"] if cached else _output_relpath(method, row))
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
                raise UserError(f"LQ {lq_path} is {lq.shape[1]}x{lq.shape[0]} but its GT {gt_path} is {gt.shape[1]}x{gt.shape[0]}")
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
