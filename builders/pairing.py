"""Per-source pairing rules: extracted archive folders -> (split, name, LQ file, GT file).

Every rule pairs by an explicit key derived from the file names (never by sort order), and
returns the files it could not pair as problems, so nothing is dropped silently. Folders are
located by name anywhere below the extraction root, because archives differ in their top-level
folder (e.g. ``GOPRO_Large/`` or not) between mirrors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .naming import is_image
from .registry import Registry


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
    from .tasks import DEGRADATIONS

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


# ----------------------------------------------------------------------------------------- rules

@register_pairing("gopro")
def pair_gopro(files: dict[str, Path]) -> PairingResult:
    """GOPRO_Large/{train,test}/<SEQ>/{blur,sharp}/<frame>.png -> <SEQ>_<frame>."""
    res, root = PairingResult(), _one(files)
    for folder, split in (("train", "train"), ("test", "val")):
        seq_root = next((d for d in find_dirs(root, folder) if any((s / "sharp").is_dir() for s in d.iterdir() if s.is_dir())), None)
        if seq_root is None:
            _missing(res, root, f"{folder}/<SEQ>/sharp")
            continue
        res.layout.append(f"{root.name}: {where(root, seq_root)}/<SEQ>/{{blur,sharp}}")
        for seq in sorted(p for p in seq_root.iterdir() if p.is_dir()):
            if not (seq / "blur").is_dir() or not (seq / "sharp").is_dir():
                _missing(res, seq, "blur/ and sharp/ folders")
                continue
            match(res, split, images_in(seq / "blur"), images_in(seq / "sharp"), same, same,
                  name=lambda k, s=seq.name: f"{s}_{k}", extra=(("lq_variant", "blur (not blur_gamma)"),))
    return res


@register_pairing("reside6k")
def pair_reside6k(files: dict[str, Path]) -> PairingResult:
    return pair_split_folders(PairingResult(), _one(files), (("train", "train"), ("test", "val")), "hazy", "GT")


@register_pairing("lol")
def pair_lol(files: dict[str, Path]) -> PairingResult:
    return pair_split_folders(PairingResult(), _one(files), (("our485", "train"), ("eval15", "val")), "low", "high")


@register_pairing("raindrop")
def pair_raindrop(files: dict[str, Path]) -> PairingResult:
    """{train,test_a}/{data/N_rain, gt/N_clean} -> N (test_b is not part of the paper's set)."""
    return pair_split_folders(PairingResult(), _one(files), (("train", "train"), ("test_a", "val")), "data", "gt",
                              strip_suffix("_rain"), strip_suffix("_clean"))


@register_pairing("rain100h")
def pair_rain100h(files: dict[str, Path]) -> PairingResult:
    """Flat folders of rain-N.png / norain-N.png; the train archive and the test archive."""
    res = PairingResult()
    for archive, split in (("RainTrainH.zip", "train"), ("Rain100H.zip", "val")):
        imgs = images_in(files[archive], recursive=True)
        lq = [f for f in imgs if f.stem.startswith("rain-")]
        gt = [f for f in imgs if f.stem.startswith("norain-")]
        # rainregion-N / rainstreak-N are auxiliary maps some copies ship; they are not pairs.
        aux = ("rainregion-", "rainstreak-")
        res.unpaired([f for f in imgs if f not in lq and f not in gt and not f.stem.startswith(aux)],
                     "neither rain-N nor norain-N")
        match(res, split, lq, gt, strip_prefix("rain-"), strip_prefix("norain-"), name=lambda k: f"rain-{k}")
    return res


_SRD_GT_SUFFIXES = ("_no_shadow", "_free")  # train GT <name>_no_shadow, test GT <name>_free


def _srd_gt_key(stem: str) -> str:
    return next((stem[: -len(sfx)] for sfx in _SRD_GT_SUFFIXES if stem.endswith(sfx)), stem)


@register_pairing("srd")
def pair_srd(files: dict[str, Path]) -> PairingResult:
    """shadow/<name> with shadow_free/<name>{_no_shadow,_free,} (or <x>_A/ with <x>_C/), per archive."""
    res = PairingResult()
    for archive, split, ac in (("SRD_Train.zip", "train", "train"), ("SRD_Test.zip", "val", "test")):
        root = files[archive]
        layouts = [("shadow", "shadow_free"), (f"{ac}_A", f"{ac}_C")]
        found = next(((d, lq, gt) for lq, gt in layouts for d in find_dirs(root, lq) if (d.parent / gt).is_dir()), None)
        if found is None:
            _missing(res, root, " or ".join(f"{lq}/ next to {gt}/" for lq, gt in layouts))
            continue
        d, lq, gt = found
        gts = images_in(d.parent / gt)
        suffixes = sorted({sfx for f in gts for sfx in _SRD_GT_SUFFIXES if f.stem.endswith(sfx)})
        res.layout.append(f"{archive}: {lq}/ + {gt}/ (GT names " + (" / ".join(f"<name>{x}" for x in suffixes)
                                                                  if suffixes else "equal to the LQ names") + ")")
        match(res, split, images_in(d), gts, same, _srd_gt_key)
    return res


def pair_folders_any(res: PairingResult, root: Path, split: str, layouts: tuple[tuple[str, str], ...],
                     what: str, pick: Callable[[list[Path]], list[Path]] = lambda fs: fs) -> bool:
    """Pair the first ``(lq, gt)`` folder layout found below ``root`` (equal names) and note which."""
    for lq, gt in layouts:
        d = next((p for p in find_dirs(root, lq) if (p.parent / gt).is_dir()), None)
        if d is not None:
            res.layout.append(f"{what}: {d.relative_to(root).as_posix()}/ + {gt}/")
            match(res, split, pick(images_in(d)), pick(images_in(d.parent / gt)), same, same)
            return True
    _missing(res, root, " or ".join(f"{lq}/ next to {gt}/" for lq, gt in layouts))
    return False


@register_pairing("snow100k")
def pair_snow100k(files: dict[str, Path]) -> PairingResult:
    """Train: the author's subset ({synthetic,gt} or {LQ,GT}, every pair) or the full training
    archive's all/{synthetic,gt} (names containing 'beautiful_smile'); val: the test archive's
    Snow100K-L/{synthetic,gt} (same filter)."""
    from .sources.snow100k import SUBSET

    res = PairingResult()
    subset = lambda fs: [f for f in fs if SUBSET in f.name]  # noqa: E731
    if "Snow100K-subset" in files:
        pair_folders_any(res, files["Snow100K-subset"], "train", (("synthetic", "gt"), ("LQ", "GT")),
                         "Snow100K-subset (author's training subset)")
    else:
        pair_split_folders(res, files["Snow100K-training.tar.gz"], (("all", "train"),), "synthetic", "gt", pick=subset)
        res.layout.append("Snow100K-training.tar.gz: all/{synthetic,gt}, names containing 'beautiful_smile'")
    pair_split_folders(res, files["Snow100K-testset.tar.gz"], (("Snow100K-L", "val"),), "synthetic", "gt", pick=subset)
    return res


def _gt_only(res: PairingResult, split: str, imgs: list[Path], name: Callable[[Path], str] = lambda f: f.stem) -> None:
    seen: dict[str, Path] = {}
    for f in imgs:
        n = name(f)
        if n in seen:
            res.problems.append({"kind": "duplicate-name", "file": str(f), "detail": f"same output name as {seen[n]}"})
            continue
        seen[n] = f
        res.pairs.append(SourcePair(split, n, f))


@register_pairing("div2k-flickr2k")
def pair_div2k_flickr2k(files: dict[str, Path]) -> PairingResult:
    """DIV2K 0001-0900 + Flickr2K_HR, GT only. DIV2K is either ETH's two zips (DIV2K_train_HR
    0001-0800, DIV2K_valid_HR 0801-0900) or EDSR's DIV2K.tar, whose DIV2K_train_HR may hold all
    900 (then there is no DIV2K_valid_HR, and none is missing)."""
    res, imgs = PairingResult(), []
    div2k = [files[n] for n in ("DIV2K_train_HR.zip", "DIV2K_valid_HR.zip", "DIV2K.tar") if n in files]
    train_hr = next((h[0] for root in div2k if (h := find_dirs(root, "DIV2K_train_HR"))), None)
    valid_hr = next((h[0] for root in div2k if (h := find_dirs(root, "DIV2K_valid_HR"))), None)
    train = images_in(train_hr) if train_hr else []
    valid = images_in(valid_hr) if valid_hr else []
    held = {f.stem for f in train}
    merged = any(s.isdigit() and int(s) > 800 for s in held)  # EDSR's tar: the valid images in train_HR
    source = "ETH zips" if "DIV2K.tar" not in files else "DIV2K.tar"
    if train_hr is None:
        _missing(res, div2k[0] if div2k else Path("."), "DIV2K_train_HR")
    if valid_hr is None and train_hr is not None and not merged:
        _missing(res, div2k[0], "DIV2K_valid_HR (and DIV2K_train_HR holds no image after 0800)")
    if valid_hr is None and merged:
        res.layout.append(f"DIV2K ({source}): DIV2K_train_HR holds {len(train)} images, 0801-0900 among them "
                          "(train and valid together); no DIV2K_valid_HR")
    elif train_hr is not None and valid_hr is not None:
        res.layout.append(f"DIV2K ({source}): DIV2K_train_HR ({len(train)}) + DIV2K_valid_HR ({len(valid)})")
    both = held & {f.stem for f in valid}
    if both:
        res.layout.append(f"{len(both)} images are in both DIV2K_train_HR and DIV2K_valid_HR; used once")
    imgs += train + [f for f in valid if f.stem not in both]
    hits = find_dirs(files["Flickr2K.tar"], "Flickr2K_HR")
    if not hits:
        _missing(res, files["Flickr2K.tar"], "Flickr2K_HR")
    else:
        imgs += images_in(hits[0])
    _gt_only(res, "train", imgs)
    return res


@register_pairing("live1")
def pair_live1(files: dict[str, Path]) -> PairingResult:
    """The 29 reference images: single files (DnCNN's testsets/LIVE1) or the zip's refimgs/."""
    res = PairingResult()
    single = sorted(p for n, p in files.items() if n.startswith("LIVE1/"))
    if single:
        res.layout.append(f"{len(single)} single files (DnCNN testsets/LIVE1)")
        _gt_only(res, "val", single)
        return res
    root = _one(files)
    hits = find_dirs(root, "refimgs")
    if not hits:
        _missing(res, root, "refimgs/")
    else:
        res.layout.append(f"databaserelease2.zip: {hits[0].relative_to(root).as_posix()}/")
        _gt_only(res, "val", images_in(hits[0]))
    return res


@register_pairing("cbsd68")
def pair_cbsd68(files: dict[str, Path]) -> PairingResult:
    """The clean images: CBSD68/0/ (the hub tar), original_png/ (the GitHub copy), else every image
    outside noisy*/ folders (reported as an unrecognised layout)."""
    res, root = PairingResult(), _one(files)
    png = find_dirs(root, "original_png")
    hub = [d for d in find_dirs(root, "0") if images_in(d)]
    if png:
        res.layout.append(f"{png[0].relative_to(root).as_posix()}/ (GitHub clausmichele/CBSD68-dataset layout)")
        imgs = images_in(png[0])
    elif hub:
        res.layout.append(f"{hub[0].relative_to(root).as_posix()}/ (hub deepinv/CBSD68 layout)")
        imgs = images_in(hub[0])
    else:
        imgs = [f for f in images_in(root, recursive=True)
                if not any(p.lower().startswith("noisy") for p in f.relative_to(root).parts[:-1])]
        res.layout.append(f"unrecognised layout (neither CBSD68/0/ nor original_png/): {len(imgs)} images "
                          "outside noisy*/ folders taken as the clean set")
    _gt_only(res, "val", imgs)
    return res


@register_pairing("celebahq")
def pair_celebahq(files: dict[str, Path]) -> PairingResult:
    """Images sorted by name; the first N_TEST are val with mask i, the rest train."""
    from .sources.celebahq import N_TEST, mask_names
    from .synth import seed_for

    res = PairingResult()
    masks = [files[n] for n in mask_names()]
    archive = next(p for n, p in files.items() if n not in set(mask_names()))
    imgs = images_in(archive, recursive=True)
    for i, f in enumerate(imgs):
        if i < N_TEST:
            split, m = "val", i
        else:
            # DA-CLIP draws a random mask per training image; the draw is seeded by the name.
            split, m = "train", seed_for("celebahq-mask", f.name) % len(masks)
        res.pairs.append(SourcePair(split, f.stem, f, mask=masks[m], extra=(("mask_index", m),)))
    return res


# ------------------------------------------------------------ the 3D / 5D / CDD-11 test sets

def _first_dir_with(root: Path, layouts: tuple[tuple[str, str], ...],
                    skip: Callable[[Path], bool] = lambda d: False) -> tuple[Path, str, str] | None:
    """The shallowest folder holding both sub-folders of one of ``layouts`` (case-insensitive),
    leaving out folders ``skip`` rejects."""
    best = None
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        if skip(d):
            continue
        kids = {c.name.lower(): c for c in d.iterdir() if c.is_dir()} if d.is_dir() else {}
        for i, (lq, gt) in enumerate(layouts):
            if lq.lower() in kids and gt.lower() in kids:
                key = (len(d.parts), i, str(d))
                if best is None or key < best[0]:
                    best = (key, (d, kids[lq.lower()].name, kids[gt.lower()].name))
    return None if best is None else best[1]


@register_pairing("sots")
def pair_sots(files: dict[str, Path]) -> PairingResult:
    """hazy/<id>_<A>_<beta>.* with gt/<id>.* (or clear/, target/, GT/): a GT of the same name
    first (InstructIR's copy), else the one named by the prefix before the first '_'. One GT may
    serve several hazy images; each output is named after its hazy image."""
    from .sources.sots_outdoor import LAYOUTS

    res, root = PairingResult(), _one(files)
    # RESIDE's SOTS zip holds indoor/ beside outdoor/: only outdoor is the protocol's set.
    hit = _first_dir_with(root, LAYOUTS, skip=lambda d: "indoor" in (x.lower() for x in d.relative_to(root).parts))
    if hit is None:
        _missing(res, root, " or ".join(f"{a}/ next to {b}/" for a, b in LAYOUTS) + " (outside indoor/)")
        return res
    d, lq_dir, gt_dir = hit
    hazy, gts = images_in(d / lq_dir), images_in(d / gt_dir)
    by_name = {f.stem: f for f in gts}
    by_prefix: dict[str, Path] = {}
    for f in gts:
        by_prefix.setdefault(f.stem.split("_")[0], f)
    used: dict[Path, int] = {}
    for f in hazy:
        gt = by_name.get(f.stem) or by_prefix.get(f.stem.split("_")[0])
        if gt is None:
            res.unpaired([f], "hazy image without a GT of its name or of its prefix before the first '_'")
            continue
        used[gt] = used.get(gt, 0) + 1
        res.pairs.append(SourcePair("val", f.stem, gt, f, extra=(("gt_rule", "name" if gt.stem == f.stem else "prefix"),)))
    res.unpaired([g for g in gts if g not in used], "GT that no hazy image names")
    shared = sum(1 for n in used.values() if n > 1)
    res.layout.append(f"{where(root, d)}/{{{lq_dir},{gt_dir}}}: {len(res.pairs)} hazy over {len(used)} GT"
                      + (f" ({shared} GT shared by several hazy images)" if shared else ""))
    return res


def _index(stem: str) -> int | None:
    """The PReNet index in a Rain100L name: rain-001, norain-001, 1, rain-1 -> 1."""
    tail = stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


RESTORMER_SIZES = {(384, 512), (512, 384)}  # Restormer's "Rain13k test" Rain100L/input/1.png


@register_pairing("rain100l")
def pair_rain100l(files: dict[str, Path]) -> PairingResult:
    """The three Rain100L copies (see builders.sources.rain100l), paired by the PReNet index;
    outputs are named rain-NNN whatever the copy."""
    res, root = PairingResult(), _one(files)
    prenet = next((d for d in find_dirs(root, "rainy") if any(f.stem.startswith("norain-") for f in images_in(d.parent))), None)
    moce = _first_dir_with(root, (("rainy", "gt"),))
    relaid = _first_dir_with(root, (("input", "target"),))
    if prenet is not None:
        lq, gt = images_in(prenet), [f for f in images_in(prenet.parent) if f.stem.startswith("norain-")]
        copy, at = "prenet", f"{where(root, prenet)}/rain-N + {where(root, prenet.parent)}/norain-N (PReNet's original)"
    elif moce is not None:
        d, a, b = moce
        lq, gt = images_in(d / a), images_in(d / b)
        copy, at = "prenet", f"{where(root, d)}/{{{a},{b}}} (PReNet's images, MoCE-IR's layout)"
    elif relaid is not None:
        d, a, b = relaid
        lq, gt = images_in(d / a), images_in(d / b)
        first = next((f for f in lq if _index(f.stem) == 1), None)
        size = None
        if first is not None:
            from PIL import Image

            with Image.open(first) as im:
                size = im.size
        if size in RESTORMER_SIZES:
            copy, at = "restormer", (f"{where(root, d)}/{{{a},{b}}}/N.png: Restormer's 'Rain13k test' Rain100L, other "
                                     f"images than PReNet's (its 1.png is {size[0]}x{size[1]}): NOT the protocol's test set")
            res.problems.append({"kind": "other-copy", "file": str(d), "detail": at})
        else:
            copy, at = "relaid", f"{where(root, d)}/{{{a},{b}}}/N.png (PReNet's images re-laid, AirNet's copy)"
    else:
        _missing(res, root, "rainy/ beside norain-N files, rainy/ next to gt/, or input/ next to target/")
        return res
    res.layout.append(f"Rain100L copy: {copy}: {at}")
    match(res, "val", lq, gt, _index_key, _index_key, name=lambda k: f"rain-{int(k):03d}",
          extra=(("rain100l_copy", copy),))
    return res


def _index_key(stem: str) -> str | None:
    i = _index(stem)
    return None if i is None else f"{i:06d}"


@register_pairing("cbsd68-clean")
def pair_cbsd68_clean(files: dict[str, Path]) -> PairingResult:
    """The 68 clean images named 0000..0067 in original_png order: original_png/ (GitHub copy),
    else original/<bsd id>.jpg in numeric id order, else the hub tar's 0/ (names kept). Each
    pair carries the noisyNN/ files of the same name, when present, for --noise from-files."""
    from .sources.cbsd68_test import NOISY_FOLDERS

    res, root = PairingResult(), _one(files)
    png = find_dirs(root, "original_png")
    jpg = [d for d in find_dirs(root, "original") if any(f.suffix.lower() == ".jpg" for f in images_in(d))]
    hub = [d for d in find_dirs(root, "0") if images_in(d)]
    if png:
        d, imgs = png[0], images_in(png[0])
        names = [f.stem for f in imgs]
        res.layout.append(f"{where(root, d)}/ (GitHub clausmichele/CBSD68-dataset original_png)")
    elif jpg:
        d = jpg[0]
        imgs = sorted(images_in(d), key=lambda f: (int(f.stem) if f.stem.isdigit() else 1 << 62, f.stem))
        names = [f"{k:04d}" for k in range(len(imgs))]
        res.layout.append(f"{where(root, d)}/<bsd id>.jpg in numeric id order, named 0000.. as original_png")
    elif hub:
        d, imgs = hub[0], images_in(hub[0])
        names = [f.stem for f in imgs]
        res.layout.append(f"{where(root, d)}/ (hub deepinv/CBSD68 layout: no per-file digests published)")
    else:
        _missing(res, root, "original_png/, original/ or 0/")
        return res
    noisy = {s: (d.parent / n) for s, n in NOISY_FOLDERS.items() if (d.parent / n).is_dir()}
    if noisy:
        res.layout.append("pre-noised folders: " + ", ".join(f"{n.name}/" for n in noisy.values()))
    for f, name in zip(imgs, names):
        extra = tuple((f"noisy{s}", str(p / f"{name}.png")) for s, p in noisy.items() if (p / f"{name}.png").is_file())
        res.pairs.append(SourcePair("val", name, f, extra=extra))
    return res


@register_pairing("cdd11")
def pair_cdd11(files: dict[str, Path]) -> PairingResult:
    """Every folder holding clear/ and type folders: <type>/<name> with clear/<name>; the split is
    train below a CDD-11_train folder, val otherwise. The task is the type folder's name."""
    from .sources.cdd11 import TYPES

    res, root = PairingResult(), _one(files)
    roots = [d for d in find_dirs(root, "clear") if any((d.parent / t).is_dir() for t in TYPES)]
    if not roots:
        _missing(res, root, "clear/ next to the type folders (" + ", ".join(TYPES) + ")")
        return res
    for clear in roots:
        base = clear.parent
        split = "train" if any("train" in p.lower() for p in base.relative_to(root).parts) or \
            "train" in root.name.lower() else "val"
        present = [t for t in TYPES if (base / t).is_dir()]
        res.layout.append(f"{where(root, base)}/{{clear,{len(present)} type folders}} -> {split}")
        for t in TYPES:
            if not (base / t).is_dir():
                _missing(res, base, f"{t}/")
                continue
            match_names(res, split, base / t, clear, task=t)
            gt_names = {f.name for f in images_in(clear)}
            # clear/ serves every type: a clear image without a partner in one type is not "unpaired".
            res.problems = [p for p in res.problems
                            if not (p["detail"].startswith("GT without") and Path(p["file"]).name in gt_names)]
    return res
