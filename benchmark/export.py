"""Markdown, LaTeX and CSV tables from a run summary (best in bold, second underlined).

``overview``: the paper's Table 3 layout (rows = methods, columns = the average of each
metric over the types); ``per_task``: one table per metric, columns = types + average.
``tables.csv`` holds every value of both in long form (one row per method, metric and type
or "average", with the images behind it), plus each method's cost (parameters, FLOPs at
256x256, seconds per megapixel, peak memory; benchmark.cost) and, for a result-only row, the
images it scored, for spreadsheets and plotting scripts. The overview shows the cost too.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from builders.io import atomic_write_text

from reports.html import rank_marks


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return format(value, fmt)


def _columns(summary: dict, overview: bool):
    """Yield (title, [(column label, metric, column key)]) for every table."""
    metrics = summary["metrics"]
    if overview:
        yield "Average over types", [(f"{m['display']} {'↑' if m['higher_is_better'] else '↓'}", m, "average")
                                     for m in metrics]
    else:
        for m in metrics:
            yield (f"{m['display']} {'↑' if m['higher_is_better'] else '↓'}",
                   [(t, m, t) for t in summary["tasks"]] + [("Average", m, "average")])


COST_HEADER = ("Params (M)", "GFLOPs/call", "GFLOPs/image", "s/MP", "Peak mem (MB)")


def show_cost(summary: dict) -> bool:
    """Cost columns in the overview when a method has a network (a run of learning-free
    methods keeps its tables free of timings, which differ from run to run)."""
    return any(m.get("num_params") or m.get("flops") for m in summary["methods"])


def cost_values(m: dict) -> list:
    """Params (M), GFLOPs per network call and per image at 256x256, s/MP, peak memory (MB)."""
    f = m.get("flops") or {}
    g = lambda v: None if v is None else v / 1e9  # noqa: E731
    return [None if not m.get("num_params") else m["num_params"] / 1e6, g(f.get("flops_per_call")),
            g(f.get("flops_per_image")), m.get("seconds_per_megapixel"), m.get("peak_memory_mb")]


def _grid(summary: dict, overview: bool):
    cost = overview and show_cost(summary)
    for title, cols in _columns(summary, overview):
        rows = []
        for method in summary["methods"]:
            cells = []
            skipped = summary.get("skipped_tasks", {}).get(method["name"], {})
            for _, metric, key in cols:
                if key in skipped:
                    cells.append(("skipped", ""))
                    continue
                table = summary["tables"][metric["name"]]
                marks = rank_marks({m: table.get(m, {}).get(key) for m in table}, metric["higher_is_better"])
                cells.append((_cell(table.get(method["name"], {}).get(key), metric["fmt"]), marks.get(method["name"], "")))
            if cost:
                cells += [(_cell(v, ".3g"), "") for v in cost_values(method)]
            rows.append((method["display"], cells))
        yield title, [c[0] for c in cols] + (list(COST_HEADER) if cost else []), rows


def to_markdown(summary: dict, overview: bool = True) -> str:
    style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
    out = []
    for title, header, rows in _grid(summary, overview):
        out += [f"### {title}", "", "| Method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
        for name, cells in rows:
            out.append(f"| {name} | " + " | ".join(style[m].format(v) for v, m in cells) + " |")
        out.append("")
    return "\n".join(out)


def _tex_escape(text: str) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↑": r"$\uparrow$", "↓": r"$\downarrow$"}
    return "".join(repl.get(c, c) for c in text)


def to_latex(summary: dict, overview: bool = True) -> str:
    style = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}", "": "{}"}
    out = []
    for title, header, rows in _grid(summary, overview):
        out += [f"% {title}", r"\begin{tabular}{l" + "c" * len(header) + "}", r"\toprule",
                "Method & " + " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule"]
        for name, cells in rows:
            out.append(_tex_escape(name) + " & " + " & ".join(style[m].format(v) for v, m in cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


CSV_COLUMNS = ("method", "display", "metric", "type", "value", "n", "higher_is_better", "uses_task_label",
               "num_params", "daclip_params", "seconds_per_megapixel", "flops_per_call", "calls_per_image",
               "flops_per_image", "peak_memory_mb", "images_scored")


def to_csv(summary: dict) -> str:
    """Every table value in long form; the average row's n is the number of types."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    counts = summary.get("counts", {})
    for metric in summary["metrics"]:
        table = summary["tables"].get(metric["name"], {})
        for m in summary["methods"]:
            f = m.get("flops") or {}
            row = table.get(m["name"], {})
            for key in [*summary["tasks"], "average"]:
                v = row.get(key)
                n = len(summary["tasks"]) if key == "average" else counts.get(key, "")
                w.writerow([m["name"], m["display"], metric["name"], key, "" if v is None else repr(float(v)), n,
                            int(bool(metric["higher_is_better"])), int(bool(m.get("uses_task_label"))),
                            m.get("num_params") or "", m.get("daclip_params") or "",
                            "" if m.get("seconds_per_megapixel") is None else f"{m['seconds_per_megapixel']:.6g}",
                            *(_blank(f.get(k)) for k in ("flops_per_call", "calls_per_image", "flops_per_image")),
                            _blank(m.get("peak_memory_mb")), _blank(m.get("n"))])
    return buf.getvalue()


def _blank(v) -> str:
    return "" if v is None else str(v)


def write_exports(run_dir: Path, summary: dict) -> list[Path]:
    paths = []
    csv_path = Path(run_dir) / "tables.csv"
    atomic_write_text(csv_path, to_csv(summary))
    paths.append(csv_path)
    for name, fn in (("tables.md", to_markdown), ("tables.tex", to_latex)):
        text = fn(summary, overview=True) + "\n" + fn(summary, overview=False)
        path = Path(run_dir) / name
        atomic_write_text(path, text)
        paths.append(path)
    return paths
