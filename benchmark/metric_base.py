"""What a metric is (:class:`Metric`) and the registry the metric modules add theirs to.

The per-image metrics (:mod:`benchmark.metrics`) and the set metrics (:mod:`benchmark.set_metrics`)
both import this module and not each other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from builders.registry import Registry

if TYPE_CHECKING:  # torch is imported only by the code paths that use it
    import torch


class MetricUnavailable(Exception):
    """The metric cannot be computed here (its weights are missing); the message says why."""


@dataclass(frozen=True)
class Metric:
    name: str
    display: str
    higher_is_better: bool
    fn: Callable[[np.ndarray, np.ndarray], float] | None
    fmt: str = ".2f"
    headline: bool = True
    description: str = ""
    kind: str = "image"  # "image": mean of per-image values; "set": one value per type (FID)
    prepare: Callable[[Path, str], None] | None = None  # (weights_dir, device); may raise MetricUnavailable
    #: Batched torch form: (out, gt) uint8 [N,3,H,W] tensors of one size -> [N] float64 values.
    batch_fn: Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"] | None = None
    #: A network metric (LPIPS) always runs through batch_fn, on the device it was set up on.
    network: bool = False
    #: Smallest image side the metric is defined for, and why.
    min_side: int = 1
    min_side_reason: str = ""
    #: False for a no-reference metric (NIQE, MUSIQ, ...): it scores the output alone, so it
    #: also runs on datasets without ground truth, and on the input itself (the Input row).
    reference: bool = True

    def __call__(self, output: np.ndarray, gt: np.ndarray | None = None) -> float:
        if self.fn is None:
            raise TypeError(f"{self.name} is a set metric: it has one value per type, not per image")
        if not self.reference:
            gt = output
        if gt is None or output.shape != gt.shape:
            raise ValueError(f"output {output.shape} and GT {getattr(gt, 'shape', None)} differ in size")
        small = self.too_small(*output.shape[:2])
        if small:
            raise ValueError(f"{self.name}: {small}")
        return float(self.fn(output, gt))

    def too_small(self, h: int, w: int) -> str | None:
        """Why an h x w image cannot be scored (None when it can)."""
        if min(h, w) >= self.min_side:
            return None
        return f"image {w}x{h} is too small: {self.name} needs at least {self.min_side}x{self.min_side} ({self.min_side_reason})"

    def setup(self, weights_dir: Path, device: str = "cpu") -> None:
        if self.prepare is not None:
            self.prepare(Path(weights_dir), device)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    return METRICS.add(metric.name, metric)
