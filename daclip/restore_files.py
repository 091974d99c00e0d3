"""The files ``daclip.restore`` reads and writes: which inputs a command line names, what each
output is called, and the run's record (``restore.json``, ``restore.csv``) with the journal that
keeps every finished image across a kill.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from builders.errors import UserError
from builders.naming import IMAGE_SUFFIXES, is_image, unique_stems

RECORD_JSON = "restore.json"
RECORD_CSV = "restore.csv"
RECORD_JOURNAL = ".restore.journal"  # per-image lines since the record was last written


@dataclass(frozen=True)
class Job:
    source: Path  # the input file
    output: str  # the output's path relative to the output folder (POSIX)
    note: str = ""  # why the name differs from the plain one


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _inside(path: Path, folders: Iterable[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == f or f in real.parents for f in folders)


def _walk(top: Path, recursive: bool, exclude: list[Path], skipped: list[Path]) -> Iterable[Path]:
    """Files under ``top`` (below it with ``recursive``), each real folder visited once: symlinks
    are followed, but a link back up (``self -> .``) is not walked again. Excluded folders (the
    output folder) and folders holding a restore record (an earlier run's outputs) are skipped."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        d = Path(dirpath)
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        if d != top and (_inside(d, exclude) or (d / RECORD_JSON).is_file()):
            skipped.append(d)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(dirnames) if recursive else []
        for n in filenames:
            yield d / n


def _images_in(folder: Path, recursive: bool, exclude: list[Path] | None = None,
               skipped: list[Path] | None = None) -> list[Path]:
    skipped = [] if skipped is None else skipped
    return sorted(p for p in _walk(folder, recursive, exclude or [], skipped)
                  if p.is_file() and is_image(p)
                  and not _inside(p, exclude or []))


def _match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """fnmatch over path components, ``**`` matching any number of folders (as glob's)."""
    import fnmatch

    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(parts[1:], pattern[1:])


def _glob(text: str, recursive: bool, exclude: list[Path], skipped: list[Path]) -> list[Path]:
    """``glob.glob``, except that a recursive ``**`` walks each real folder once (glob follows
    a symlink loop until the path is too long)."""
    pattern = Path(os.path.expanduser(text))
    if not (recursive and "**" in pattern.parts):
        return sorted(Path(m) for m in glob.glob(str(pattern)) if not _inside(Path(m), exclude))
    parts = pattern.parts
    k = next(i for i, c in enumerate(parts) if _has_glob(c))
    base = Path(*parts[:k]) if k else Path(".")
    if not base.is_dir():
        return []
    return sorted(p for p in _walk(base, True, exclude, skipped)
                  if _match(p.relative_to(base).parts, parts[k:]) and not _inside(p, exclude))


def collect_inputs(inputs: Iterable[str], recursive: bool = False, exclude: Iterable[Path] = (),
                   skipped: list[Path] | None = None) -> list[tuple[Path, str]]:
    """(file, name relative to its input folder) for every input; bad inputs raise UserError.

    Nothing under an ``exclude`` folder (the output folder) is taken, nor anything in a folder
    holding a restore record (outputs of an earlier run); those folders are added to ``skipped``.
    """
    exclude = [Path(os.path.realpath(e)) for e in exclude]
    skipped = [] if skipped is None else skipped
    out: list[tuple[Path, str]] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_dir():
            images = _images_in(path, recursive, exclude, skipped)
            if not images:
                raise UserError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})"
                                + ("" if recursive else "; --recursive looks in subfolders"))
            out += [(p, p.relative_to(path).as_posix()) for p in images]
        elif path.is_file():
            out.append((path, path.name))
        elif _has_glob(text):
            files = [m for m in _glob(text, recursive, exclude, skipped) if m.is_file() and is_image(m)]
            if not files:
                raise UserError(f"{text}: the pattern matches no image files")
            out += [(m, m.name) for m in files]
        else:
            raise UserError(f"{text}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for path, rel in out:  # the same file named twice (a folder and a glob) is restored once
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, rel))
    return unique


def plan_outputs(inputs: list[tuple[Path, str]]) -> list[Job]:
    """Output names: ``<rel stem>.png``; inputs whose names collide (``x.png`` and ``x.jpg``)
    are named by builders.naming's one rule (``x_png.png``, ``x_jpg.png``), and the job says so."""
    stems = unique_stems([rel for _, rel in inputs])
    plain = [Path(rel).with_suffix("").as_posix() for _, rel in inputs]
    owners: dict[str, list[Path]] = {}
    for (path, _), p in zip(inputs, plain):
        owners.setdefault(p.lower(), []).append(path)
    jobs = []
    for (path, _), p, stem in zip(inputs, plain, stems):
        others = ", ".join(str(o) for o in owners[p.lower()] if o != path)
        note = "" if stem == p else (f"{p}.png would also be the output of {others}" if others else f"{p}.png is taken")
        jobs.append(Job(path, stem + ".png", note))
    return jobs


# -- the record of a run ------------------------------------------------------------------------

def read_record(out: Path) -> dict[str, dict]:
    path = out / RECORD_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; delete it (and the outputs it lists) or use another --out") \
            from None
    outputs = data.get("outputs") if isinstance(data, dict) else None
    if not isinstance(outputs, dict):
        raise UserError(f"{path} is not a restore record (no 'outputs'); delete it or use another --out")
    return outputs


def write_record(out: Path, record: Mapping[str, dict]) -> None:
    from builders.io import atomic_write_text

    atomic_write_text(out / RECORD_JSON, json.dumps({"version": 1, "outputs": record}, indent=1, sort_keys=True))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    metrics = sorted({m for r in record.values() for m in r.get("metrics", {})})
    w.writerow(["output", "input", "method", "task", "degradation", "probability", "seconds"]
               + [f"{m}_{side}" for m in metrics for side in ("input", "output")])
    for name in sorted(record):
        r = record[name]
        p = r.get("probability")
        vals = r.get("metrics", {})
        w.writerow([name, r.get("input", ""), r.get("method", ""), r.get("task") or "", r.get("degradation") or "",
                    "" if p is None else f"{p:.4f}", f"{r.get('seconds', 0):.3f}"]
                   + [_num(vals.get(m, {}).get(side)) for m in metrics for side in ("input", "output")])
    atomic_write_text(out / RECORD_CSV, buf.getvalue())


def _num(v) -> str:
    return "" if v is None else f"{v:.6g}"


def append_journal(out: Path, entry: Mapping) -> None:
    """One line appended to the run's journal (O_APPEND, one write: a kill leaves whole lines,
    or a torn last line that the replay ignores). The record itself is rewritten every few
    images (daclip.restore.FLUSH_EVERY); the journal makes each image count after a SIGKILL."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(out / RECORD_JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def replay_journal(out: Path, record: dict[str, dict]) -> set[str]:
    """Fold a killed run's journal into ``record``; returns the outputs it began but did not
    finish (their files, whole or partial, are its own and are redone)."""
    path = out / RECORD_JOURNAL
    if not path.is_file():
        return set()
    pending: set[str] = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # the torn last line of a kill
        if not isinstance(item, dict) or not isinstance(item.get("output"), str):
            continue
        if item.get("pending"):
            pending.add(item["output"])
            record.pop(item["output"], None)  # being rewritten: its old entry no longer holds
        elif isinstance(item.get("entry"), dict):
            record[item["output"]] = item["entry"]
            pending.discard(item["output"])
    return pending
