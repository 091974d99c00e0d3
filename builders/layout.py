"""The on-disk layout the official DA-CLIP tools expect.

    <root>/<split>/<type>/LQ/<name>.png
    <root>/<split>/<type>/GT/<name>.png
    <root>/manifest.parquet

An LQ image and its GT carry the same file name and have the same size.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST_NAME = "manifest.parquet"


def pair_relpaths(split: str, task: str, name: str) -> tuple[str, str]:
    """(lq, gt) paths relative to the dataset root, POSIX style as stored in the manifest."""
    stem = f"{split}/{task}"
    return f"{stem}/LQ/{name}", f"{stem}/GT/{name}"


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_NAME


def item_id(split: str, task: str, name: str) -> str:
    return f"{split}/{task}/{Path(name).stem}"
