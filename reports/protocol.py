"""The per-protocol report: for each metric convention of a ``benchmark.run --protocol`` run,
one table of PSNR / SSIM per task and on average, with the numbers reported under that same
convention (italic rows, each with its source), this run's methods, and the difference of a
method from its reported row when the run covers the protocol's full test set. Reported
numbers of other conventions are listed apart, never compared.

Reads only summary.json's ``protocol`` and ``tables`` entries (written by benchmark.run).
"""

from __future__ import annotations

import math
from pathlib import Path

from builders.io import atomic_write_text


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _ssim_text(v: float, reported: bool) -> str:
    # Reported SSIM keeps the digits its source gave (3, or OneRestore's 4); this run's has 4.
    return f"{v:.3f}" if reported and round(v, 3) == v else f"{v:.4f}"


def _pair(psnr, ssim, reported: bool = False) -> str:
    p = "-" if psnr is None else ("inf" if math.isinf(psnr) else f"{psnr:.2f}")
    s = "-" if ssim is None else _ssim_text(ssim, reported)
    return f"{p} / {s}"


def _delta(d_psnr, d_ssim) -> str:
    p = "-" if d_psnr is None else f"{d_psnr:+.2f}"
    s = "-" if d_ssim is None else f"{d_ssim:+.4f}"
    return f"{p} / {s}"


def protocol_tables(summary: dict) -> list[dict]:
    """One table per convention of the run: columns (task display names, then Average) and rows
    {label, kind: reported|run|delta, source, cells}."""
    info = summary["protocol"]
    tasks = [t for t in info["tasks"] if t["name"] in summary["tasks"]]
    keys = [t["name"] for t in tasks] + ["average"]
    display = {m["name"]: m["display"] for m in summary["methods"]}
    out = []
    for conv in info["conventions"]:
        psnr_t, ssim_t = summary["tables"].get(conv["psnr"], {}), summary["tables"].get(conv["ssim"], {})
        rows = []
        reported = [r for r in info["reported"] if r["convention"] == conv["name"]]
        for r in reported:
            vals = r["values"]
            rows.append({"label": r["method"], "kind": "reported", "source": r["source"],
                         "cells": [_pair(vals.get("psnr", {}).get(k), vals.get("ssim", {}).get(k), True) for k in keys]})
        for m in summary["methods"]:
            name = m["name"]
            run = [(_num(psnr_t.get(name, {}).get(k)), _num(ssim_t.get(name, {}).get(k))) for k in keys]
            rows.append({"label": display[name], "kind": "run", "source": "this run", "cells": [_pair(*c) for c in run]})
            if not info["full"]:
                continue
            for r in (r for r in reported if r.get("toolkit") == name):
                vals = r["values"]
                cells = []
                for k, (p, s) in zip(keys, run):
                    rp, rs = vals.get("psnr", {}).get(k), vals.get("ssim", {}).get(k)
                    cells.append(_delta(None if p is None or rp is None else p - rp,
                                        None if s is None or rs is None else s - rs))
                rows.append({"label": f"Δ {display[name]} − {r['method']}", "kind": "delta",
                             "source": "this run − reported", "cells": cells})
        out.append({"convention": conv, "columns": [t["display"] for t in tasks] + ["Average"], "rows": rows})
    return out


def other_reported(summary: dict) -> list[dict]:
    """Reported rows whose convention this run did not score (listed, not compared)."""
    info = summary["protocol"]
    scored = {c["name"] for c in info["conventions"]}
    return [r for r in info["reported"] if r["convention"] not in scored]


def protocol_markdown(summary: dict) -> str:
    info = summary["protocol"]
    counts = ", ".join(f"{t['display']} {t['run_count']}/{t['count']}" for t in info["tasks"])
    lines = [f"# {info['title']}", "",
             f"- protocol: `{info['name']}`; images (this run / protocol): {counts}"
             + ("" if info["full"] else " (not the full test set: no differences are shown)"),
             f"- noise: {', '.join(info['noise']) or 'none'}; crop before inference: "
             + (f"centre, to a multiple of {info['crop']}" if info["crop"] else "none (full images)"),
             "- conventions: " + "; ".join(f"`{c['name']}` ({c['display']}{', the protocol’s own' if c['own'] else ''})"
                                           for c in info["conventions"]),
             f"- average: {info['average']}",
             f"- reproduce: `{info['build_command']}` then `{info['command']}`"]
    if info.get("reported_file"):
        lines.append(f"- reported numbers: {info['reported_file']} (shown in the main report)")
    lines.append("")
    for t in protocol_tables(summary):
        c = t["convention"]
        lines += [f"## PSNR / SSIM, {c['display']} convention (`{c['name']}`)", "",
                  (f"{c['reference']}; upstream scores: {c['output']}. Reported rows (italic) are compared with "
                   "this run only under this convention."), "",
                  "| Method | " + " | ".join(t["columns"]) + " | Source |", "|---" * (len(t["columns"]) + 2) + "|"]
        for r in t["rows"]:
            label = f"*{r['label']}*" if r["kind"] == "reported" else r["label"]
            lines.append(f"| {label} | " + " | ".join(r["cells"]) + f" | {r['source']} |")
        lines.append("")
    rest = other_reported(summary)
    if rest:
        lines += ["## Reported under conventions this run did not score", ""]
        lines += [f"- {r['method']} ({r['convention']}; {r['source']}): add `--conventions {r['convention']}` to "
                  "compare" for r in rest]
        lines.append("")
    return "\n".join(lines)


def write_protocol_report(out_dir, summary: dict) -> Path:
    path = Path(out_dir) / "protocol.md"
    atomic_write_text(path, protocol_markdown(summary))
    return path
