"""Export a built dataset (manifest + PNGs) as a Hugging Face ``datasets.DatasetDict``.

One split per manifest split ("train", "val"); the LQ and GT images are embedded as bytes with
``Image`` features, so the exported folder is self-contained and ``datasets.load_from_disk``
reads it without the original tree. Every manifest column is kept (a ``caption`` column written
by captioning included).

The export never deletes anything: its target must be a new path or an empty folder, which is
checked before any work; it is written under a hidden temporary name beside the target and
renamed into place only when complete (the temporary folder is removed on any failure).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import manifest as mf
from .errors import UserError

_TEXT = ("id", "type", "split", "name", "source", "licence", "parameters", "sha256", "gt_sha256")
_INTS = ("width", "height")


def check_target(root: Path, out_dir: Path) -> None:
    """Refuse any target that is not a new path or an empty folder, or that lies in the dataset."""
    r, o = root.resolve(), out_dir.resolve()
    if o == r or r.is_relative_to(o):
        raise UserError(f"--export-hf {out_dir}: that is the dataset root {root} or a folder above it; "
                        "export into a new folder")
    if o.is_relative_to(r):
        raise UserError(f"--export-hf {out_dir}: that is inside the dataset root {root}; export into a new folder "
                        "outside it")
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise UserError(f"--export-hf {out_dir}: exists and is not a folder; give a new folder name")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"--export-hf {out_dir}: the folder is not empty; nothing is ever overwritten, give a new "
                        "or empty folder")
    parent = o.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--export-hf {out_dir}: {parent} is not a folder")


def _features(extra: list[str]):
    from datasets import Features, Image, Value

    return Features({**{c: Value("string") for c in _TEXT}, **{c: Value("int64") for c in _INTS},
                     **{c: Value("string") for c in extra}, "lq": Image(), "gt": Image()})


def _text(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):  # NaN: a row without a value
        return None
    return v if isinstance(v, str) else str(v)


def _rows(root: str, records: list[dict], extra: list[str]):
    for r in records:
        yield {**{c: r[c] for c in _TEXT}, **{c: int(r[c]) for c in _INTS}, **{c: _text(r.get(c)) for c in extra},
               "lq": {"bytes": (Path(root) / r["lq_path"]).read_bytes(), "path": r["name"]},
               "gt": {"bytes": (Path(root) / r["gt_path"]).read_bytes(), "path": r["name"]}}


def export_hf(root: str | Path, out_dir: str | Path, *, progress: bool = True) -> dict[str, int]:
    """Write the DatasetDict to ``out_dir`` (new or empty); returns rows per split."""
    root, out_dir = Path(root), Path(out_dir)
    check_target(root, out_dir)  # before anything else, the datasets import included
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar

    df = mf.read_manifest(root)
    if df.empty:
        raise UserError(f"{root}: the manifest has no rows to export")
    missing = [p for col in ("lq_path", "gt_path") for p in df[col] if not (root / p).is_file()]
    if missing:
        raise UserError(f"{root}: {len(missing)} files listed in the manifest are missing, e.g. {missing[0]}")
    extra = [c for c in df.columns if c not in mf.COLUMNS]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if not progress:
        disable_progress_bar()
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.exporting."))
    try:
        with tempfile.TemporaryDirectory(dir=tmp, prefix=".cache.") as cache:
            parts = {}
            for split in sorted(df["split"].unique()):
                records = df[df["split"] == split].to_dict("records")
                parts[split] = Dataset.from_generator(
                    _rows, features=_features(extra), cache_dir=cache,
                    gen_kwargs={"root": str(root), "records": records, "extra": tuple(extra)})  # a list would be sharded
            dd = DatasetDict(parts)
            dd.save_to_disk(str(tmp / "dataset"))
            del dd, parts  # release the arrow files before the cache folder goes
        check_target(root, out_dir)  # still new or empty: nobody put anything there meanwhile
        if out_dir.is_dir():
            out_dir.rmdir()  # empty (checked just above); rmdir refuses anything else
        os.replace(tmp / "dataset", out_dir)
    finally:
        if not progress:
            enable_progress_bar()
        shutil.rmtree(tmp, ignore_errors=True)
    return {s: int((df["split"] == s).sum()) for s in sorted(df["split"].unique())}
