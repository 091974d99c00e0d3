"""Export a built dataset (manifest + PNGs) as a Hugging Face ``datasets.DatasetDict``.

One split per manifest split ("train", "val"); the LQ and GT images are embedded as bytes with
``Image`` features, so the exported folder is self-contained and ``datasets.load_from_disk``
reads it without the original tree.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import manifest as mf
from .errors import UserError

_TEXT = ("id", "type", "split", "name", "source", "licence", "parameters", "sha256", "gt_sha256")


def _features():
    from datasets import Features, Image, Value

    return Features({**{c: Value("string") for c in _TEXT}, "width": Value("int64"), "height": Value("int64"),
                     "lq": Image(), "gt": Image()})


def _rows(root: str, records: list[dict]):
    for r in records:
        yield {**{c: r[c] for c in _TEXT}, "width": int(r["width"]), "height": int(r["height"]),
               "lq": {"bytes": (Path(root) / r["lq_path"]).read_bytes(), "path": r["name"]},
               "gt": {"bytes": (Path(root) / r["gt_path"]).read_bytes(), "path": r["name"]}}


def export_hf(root: str | Path, out_dir: str | Path, *, progress: bool = True) -> dict[str, int]:
    """Write the DatasetDict to ``out_dir``; returns rows per split."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar

    root, out_dir = Path(root), Path(out_dir)
    df = mf.read_manifest(root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if df.empty:
        raise UserError(f"{root}: the manifest has no rows to export")
    missing = [p for col in ("lq_path", "gt_path") for p in df[col] if not (root / p).is_file()]
    if missing:
        raise UserError(f"{root}: {len(missing)} files listed in the manifest are missing, e.g. {missing[0]}")
    if not progress:
        disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.cache.") as cache:
            parts = {}
            for split in sorted(df["split"].unique()):
                records = df[df["split"] == split].to_dict("records")
                parts[split] = Dataset.from_generator(
                    _rows, features=_features(), cache_dir=cache,
                    gen_kwargs={"root": str(root), "records": records})
            dd = DatasetDict(parts)
            tmp = out_dir.with_name(f".{out_dir.name}.exporting")
            if tmp.exists():
                shutil.rmtree(tmp)
            dd.save_to_disk(str(tmp))
            del dd, parts  # release the arrow files before the cache folder goes
    finally:
        if not progress:
            enable_progress_bar()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return {s: int((df["split"] == s).sum()) for s in sorted(df["split"].unique())}
