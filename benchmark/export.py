"""Markdown and LaTeX tables from a run summary (best in bold, second underlined).

``overview``: the paper's Table 3 layout (rows = methods, columns = the average of each
metric over the types); ``per_task``: one table per metric, columns = types + average.
"""

from __future__ import annotations

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


def _grid(summary: dict, overview: bool):
    for title, cols in _columns(summary, overview):
        rows = []
        for method in summary["methods"]:
            cells = []
            for _, metric, key in cols:
                table = summary["tables"][metric["name"]]
                marks = rank_marks({m: table.get(m, {}).get(key) for m in table}, metric["higher_is_better"])
                cells.append((_cell(table.get(method["name"], {}).get(key), metric["fmt"]), marks.get(method["name"], "")))
            rows.append((method["display"], cells))
        yield title, [c[0] for c in cols], rows


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


def write_exports(run_dir: Path, summary: dict) -> list[Path]:
    paths = []
    for name, fn in (("tables.md", to_markdown), ("tables.tex", to_latex)):
        text = fn(summary, overview=True) + "\n" + fn(summary, overview=False)
        path = Path(run_dir) / name
        atomic_write_text(path, text)
        paths.append(path)
    return paths
