"""The no-reference metrics of :mod:`daclip.iqa` (pyiqa's networks) as benchmark metrics.

Their files come from the benchmark's weights folder, verified by benchmark.weights (a metric
whose file is missing or refused is reported unavailable with the reason); they score each
output alone, and the Input row (added by benchmark.run) shows what restoring changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.errors import UserError

from .metric_base import Metric, MetricUnavailable, register_metric


class _NRMetric:
    def __init__(self, name: str):
        from daclip.iqa import NRScorer

        self.scorer = NRScorer(name)

    @property
    def net(self):
        return self.scorer.net

    def prepare(self, weights_dir: Path, device: str) -> None:
        from .weights import (
            WEIGHTS,
            WeightsProblem,
            file_digest,
            unavailable_reason,
            verify_file,
        )

        name, keys = self.scorer.spec.name, self.scorer.spec.weights
        reason = unavailable_reason(name, weights_dir)
        if reason:
            raise MetricUnavailable(reason)
        try:
            digests = tuple(file_digest(k, weights_dir) for k in keys)
            self.scorer.prepare({k: verify_file(WEIGHTS[k], weights_dir) for k in keys}, device, digests)
        except (WeightsProblem, UserError) as exc:
            raise MetricUnavailable(str(exc)) from None

    def batch(self, out, gt=None):
        if self.scorer.net is None:
            raise MetricUnavailable(f"{self.scorer.spec.name} used before setup()")
        return self.scorer.batch(out)

    def __call__(self, out: np.ndarray, gt: np.ndarray | None = None) -> float:
        return self.scorer(out)


def _register() -> dict[str, _NRMetric]:
    from daclip.iqa import SPECS

    out = {}
    for s in SPECS:
        m = out[s.name] = _NRMetric(s.name)
        register_metric(Metric(s.name, s.display, s.higher_is_better, m, s.fmt, headline=False,
                               description=s.description, prepare=m.prepare, batch_fn=m.batch, network=True,
                               reference=False, min_side=s.min_side, min_side_reason=s.min_side_reason))
    return out


NR_METRICS = _register()
