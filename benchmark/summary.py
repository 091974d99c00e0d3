"""The run summary (summary.json, per_task.parquet) that the report renders.

The file's format (non-finite floats as strings) is :mod:`reports.run_folder`'s: the report reads
a run folder without importing the runner.
"""

from __future__ import annotations

import io
import json
import math
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

from builders.errors import UserError
from builders.io import atomic_write_bytes, atomic_write_text
from reports.run_folder import decode_non_finite, encode_non_finite, read_summary  # noqa: F401  (re-exported)

from .metrics import get_metric
from .result_folders import ResultFolder
from .results import metric_table, per_task, select_sets, select_values
from .run_config import RunConfig, RunResult


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


def build_summary(cfg: RunConfig, result: RunResult, command: list[str] | None = None, *,
                  degradation_eval: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """The summary dict (summary.json, the report's input) and the long per-type table.

    ``degradation_eval``: daclip.evaluate's results (``--degradation-eval``); by default the
    degradation_eval.json in the run folder or the dataset root, when there is one.
    """
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
        if isinstance(first["gt_path"], str) and first["gt_path"]:  # an LQ-only dataset has none
            tiles.append({"label": "Ground truth", "path": str((cfg.dataset / first["gt_path"]).resolve())})
        examples.append({"task": task, "name": first["name"], "tiles": tiles})
    return {
        "title": "All-in-one image restoration benchmark",
        "dataset": str(cfg.dataset),
        "split": cfg.split,
        "device": cfg.device,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(command if command is not None else sys.argv),
        "versions": _versions(),
        "tasks": list(cfg.tasks),
        "counts": {t: int(counts.get(t, 0)) for t in cfg.tasks},
        "methods": [{"name": m.name, "display": m.display_name, "weights_id": m.weights_id,
                     "uses_task_label": m.uses_task_label, "seed": m.seed,
                     "num_params": m.num_params, "daclip_params": m.daclip_params,
                     "seconds_per_megapixel": (None if isinstance(m, ResultFolder)
                                               else _seconds_per_megapixel(outputs, result.items, m)),
                     "settings": dict(m.settings or {}),
                     **_cost(result, m.name),
                     **({"result_only": True, "n": m.coverage["n"], "of": m.coverage["of"]}
                        if isinstance(m, ResultFolder) else {})}
                    for m in result.methods],
        # --results rows: what was scored, and every missing, extra, unreadable, wrong-size file.
        "result_folders": {m.name: {**m.coverage, "problems": m.problems()}
                           for m in result.methods if isinstance(m, ResultFolder)},
        "metrics": [{"name": n, "display": get_metric(n).display, "higher_is_better": get_metric(n).higher_is_better,
                     "fmt": get_metric(n).fmt, "description": get_metric(n).description, "kind": get_metric(n).kind}
                    for n in result.metrics],
        "unavailable": result.unavailable,
        # Methods that could not run here (no weights, ...): name -> reason.
        "skipped_methods": dict(result.skipped_methods),
        # Types a method has nothing for (classical on a type of the user's own): method -> type -> reason.
        **({"skipped_tasks": result.skipped_tasks} if result.skipped_tasks else {}),
        # Images a metric could not score (too small for its window): metric -> images + reasons.
        "skipped_images": _skipped_images(values),
        "run": dict(result.settings),
        "tables": tables,
        "images": _per_image_rows(values, result, list(cfg.tasks)),
        "degradation_eval": degradation_eval if degradation_eval is not None else _degradation_eval(cfg),
        "examples": examples,
    }, long


def _cost(result: RunResult, name: str) -> dict:
    """FLOPs at 256x256 (neural methods) and the peak memory of this run's work of the method."""
    run = result.settings or {}
    t = run.get("timings", {}).get(name, {})
    peak = t.get("peak_memory_bytes")
    return {"flops": run.get("flops", {}).get(name),
            "peak_memory_mb": None if peak is None else round(peak / 2**20, 1),
            "peak_memory_kind": t.get("peak_memory_kind")}


def _seconds_per_megapixel(outputs: pd.DataFrame, items: pd.DataFrame, method) -> float | None:
    """Restoration time per megapixel of this run's images (outputs.parquet ``seconds`` over the
    manifest's width x height); outputs restored by an earlier run keep the time they took then."""
    if outputs.empty or "seconds" not in outputs.columns:
        return None
    mine = outputs[(outputs["method"] == method.name) & (outputs["weights_id"] == method.weights_id)]
    merged = mine.merge(items[["id", "sha256", "width", "height"]], left_on=["id", "lq_sha256"],
                        right_on=["id", "sha256"])
    merged = merged[merged["seconds"].notna()]
    pixels = float((merged["width"].astype(float) * merged["height"].astype(float)).sum())
    if merged.empty or pixels <= 0:
        return None
    return float(merged["seconds"].sum()) / (pixels / 1e6)


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


def _per_image_rows(values: pd.DataFrame, result: RunResult, tasks: list[str]) -> list[dict]:
    """One row per (image, method) with every per-image metric and the restored image's path
    (relative to the run folder), for the report's drill-down; types in the dataset's order,
    then image name, then methods in run order."""
    if values.empty:
        return []
    wide = values.pivot_table(index=["type", "name", "method"], columns="metric", values="value", aggfunc="first")
    display = {m.name: m.display_name for m in result.methods}
    wid = {m.name: m.weights_id for m in result.methods}
    order = {m.name: i for i, m in enumerate(result.methods)}
    ids = {(r["type"], r["name"]): (r["id"], r["sha256"]) for r in result.items.to_dict("records")}
    outputs = {}
    for r in result.store.outputs.to_dict("records"):
        outputs[(r["method"], r["weights_id"], r["id"], r["lq_sha256"])] = r["output_path"]
    rows = []
    for (t, n, m), row in wide.iterrows():
        item = ids.get((t, n))
        out = outputs.get((m, wid.get(m), *item)) if item else None
        rows.append({"type": t, "name": n, "method": display.get(m, m), "method_name": m, "output": out,
                     "values": {k: _clean(v) for k, v in row.items()}})
    rank = {t: i for i, t in enumerate(tasks)}
    rows.sort(key=lambda r: (rank.get(r["type"], len(rank)), r["name"], order.get(r["method_name"], len(order))))
    return rows


def load_degradation_eval(path: Path) -> dict:
    """daclip.evaluate's degradation_eval.json (a file, or the folder ``--out`` wrote it in),
    checked: a malformed file is a UserError naming what is wrong."""
    from daclip.evaluate import RESULT_NAME, read_results

    path = Path(path)
    if path.is_dir():
        path = path / RESULT_NAME
    if not path.is_file():
        raise UserError(f"--degradation-eval: no such file: {path} (python -m daclip.evaluate --out DIR writes "
                        f"DIR/{RESULT_NAME})")
    return read_results(path)


def find_degradation_eval(out: Path, dataset: Path) -> dict | None:
    """DA-CLIP's degradation classification results (python -m daclip.evaluate) in the run folder
    or the dataset root, when there are some."""
    for path in (Path(out) / "degradation_eval.json", Path(dataset) / "degradation_eval.json"):
        if path.is_file():
            return load_degradation_eval(path)
    return None


def _degradation_eval(cfg: RunConfig) -> dict | None:
    return find_degradation_eval(cfg.out, cfg.dataset)


def write_summary(out_dir, summary: dict, long: pd.DataFrame) -> None:
    from .export import write_exports

    atomic_write_text(out_dir / "summary.json", json.dumps(encode_non_finite(summary), indent=2, allow_nan=False))
    write_exports(out_dir, summary)
    buf = io.BytesIO()
    long.to_parquet(buf, index=False)
    atomic_write_bytes(out_dir / "per_task.parquet", buf.getvalue())
