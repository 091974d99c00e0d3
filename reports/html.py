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


def _example_assets(summary: dict, run_dir: Path, assets: Path) -> list[dict]:
    out = []
    for i, ex in enumerate(summary.get("examples", [])):
        tiles = []
        box = None
        for j, tile in enumerate(ex["tiles"]):
            src = Path(tile["path"])
            src = src if src.is_absolute() else run_dir / src
            if not src.exists():
                tiles.append({"label": tile["label"], "src": None})
                continue
            with Image.open(src) as im:
                arr = np.asarray(im.convert("RGB"))
            box = box or _crop_box(arr.shape)
            t, l, h, w = box
            name = f"ex{i:02d}_{j:02d}.png"
            save_image(assets / name, np.ascontiguousarray(arr[t:t + h, l:l + w]))
            tiles.append({"label": tile["label"], "src": f"assets/{name}"})
        out.append({"task": ex["task"], "name": ex["name"], "tiles": tiles})
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
    html = _env().get_template("report.html.j2").render(
        s=summary, tables=tables, examples=_example_assets(summary, run_dir, assets),
        methods={m["name"]: m for m in summary["methods"]},
    )
    path = report / "index.html"
    atomic_write_text(path, html)
    return path
