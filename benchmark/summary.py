"""The run summary (summary.json, per_task.parquet) that the report renders.

JSON has no inf or NaN, and a perfect restoration has PSNR inf: non-finite floats are
written as the strings "inf", "-inf" and "nan" and :func:`read_summary` turns the metric
values back into floats (a value that is simply missing stays null).
"""

from __future__ import annotations

import io
import json
import math
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

import pandas as pd

from builders.io import atomic_write_bytes, atomic_write_text

from .metrics import get_metric
from .results import metric_table, per_task, select_sets, select_values
from .runner import RunConfig, RunResult


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("daclip-toolkit", "torch", "pyiqa", "numpy", "scikit-image", "Pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _clean(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


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
    from pathlib import Path

    return decode_non_finite(json.loads(Path(path).read_text()))


def build_summary(cfg: RunConfig, result: RunResult, command: list[str] | None = None) -> tuple[dict, pd.DataFrame]:
    """The summary dict (summary.json, the report's input) and the long per-type table."""
    values = select_values(result.store.values, result.items, result.methods)
    sets = select_sets(result.store.sets, result.items, result.methods, cfg.split)
    long = per_task(values, sets)
    names = [m.name for m in result.methods]
    tables = {}
    for metric in result.metrics:
        table = metric_table(long, metric, names, cfg.tasks)
        tables[metric] = {m: {c: _clean(table.loc[m, c]) for c in table.columns} for m in table.index}
    counts = result.items.groupby("type").size().to_dict()
    examples = []
    outputs = result.store.outputs
    for k, task in enumerate(cfg.tasks):
        of_task = result.items[result.items["type"] == task]
        first = of_task.iloc[k % len(of_task)]  # rotate so the examples show different photographs
        tiles = [{"label": "Input (LQ)", "path": str((cfg.dataset / first["lq_path"]).resolve())}]
        for m in result.methods:
            hit = outputs[(outputs["method"] == m.name) & (outputs["weights_id"] == m.weights_id) & (outputs["id"] == first["id"])]
            if m.name != "identity" and not hit.empty:
                tiles.append({"label": m.display_name, "path": hit.iloc[-1]["output_path"]})
        tiles.append({"label": "Ground truth", "path": str((cfg.dataset / first["gt_path"]).resolve())})
        examples.append({"task": task, "name": first["name"], "tiles": tiles})
    return {
        "title": "All-in-one image restoration benchmark",
        "dataset": str(cfg.dataset),
        "split": cfg.split,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(command if command is not None else sys.argv),
        "versions": _versions(),
        "tasks": list(cfg.tasks),
        "counts": {t: int(counts.get(t, 0)) for t in cfg.tasks},
        "methods": [{"name": m.name, "display": m.display_name, "weights_id": m.weights_id,
                     "uses_task_label": m.uses_task_label, "seed": getattr(m, "seed", None)} for m in result.methods],
        "metrics": [{"name": n, "display": get_metric(n).display, "higher_is_better": get_metric(n).higher_is_better,
                     "fmt": get_metric(n).fmt, "description": get_metric(n).description, "kind": get_metric(n).kind}
                    for n in result.metrics],
        "unavailable": result.unavailable,
        # Methods that could not run here (no weights, ...): name -> reason.
        "skipped_methods": dict(getattr(result, "skipped_methods", {}) or {}),
        # Images a metric could not score (too small for its window): metric -> images + reasons.
        "skipped_images": _skipped_images(values),
        "run": dict(getattr(result, "settings", {}) or {}),
        "tables": tables,
        "images": _per_image_rows(values, result),
        "degradation_eval": _degradation_eval(cfg),
        "examples": examples,
    }, long


def _skipped_images(values: pd.DataFrame) -> dict:
    if values.empty or "skipped" not in values.columns:
        return {}
    hit = values[values["skipped"].fillna("").astype(str) != ""]
    out = {}
    for metric, rows in hit.groupby("metric", sort=False):
        rows = rows.drop_duplicates("id").sort_values("id")
        images = [{"id": r["id"], "type": r["type"], "name": r["name"], "reason": r["skipped"]}
                  for r in rows.to_dict("records")]
        out[metric] = {"count": len(images), "reason": images[0]["reason"], "images": images}
    return out


def _per_image_rows(values: pd.DataFrame, result: RunResult) -> list[dict]:
    """One row per (image, method) with every per-image metric, for the report's drill-down."""
    if values.empty:
        return []
    wide = values.pivot_table(index=["type", "name", "method"], columns="metric", values="value", aggfunc="first")
    display = {m.name: m.display_name for m in result.methods}
    return [{"type": t, "name": n, "method": display.get(m, m), "values": {k: _clean(v) for k, v in row.items()}}
            for (t, n, m), row in wide.iterrows()]


def _degradation_eval(cfg: RunConfig) -> dict | None:
    """DA-CLIP's degradation classification results (python -m daclip.evaluate), when present."""
    for path in (cfg.out / "degradation_eval.json", cfg.dataset / "degradation_eval.json"):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                return None
    return None


def write_summary(out_dir, summary: dict, long: pd.DataFrame) -> None:
    from .export import write_exports

    atomic_write_text(out_dir / "summary.json", json.dumps(encode_non_finite(summary), indent=2, allow_nan=False))
    write_exports(out_dir, summary)
    buf = io.BytesIO()
    long.to_parquet(buf, index=False)
    atomic_write_bytes(out_dir / "per_task.parquet", buf.getvalue())
