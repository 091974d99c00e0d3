"""The dataset manifest: one row per (LQ, GT) pair, stored as parquet at <root>/manifest.parquet.

Columns (all builders write the same schema):
    id          "<split>/<type>/<stem>", unique
    type        a type of the dataset's vocabulary (builders.vocabulary: the ten DA-CLIP words
                for the presets, any safe name for an indexed folder)
    split       "train" or "val"
    name        file name shared by LQ and GT
    lq_path     path of the LQ image relative to the root (POSIX)
    gt_path     path of the GT image relative to the root (POSIX)
    source      where the GT came from (data set and original file)
    licence     licence note for the source
    width, height
    parameters  JSON of the degradation parameters (synthetic LQ) or {} (real LQ)
    sha256      sha256 of the LQ file
    gt_sha256   sha256 of the GT file

The dataset's ordered vocabulary (type names and prompt texts) is stored in the same file,
as the parquet key-value metadata entry ``daclip.vocabulary`` (see builders.vocabulary),
written unless it is the DA-CLIP one, so ten-type manifests are as before.
"""

from __future__ import annotations

import io
import json
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from .errors import UserError
from .io import atomic_write_bytes
from .layout import manifest_path
from .lock import FolderLock
from .vocabulary import METADATA_KEY, Vocabulary, check_covers, decode, default_vocabulary, encode

COLUMNS: tuple[str, ...] = (
    "id", "type", "split", "name", "lq_path", "gt_path", "source", "licence",
    "width", "height", "parameters", "sha256", "gt_sha256",
)
_INT_COLUMNS = ("width", "height")


def empty() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="int64" if c in _INT_COLUMNS else "object") for c in COLUMNS})
    return df


def normalise(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if df.empty:
        return empty()
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest rows lack columns {missing}")
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("int64")
    df["parameters"] = [p if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in df["parameters"]]
    # A stable order makes two builds of the same data byte-identical.
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def read_manifest(root: str | Path, *, required: bool = True) -> pd.DataFrame:
    path = manifest_path(root)
    if not path.exists():
        if required:
            raise UserError(
                f"no manifest at {path}: build a dataset there first (python -m builders.build --preset mini "
                f"--root {root}), or, if {root} already holds images in the official <split>/<type>/{{LQ,GT}} "
                f"or <type>/{{LQ,GT}} layout, index them in place with python -m builders.build --index {root}"
            )
        return empty()
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"cannot read manifest {path}: {exc}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"manifest {path} lacks columns {missing}")
    check_paths(root, df, path)
    return df


def check_paths(root: str | Path, df: pd.DataFrame, where: str | Path = "") -> None:
    """UserError naming the row when an ``lq_path``/``gt_path`` could reach a file outside ``root``:
    an absolute path, a ``..`` part, or a symlink (file or folder) resolving outside it.

    A manifest is data that travels (an HF export, a colleague's folder, a downloaded index):
    without this a row could publish any readable file through the run's outputs and report.
    Missing files are left to the reader (the runner names them). Folders are resolved once each.
    """
    import os
    from pathlib import PurePosixPath, PureWindowsPath

    root = Path(root)
    real_root = os.path.realpath(root)
    where = where or manifest_path(root)
    resolved: dict[str, str] = {}

    def inside(real: str) -> bool:
        return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)

    for rid, lq, gt in zip(df["id"], df["lq_path"], df["gt_path"]):
        for col, rel in (("lq_path", lq), ("gt_path", gt)):
            text = str(rel)
            if col == "gt_path" and text == "":
                continue  # an LQ-only index (--index DIR --lq-only) has no GT
            bad = ""
            if not text or PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() \
                    or PureWindowsPath(text).drive:
                bad = "is absolute" if text else "is empty"
            elif ".." in PurePosixPath(text.replace("\\", "/")).parts:
                bad = "goes up with '..'"
            else:
                parent = os.path.dirname(text)
                if parent not in resolved:
                    resolved[parent] = os.path.realpath(root / parent)
                real = resolved[parent]
                full = root / text
                if os.path.islink(full):
                    real = os.path.realpath(full)
                if not inside(real):
                    bad = f"resolves through a symlink to {real}, outside the root"
            if bad:
                raise UserError(f"manifest {where}: row {rid!r}: {col} {text!r} {bad}; a manifest may only name "
                                f"files inside its dataset root {root}")


