"""Render a benchmark run (its summary.json) as a static HTML report with jinja2.

The page opens from disk with no server: images are copied next to it under assets/.
Autoescaping is on, so every string from the run (file names, method names, command line)
shows as text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image

from builders.io import atomic_write_text, save_image

TILE = 192  # pixels of the longest side of an example crop
ZOOM = 40  # side of the zoomed region, shown 4x under each crop
PALETTE = ("#8c959f", "#0969da", "#1a7f37", "#bf3989", "#9a6700", "#8250df", "#cf222e", "#1b7c83", "#6e7781", "#953800")


def _env() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    return env


def _fmt(value, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return format(value, spec)


def rank_marks(row_values: dict[str, float | None], higher_is_better: bool) -> dict[str, str]:
    """'best' / 'second' per method for one column (ties share the mark)."""
    vals = sorted({v for v in row_values.values() if v is not None and not math.isnan(v)}, reverse=higher_is_better)
    marks = {}
    for m, v in row_values.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if v == vals[0]:
            marks[m] = "best"
        elif len(row_values) > 2 and len(vals) > 1 and v == vals[1]:  # "second" means little with two rows
            marks[m] = "second"
    return marks


def _crop_box(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    ch, cw = min(h, TILE), min(w, TILE)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _zoom_box(lq: np.ndarray, gt: np.ndarray, box) -> tuple[int, int, int]:
    """The ZOOM x ZOOM window inside the crop where the degradation is strongest."""
    t, l, h, w = box
    z = min(ZOOM, h, w)
    diff = np.abs(lq[t:t + h, l:l + w].astype(float) - gt[t:t + h, l:l + w]).sum(2)
    # window sums via an integral image
    ii = np.pad(diff.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[z:, z:] - ii[:-z, z:] - ii[z:, :-z] + ii[:-z, :-z]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return t + int(y), l + int(x), z


def _example_assets(summary: dict, run_dir: Path, assets: Path) -> list[dict]:
    out = []
    for i, ex in enumerate(summary.get("examples", [])):
        arrays = []
        for tile in ex["tiles"]:
            src = Path(tile["path"])
            src = src if src.is_absolute() else run_dir / src
            arr = None
            if src.exists():
                with Image.open(src) as im:
                    arr = np.asarray(im.convert("RGB"))
            arrays.append(arr)
        present = [a for a in arrays if a is not None]
        if not present:
            continue
        box = _crop_box(present[0].shape)
        lq, gt = arrays[0], arrays[-1]
        zy, zx, z = _zoom_box(lq, gt, box) if lq is not None and gt is not None and lq.shape == gt.shape else (box[0], box[1], min(ZOOM, box[2], box[3]))
        tiles = []
        for j, (tile, arr) in enumerate(zip(ex["tiles"], arrays)):
            if arr is None:
                tiles.append({"label": tile["label"], "src": None, "zoom": None})
                continue
            t, l, h, w = box
            name = f"ex{i:02d}_{j:02d}"
            save_image(assets / f"{name}.png", np.ascontiguousarray(arr[t:t + h, l:l + w]))
            patch = arr[zy:zy + z, zx:zx + z]
            save_image(assets / f"{name}_zoom.png", np.ascontiguousarray(patch.repeat(4, 0).repeat(4, 1)))
            tiles.append({"label": tile["label"], "src": f"assets/{name}.png", "zoom": f"assets/{name}_zoom.png"})
        out.append({"task": ex["task"], "name": ex["name"], "tiles": tiles,
                    "zoom_box": [zy - box[0], zx - box[1], z], "crop": box})
    return out


def _bar_chart(summary: dict, metric: dict) -> dict:
    """Geometry of a grouped bar chart (groups = types, bars = methods) for an inline SVG."""
    table = summary["tables"].get(metric["name"], {})
    methods = summary["methods"]
    vals = [v for m in methods for v in table.get(m["name"], {}).values()
            if v is not None and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))]
    if not vals:
        return {}
    lo = min(0.0, min(vals))
    hi = max(vals) if max(vals) > lo else lo + 1
    groups = summary["tasks"] + ["average"]
    bar_w, gap, height = 9, 14, 160
    group_w = bar_w * len(methods) + gap
    bars = []
    for gi, g in enumerate(groups):
        for mi, m in enumerate(methods):
            v = table.get(m["name"], {}).get(g)
            if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
                continue
            h = (v - lo) / (hi - lo) * height
            bars.append({"x": 40 + gi * group_w + mi * bar_w, "y": 10 + height - h, "h": max(h, 0.5), "w": bar_w - 1,
                         "colour": PALETTE[mi % len(PALETTE)], "title": f"{m['display']} · {g}: {_fmt(v, metric['fmt'])}"})
    labels = [{"x": 40 + gi * group_w + bar_w * len(methods) / 2, "text": g} for gi, g in enumerate(groups)]
    return {"bars": bars, "labels": labels, "width": 40 + len(groups) * group_w + 10, "height": height,
            "top": _fmt(hi, metric["fmt"]), "bottom": _fmt(lo, metric["fmt"]),
            "legend": [{"name": m["display"], "colour": PALETTE[i % len(PALETTE)]} for i, m in enumerate(methods)]}


def _confusion(ev: dict | None) -> list[dict]:
    """Per model: labels, accuracy per type, and rows of (count, shade) for the confusion matrix."""
    out = []
    for model, res in (ev or {}).items():
        if not isinstance(res, dict) or "confusion" not in res:
            continue
        rows = []
        for label, counts in zip(res["labels"], res["confusion"]):
            total = max(sum(counts), 1)
            rows.append({"label": label, "cells": [{"n": c, "shade": round(c / total, 3)} for c in counts]})
        out.append({"model": model, "labels": res["labels"], "rows": rows, "overall": res.get("overall"),
                    "accuracy": res.get("accuracy", {})})
    return out


def render_report(run_dir: str | Path, summary: dict | None = None) -> Path:
    """Write <run_dir>/report/index.html from the run's summary; returns the page's path."""
    run_dir = Path(run_dir)
    if summary is None:
        summary = json.loads((run_dir / "summary.json").read_text())
    report = run_dir / "report"
    assets = report / "assets"
    tables = []
    for metric in summary["metrics"]:
        rows = summary["tables"].get(metric["name"], {})
        columns = summary["tasks"] + ["average"]
        marks = {c: rank_marks({m: rows.get(m, {}).get(c) for m in rows}, metric["higher_is_better"]) for c in columns}
        tables.append({"metric": metric, "columns": columns, "rows": rows, "marks": marks})
    overview = [{"metric": t["metric"], "marks": t["marks"]["average"]} for t in tables]
    html = _env().get_template("report.html.j2").render(
        s=summary, tables=tables, overview=overview, examples=_example_assets(summary, run_dir, assets),
        charts={m["name"]: _bar_chart(summary, m) for m in summary["metrics"]},
        confusion=_confusion(summary.get("degradation_eval")),
        image_metrics=[m for m in summary["metrics"] if m.get("kind", "image") == "image"],
    )
    path = report / "index.html"
    atomic_write_text(path, html)
    return path
