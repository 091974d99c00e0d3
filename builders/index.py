"""Index a folder that is already in the official DA-CLIP layout (``builders.build --index DIR``).

    DIR/<split>/<type>/{LQ,GT}/<name>   (split: train, val; test counts as val)
    DIR/<type>/{LQ,GT}/<name>           (no split folder: val)

``<type>`` is any safe folder name (builders.vocabulary.check_type_name): the ten DA-CLIP
words or the user's own (underwater, moire, low_haze_rain). The dataset's vocabulary is the
DA-CLIP one when every type is a DA-CLIP word, else the types in name order, each prompted
with its name read with spaces unless ``prompts`` says otherwise; it is stored in the manifest.
A type folder without images is left out with a warning.

Writes DIR/manifest.parquet in place, copying nothing: each row points at the existing files
(paths relative to DIR). LQ and GT are paired by equal file name, as the official loaders
expect. Pairs whose LQ and GT differ in size, and files that cannot be read, make the index
refused (nothing but the report is written), because training crops the same window from both;
files without a partner are listed in the report and left out.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from PIL import Image

from . import manifest as mf
from .errors import UserError
from .io import atomic_write_text, sha256_file
from .layout import item_id
from .lock import FolderLock
from .pairing import (
    OFFICIAL_SPLITS,
    PairingResult,
    find_official,
    images_in,
    match_names,
)
from .vocabulary import Vocabulary, check_type_name, default_vocabulary

REPORT_NAME = "index_report.json"
INDEXED = "builders.build --index"


def _size(path: Path) -> tuple[int, int] | str:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot read: {exc}"


def _inside(root: Path, path: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _links(root: Path, max_depth: int = 6) -> list[dict]:
    """Every symlink under ``root`` (not followed while looking): path, target and what --index
    does with it. Symlinked folders are not searched for type folders (a link could make the
    walk loop or leave DIR); LQ/GT files and folders that are links are used when they resolve
    inside DIR and refused otherwise (set when the pairs are checked)."""
    found = []
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for n in sorted(dirnames + filenames):
            p = d / n
            if not p.is_symlink():
                continue
            target = os.path.realpath(p)
            if not _inside(root, p):
                action = "refused: resolves outside the root"
            elif p.is_dir() and n not in ("LQ", "GT"):
                action = "skipped: a symlinked folder is not searched"
            else:
                action = "used: resolves inside the root"
            found.append({"path": str(p), "target": target, "action": action})
        if len(d.parts) - base >= max_depth:
            dirnames[:] = []
    return found


def index_folder(root: str | Path, *, force: bool = False, prompts: dict[str, str] | None = None) -> str:
    """Index ``root`` in place; returns a one-paragraph summary. UserError when refused.

    ``prompts``: type -> prompt text, for types whose text is not their name read with spaces."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--index {root}: not a folder")
    with FolderLock(root, "dataset root"):
        return _index_locked(root, force, dict(prompts or {}))


