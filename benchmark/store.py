"""Results store of a benchmark run: restored-output index and per-image metric values.

The tables are parquet files in the run folder, rewritten atomically (temp file + rename) at
every flush, so a run killed at any instant leaves the previous complete table and a re-run
computes only what is missing:

- ``outputs.parquet``: method, weights_id, id, lq_sha256, output_path, output_sha256, seconds
  (per image: the time of the restoring call divided by its number of images), batch (images
  in that call)
- ``per_image.parquet``: method, weights_id, id, lq_sha256, gt_sha256, type, split, name, metric, value, skipped
  (long format; ``skipped`` is the reason when the metric could not score the image, whose
  value is then NaN, and "" otherwise). inf (a perfect PSNR) and NaN are stored as floats.
- ``per_set.parquet``: method, weights_id, type, split, metric, value, n, ids_hash (FID, KID)

Under torchrun every rank writes its own ``*.rank<R>.parquet`` part files holding only the
rows that rank computed (the merged tables it read are not repeated); rank 0 merges them.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from builders.io import atomic_write_bytes

OUTPUT_COLUMNS = ("method", "weights_id", "id", "lq_sha256", "output_path", "output_sha256", "seconds", "batch")
VALUE_COLUMNS = ("method", "weights_id", "id", "lq_sha256", "gt_sha256", "type", "split", "name", "metric", "value",
                 "skipped")
OUTPUT_KEY = ["method", "weights_id", "id", "lq_sha256"]
# The LQ and GT digests are part of a value's key: a corrected GT (or LQ) is scored again,
# never served from the cache.
VALUE_KEY = ["method", "weights_id", "id", "lq_sha256", "gt_sha256", "metric"]
SET_COLUMNS = ("method", "weights_id", "type", "split", "metric", "value", "n", "ids_hash")
SET_KEY = ["method", "weights_id", "type", "split", "metric"]
TABLES = (("outputs", OUTPUT_COLUMNS, OUTPUT_KEY), ("per_image", VALUE_COLUMNS, VALUE_KEY), ("per_set", SET_COLUMNS, SET_KEY))
_FLOAT = ("value", "seconds")
_INT = ("n", "batch")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in _FLOAT else "int64" if c in _INT else "object")
                         for c in columns})


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if path.exists():
        df = pd.read_parquet(path)
        for c in columns:  # a table from an older version: its rows match no current key
            if c not in df.columns:
                df[c] = ""
        return df
    return _empty(columns)


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


class _Table:
    """One table: rows read from earlier runs (``base``, never rewritten by a rank), this
    writer's own rows (``own``, rewritten at each flush) and rows not yet flushed."""

    def __init__(self, path: Path, columns: tuple[str, ...], key: list[str], base: pd.DataFrame | None = None):
        self.path, self.columns, self.key = path, columns, key
        self.base = base
        self.own = _read(path, columns)
        self.new: list[dict] = []

    @property
    def frame(self) -> pd.DataFrame:
        frames = [f for f in (self.base, self.own) if f is not None and not f.empty]
        if not frames:
            return self.own
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True).drop_duplicates(subset=self.key, keep="last").reset_index(drop=True)

    def flush(self) -> None:
        if self.new:
            # Keep the de-duplicated table in memory too: a recomputed value replaces the old one.
            self.own = _write(self.path, _concat(self.own, pd.DataFrame(self.new)), self.key)
            self.new = []


class ResultStore:
    def __init__(self, run_dir: str | Path, rank: int | None = None):
        self.dir = Path(run_dir)
        suffix = f".rank{rank}" if rank is not None else ""
        base = (lambda name, cols: _read(self.dir / f"{name}.parquet", cols)) if suffix else (lambda *_: None)
        # A rank reads the merged tables (what earlier runs finished) plus its own part files,
        # and writes only its own rows to the part files.
        self._outputs = _Table(self.dir / f"outputs{suffix}.parquet", OUTPUT_COLUMNS, OUTPUT_KEY,
                               base("outputs", OUTPUT_COLUMNS))
        self._values = _Table(self.dir / f"per_image{suffix}.parquet", VALUE_COLUMNS, VALUE_KEY,
                              base("per_image", VALUE_COLUMNS))
        self._sets = _Table(self.dir / "per_set.parquet", SET_COLUMNS, SET_KEY)
        self.outputs_path, self.values_path, self.sets_path = self._outputs.path, self._values.path, self._sets.path
        self._out_idx = {tuple(r[k] for k in OUTPUT_KEY): r for r in self._outputs.frame.to_dict("records")}
        self._val_idx = {tuple(r[k] for k in VALUE_KEY) for r in self._values.frame.to_dict("records")}

    # -- tables (merged view: earlier runs + this writer's rows)
    @property
    def outputs(self) -> pd.DataFrame:
        return self._outputs.frame

    @property
    def values(self) -> pd.DataFrame:
        return self._values.frame

    @property
    def sets(self) -> pd.DataFrame:
        return self._sets.frame

    # -- queries
    def output(self, method: str, weights_id: str, item_id: str, lq_sha256: str) -> dict | None:
        return self._out_idx.get((method, weights_id, item_id, lq_sha256))

    def has_value(self, method: str, weights_id: str, item_id: str, lq_sha256: str, gt_sha256: str,
                  metric: str) -> bool:
        return (method, weights_id, item_id, lq_sha256, gt_sha256, metric) in self._val_idx

    def set_value(self, method: str, weights_id: str, task: str, split: str, metric: str, ids_hash: str) -> float | None:
        sets = self.sets
        hit = sets[(sets["method"] == method) & (sets["weights_id"] == weights_id)
                   & (sets["type"] == task) & (sets["split"] == split) & (sets["metric"] == metric)
                   & (sets["ids_hash"] == ids_hash)]
        return None if hit.empty else float(hit.iloc[-1]["value"])

    # -- updates (kept in memory until flush)
    def add_set_value(self, **row) -> None:
        self._sets.new.append(row)

    def add_output(self, **row) -> None:
        self._outputs.new.append(row)
        self._out_idx[tuple(row[k] for k in OUTPUT_KEY)] = row

    def add_value(self, **row) -> None:
        row.setdefault("skipped", "")
        self._values.new.append(row)
        self._val_idx.add(tuple(row[k] for k in VALUE_KEY))

    def flush(self) -> None:
        for table in (self._outputs, self._values, self._sets):
            table.flush()


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if b.empty:
        return a
    return b.copy() if a.empty else pd.concat([a, b], ignore_index=True)
