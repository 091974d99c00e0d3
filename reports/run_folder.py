"""A run folder as the report reads it: ``summary.json`` (and the tables beside it).

JSON has no inf or NaN, and a perfect restoration has PSNR inf: non-finite floats are
written as the strings "inf", "-inf" and "nan", and :func:`read_summary` turns the metric
values back into floats (a value that is simply missing stays null). The benchmark writes the
file with :func:`encode_non_finite`; the report never imports the benchmark.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def encode_non_finite(obj):
    """A copy of ``obj`` with every non-finite float replaced by "inf", "-inf" or "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: encode_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode_non_finite(v) for v in obj]
    return obj


def _decode_values(d: dict) -> dict:
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in d.items()}


def decode_non_finite(summary: dict) -> dict:
    """Undo :func:`encode_non_finite` where numbers belong: the tables and per-image values."""
    summary = dict(summary)
    summary["tables"] = {metric: {method: _decode_values(row) for method, row in rows.items()}
                         for metric, rows in summary.get("tables", {}).items()}
    summary["images"] = [{**r, "values": _decode_values(r.get("values", {}))} for r in summary.get("images", [])]
    return summary


def read_summary(path) -> dict:
    """summary.json with its inf/NaN metric values as floats again."""
    return decode_non_finite(json.loads(Path(path).read_text()))
