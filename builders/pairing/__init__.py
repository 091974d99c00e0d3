"""Per-source pairing rules: extracted archive folders -> (split, name, LQ file, GT file).

This package holds the types, the rule registry, the shared helpers and the official DA-CLIP
layout; the rules of the ten types' sources are in ``daclip_sources`` and those of the protocol
test sets in ``protocol_sources``. Every module of the folder is imported here, so a new rule
is one ``@register_pairing`` function in one of them (or in a new file).

Every rule pairs by an explicit key derived from the file names (never by sort order), and
returns the files it could not pair as problems, so nothing is dropped silently. Folders are
located by name anywhere below the extraction root, because archives differ in their top-level
folder (e.g. ``GOPRO_Large/`` or not) between mirrors.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..naming import is_image
from ..registry import Registry


@dataclass(frozen=True)
class SourcePair:
    split: str  # "train" or "val"
    name: str  # output stem (the file is <name>.png)
    gt: Path
    lq: Path | None = None  # None: the LQ is synthesised from the GT
    mask: Path | None = None  # official inpainting mask (uncompleted)
    extra: tuple = ()  # (key, value) pairs recorded in the manifest parameters
    task: str | None = None  # the one degradation type it belongs to (None: every type of the recipe)


@dataclass
class PairingResult:
    pairs: list[SourcePair] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"kind", "file", "detail"}
    layout: list[str] = field(default_factory=list)  # which of a source's known layouts was met

    def unpaired(self, files: Iterable[Path], detail: str) -> None:
        for f in sorted(files):
            self.problems.append({"kind": "unpaired", "file": str(f), "detail": detail})


PairingRule = Callable[[dict[str, Path]], PairingResult]
PAIRING_RULES: Registry[PairingRule] = Registry("pairing rule")
register_pairing = PAIRING_RULES.register


def pair_source(rule: str, files: dict[str, Path]) -> PairingResult:
    """Run pairing rule ``rule`` on ``files`` (needed file name -> extracted folder or file)."""
    return PAIRING_RULES.get(rule)(files)


# --------------------------------------------------------------------------------------- helpers

def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and is_image(p))


def find_dirs(root: Path, name: str) -> list[Path]:
    """Folders called ``name`` (case-insensitive) at or below ``root``, shallowest first."""
    hits = [p for p in [root, *root.rglob("*")] if p.is_dir() and p.name.lower() == name.lower()]
    return sorted(hits, key=lambda p: (len(p.parts), str(p)))


def find_dir_with(root: Path, name: str, children: tuple[str, ...]) -> Path | None:
    """The shallowest folder called ``name`` that has all ``children`` sub-folders."""
    for d in find_dirs(root, name):
        if all((d / c).is_dir() for c in children):
            return d
    return None


def match(result: PairingResult, split: str, lq_files: list[Path], gt_files: list[Path],
          lq_key: Callable[[str], str | None], gt_key: Callable[[str], str | None],
          name: Callable[[str], str] = lambda k: k, extra: tuple = ()) -> None:
    """Pair ``lq_files`` with ``gt_files`` whose stems map to the same key; report the rest."""
    lq = {k: f for f in lq_files if (k := lq_key(f.stem)) is not None}
    gt = {k: f for f in gt_files if (k := gt_key(f.stem)) is not None}
    result.unpaired([f for f in lq_files if lq_key(f.stem) is None], "LQ file name does not follow the source's pattern")
    result.unpaired([f for f in gt_files if gt_key(f.stem) is None], "GT file name does not follow the source's pattern")
    for k in sorted(lq.keys() & gt.keys()):
        result.pairs.append(SourcePair(split, name(k), gt[k], lq[k], extra=extra))
    result.unpaired([lq[k] for k in lq.keys() - gt.keys()], "LQ without GT")
    result.unpaired([gt[k] for k in gt.keys() - lq.keys()], "GT without LQ")


def same(stem: str) -> str:
    return stem


def strip_suffix(suffix: str) -> Callable[[str], str | None]:
    def key(stem: str) -> str | None:
        return stem[: -len(suffix)] if stem.endswith(suffix) else None

    return key


def strip_prefix(prefix: str) -> Callable[[str], str | None]:
    def key(stem: str) -> str | None:
        return stem[len(prefix):] if stem.startswith(prefix) else None

    return key


def _missing(result: PairingResult, root: Path, what: str) -> None:
    """Report a folder the rule did not find, with what the root holds instead (for layouts that
    are not confirmed, this is what a user or maintainer needs to see)."""
    try:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        entries = []
    held = f" (it holds: {', '.join(entries[:8])}{', ...' if len(entries) > 8 else ''})" if entries else " (it is empty)"
    result.problems.append({"kind": "missing-folder", "file": str(root), "detail": f"no {what} found{held}"})


def pair_split_folders(res: PairingResult, root: Path, splits: tuple[tuple[str, str], ...], lq: str, gt: str,
                       lq_key: Callable[[str], str | None] = same, gt_key: Callable[[str], str | None] = same,
                       pick: Callable[[list[Path]], list[Path]] = lambda fs: fs) -> PairingResult:
    """The common layout <folder>/{<lq>,<gt>}/<files> for each (folder, split); files paired by key."""
    for folder, split in splits:
        d = find_dir_with(root, folder, (lq, gt))
        if d is None:
            _missing(res, root, f"{folder}/{{{lq},{gt}}}")
            continue
        res.layout.append(f"{root.name}: {where(root, d)}/{{{lq},{gt}}}")
        match(res, split, pick(images_in(d / lq)), pick(images_in(d / gt)), lq_key, gt_key)
    return res


def _one(files: dict[str, Path]) -> Path:
    return next(iter(files.values()))


def where(root: Path, d: Path) -> str:
    """``d`` relative to ``root`` for layout notes ('.' when it is the root itself)."""
    return d.relative_to(root).as_posix() or "."


# ------------------------------------------------------------------ the official DA-CLIP layout

OFFICIAL_SPLITS = {"train": "train", "val": "val", "test": "val"}
_SKIP_DIRS = ("__MACOSX",)


def find_official(root: Path, max_depth: int = 4, *, any_type: bool = False) -> list[tuple[Path, str | None, str]]:
    """(type folder, split folder name or None, type) for every ``<type>/{LQ,GT}`` at most
    ``max_depth`` levels below ``root``, shallowest first. Hidden folders are not searched.

    ``type`` is one of the ten DA-CLIP words, or with ``any_type`` any folder below ``root``
    that holds LQ/ and GT/ (its name is checked by the caller)."""
    from ..tasks import DEGRADATIONS

    found = []
    base = len(Path(root).parts)
    for dirpath, dirnames, _ in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n not in _SKIP_DIRS)
        if len(d.parts) - base >= max_depth:
            dirnames[:] = []
        if (d.name in DEGRADATIONS or (any_type and d != Path(root))) and {"LQ", "GT"} <= set(dirnames):
            parent = d.parent.name if d != Path(root) else None
            found.append((d, parent if parent in OFFICIAL_SPLITS else None, d.name))
            dirnames[:] = []
    return sorted(found, key=lambda t: (len(t[0].parts), str(t[0])))


def match_names(result: PairingResult, split: str, lq_dir: Path, gt_dir: Path, task: str | None = None) -> None:
    """Pair LQ and GT files with the same file name (the official loaders' rule); report the rest,
    and a second file of the same stem (x.png beside x.jpg: they would share one output name)."""
    lq = {f.name: f for f in images_in(lq_dir)}
    gt = {f.name: f for f in images_in(gt_dir)}
    stems: dict[str, Path] = {}
    for n in sorted(lq.keys() & gt.keys()):
        stem = Path(n).stem
        if stem in stems:
            result.problems.append({"kind": "duplicate-name", "file": str(lq[n]),
                                    "detail": f"same stem as {stems[stem].name}: one output name for both"})
            continue
        stems[stem] = lq[n]
        result.pairs.append(SourcePair(split, stem, gt[n], lq[n], task=task))
    other = {Path(n).stem: n for n in gt}
    for n in sorted(lq.keys() - gt.keys()):
        hint = f" (GT {other[Path(n).stem]} differs in its extension)" if Path(n).stem in other else ""
        result.unpaired([lq[n]], "LQ without a GT of the same file name" + hint)
    result.unpaired([gt[n] for n in gt.keys() - lq.keys()], "GT without an LQ of the same file name")


@register_pairing("official")
def pair_official(files: dict[str, Path]) -> PairingResult:
    """[<top>/][val/]<type>/{LQ,GT}/<name> for the ten types, equal names; everything -> val."""
    res, root = PairingResult(), _one(files)
    found = find_official(root)
    if not found:
        _missing(res, root, "<type>/LQ and <type>/GT folders (official layout)")
    seen: dict[str, Path] = {}
    for d, _split, task in found:
        if task in seen:
            res.problems.append({"kind": "duplicate-folder", "file": str(d),
                                 "detail": f"a second {task}/ folder; the first, {seen[task]}, is used"})
            continue
        seen[task] = d
        n0 = len(res.pairs)
        match_names(res, "val", d / "LQ", d / "GT", task=task)
        res.layout.append(f"{where(root, d)}/{{LQ,GT}}: {len(res.pairs) - n0} pairs")
    return res


# The rules register themselves on import: every module of this folder is imported, so
# PAIRING_RULES is complete once ``builders.pairing`` is (as daclip.networks does).
for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