def _index_locked(root: Path, force: bool, prompts: dict[str, str]) -> str:
    old = mf.read_manifest(root, required=False)
    built = [] if old.empty else [r for r in old["parameters"] if json.loads(r or "{}").get("indexed") != INDEXED]
    if built and not force:
        raise UserError(f"--index {root}: it already has a manifest written by a build ({len(built)} rows with "
                        "their recipes and seeds); --index --force replaces it")
    found = find_official(root, any_type=True)
    if not found:
        raise UserError(f"--index {root}: no <split>/<type>/{{LQ,GT}} or <type>/{{LQ,GT}} folders found (type: a "
                        "folder name such as noisy or underwater, e.g. val/underwater/LQ and val/underwater/GT)")
    for d, _split, task in found:
        check_type_name(task, f"--index {root}: folder {d.relative_to(root).as_posix()}")
    links = _links(root)
    res = PairingResult()
    layout, warnings = [], []
    for d, split_dir, task in found:
        split = OFFICIAL_SPLITS[split_dir] if split_dir else "val"
        n0 = len(res.pairs)
        if not images_in(d / "LQ") and not images_in(d / "GT"):
            warnings.append(f"warning: {d.relative_to(root).as_posix()}/{{LQ,GT}} holds no images; left out")
            continue
        match_names(res, split, d / "LQ", d / "GT", task=task)
        layout.append(f"{d.relative_to(root).as_posix()}/{{LQ,GT}} -> {split}/{task}: {len(res.pairs) - n0} pairs")
    rows, refused, seen = [], [], {}
    for p in res.pairs:
        pid = item_id(p.split, p.task, p.name)
        if pid in seen:  # train/ and val/ of one type both mapped to val (val/ and test/)
            res.problems.append({"kind": "duplicate-name", "file": str(p.lq), "detail": f"same id {pid} as {seen[pid]}"})
            continue
        seen[pid] = p.lq
        outside = [f for f in (p.lq, p.gt) if not _inside(root, f)]
        if outside:  # a link out of DIR: its file would be read, and published with the results
            for f in outside:
                if not any(entry["path"] == str(f) or str(f).startswith(entry["path"] + os.sep) for entry in links):
                    links.append({"path": str(f), "target": os.path.realpath(f), "action": "refused"})
                for entry in links:
                    if entry["path"] == str(f) or str(f).startswith(entry["path"] + os.sep):
                        entry["action"] = "refused: resolves outside the root; the pair is left out"
            continue
        lq_size, gt_size = _size(p.lq), _size(p.gt)
        if isinstance(lq_size, str) or isinstance(gt_size, str):
            refused.append({"id": pid, "kind": "unreadable", "lq": str(p.lq), "gt": str(p.gt),
                            "detail": lq_size if isinstance(lq_size, str) else gt_size})
            continue
        if lq_size != gt_size:
            refused.append({"id": pid, "kind": "size-mismatch", "lq": str(p.lq), "gt": str(p.gt),
                            "detail": f"LQ {lq_size[0]}x{lq_size[1]} vs GT {gt_size[0]}x{gt_size[1]}"})
            continue
        lq_rel, gt_rel = p.lq.relative_to(root).as_posix(), p.gt.relative_to(root).as_posix()
        rows.append({"id": pid, "type": p.task, "split": p.split, "name": p.lq.name, "lq_path": lq_rel,
                     "gt_path": gt_rel, "source": f"indexed folder: {gt_rel}", "licence": "unknown (indexed folder)",
                     "width": lq_size[0], "height": lq_size[1],
                     "parameters": {"indexed": INDEXED, "lq": "given (not synthesised by this toolkit)"},
                     "sha256": sha256_file(p.lq), "gt_sha256": sha256_file(p.gt)})
    counts = Counter(f"{r['split']}/{r['type']}" for r in rows)
    report = {"root": str(root), "layout": layout, "pairs": len(rows), "refused": refused,
              "unpaired": res.problems, "counts": dict(sorted(counts.items())), "links": links}
    atomic_write_text(root / REPORT_NAME, json.dumps(report, indent=1, sort_keys=True))
    if refused:
        first = refused[0]
        raise UserError(f"--index {root}: refused, {len(refused)} pairs cannot be used as they are (e.g. "
                        f"{first['id']}: {first['kind']}: {first['detail']}); no manifest was written; every one "
                        f"is listed in {root / REPORT_NAME}")
    if not rows:
        empty = f"; type folders without images: {', '.join(w.split()[1] for w in warnings)}" if warnings else ""
        raise UserError(f"--index {root}: no LQ/GT pairs of equal file names found (see {root / REPORT_NAME}){empty}")
    vocab = _vocabulary(rows, prompts)
    mf.write_manifest(root, rows, vocabulary=vocab)
    lines = [*warnings, f"{root}: indexed {len(rows)} pairs in place ({', '.join(f'{k} {v}' for k, v in report['counts'].items())}); "
             f"manifest {mf.manifest_path(root)}",
             "  vocabulary: " + ", ".join(t if p == t else f"{t} ({p!r})" for t, p in zip(vocab.types, vocab.prompts))]
    for entry in links:  # every symlink met, and what was done with it
        lines.append(f"  link {entry['path']} -> {entry['target']}: {entry['action']}")
    if res.problems:
        lines.append(f"  {len(res.problems)} files without a partner were left out (see {root / REPORT_NAME}), e.g. "
                     f"{res.problems[0]['file']}: {res.problems[0]['detail']}")
    return "\n".join(lines)


