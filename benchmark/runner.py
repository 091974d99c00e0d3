"""Run restoration methods over a built dataset and score them, resuming where it stopped.

Restored images are cached per (method, weights id, image, LQ hash) and metric values per
(method, weights id, image, metric), so a re-run, an added method or an added metric computes
only what is new. Under ``torchrun`` the images are sharded over ranks; rank 0 merges the
ranks' results and computes the per-type set metrics (FID, KID).

The work is pipelined: worker threads decode images ahead of the restorer and encode, write
and score its outputs behind it (PNG codecs, OpenCV and numpy release the GIL, so every core
is busy), while the main thread only restores. Images of one size go to a method's
``restore_batch`` together (``batch_size`` per call); on a GPU the per-image metrics run
batched on the device too. None of this changes a value: the scores are those of the BasicSR
formulas whatever the batching, threading or order.

The run folder has one writer at a time (``builders.lock.FolderLock``; under torchrun rank 0
holds it for all ranks), so two runs on one ``--out`` never lose each other's rows.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from builders.errors import UserError
from builders.io import MAX_PIXELS, atomic_write_bytes, encode_png, is_plain_png, read_image, sha256_bytes, sha256_file
from builders.naming import unique_stems
from builders.lock import FolderLock
from builders.manifest import read_manifest, read_vocabulary, select
from builders.tasks import parse_tasks

from daclip.device import check_device

from .cost import PeakMemory, cached_flops
from .result_folders import ResultFolder
from .methods import Method, MethodUnavailable, create_method, method_spec
from .metrics import Metric, MetricUnavailable, get_metric, images_to_batch
from .store import ResultStore, merge_rank_files

FLUSH_EVERY = 20  # images; bounds the work lost to a crash (Ctrl-C flushes everything)
FLUSH_MIN_S = 2.0  # ... but tables are not rewritten more often than this
METRIC_BACKENDS = ("auto", "numpy", "torch")
GPU_METRIC_BATCH = 16  # pairs of one size scored in one batched call on a GPU


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
    batch_size: int = 1  # images of one size per restoring call (methods with restore_batch)
    amp: str = "none"  # autocast dtype for every neural method without its own amp option
    workers: int = 0  # decode/encode/metric threads; 0: one per CPU core
    #: Per-image metrics: "numpy" (float64 on the CPU, in the worker threads), "torch"
    #: (batched float64 on the device), "auto" (torch on a GPU, numpy otherwise).
    metric_backend: str = "auto"
    #: Images larger than this (pixels) are refused from their header (None: no limit).
    max_pixels: int | None = MAX_PIXELS
    #: Check every LQ and GT file against its manifest digest before use (bench/ turns it off
    #: to measure its cost; a run never should).
    check_digests: bool = True
    #: Manifest type -> the word a type-aware method is told (a protocol's task -> its
    #: degradation word, e.g. sots -> hazy); types not in it are passed as they are.
    type_words: dict[str, str] = field(default_factory=dict)
    #: Result-only rows: row name -> folder of restored images (benchmark.result_folders).
    results: dict[str, Path] = field(default_factory=dict)


@dataclass
class RunResult:
    items: pd.DataFrame
    methods: list[Method]
    store: ResultStore
    metrics: list[str]  # the metrics that were computed
    unavailable: dict[str, str]  # metric -> reason
    skipped_methods: dict[str, str] = field(default_factory=dict)  # method -> why it did not run
    settings: dict = field(default_factory=dict)  # batch size, amp, device, workers, metric backend
    skipped_tasks: dict[str, dict[str, str]] = field(default_factory=dict)  # method -> type -> why not restored


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


def has_path(p) -> bool:
    """A manifest path that is set (an LQ-only dataset has no GT: its gt_path is empty)."""
    return isinstance(p, str) and p != ""


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
    scorer = _Scorer(image_metrics, backend, device)
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
                timings[method.name] = _MethodRun(cfg, method, mine, names, scorer, store, pool, workers,
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


def set_hash(group: pd.DataFrame) -> str:
    """Identifies the exact image set a FID value was computed on (ids, LQ and GT hashes)."""
    keys = group["id"] + ":" + group["sha256"] + ":" + group["gt_sha256"]
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- one method over the images


@dataclass
class _Job:
    row: dict
    rel: str  # output path relative to the run folder
    missing: list[Metric]
    cached: dict | None  # a usable cached output record
    lq: np.ndarray | None = None
    gt: np.ndarray | None = None
    output: np.ndarray | None = None
    output_sha: str = ""
    fresh: bool = False  # restored in this run
    seconds: float = 0.0
    batch: int = 1
    values: dict = field(default_factory=dict)  # metric -> (value, skipped reason)


class _Scorer:
    """Per-image metric values: numpy metrics in the worker threads, network metrics (and,
    with the torch backend, every metric) batched in the main thread on the device."""

    def __init__(self, metrics: list[Metric], backend: str, device: str):
        self.metrics = metrics
        self.backend = backend
        self.device = device
        # On a CPU a network metric scores one pair per call, so its value never depends on
        # which images happened to share a batch.
        self.batch = GPU_METRIC_BATCH if str(device).startswith("cuda") else 1

    def in_thread(self, m: Metric) -> bool:
        # A metric with no batched torch form (a family's convention) is scored in the threads.
        return not m.network and (self.backend == "numpy" or m.batch_fn is None)

    def score_in_thread(self, job: _Job) -> None:
        h, w = job.output.shape[:2]
        for m in job.missing:
            small = m.too_small(h, w)
            if small:
                job.values[m.name] = (float("nan"), small)
            elif m.reference and job.gt is None:
                job.values[m.name] = (float("nan"), "no ground truth for this image")
            elif self.in_thread(m):
                job.values[m.name] = (float(m.fn(job.output, job.gt)), "")

    def score_batch(self, jobs: list[_Job]) -> None:
        """The metrics left to the main thread, for jobs whose images have one size."""
        todo = {m.name: m for j in jobs for m in j.missing if m.name not in j.values}
        if not todo:
            return
        out = images_to_batch([j.output for j in jobs], self.device)
        gts: dict[tuple, object] = {}
        for m in todo.values():
            sel = tuple(k for k, j in enumerate(jobs) if m in j.missing and m.name not in j.values)
            o = out if len(sel) == len(jobs) else out[list(sel)]
            gt = None  # a no-reference metric scores the output alone (also where there is no GT)
            if m.reference:
                if sel not in gts:
                    gts[sel] = images_to_batch([jobs[k].gt for k in sel], self.device)
                gt = gts[sel]
            vals = m.batch_fn(o, gt).cpu().tolist()
            for k, v in zip(sel, vals):
                jobs[k].values[m.name] = (float(v), "")


class _MethodRun:
    def __init__(self, cfg: RunConfig, method: Method, items: pd.DataFrame, names: dict[str, str],
                 scorer: _Scorer, store: ResultStore, pool: ThreadPoolExecutor, workers: int, progress: bool):
        self.cfg, self.method, self.items, self.names = cfg, method, items, names
        self.scorer, self.store, self.pool = scorer, store, pool
        self.workers = workers
        self.progress = progress
        # Always restore_batch with the ids, even one image at a time: a diffusion method then
        # seeds each image's noise from its id, whatever the batch it lands in.
        self.batched = method.batched
        self.since_flush = 0
        self.last_flush = time.monotonic()
        # stage -> [seconds (summed over threads), images, megapixels]
        self.timings: dict[str, list[float]] = {k: [0.0, 0, 0.0] for k in ("decode", "restore", "encode", "metrics")}
        self._tlock = threading.Lock()

    def _time(self, stage: str, t0: float, images: int, pixels: int) -> None:
        with self._tlock:
            t = self.timings[stage]
            t[0] += time.perf_counter() - t0
            t[1] += images
            t[2] += pixels / 1e6

    # -- planning
    def plan(self) -> list[_Job]:
        m, store, metrics = self.method, self.store, self.scorer.metrics
        jobs = []
        only = m.files if isinstance(m, ResultFolder) else None  # a result-only row: the files it has
        for row in self.items.to_dict("records"):
            if only is not None and row["id"] not in only:
                continue
            rel = f"outputs/{m.name}/{self.names[row['id']]}"
            missing = [x for x in metrics
                       if not store.has_value(m.name, m.weights_id, row["id"], row["sha256"], row["gt_sha256"], x.name)]
            cached = store.output(m.name, m.weights_id, row["id"], row["sha256"])
            if cached is not None and (cached["output_path"] != rel or not (self.cfg.out / rel).exists()):
                cached = None  # its file is gone, or another image's name now owns that path
            if cached is not None and not missing:
                continue
            jobs.append(_Job(row, rel, missing, cached))
        if self.batched and all(c in self.items.columns for c in ("height", "width")):
            # Same-size images next to each other fill whole batches (the method groups by
            # the real decoded size anyway; this only orders the work).
            jobs.sort(key=lambda j: (-_int(j.row.get("height")), -_int(j.row.get("width"))))
        return jobs

    # -- stages run in the worker threads
    def load(self, job: _Job) -> _Job:
        t0 = time.perf_counter()
        try:
            return self._load(job)
        finally:
            img = job.lq if job.lq is not None else job.output
            self._time("decode", t0, 1, 0 if img is None else img.shape[0] * img.shape[1])

    def _load(self, job: _Job) -> _Job:
        cfg, row = self.cfg, job.row
        if job.cached is not None:
            path = cfg.out / job.rel
            data = path.read_bytes()
            if sha256_bytes(data) == job.cached["output_sha256"]:
                job.output = read_image(path, max_pixels=None)  # our own output of a checked input
                job.output_sha = job.cached["output_sha256"]
            else:
                job.cached = None  # changed on disk: restore again
        if job.output is None:
            job.lq = read_image(cfg.dataset / row["lq_path"], max_pixels=cfg.max_pixels)
            job.missing = list(self.scorer.metrics)  # a fresh output invalidates earlier values
        if any(m.reference for m in job.missing) and has_path(row["gt_path"]):
            job.gt = read_image(cfg.dataset / row["gt_path"], max_pixels=cfg.max_pixels)
            ref = job.lq if job.lq is not None else job.output
            if ref.shape != job.gt.shape:
                lq_path, gt_path = cfg.dataset / row["lq_path"], cfg.dataset / row["gt_path"]
                raise UserError(f"LQ {lq_path} is {ref.shape[1]}x{ref.shape[0]} but its GT {gt_path} is "
                                f"{job.gt.shape[1]}x{job.gt.shape[0]}")
        return job

    def post(self, job: _Job) -> _Job:
        px = job.output.shape[0] * job.output.shape[1]
        if job.fresh:
            t0 = time.perf_counter()
            lq_path = self.cfg.dataset / job.row["lq_path"]
            if job.output is job.lq and is_plain_png(lq_path):
                data = lq_path.read_bytes()  # the method returned its input: its PNG is the output
            else:
                data = encode_png(job.output)
            atomic_write_bytes(self.cfg.out / job.rel, data)
            job.output_sha = sha256_bytes(data)
            self._time("encode", t0, 1, px)
        if job.missing:
            t0 = time.perf_counter()
            self.scorer.score_in_thread(job)
            self._time("metrics", t0, 1, px)
        job.lq = None
        return job

    # -- main thread
    def restore(self, group: list[_Job]) -> None:
        m = self.method
        lqs = [j.lq for j in group]
        words = [self.cfg.type_words.get(j.row["type"], j.row["type"]) for j in group]
        t0 = time.perf_counter()
        outs = m.restore_batch(lqs, words, keys=[j.row["id"] for j in group])
        seconds = (time.perf_counter() - t0) / len(group)
        self._time("restore", t0, len(group), sum(j.lq.shape[0] * j.lq.shape[1] for j in group))
        for j, out in zip(group, outs):
            j.output = m.check_output(out, j.lq, str(self.cfg.dataset / j.row["lq_path"]))
            j.fresh, j.seconds, j.batch = True, seconds, len(group)

    def record(self, job: _Job) -> None:
        m, row, store = self.method, job.row, self.store
        if job.fresh:
            store.add_output(method=m.name, weights_id=m.weights_id, id=row["id"], lq_sha256=row["sha256"],
                             output_path=job.rel, output_sha256=job.output_sha, seconds=job.seconds, batch=job.batch)
        for name, (value, skipped) in job.values.items():
            store.add_value(method=m.name, weights_id=m.weights_id, id=row["id"], lq_sha256=row["sha256"],
                            gt_sha256=row["gt_sha256"], type=row["type"],
                            split=row["split"], name=row["name"], metric=name, value=value, skipped=skipped)
        self.since_flush += 1
        if self.since_flush >= FLUSH_EVERY and time.monotonic() - self.last_flush >= FLUSH_MIN_S:
            store.flush()
            self.since_flush, self.last_flush = 0, time.monotonic()

    def run(self) -> dict:
        """Restore and score what is missing; returns the stage timings of this run."""
        t_start = time.perf_counter()
        jobs = self.plan()
        try:
            self._run(jobs)
        finally:
            self.wall = time.perf_counter() - t_start
        return {"wall_s": round(self.wall, 4), "images": len(jobs),
                "megapixels": round(sum(_int(j.row.get("width")) * _int(j.row.get("height")) for j in jobs) / 1e6, 4),
                "stages": {k: {"seconds": round(v[0], 4), "images": int(v[1]), "megapixels": round(v[2], 4)}
                           for k, v in self.timings.items()}}

    def _run(self, jobs: list[_Job]) -> None:
        total = len(self.items)
        bar = tqdm(total=total, initial=total - len(jobs), desc=f"{self.method.name:>12}", unit="img",
                   disable=not self.progress)
        lookahead = max(2 * self.cfg.batch_size, 2 * self.workers)
        loads: deque[Future] = deque()
        posts: deque[Future] = deque()
        scored: list[_Job] = []  # posted jobs waiting for main-thread (batched) metrics
        todo = iter(jobs)
        group: list[_Job] = []

        def fill() -> None:
            while len(loads) < lookahead:
                job = next(todo, None)
                if job is None:
                    return
                loads.append(self.pool.submit(self.load, job))

        def finish(job: _Job) -> None:
            needs_main = job.missing and any(m.name not in job.values for m in job.missing)
            if needs_main:
                if scored and (scored[0].output.shape != job.output.shape or len(scored) >= self.scorer.batch):
                    flush_scored()
                scored.append(job)
            else:
                self.record(job)
                bar.update(1)

        def flush_scored() -> None:
            if scored:
                t0 = time.perf_counter()
                self.scorer.score_batch(scored)
                self._time("metrics", t0, 0, 0)  # the images were counted in their thread stage
                for j in scored:
                    self.record(j)
                bar.update(len(scored))
                scored.clear()

        def drain(block_over: int) -> None:
            while posts and (posts[0].done() or len(posts) > block_over):
                finish(posts.popleft().result())

        def restore_group() -> None:
            if group:
                self.restore(group)
                for j in group:
                    posts.append(self.pool.submit(self.post, j))
                group.clear()

        try:
            fill()
            while loads:
                job = loads.popleft().result()
                fill()
                if job.output is not None:  # cached output: only metrics to compute
                    posts.append(self.pool.submit(self.post, job))
                else:
                    if group and group[0].lq.shape != job.lq.shape:
                        restore_group()
                    group.append(job)
                    if not self.batched or len(group) >= self.cfg.batch_size:
                        restore_group()
                drain(block_over=2 * self.workers)
            restore_group()
            drain(block_over=0)
            flush_scored()
        except BaseException:
            # Keep what is finished: outputs already restored are written and recorded (their
            # metrics too, when computed); everything not yet restored is dropped.
            for f in loads:
                f.cancel()
            while posts:
                try:
                    job = posts.popleft().result()
                except BaseException:  # noqa: BLE001 - a second failure must not hide the first
                    continue
                self.record(job)  # values left to the main thread are computed on the re-run
            for j in scored:
                self.record(j)
            raise
        finally:
            bar.close()


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


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
