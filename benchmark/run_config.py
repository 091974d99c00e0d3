"""What a benchmark run is given (``RunConfig``) and what it returns (``RunResult``).

Kept apart from :mod:`benchmark.runner` so that the per-method loop (:mod:`benchmark.method_run`)
and the summary writer can read a configuration without importing the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from builders.io import MAX_PIXELS

from .methods import Method
from .store import ResultStore


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


def has_path(p) -> bool:
    """A manifest path that is set (an LQ-only dataset has no GT: its gt_path is empty)."""
    return isinstance(p, str) and p != ""
