"""Run restoration methods over a built dataset and score them, resuming where it stopped.

Restored images are cached per (method, weights id, image, LQ hash) and metric values per
(method, weights id, image, metric), so a re-run, an added method or an added metric computes
only what is new. Under ``torchrun`` the images are sharded over ranks; rank 0 merges the
ranks' results and computes the per-type set metrics (FID, KID).

The work is pipelined (:mod:`benchmark.method_run`): worker threads decode images ahead of
the restorer and encode, write and score its outputs behind it (PNG codecs, OpenCV and numpy
release the GIL, so every core is busy), while the main thread only restores. Images of one
size go to a method's ``restore_batch`` together (``batch_size`` per call); on a GPU the
per-image metrics run batched on the device too. None of this changes a value: the scores
are those of the BasicSR formulas whatever the batching, threading or order.

The run folder has one writer at a time (``builders.lock.FolderLock``; under torchrun rank 0
holds it for all ranks), so two runs on one ``--out`` never lose each other's rows.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from builders.errors import UserError
from builders.io import read_image, sha256_file
from builders.lock import FolderLock
from builders.manifest import read_manifest, read_vocabulary, select
from builders.naming import unique_stems
from builders.tasks import parse_tasks

from daclip.device import check_device

from .cost import PeakMemory, cached_flops
from .method_run import MethodRun, Scorer
from .methods import Method, MethodUnavailable, create_method, method_spec
from .metrics import Metric, MetricUnavailable, get_metric
from .result_folders import ResultFolder
from .results import set_hash
from .run_config import RunConfig, RunResult, has_path  # noqa: F401  (RunResult: re-exported)
from .store import ResultStore, merge_rank_files

METRIC_BACKENDS = ("auto", "numpy", "torch")


# ---------------------------------------------------------------- set-up


def select_items(cfg: RunConfig) -> pd.DataFrame:
    df = read_manifest(cfg.dataset)
    vocab = read_vocabulary(cfg.dataset, df)
    if cfg.split not in set(df["split"]):
        raise UserError(f"dataset {cfg.dataset} has no {cfg.split!r} split (has: {', '.join(sorted(set(df['split'])))})")
    # Tables, charts and grids follow the dataset's vocabulary order (the ten words' for DA-CLIP sets).
    if cfg.tasks is None:
        cfg.tasks = vocab.order(set(df.loc[df["split"] == cfg.split, "type"]))
    else:
        cfg.tasks = parse_tasks(",".join(cfg.tasks), vocab.types)
    df = select(cfg.dataset, cfg.split, cfg.tasks, manifest=df)
    missing = [t for t in cfg.tasks if t not in set(df["type"])]
    if missing:
        raise UserError(f"dataset {cfg.dataset} has no {cfg.split} images of type {', '.join(missing)}")
    df = df.sort_values(["type", "name"], kind="stable")
    if cfg.limit:
        df = df.groupby("type", sort=False).head(cfg.limit)
    return df.reset_index(drop=True)


NO_GT = "the dataset has no ground truth (an LQ-only index); only no-reference metrics apply"


def output_names(items: pd.DataFrame) -> dict[str, str]:
    """image id -> ``<split>/<type>/<stem>.png``, unique within the run: the input's name, and
    for names that collide (``x.png`` beside ``x.jpg``) builders.naming's one rule (``x_png.png``)."""
    rows = items[["id", "split", "type", "name"]].to_dict("records")
    rels = [f"{r['split']}/{r['type']}/{r['name']}" for r in rows]
    return {r["id"]: stem + ".png" for r, stem in zip(rows, unique_stems(rels))}


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


def _create(cfg: RunConfig, name: str) -> Method:
    opts = dict(cfg.options.get(name, {}))
    if cfg.amp != "none" and "amp" not in opts and method_spec(name).needs_weights:
        opts["amp"] = cfg.amp  # --amp applies to every neural method not given its own
    if cfg.weights_dir and method_spec(name).needs_weights:
        opts.setdefault("weights_dir", str(cfg.weights_dir))  # one folder for methods and metrics
    extra = {"weights": cfg.weights[name]} if name in cfg.weights else {}
    return create_method(name, **extra, **opts)


def _workers(cfg: RunConfig) -> int:
    if cfg.workers > 0:
        return cfg.workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


# ---------------------------------------------------------------- the run folder and ranks


