"""Render a benchmark run (its summary.json) as a static HTML report with jinja2.

The page opens from disk with no server: images are copied next to it under assets/.
Autoescaping is on, so every string from the run (file names, method names, command line)
shows as text.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import quote

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
    env.filters["signed"] = _signed
    env.filters["params"] = _params
    env.filters["urlpath"] = lambda p: quote(str(p))
    return env


def _fmt(value, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return format(value, spec)


def _signed(value, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "–"
    return ("+" if value > 0 else "−" if value < 0 else "±") + format(abs(value), spec)


def _params(n) -> str:
    """Parameter count in millions (or thousands for tiny test networks)."""
    if not n:
        return "–"
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


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
        t, l, h, w = box
        # Where the zoom comes from, in percent of the crop (drawn over each crop as a rectangle).
        overlay = {"left": round(100 * (zx - l) / w, 3), "top": round(100 * (zy - t) / h, 3),
                   "width": round(100 * z / w, 3), "height": round(100 * z / h, 3)}
        out.append({"task": ex["task"], "name": ex["name"], "tiles": tiles,
                    "zoom_box": [zy - box[0], zx - box[1], z], "crop": box, "overlay": overlay})
    return out


def nice_axis(lo: float, hi: float, ticks: int = 6) -> tuple[float, float, list[float]]:
    """(axis bottom, axis top, tick values) around [lo, hi], ticks at round steps (1, 2, 2.5, 5
    x 10^k).

    The bottom is not forced to zero: it sits a little below the smallest value, on a multiple
    of half a step (never below zero when every value is positive), so the differences between
    methods stay visible. The bottom is always labelled.
    """
    span = hi - lo
    if span <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        span = max(abs(lo), abs(hi)) * 0.1 or 1.0
    lo_p, hi_p = lo - 0.08 * span, hi + 0.02 * span
    raw = (hi_p - lo_p) / max(1, ticks)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    half = step / 2
    bottom = math.floor(lo_p / half + 1e-9) * half
    if lo >= 0 > bottom:
        bottom = 0.0
    top = max(math.ceil(hi_p / step - 1e-9) * step, bottom + step)
    first = math.ceil(bottom / step - 1e-9)
    values = [bottom] + [k * step for k in range(first, int(round(top / step)) + 1) if k * step > bottom + 1e-6 * step]
    digits = max(0, 12 - math.floor(math.log10(step)))  # float noise off, far below the step
    return round(bottom, digits), round(top, digits), [round(v, digits) for v in values]


CHART_W, CHART_H = 1000, 230  # SVG user units; the chart is drawn as wide as the page
MARGIN = {"left": 58, "right": 8, "top": 12, "bottom": 44}


def _label_lines(text: str, width: float) -> list[str]:
    """A type name on one line, or split after its hyphen when the group is too narrow."""
    if len(text) * 6.2 <= width or "-" not in text:
        return [text]
    head, _, tail = text.partition("-")
    return [head + "-", tail]


def _bar_chart(summary: dict, metric: dict) -> dict:
    """Geometry of a grouped bar chart (groups = types + average, bars = methods) for an inline
    SVG that scales to the page width; the value axis starts near the data, not at zero."""
    table = summary["tables"].get(metric["name"], {})
    methods = summary["methods"]
    groups = summary["tasks"] + ["average"]

    def value(m, g):
        v = table.get(m["name"], {}).get(g)
        return v if isinstance(v, (int, float)) and math.isfinite(v) else None

    vals = [v for m in methods for g in groups if (v := value(m, g)) is not None]
    if not vals:
        return {}
    bottom, top, tick_values = nice_axis(min(vals), max(vals))
    plot_w = CHART_W - MARGIN["left"] - MARGIN["right"]
    plot_h = CHART_H - MARGIN["top"] - MARGIN["bottom"]
    group_w = plot_w / len(groups)
    inner = group_w * 0.8
    bar_w = inner / max(1, len(methods))
    y0 = MARGIN["top"] + plot_h

    def y(v: float) -> float:
        return MARGIN["top"] + plot_h * (1 - (v - bottom) / (top - bottom))

    bars = []
    for gi, g in enumerate(groups):
        x0 = MARGIN["left"] + gi * group_w + (group_w - inner) / 2
        for mi, m in enumerate(methods):
            v = value(m, g)
            if v is None:
                continue
            yy = max(MARGIN["top"], min(y0, y(v)))
            bars.append({"x": round(x0 + mi * bar_w, 2), "y": round(yy, 2), "w": round(max(bar_w - 1.5, 1), 2),
                         "h": round(max(y0 - yy, 0.8), 2), "colour": PALETTE[mi % len(PALETTE)],
                         "title": f"{m['display']} · {g}: {_fmt(v, metric['fmt'])}"})
    step = tick_values[-1] - tick_values[-2] if len(tick_values) > 1 else top - bottom
    if step < 1e-4:
        tick_fmt = ".3g"
    else:
        tick_fmt = f".{max(next((d for d in range(6) if abs(round(v, d) - v) < 1e-6 * step), 5) for v in tick_values)}f"
    ticks = [{"y": round(y(v), 2), "text": format(v, tick_fmt)} for v in tick_values]
    labels = [{"x": round(MARGIN["left"] + (gi + 0.5) * group_w, 2), "lines": _label_lines(g, group_w - 4)}
              for gi, g in enumerate(groups)]
    divider = round(MARGIN["left"] + (len(groups) - 1) * group_w, 2)
    return {"bars": bars, "labels": labels, "ticks": ticks, "width": CHART_W, "height": CHART_H,
            "left": MARGIN["left"], "right": CHART_W - MARGIN["right"], "top": MARGIN["top"], "base": round(y0, 2),
            "label_y": round(y0 + 16, 2), "divider": divider, "bottom_value": format(bottom, tick_fmt),
            "starts_at_zero": bottom == 0,
            "legend": [{"name": m["display"], "colour": PALETTE[i % len(PALETTE)]} for i, m in enumerate(methods)]}


CLASSIFIERS = {"clip-zero-shot": "CLIP (zero-shot)", "daclip": "DA-CLIP"}  # daclip.evaluate's model names


def _confusion(ev: dict | None) -> list[dict]:
    """Per model: labels, accuracy per type, and rows of (count, shade) for the confusion matrix."""
    out = []
    for model, res in (ev or {}).items() if isinstance(ev, dict) else ():
        if not isinstance(res, dict) or "confusion" not in res or "labels" not in res:
            continue
        rows = []
        for label, counts in zip(res["labels"], res["confusion"]):
            total = max(sum(counts), 1)
            rows.append({"label": label, "cells": [{"n": c, "shade": round(c / total, 3)} for c in counts]})
        out.append({"model": model, "display": CLASSIFIERS.get(model, model), "labels": res["labels"], "rows": rows,
                    "overall": res.get("overall"),
                    "accuracy": res.get("accuracy", {})})
    return out


def _image_rows(summary: dict) -> list[dict]:
    """Per-image rows in the run's type order (the dataset's; older summaries were sorted by name)."""
    rank = {t: i for i, t in enumerate(summary.get("tasks", []))}
    order = {m["display"]: i for i, m in enumerate(summary.get("methods", []))}
    return sorted(summary.get("images", []),
                  key=lambda r: (rank.get(r.get("type"), len(rank)), r.get("name", ""), order.get(r.get("method"), 0)))


def render_report(run_dir: str | Path, summary: dict | None = None) -> Path:
    """Write <run_dir>/report/index.html from the run's summary; returns the page's path."""
    run_dir = Path(run_dir)
    if summary is None:
        from .run_folder import read_summary  # inf/NaN come back as floats

        summary = read_summary(run_dir / "summary.json")
    report = run_dir / "report"
    assets = report / "assets"
    tables = []
    for metric in summary["metrics"]:
        rows = summary["tables"].get(metric["name"], {})
        columns = summary["tasks"] + ["average"]
        marks = {c: rank_marks({m: rows.get(m, {}).get(c) for m in rows}, metric["higher_is_better"]) for c in columns}
        tables.append({"metric": metric, "columns": columns, "rows": rows, "marks": marks})
    overview = [{"metric": t["metric"], "marks": t["marks"]["average"]} for t in tables]
    from .paper import comparison
    from .protocol import protocol_tables

    methods = summary.get("methods", [])
    html = _env().get_template("report.html.j2").render(
        s=summary, tables=tables, overview=overview, examples=_example_assets(summary, run_dir, assets),
        charts={m["name"]: _bar_chart(summary, m) for m in summary["metrics"]},
        confusion=_confusion(summary.get("degradation_eval")),
        image_metrics=[m for m in summary["metrics"] if m.get("kind", "image") == "image"],
        paper=comparison(summary), images=_image_rows(summary),
        protocol=protocol_tables(summary) if summary.get("protocol") else None,
        show_cost=any(m.get("num_params") or m.get("seconds_per_megapixel") for m in methods),
    )
    path = report / "index.html"
    atomic_write_text(path, html)
    return path
