"""One method over a dataset's images: plan what is missing, then restore and score it in a
pipeline (worker threads decode ahead of the restorer and encode, write and score behind it;
the main thread restores, and scores network metrics batched on the device).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from builders.errors import UserError
from builders.io import atomic_write_bytes, encode_png, is_plain_png, read_image, sha256_bytes

from .methods import Method
from .metrics import Metric, images_to_batch
from .result_folders import ResultFolder
from .run_config import RunConfig, has_path
from .store import ResultStore

FLUSH_EVERY = 20  # images; bounds the work lost to a crash (Ctrl-C flushes everything)
FLUSH_MIN_S = 2.0  # ... but tables are not rewritten more often than this
GPU_METRIC_BATCH = 16  # pairs of one size scored in one batched call on a GPU



@dataclass
class Job:
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


class Scorer:
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

    def score_in_thread(self, job: Job) -> None:
        h, w = job.output.shape[:2]
        for m in job.missing:
            small = m.too_small(h, w)
            if small:
                job.values[m.name] = (float("nan"), small)
            elif m.reference and job.gt is None:
                job.values[m.name] = (float("nan"), "no ground truth for this image")
            elif self.in_thread(m):
                job.values[m.name] = (float(m.fn(job.output, job.gt)), "")

    def score_batch(self, jobs: list[Job]) -> None:
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


class MethodRun:
    def __init__(self, cfg: RunConfig, method: Method, items: pd.DataFrame, names: dict[str, str],
                 scorer: Scorer, store: ResultStore, pool: ThreadPoolExecutor, workers: int, progress: bool):
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
    def plan(self) -> list[Job]:
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
            jobs.append(Job(row, rel, missing, cached))
        if self.batched and all(c in self.items.columns for c in ("height", "width")):
            # Same-size images next to each other fill whole batches (the method groups by
            # the real decoded size anyway; this only orders the work).
            jobs.sort(key=lambda j: (-_int(j.row.get("height")), -_int(j.row.get("width"))))
        return jobs

    # -- stages run in the worker threads
    def load(self, job: Job) -> Job:
        t0 = time.perf_counter()
        try:
            return self._load(job)
        finally:
            img = job.lq if job.lq is not None else job.output
            self._time("decode", t0, 1, 0 if img is None else img.shape[0] * img.shape[1])

    def _load(self, job: Job) -> Job:
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

    def post(self, job: Job) -> Job:
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
    def restore(self, group: list[Job]) -> None:
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

    def record(self, job: Job) -> None:
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

    def _run(self, jobs: list[Job]) -> None:
        total = len(self.items)
        bar = tqdm(total=total, initial=total - len(jobs), desc=f"{self.method.name:>12}", unit="img",
                   disable=not self.progress)
        lookahead = max(2 * self.cfg.batch_size, 2 * self.workers)
        loads: deque[Future] = deque()
        posts: deque[Future] = deque()
        scored: list[Job] = []  # posted jobs waiting for main-thread (batched) metrics
        todo = iter(jobs)
        group: list[Job] = []

        def fill() -> None:
            while len(loads) < lookahead:
                job = next(todo, None)
                if job is None:
                    return
                loads.append(self.pool.submit(self.load, job))

        def finish(job: Job) -> None:
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
