"""Tables from per-image values: mean per (method, type), and the average over types.

The average column is the mean of the per-type means (each type counts once, whatever its
number of images), as in the paper's Table 3.
"""

from __future__ import annotations

import math

import pandas as pd

AVERAGE = "average"


def select_values(values: pd.DataFrame, items: pd.DataFrame, methods) -> pd.DataFrame:
    """Values of this run: the current weights of each method and the selected images only."""
    current = {(m.name, m.weights_id) for m in methods}
    pairs = pd.Series([(m, w) in current for m, w in zip(values["method"], values["weights_id"])],
                      index=values.index, dtype=bool)
    keep = values["id"].isin(set(items["id"])) & pairs
    return values[keep]


def per_task(values: pd.DataFrame) -> pd.DataFrame:
    """Long table: method, type, metric, value (mean), n."""
    g = values.groupby(["method", "type", "metric"], sort=False)["value"]
    return g.agg(value="mean", n="count").reset_index()


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