def _vocabulary(rows: list[dict], prompts: dict[str, str]) -> Vocabulary:
    """The DA-CLIP vocabulary when every type is a DA-CLIP word, else the types in name order."""
    types = sorted({r["type"] for r in rows})
    vocab = default_vocabulary(types)
    if prompts or not vocab.is_daclip:
        vocab = Vocabulary.of(vocab.order(types) if vocab.is_daclip else types, prompts)
    return vocab


LQ_ONLY_TYPE = "unknown"  # the type of images directly in a flat LQ-only folder


def index_lq_only(root: str | Path, *, force: bool = False, prompts: dict[str, str] | None = None) -> str:
    """Index degraded images that have no ground truth (``--index DIR --lq-only``), in place.

    ``DIR/<name>`` (flat: type ``unknown``) and ``DIR/<type>/<name>`` (the folder name is the
    type) are listed as val images with an empty ``gt_path``; only no-reference metrics apply.
    Files that cannot be read are left out and listed in ``DIR/index_report.json``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--index {root}: not a folder")
    with FolderLock(root, "dataset root"):
        return _index_lq_only_locked(root, force, dict(prompts or {}))


def _index_lq_only_locked(root: Path, force: bool, prompts: dict[str, str]) -> str:
    old = mf.read_manifest(root, required=False)
    built = [] if old.empty else [r for r in old["parameters"] if json.loads(r or "{}").get("indexed") != INDEXED]
    if built and not force:
        raise UserError(f"--index {root}: it already has a manifest written by a build ({len(built)} rows with "
                        "their recipes and seeds); --index --lq-only --force replaces it")
    groups = [(LQ_ONLY_TYPE, images_in(root))]
    groups += [(check_type_name(d.name, f"--index {root} --lq-only: folder {d.name}"), images_in(d))
               for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".") and not d.is_symlink()]
    rows, problems = [], []
    for task, files in groups:
        for f in files:
            size = _size(f)
            if isinstance(size, str):
                problems.append({"kind": "unreadable", "file": str(f), "detail": size})
                continue
            rel = f.relative_to(root).as_posix()
            rows.append({"id": item_id("val", task, f.name), "type": task, "split": "val", "name": f.name,
                         "lq_path": rel, "gt_path": "", "source": f"indexed folder (no ground truth): {rel}",
                         "licence": "unknown (indexed folder)", "width": size[0], "height": size[1],
                         "parameters": {"indexed": INDEXED, "lq": "given, no ground truth (--lq-only)"},
                         "sha256": sha256_file(f), "gt_sha256": ""})
    counts = Counter(r["type"] for r in rows)
    report = {"root": str(root), "lq_only": True, "images": len(rows), "unreadable": problems,
              "counts": dict(sorted(counts.items()))}
    atomic_write_text(root / REPORT_NAME, json.dumps(report, indent=1, sort_keys=True))
    if not rows:
        raise UserError(f"--index {root} --lq-only: no readable images in the folder or its <type>/ subfolders "
                        f"(see {root / REPORT_NAME})")
    vocab = _vocabulary(rows, prompts)
    mf.write_manifest(root, rows, vocabulary=vocab)
    lines = [f"{root}: indexed {len(rows)} images without ground truth in place "
             f"({', '.join(f'{k} {v}' for k, v in report['counts'].items())}); manifest {mf.manifest_path(root)}"]
    if problems:
        lines.append(f"  {len(problems)} unreadable files were left out (see {root / REPORT_NAME}), e.g. "
                     f"{problems[0]['file']}: {problems[0]['detail']}")
    return "\n".join(lines)