@dataclass(frozen=True)
class _Single:
    """A run without torchrun (no torch import needed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True
    enabled: bool = False


def _distributed():
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _Single()
    from daclip.dist import init_distributed

    return init_distributed()


@contextmanager
def run_folder(out: Path) -> Iterator:
    """Hold ``out``'s writer lock for the block; yields the torchrun rank info.

    Under torchrun rank 0 takes the lock and tells the other ranks whether it got it, before
    any rank writes a file; a refusal ends every rank with the holder named.
    """
    dist = _distributed()
    if not dist.enabled:
        with FolderLock(out, "run folder"):
            yield dist
        return
    import torch.distributed as tdist

    lock = FolderLock(out, "run folder") if dist.is_main else None
    error = None
    if lock is not None:
        try:
            lock.__enter__()
        except UserError as exc:
            error = str(exc)
    msg = [error]
    tdist.broadcast_object_list(msg, src=0)
    if msg[0] is not None:
        raise UserError(msg[0] if dist.is_main else f"rank 0 could not take the run folder: {msg[0]}")
    try:
        yield dist
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def run_benchmark(cfg: RunConfig) -> RunResult | None:
    """Run everything; returns None on ranks other than 0 of a torchrun job."""
    with run_folder(cfg.out) as dist:
        return _run(cfg, dist)


def _run(cfg: RunConfig, dist) -> RunResult | None:
    from builders.weights_folder import weights_dir

    if cfg.batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {cfg.batch_size}")
    if cfg.metric_backend not in METRIC_BACKENDS:
        raise UserError(f"metric backend {cfg.metric_backend!r}: choose from {', '.join(METRIC_BACKENDS)}")
    check_device(cfg.device)
    device = f"cuda:{dist.local_rank}" if dist.enabled and cfg.device == "cuda" else cfg.device
    items = select_items(cfg)
    names = output_names(items)
    no_gt = not items["gt_path"].map(has_path).any()
    wanted = [n for n in cfg.metrics if not (no_gt and get_metric(n).reference)]
    metrics, unavailable = setup_metrics(wanted, weights_dir(cfg.weights_dir), device)
    # Said once for the run, not per image.
    unavailable.update({n: NO_GT for n in cfg.metrics if n not in wanted})
    image_metrics = [m for m in metrics if m.kind == "image"]
    set_metrics = [m for m in metrics if m.kind == "set"]
    # Create every method first: an unknown method or a bad option fails before any work.
    methods = [_create(cfg, name) for name in cfg.methods] + _result_folders(cfg, items, names)
    shard = items.iloc[dist.rank::dist.world_size] if dist.enabled else items
    store = ResultStore(cfg.out, rank=dist.rank if dist.enabled else None)
    workers = _workers(cfg)
    backend = cfg.metric_backend
    if backend == "auto":
        backend = "torch" if device.startswith("cuda") else "numpy"
    scorer = Scorer(image_metrics, backend, device)
    ready: list[Method] = []
    skipped: dict[str, str] = {}
    skipped_tasks: dict[str, dict[str, str]] = {}
    timings: dict[str, dict] = {}
    costs: dict[str, dict | None] = {}  # FLOPs at 256x256 of the neural methods (benchmark.cost)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="bench")
    try:
        if cfg.check_digests:
            verify_files(cfg, shard, pool)
        for method in methods:
            try:
                method.prepare(device)  # loads weights and sets weights_id, part of every cache key
            except MethodUnavailable as exc:
                skipped[method.name] = str(exc)  # listed with the reason; the run goes on
                continue
            ready.append(method)
            # Types the method has nothing for (classical on a type of the user's own): said once,
            # their images left out of its row, which shows them as skipped.
            cannot = {t: why for t in cfg.tasks if (why := method.cannot_restore(cfg.type_words.get(t, t)))}
            if cannot:
                skipped_tasks[method.name] = cannot
                if dist.is_main:
                    for why in cannot.values():
                        print(f"{method.name}: {why}; its images are skipped", file=sys.stderr)
            mine = shard[~shard["type"].isin(set(cannot))] if cannot else shard
            if dist.is_main and method.num_params is not None:  # a neural method
                costs[method.name] = cached_flops(cfg.out, method)
            with PeakMemory(device) as peak:
                timings[method.name] = MethodRun(cfg, method, mine, names, scorer, store, pool, workers,
                                                  progress=cfg.progress and dist.is_main).run()
            if timings[method.name]["images"]:  # nothing restored or scored: no figure of this run
                timings[method.name].update(peak_memory_bytes=peak.bytes, peak_memory_kind=peak.kind)
            store.flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        store.flush()
    if dist.enabled:
        from daclip.dist import barrier

        barrier()
        if not dist.is_main:
            return None
        merge_rank_files(cfg.out)
        store = ResultStore(cfg.out)
    if set_metrics:
        for method in ready:
            if isinstance(method, ResultFolder) and method.partial:
                continue  # a set value over part of a type's images is not that type's value
            cannot = set(skipped_tasks.get(method.name, {}))
            _run_set_metrics(cfg, method, items[~items["type"].isin(cannot)] if cannot else items, set_metrics, store)
        store.flush()
    settings = {"batch_size": cfg.batch_size, "amp": cfg.amp, "device": cfg.device, "workers": workers,
                "metric_backend": backend, "world_size": dist.world_size, "timings": timings, "flops": costs}
    return RunResult(items, ready, store, [m.name for m in metrics], unavailable, skipped, settings, skipped_tasks)


def _result_folders(cfg: RunConfig, items: pd.DataFrame, names: dict[str, str]) -> list[Method]:
    """The --results rows, each matched to the dataset (files of the whole split count as known)."""
    if not cfg.results:
        return []
    split = read_manifest(cfg.dataset)
    split = split[split["split"] == cfg.split]
    all_names = {**output_names(split), **names}
    rows = []
    for name, folder in cfg.results.items():
        row = ResultFolder(name, folder)
        row.bind(items, split, all_names)
        rows.append(row)
    return rows


DIGESTS_FILE = "file_digests.json"


def verify_files(cfg: RunConfig, items: pd.DataFrame, pool: ThreadPoolExecutor | None = None) -> None:
    """Check every LQ and GT file against the manifest's ``sha256``/``gt_sha256`` before use.

    A file that changed after the manifest was written is refused (one line naming it), so a
    cached score is never served for a changed file, and a changed file never gets a score
    that the manifest attributes to other content. Hashing thousands of files on every run
    would cost more than a short run itself, so a digest is remembered in the run folder with
    the file's (size, mtime_ns, inode): a file whose stat is unchanged is not read again (as
    make and git do). bench/bench_digest_check.py measures both.
    """
    import json

    from builders.io import atomic_write_text

    cache_path = cfg.out / DIGESTS_FILE
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}  # a damaged cache only costs a re-hash
    todo: list[tuple[str, Path, str, list]] = []
    for rid, lq, lq_sha, gt, gt_sha in zip(items["id"], items["lq_path"], items["sha256"], items["gt_path"],
                                           items["gt_sha256"]):
        for rel, expected in ((lq, lq_sha), (gt, gt_sha)):
            if not has_path(rel):
                continue  # an LQ-only dataset has no GT file
            path = cfg.dataset / rel
            st = path.stat()
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
            key = str(path.resolve())
            hit = cache.get(key)
            if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp:
                digest = hit[1]
            else:
                todo.append((key, path, expected, stamp))
                continue
            if digest != expected:
                _changed(cfg, rid, path, digest, expected)
    if todo:
        digests = pool.map(lambda t: sha256_file(t[1]), todo) if pool is not None else map(lambda t: sha256_file(t[1]), todo)
        bad = None
        for (key, path, expected, stamp), digest in zip(todo, digests):
            cache[key] = [stamp, digest]
            if digest != expected and bad is None:
                bad = (path, digest, expected)
        atomic_write_text(cache_path, json.dumps(cache, sort_keys=True))
        if bad is not None:
            rid = next(r for r, lq, gt in zip(items["id"], items["lq_path"], items["gt_path"])
                       if bad[0] in (cfg.dataset / lq, cfg.dataset / gt))
            _changed(cfg, rid, *bad)


def _changed(cfg: RunConfig, rid: str, path: Path, digest: str, expected: str) -> None:
    raise UserError(f"{path} (image {rid}) changed after the manifest was written (sha256 {digest[:12]}..., "
                    f"manifest {expected[:12]}...): re-index the dataset (python -m builders.build --index "
                    f"{cfg.dataset}) or restore the file; nothing is scored from a changed file")


# ---------------------------------------------------------------- set metrics (FID, KID)


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
                cached = store.output(method.name, method.weights_id, row["id"], row["sha256"])
                if cached is None:
                    raise RuntimeError(f"no restored output of {method.name} for {row['id']}")
                key = f"{row['id']}:{cached['output_sha256']}"
                vec = cache.get(key)
                if vec is None:
                    vec = FEATURES([read_image(cfg.out / cached["output_path"])])[0]
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