def select(root: str | Path, split: str | Iterable[str] | None = None, types: Iterable[str] | None = None, *,
           manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The manifest rows of ``split`` (a name, several, or None / "all" for every split) and of
    ``types`` (None: all), in manifest order. A manifest that lists an image id twice, or a file
    that is not there, is one UserError: every command that reads a selection checks the same."""
    root = Path(root)
    df = read_manifest(root) if manifest is None else manifest
    if split is not None and split != "all":
        df = df[df["split"].isin([split] if isinstance(split, str) else list(split))]
    if types is not None:
        df = df[df["type"].isin(list(types))]
    dup = sorted(set(df["id"][df["id"].duplicated()]))
    if dup:
        raise UserError(f"dataset {root}: the manifest lists image id {dup[0]!r} twice")
    for col in ("lq_path", "gt_path"):
        absent = [p for p in df[col] if isinstance(p, str) and p and not (root / p).is_file()]
        if absent:
            raise UserError(f"{len(absent)} image(s) listed in the manifest are missing, e.g. {root / absent[0]}")
    return df


@contextmanager
def sigint_deferred():
    """Hold back Ctrl-C until the block is done, then raise it: a write that has started finishes.

    Only in the main thread (signal handlers live there); elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        if old is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(old):
            old(signal.SIGINT, None)


def read_vocabulary(root: str | Path, df: pd.DataFrame | None = None) -> Vocabulary:
    """The dataset's vocabulary: the one recorded in the manifest, else the default for its types."""
    path = manifest_path(root)
    recorded = _recorded_vocabulary(path)
    if df is None:
        df = read_manifest(root)
    types = set(df["type"])
    if recorded is not None:
        check_covers(recorded, sorted(types), f"the vocabulary recorded in {path}", f"manifest {path}")
        return recorded
    return default_vocabulary(types)


def _recorded_vocabulary(path: Path) -> Vocabulary | None:
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"cannot read manifest {path}: {exc}") from None
    return decode(meta.get(METADATA_KEY), str(path))


_KEEP = object()


def write_manifest(root: str | Path, rows: Iterable[Mapping] | pd.DataFrame, vocabulary=_KEEP) -> Path:
    """Write the manifest atomically (sorted by id; duplicate ids are an error).

    ``vocabulary``: the dataset's Vocabulary; by default the one the manifest there records
    (rows of new types add them at its end). It is stored in the file unless it is the DA-CLIP
    one, which a manifest without the entry has (so ten-type manifests are byte-identical).

    Holds the root's writer lock (re-entrant: builders that hold it already pass through) and
    defers Ctrl-C until the new manifest is in place, so an interrupt never loses it.
    """
    df = normalise(rows)
    dup = df["id"][df["id"].duplicated()].tolist()
    if dup:
        raise ValueError(f"duplicate manifest ids: {dup[:5]}")
    path = manifest_path(root)
    types = set(df["type"])
    with FolderLock(root, "dataset root"), sigint_deferred():
        if vocabulary is _KEEP:
            vocabulary = _recorded_vocabulary(path)
            if vocabulary is not None and not types <= set(vocabulary.types):
                # new types follow the recorded ones, which keep their order and prompt texts
                vocabulary = vocabulary.extended(Vocabulary.of(sorted(types - set(vocabulary.types))))
        if vocabulary is not None:
            check_covers(vocabulary, sorted(types), "the dataset's vocabulary", "the manifest")
        buf = io.BytesIO()
        if vocabulary is None or vocabulary.is_daclip:
            df.to_parquet(buf, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: encode(vocabulary)})
            pq.write_table(table, buf)
        atomic_write_bytes(path, buf.getvalue())
    return path


def upsert(old: pd.DataFrame, new_rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Rows of ``new_rows`` replace rows of ``old`` with the same id."""
    new = normalise(new_rows)
    if old.empty:
        return new
    keep = old[~old["id"].isin(set(new["id"]))]
    return normalise(pd.concat([keep, new], ignore_index=True))


def parameters(row: Mapping) -> dict:
    return json.loads(row["parameters"] or "{}")
