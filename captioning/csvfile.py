"""The DA-CLIP training CSVs: caption sanitising, titles, writing and the official split rule.

Format (what the official ``CsvDataset`` reads with ``pandas.read_csv(sep="\\t")``)::

    filepath<TAB>title
    /abs/root/train/noisy/LQ/0001.png<TAB>a cat sitting on a couch: noisy

``title`` is ``"<caption>: <degradation text>"`` (the type's prompt text, builders.vocabulary;
the DA-CLIP word for the ten presets) and the official reader does
``caption, degradation = title.split(": ")``, so a caption must never contain ": ".
The title rule is builders.vocabulary's make_title/split_title, shared with daclip.data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from builders.errors import UserError
from builders.io import atomic_write_text
from builders.vocabulary import SEPARATOR, prompt_problem, split_title
from builders.vocabulary import make_title as _make_title

FALLBACK_CAPTION = "a photo"
HEADER = ("filepath", "title")

_WHITESPACE = re.compile(r"\s+")
# A colon followed by whitespace would become ": " and break the official split; a colon
# inside a token ("16:9") is harmless and kept.
_COLON_SPACE = re.compile(r":+(?=\s)")


def sanitize_caption(text: str | None) -> str:
    """One clean line: no ": ", tabs, newlines or double quotes; empty -> FALLBACK_CAPTION."""
    if text is None:
        return FALLBACK_CAPTION
    text = str(text).replace('"', "'")
    # Tabs and newlines would split the CSV row; every whitespace run becomes one space.
    text = _WHITESPACE.sub(" ", text).strip()
    text = _COLON_SPACE.sub("", text)
    text = _WHITESPACE.sub(" ", text)
    # A trailing colon would give "...:: word"; harmless for split(": ") but ugly.
    text = text.strip(" :")
    return text or FALLBACK_CAPTION


def make_title(caption: str, prompt: str) -> str:
    """``"<sanitised caption>: <prompt>"``; ValueError for a prompt text no reader could split off."""
    why = prompt_problem(prompt)
    if why:
        raise ValueError(f"degradation text {prompt!r} cannot end a title: {why}")
    return _make_title(sanitize_caption(caption), prompt)


__all__ = ["FALLBACK_CAPTION", "HEADER", "SEPARATOR", "format_csv", "make_title", "read_csv", "sanitize_caption",
           "split_title", "write_csv"]


def _check_path(path: str) -> str:
    # pandas would split or unquote such a path differently from how it was written.
    if any(c in path for c in '\t\n\r"'):
        raise UserError(f"image path {path!r} contains a tab, newline or double quote; rename it")
    return path


def format_csv(rows: Iterable[tuple[str, str]]) -> str:
    lines = ["\t".join(HEADER)]
    for filepath, title in rows:
        _, word = split_title(title)  # refuse to write a row the reader cannot split
        if prompt_problem(word) or any(c in title for c in '\t\n\r"'):
            raise ValueError(f"invalid title {title!r}")
        lines.append(f"{_check_path(filepath)}\t{title}")
    return "\n".join(lines) + "\n"


def write_csv(path: str | os.PathLike, rows: Iterable[tuple[str, str]]) -> int:
    """Write (filepath, title) rows atomically; returns the number of rows."""
    text = format_csv(rows)
    atomic_write_text(Path(path), text)
    return text.count("\n") - 1


def read_csv(path: str | os.PathLike):
    """Read a captions CSV exactly as the official loader does (pandas, tab separator)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t")
