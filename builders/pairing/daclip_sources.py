"""Pairing rules of the ten DA-CLIP types' source datasets (GoPro, RESIDE, LOL, RainDrop,
Rain100H, SRD, Snow100K, DIV2K+Flickr2K, LIVE1, CBSD68, CelebA-HQ)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import (PairingResult, SourcePair, _missing, _one, find_dirs, images_in, match, pair_split_folders,
               register_pairing, same, strip_prefix, strip_suffix, where)

def gopro_sequences(root: Path, folder: str) -> Path | None:
    """The shallowest ``<folder>/`` below ``root`` holding GOPRO_Large's ``<SEQ>/sharp`` folders."""
    return next((d for d in find_dirs(root, folder) if any((s / "sharp").is_dir() for s in d.iterdir() if s.is_dir())),
                None)


def pair_gopro_sequences(res: PairingResult, seq_root: Path, split: str, extra: tuple = ()) -> int:
    """GOPRO_Large's ``<SEQ>/{blur,sharp}/<frame>.png`` -> ``<SEQ>_<frame>``; returns the sequences."""
    seqs = sorted(p for p in seq_root.iterdir() if p.is_dir())
    for seq in seqs:
        if not (seq / "blur").is_dir() or not (seq / "sharp").is_dir():
            _missing(res, seq, "blur/ and sharp/ folders")
            continue
        match(res, split, images_in(seq / "blur"), images_in(seq / "sharp"), same, same,
              name=lambda k, s=seq.name: f"{s}_{k}", extra=(("lq_variant", "blur (not blur_gamma)"), *extra))
    return len(seqs)


@register_pairing("gopro")
def pair_gopro(files: dict[str, Path]) -> PairingResult:
    """GOPRO_Large/{train,test}/<SEQ>/{blur,sharp}/<frame>.png -> <SEQ>_<frame>."""
    res, root = PairingResult(), _one(files)
    for folder, split in (("train", "train"), ("test", "val")):
        seq_root = gopro_sequences(root, folder)
        if seq_root is None:
            _missing(res, root, f"{folder}/<SEQ>/sharp")
            continue
        res.layout.append(f"{root.name}: {where(root, seq_root)}/<SEQ>/{{blur,sharp}}")
        pair_gopro_sequences(res, seq_root, split)
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


# rainregion-N / rainstreak-N are auxiliary maps some copies of the rain sets ship; not pairs.
RAIN_AUX = ("rainregion-", "rainstreak-")


@register_pairing("rain100h")
def pair_rain100h(files: dict[str, Path]) -> PairingResult:
    """Flat folders of rain-N.png / norain-N.png; the train archive and the test archive."""
    res = PairingResult()
    for archive, split in (("RainTrainH.zip", "train"), ("Rain100H.zip", "val")):
        imgs = images_in(files[archive], recursive=True)
        lq = [f for f in imgs if f.stem.startswith("rain-")]
        gt = [f for f in imgs if f.stem.startswith("norain-")]
        res.unpaired([f for f in imgs if f not in lq and f not in gt and not f.stem.startswith(RAIN_AUX)],
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
    from ..sources.snow100k import SUBSET

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
    from ..sources.celebahq import N_TEST, mask_names
    from ..synth import seed_for

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
