"""Results store of a benchmark run: restored-output index and per-image metric values.

Both tables are parquet files in the run folder, rewritten atomically, so an interrupted run
keeps everything that was finished and a re-run computes only what is missing:

- ``outputs.parquet``: method, weights_id, id, lq_sha256, output_path, output_sha256, seconds
- ``per_image.parquet``: method, weights_id, id, type, split, name, metric, value (long format)
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


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if path.exists():
        return pd.read_parquet(path)
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("value", "seconds") else "object") for c in columns})


def _write(path: Path, df: pd.DataFrame, key: list[str]) -> None:
    df = df.drop_duplicates(subset=key, keep="last").sort_values(key, kind="stable").reset_index(drop=True)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


class ResultStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.outputs_path = self.dir / "outputs.parquet"
        self.values_path = self.dir / "per_image.parquet"
        self.outputs = _read(self.outputs_path, OUTPUT_COLUMNS)
        self.values = _read(self.values_path, VALUE_COLUMNS)
        self._new_outputs: list[dict] = []
        self._new_values: list[dict] = []
        self._index()

    def _index(self) -> None:
        self._out_idx = {tuple(r[k] for k in OUTPUT_KEY): r for r in self.outputs.to_dict("records")}
        self._val_idx = {tuple(r[k] for k in VALUE_KEY) for r in self.values.to_dict("records")}

    # -- queries
    def output(self, method: str, weights_id: str, item_id: str, lq_sha256: str) -> dict | None:
        return self._out_idx.get((method, weights_id, item_id, lq_sha256))

    def has_value(self, method: str, weights_id: str, item_id: str, metric: str) -> bool:
        return (method, weights_id, item_id, metric) in self._val_idx

    # -- updates (kept in memory until flush)
    def add_output(self, **row) -> None:
        self._new_outputs.append(row)
        self._out_idx[tuple(row[k] for k in OUTPUT_KEY)] = row

    def add_value(self, **row) -> None:
        self._new_values.append(row)
        self._val_idx.add(tuple(row[k] for k in VALUE_KEY))

    def flush(self) -> None:
        if self._new_outputs:
            self.outputs = pd.concat([self.outputs, pd.DataFrame(self._new_outputs)], ignore_index=True)
            _write(self.outputs_path, self.outputs, OUTPUT_KEY)
            self._new_outputs = []
        if self._new_values:
            self.values = pd.concat([self.values, pd.DataFrame(self._new_values)], ignore_index=True)
            _write(self.values_path, self.values, VALUE_KEY)
            self._new_values = []
