"""Image files: which suffixes are images, and the one rule for output names that collide.

Every command that reads a folder of images (``build --images``, ``--index`` pairing, the full
build's sources, ``daclip.restore``) takes the same suffixes, and every command that writes one
PNG per input (``build --images``, ``daclip.restore``, the benchmark runner, the full and the
synthetic builds) names its outputs by :func:`unique_stems`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image(path: str | Path) -> bool:
    """An image file by its suffix (any case); hidden files (``.name``) are not."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def safe_stem(stem: str) -> str:
    """``stem`` with every character but letters, digits, ``-`` and ``_`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "image"


def unique_stems(names: Sequence[str], safe: bool = False) -> list[str]:
    """Output stems (relative POSIX paths without a suffix), one per input name, never two alike.

    The stem is the input's name without its suffix (``safe``: its unsafe characters made ``_``).
    Inputs whose stems collide (``x.png`` beside ``x.jpg``) all keep their suffix in the stem
    (``x_png``, ``x_jpg``), whatever their order; a stem still taken gets a number (``x_png_2``).
    Stems compare case-insensitively, so the names also survive a case-insensitive file system.
    """
    paths = [PurePosixPath(n) for n in names]
    plain = [(p.parent / (safe_stem(p.stem) if safe else p.stem)).as_posix().removeprefix("./") or "image"
             for p in paths]
    counts: dict[str, int] = {}
    for s in plain:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    # Stems that do not collide are kept first, so a renamed one never takes one of theirs.
    taken = {s.lower() for s in plain if counts[s.lower()] == 1}
    out = []
    for p, s in zip(paths, plain):
        if counts[s.lower()] == 1:
            out.append(s)
            continue
        base = f"{s}_{p.suffix.lstrip('.').lower() or 'img'}"
        name, k = base, 2
        while name.lower() in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name.lower())
        out.append(name)
    return out
