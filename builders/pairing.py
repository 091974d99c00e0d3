"""Per-source pairing rules: extracted archive folders -> (split, name, LQ file, GT file).

Every rule pairs by an explicit key derived from the file names (never by sort order), and
returns the files it could not pair as problems, so nothing is dropped silently. Folders are
located by name anywhere below the extraction root, because archives differ in their top-level
folder (e.g. ``GOPRO_Large/`` or not) between mirrors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class SourcePair:
    split: str  # "train" or "val"
    name: str  # output stem (the file is <name>.png)
    gt: Path
    lq: Path | None = None  # None: the LQ is synthesised from the GT
    mask: Path | None = None  # official inpainting mask (uncompleted)
    extra: tuple = ()  # (key, value) pairs recorded in the manifest parameters


@dataclass
class PairingResult:
    pairs: list[SourcePair] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"kind", "file", "detail"}

    def unpaired(self, files: Iterable[Path], detail: str) -> None:
        for f in sorted(files):
            self.problems.append({"kind": "unpaired", "file": str(f), "detail": detail})


PairingRule = Callable[[dict[str, Path]], PairingResult]
_RULES: dict[str, PairingRule] = {}


def register_pairing(name: str):
    def deco(fn: PairingRule) -> PairingRule:
        _RULES[name] = fn
        return fn

    return deco


def pair_source(rule: str, files: dict[str, Path]) -> PairingResult:
    """Run pairing rule ``rule`` on ``files`` (needed file name -> extracted folder or file)."""
    return _RULES[rule](files)


# --------------------------------------------------------------------------------------- helpers

def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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


def _missing(result: PairingResult, where: Path, what: str) -> None:
    result.problems.append({"kind": "missing-folder", "file": str(where), "detail": f"no {what} found"})


def pair_split_folders(res: PairingResult, root: Path, splits: tuple[tuple[str, str], ...], lq: str, gt: str,
                       lq_key: Callable[[str], str | None] = same, gt_key: Callable[[str], str | None] = same,
                       pick: Callable[[list[Path]], list[Path]] = lambda fs: fs) -> PairingResult:
    """The common layout <folder>/{<lq>,<gt>}/<files> for each (folder, split); files paired by key."""
    for folder, split in splits:
        d = find_dir_with(root, folder, (lq, gt))
        if d is None:
            _missing(res, root, f"{folder}/{{{lq},{gt}}}")
            continue
        match(res, split, pick(images_in(d / lq)), pick(images_in(d / gt)), lq_key, gt_key)
    return res


def _one(files: dict[str, Path]) -> Path:
    return next(iter(files.values()))


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


@register_pairing("srd")
def pair_srd(files: dict[str, Path]) -> PairingResult:
    """shadow/<name>.jpg with shadow_free/<name>_no_shadow.jpg, train and test archives."""
    res = PairingResult()
    for archive, split in (("SRD_Train.zip", "train"), ("SRD_Test.zip", "val")):
        root = files[archive]
        lq_dirs = [d for d in find_dirs(root, "shadow") if (d.parent / "shadow_free").is_dir()]
        if not lq_dirs:
            _missing(res, root, "shadow/ next to shadow_free/")
            continue
        d = lq_dirs[0]
        gt_key = lambda s: s.removesuffix("_no_shadow")
        match(res, split, images_in(d), images_in(d.parent / "shadow_free"), same, gt_key)
    return res


@register_pairing("snow100k")
def pair_snow100k(files: dict[str, Path]) -> PairingResult:
    """{all, Snow100K-L}/{synthetic,gt}/<name>, names containing 'beautiful_smile' only."""
    from .sources.snow100k import SUBSET

    res = PairingResult()
    for archive, folder, split in (("Snow100K-training.tar.gz", "all", "train"),
                                   ("Snow100K-testset.tar.gz", "Snow100K-L", "val")):
        pair_split_folders(res, files[archive], ((folder, split),), "synthetic", "gt",
                           pick=lambda fs: [f for f in fs if SUBSET in f.name])
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
    res, imgs = PairingResult(), []
    for archive, folders in (("DIV2K.tar", ("DIV2K_train_HR", "DIV2K_valid_HR")), ("Flickr2K.tar", ("Flickr2K_HR",))):
        for folder in folders:
            hits = find_dirs(files[archive], folder)
            if not hits:
                _missing(res, files[archive], folder)
                continue
            imgs += images_in(hits[0])
    _gt_only(res, "train", imgs)
    return res


@register_pairing("live1")
def pair_live1(files: dict[str, Path]) -> PairingResult:
    res, root = PairingResult(), _one(files)
    hits = find_dirs(root, "refimgs")
    if not hits:
        _missing(res, root, "refimgs/")
    else:
        _gt_only(res, "val", images_in(hits[0]))
    return res


@register_pairing("cbsd68")
def pair_cbsd68(files: dict[str, Path]) -> PairingResult:
    """The clean images: original_png/ when present, else every image outside noisy*/ folders."""
    res, root = PairingResult(), _one(files)
    hits = find_dirs(root, "original_png")
    if hits:
        imgs = images_in(hits[0])
    else:
        imgs = [f for f in images_in(root, recursive=True)
                if not any(p.lower().startswith("noisy") for p in f.relative_to(root).parts[:-1])]
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
