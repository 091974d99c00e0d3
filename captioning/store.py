"""The caption store: one caption per GT image, keyed by the GT file's sha256.

    <root>/captions.parquet             gt_sha256, caption, raw_caption, model (written atomically)
    <root>/.captioning/rank-<r>.jsonl   per-process journal of the run in progress

Rewriting the parquet after every batch would cost O(n^2) on the 52k-image set, so each
process appends one JSON line per caption to its own journal and fsyncs after every
batch: an interrupted run keeps every finished batch (a torn last line is ignored), and
the next run (or the end of this one) folds all journals into captions.parquet atomically
and deletes them. Keys are content hashes, so a GT shared by several degradation types is
captioned once, and the journals of several torchrun ranks merge without conflicts.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from builders.errors import UserError
from builders.io import atomic_write_bytes

STORE_NAME = "captions.parquet"
JOURNAL_DIR = ".captioning"
COLUMNS = ("gt_sha256", "caption", "raw_caption", "model")


@dataclass(frozen=True)
class CaptionRecord:
    gt_sha256: str
    caption: str  # sanitised: what goes into the CSV and the manifest
    raw_caption: str  # what the model decoded, kept in case the sanitising rules change
    model: str


def store_path(root: str | Path) -> Path:
    return Path(root) / STORE_NAME


def journal_dir(root: str | Path) -> Path:
    return Path(root) / JOURNAL_DIR


def journal_path(root: str | Path, rank: int) -> Path:
    return journal_dir(root) / f"rank-{rank}.jsonl"


def read_store(root: str | Path) -> dict[str, CaptionRecord]:
    path = store_path(root)
    if not path.exists():
        return {}
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise UserError(f"cannot read caption store {path}: {exc}; delete it to recaption") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"caption store {path} lacks columns {missing}; delete it to recaption")
    return {r.gt_sha256: CaptionRecord(r.gt_sha256, r.caption, r.raw_caption, r.model)
            for r in df[list(COLUMNS)].itertuples(index=False)}


def write_store(root: str | Path, records: dict[str, CaptionRecord]) -> Path:
    rows = [asdict(records[k]) for k in sorted(records)]
    df = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else pd.DataFrame(
        {c: pd.Series(dtype="object") for c in COLUMNS})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    path = store_path(root)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_journal(path: str | Path) -> list[CaptionRecord]:
    """Records of one journal, in write order; an incomplete last line (crash) is skipped."""
    out = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn write of the batch in flight
            try:
                d = json.loads(line)
                out.append(CaptionRecord(d["gt_sha256"], d["caption"], d["raw_caption"], d["model"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def merge_journals(root: str | Path) -> dict[str, CaptionRecord]:
    """Fold every journal into captions.parquet (journal entries win) and delete them.

    Idempotent: a crash between writing the store and deleting the journals only makes the
    next merge rewrite the same entries.
    """
    records = read_store(root)
    journals = sorted(journal_dir(root).glob("rank-*.jsonl")) if journal_dir(root).is_dir() else []
    if not journals:
        return records
    for j in journals:
        for rec in read_journal(j):
            records[rec.gt_sha256] = rec
    write_store(root, records)
    for j in journals:
        j.unlink()
    try:
        journal_dir(root).rmdir()
    except OSError:
        pass
    return records


class Journal:
    """Append-only journal of one process; every append is flushed and fsynced."""

    def __init__(self, root: str | Path, rank: int = 0):
        self.path = journal_path(root, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open across batches
        if torn:
            # Close the torn line left by a crash so it cannot swallow the next record.
            self._fh.write("\n")

    def append(self, records: Iterable[CaptionRecord]) -> None:
        # One write call per batch, so a kill leaves at most one torn line at the end.
        text = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records)
        if not text:
            return
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self.close()
