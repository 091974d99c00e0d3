"""The numbers reported in the DA-CLIP paper (reports/paper.yaml) and their comparison with a run.

The paper's values are data, never measurements: the report marks each one as reported. They
stand beside a run's own numbers, with the difference, only when the run is on the paper's
ten-task test set, recognised by its image counts: all ten types, each with exactly the
#Test count of the paper's Table 1 (what ``builders.build --all`` builds as the val split).
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import yaml

from builders.tasks import DEGRADATIONS, table1


@functools.lru_cache(maxsize=1)
def paper_data() -> dict:
    return yaml.safe_load(resources.files("reports").joinpath("paper.yaml").read_text(encoding="utf-8"))


def match_test_set(summary: dict) -> tuple[bool, str]:
    """(is the run on the ten-task test set, why or why not) from the run's per-type counts."""
    want = table1()["test"]
    counts = summary.get("counts") or {}
    tasks = list(summary.get("tasks") or [])
    if set(tasks) != set(DEGRADATIONS):
        missing = [t for t in DEGRADATIONS if t not in tasks]
        return False, f"the run covers {len(tasks)} of the ten types (missing {', '.join(missing)})"
    off = [f"{t} {counts.get(t, 0)} vs {want[t]}" for t in DEGRADATIONS if counts.get(t, 0) != want[t]]
    if off:
        more = f" (+{len(off) - 3} more)" if len(off) > 3 else ""
        return False, "its images per type differ from the paper's test counts: " + ", ".join(off[:3]) + more
    return True, "all ten types with the paper's test counts (Table 1)"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def comparison(summary: dict) -> dict:
    """The paper's tables for the report: per row the reported values and, on the test set, this
    run's values of the row's method and the difference (run - paper)."""
    data = paper_data()
    on_test_set, reason = match_test_set(summary)
    metrics = {m["name"]: m for m in summary.get("metrics", [])}
    ran = {m["name"]: m for m in summary.get("methods", [])}
    defaults = {"psnr": (".2f", True), "ssim": (".3f", True), "lpips": (".3f", False), "fid": (".2f", False)}
    columns = []
    for name in data["metrics"]:
        fmt, higher = defaults[name]
        m = metrics.get(name, {})
        columns.append({"name": name, "display": m.get("display", name.upper()), "fmt": m.get("fmt", fmt),
                        "higher_is_better": m.get("higher_is_better", higher), "measured": name in metrics})
    tables = []
    for table in data["tables"]:
        scope = table["scope"]
        rows = []
        for row in table["rows"]:
            method = row.get("method")
            cells = []
            for col in columns:
                reported = row.get(col["name"])
                ours = None
                if on_test_set and method in ran and col["measured"]:
                    value = summary["tables"].get(col["name"], {}).get(method, {}).get(scope)
                    ours = value if _finite(value) else None
                diff = ours - reported if ours is not None and reported is not None else None
                better = None if diff is None or diff == 0 else (diff > 0) == col["higher_is_better"]
                cells.append({"reported": reported, "ours": ours, "diff": diff, "better": better})
            rows.append({"name": row["name"], "method": method, "ran": method in ran,
                         "display": ran[method]["display"] if method in ran else None, "cells": cells})
        tables.append({"id": table["id"], "title": table["title"], "scope": scope, "rows": rows,
                       "specific": scope != "average"})
    return {"paper": data["paper"], "on_test_set": on_test_set, "reason": reason, "columns": columns,
            "tables": tables}
