"""Tables from per-image values: mean per (method, type), and the average over types.

The average column is the mean of the per-type means (each type counts once, whatever its
number of images), as in the paper's Table 3.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd

AVERAGE = "average"


def set_hash(group: pd.DataFrame) -> str:
    """Identifies the exact image set a FID value was computed on (ids, LQ and GT hashes)."""
    keys = group["id"] + ":" + group["sha256"] + ":" + group["gt_sha256"]
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def select_values(values: pd.DataFrame, items: pd.DataFrame, methods) -> pd.DataFrame:
    """Values of this run: the current weights of each method and the selected images only."""
    current = {(m.name, m.weights_id) for m in methods}
    pairs = pd.Series([(m, w) in current for m, w in zip(values["method"], values["weights_id"])],
                      index=values.index, dtype=bool)
    # Only values of the files as they are now (the manifest's digests): never a stale score.
    current_files = set(zip(items["id"], items["sha256"], items["gt_sha256"]))
    files = pd.Series([k in current_files for k in zip(values["id"], values["lq_sha256"], values["gt_sha256"])],
                      index=values.index, dtype=bool)
    return values[pairs & files]


def select_sets(sets: pd.DataFrame, items: pd.DataFrame, methods, split: str) -> pd.DataFrame:
    """Per-type set values (FID, KID) of this run's weights, computed on exactly these images."""
    hashes = {t: set_hash(g) for t, g in items.groupby("type", sort=False)}
    current = {(m.name, m.weights_id) for m in methods}
    keep = [(m, w) in current and hashes.get(t) == h and s == split
            for m, w, t, h, s in zip(sets["method"], sets["weights_id"], sets["type"], sets["ids_hash"], sets["split"])]
    return sets[pd.Series(keep, index=sets.index, dtype=bool)]


def per_task(values: pd.DataFrame, sets: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: method, type, metric, value, n (image metrics: mean over images)."""
    g = values.groupby(["method", "type", "metric"], sort=False)["value"]
    long = g.agg(value="mean", n="count").reset_index()
    if sets is not None and not sets.empty:
        long = pd.concat([long, sets[["method", "type", "metric", "value", "n"]]], ignore_index=True)
    return long


def metric_table(long: pd.DataFrame, metric: str, methods: list[str], tasks: list[str]) -> pd.DataFrame:
    """Rows = methods (in run order), columns = tasks (canonical order) + average."""
    sub = long[long["metric"] == metric]
    table = sub.pivot(index="method", columns="type", values="value").reindex(index=methods, columns=tasks)
    table[AVERAGE] = table[tasks].mean(axis=1, skipna=False)
    return table


def best_in_column(table: pd.DataFrame, higher_is_better: bool) -> dict[str, set[str]]:
    """Method names holding the best value in each column (ties all count)."""
    best: dict[str, set[str]] = {}
    for col in table.columns:
        vals = table[col].dropna()
        vals = vals[[not (isinstance(v, float) and math.isnan(v)) for v in vals]]
        if vals.empty:
            best[col] = set()
            continue
        target = vals.max() if higher_is_better else vals.min()
        best[col] = set(vals.index[vals == target])
    return best
