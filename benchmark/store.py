"""Results store of a benchmark run: restored-output index and per-image metric values.

Both tables are parquet files in the run folder, rewritten atomically, so an interrupted run
keeps everything that was finished and a re-run computes only what is missing:

- ``outputs.parquet``: method, weights_id, id, lq_sha256, output_path, output_sha256, seconds
- ``per_image.parquet``: method, weights_id, id, type, split, name, metric, value (long format)
- ``per_set.parquet``: method, weights_id, type, split, metric, value, n, ids_hash (FID, KID)

Under torchrun every rank writes its own ``*.rank<R>.parquet`` files; rank 0 merges them.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from builders.io import atomic_write_bytes

OUTPUT_COLUMNS = ("method", "weights_id", "id", "lq_sha256", "output_path", "output_sha256", "seconds")
VALUE_COLUMNS = ("method", "weights_id", "id", "type", "split", "name", "metric", "value")
OUTPUT_KEY = ["method", "weights_id", "id", "lq_sha256"]
VALUE_KEY = ["method", "weights_id", "id", "metric"]
SET_COLUMNS = ("method", "weights_id", "type", "split", "metric", "value", "n", "ids_hash")
SET_KEY = ["method", "weights_id", "type", "split", "metric"]
TABLES = (("outputs", OUTPUT_COLUMNS, OUTPUT_KEY), ("per_image", VALUE_COLUMNS, VALUE_KEY), ("per_set", SET_COLUMNS, SET_KEY))


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if path.exists():
        return pd.read_parquet(path)
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("value", "seconds") else "int64" if c == "n" else "object")
                         for c in columns})


def _write(path: Path, df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Write ``df`` with one row per key (the last one wins); returns what was written."""
    df = df.drop_duplicates(subset=key, keep="last").sort_values(key, kind="stable").reset_index(drop=True)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    return df


def merge_rank_files(run_dir: str | Path) -> None:
    """Fold every rank's part files into the main tables (rank 0, after a barrier)."""
    run_dir = Path(run_dir)
    for name, columns, key in TABLES:
        parts = sorted(run_dir.glob(f"{name}.rank*.parquet"))
        if not parts:
            continue
        main = run_dir / f"{name}.parquet"
        frames = [_read(main, columns)] + [pd.read_parquet(p) for p in parts]
        _write(main, pd.concat([f for f in frames if not f.empty], ignore_index=True), key)
        for p in parts:
            p.unlink()


class ResultStore:
    def __init__(self, run_dir: str | Path, rank: int | None = None):
        self.dir = Path(run_dir)
        suffix = f".rank{rank}" if rank is not None else ""
        self.outputs_path = self.dir / f"outputs{suffix}.parquet"
        self.values_path = self.dir / f"per_image{suffix}.parquet"
        self.sets_path = self.dir / "per_set.parquet"
        # A rank reads the merged tables (what earlier runs finished) plus its own part files.
        self.outputs = _read(self.dir / "outputs.parquet", OUTPUT_COLUMNS)
        self.values = _read(self.dir / "per_image.parquet", VALUE_COLUMNS)
        if suffix:
            self.outputs = _concat(self.outputs, _read(self.outputs_path, OUTPUT_COLUMNS))
            self.values = _concat(self.values, _read(self.values_path, VALUE_COLUMNS))
        self.sets = _read(self.sets_path, SET_COLUMNS)
        self._new_outputs: list[dict] = []
        self._new_values: list[dict] = []
        self._new_sets: list[dict] = []
        self._index()

    def _index(self) -> None:
        self._out_idx = {tuple(r[k] for k in OUTPUT_KEY): r for r in self.outputs.to_dict("records")}
        self._val_idx = {tuple(r[k] for k in VALUE_KEY) for r in self.values.to_dict("records")}

    # -- queries
    def output(self, method: str, weights_id: str, item_id: str, lq_sha256: str) -> dict | None:
        return self._out_idx.get((method, weights_id, item_id, lq_sha256))

    def has_value(self, method: str, weights_id: str, item_id: str, metric: str) -> bool:
        return (method, weights_id, item_id, metric) in self._val_idx

    def set_value(self, method: str, weights_id: str, task: str, split: str, metric: str, ids_hash: str) -> float | None:
        hit = self.sets[(self.sets["method"] == method) & (self.sets["weights_id"] == weights_id)
                        & (self.sets["type"] == task) & (self.sets["split"] == split) & (self.sets["metric"] == metric)
                        & (self.sets["ids_hash"] == ids_hash)]
        return None if hit.empty else float(hit.iloc[-1]["value"])

    def add_set_value(self, **row) -> None:
        self._new_sets.append(row)

    # -- updates (kept in memory until flush)
    def add_output(self, **row) -> None:
        self._new_outputs.append(row)
        self._out_idx[tuple(row[k] for k in OUTPUT_KEY)] = row

    def add_value(self, **row) -> None:
        self._new_values.append(row)
        self._val_idx.add(tuple(row[k] for k in VALUE_KEY))

    def flush(self) -> None:
        if self._new_outputs:
            # Keep the de-duplicated table in memory too: a recomputed value replaces the old one.
            self.outputs = _write(self.outputs_path, _concat(self.outputs, pd.DataFrame(self._new_outputs)), OUTPUT_KEY)
            self._new_outputs = []
        if self._new_values:
            self.values = _write(self.values_path, _concat(self.values, pd.DataFrame(self._new_values)), VALUE_KEY)
            self._new_values = []
        if self._new_sets:
            self.sets = _write(self.sets_path, _concat(self.sets, pd.DataFrame(self._new_sets)), SET_KEY)
            self._new_sets = []


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if b.empty:
        return a
    return b.copy() if a.empty else pd.concat([a, b], ignore_index=True)
