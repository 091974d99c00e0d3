"""Pairing rules of the protocol test sets (3D, 5D, CDD-11): SOTS outdoor, Rain100L, CBSD68's
clean images, GoPro's and LOL-v1's test copies and CDD-11."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import (PairingResult, SourcePair, _missing, _one, find_dirs, images_in, match, match_names,
               register_pairing, where)


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
    from ..sources.sots_outdoor import LAYOUTS

    res, root = PairingResult(), _one(files)
    # RESIDE's SOTS zip holds indoor/ beside outdoor/: only outdoor is the protocol's set.
    hit = _first_dir_with(root, LAYOUTS, skip=lambda d: "indoor" in (x.lower() for x in d.relative_to(root).parts))
    if hit is None:
        _missing(res, root, " or ".join(f"{a}/ next to {b}/" for a, b in LAYOUTS) + " (outside indoor/)")
        return res
    d, lq_dir, gt_dir = hit
    hazy, gts = images_in(d / lq_dir), images_in(d / gt_dir)
    used = pair_by_prefix(res, "val", hazy, gts, same_name_first=True)
    shared = sum(1 for n in used.values() if n > 1)
    res.layout.append(f"{where(root, d)}/{{{lq_dir},{gt_dir}}}: {len(res.pairs)} hazy over {len(used)} GT"
                      + (f" ({shared} GT shared by several hazy images)" if shared else ""))
    return res


def pair_by_prefix(res: PairingResult, split: str, hazy: list[Path], gts: list[Path],
                   same_name_first: bool = False) -> dict[Path, int]:
    """RESIDE's rule: a hazy ``<id>_<A>_<beta>`` pairs with the GT named ``<id>`` (its prefix before
    the first '_'; with ``same_name_first``, a GT of the hazy image's own name wins). One GT may
    serve several hazy images; each pair is named after its hazy image. Returns GT -> uses."""
    by_name = {f.stem: f for f in gts}
    by_prefix: dict[str, Path] = {}
    for f in gts:
        by_prefix.setdefault(f.stem.split("_")[0], f)
    used: dict[Path, int] = {}
    for f in hazy:
        gt = (by_name.get(f.stem) if same_name_first else None) or by_prefix.get(f.stem.split("_")[0])
        if gt is None:
            res.unpaired([f], "hazy image without a GT of " + ("its name or " if same_name_first else "")
                         + "its prefix before the first '_'")
            continue
        used[gt] = used.get(gt, 0) + 1
        res.pairs.append(SourcePair(split, f.stem, gt, f, extra=(("gt_rule", "name" if gt.stem == f.stem else "prefix"),)))
    res.unpaired([g for g in gts if g not in used], "GT that no hazy image names")
    return used


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
    from ..sources.cbsd68_test import NOISY_FOLDERS

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
    from ..sources.cdd11 import TYPES

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


def drop_same_key(res: PairingResult, files: list[Path], key: Callable[[str], str | None], what: str) -> list[Path]:
    """``files`` less those whose key an earlier file has (reported: they would share one output)."""
    seen: dict[str, Path] = {}
    out = []
    for f in files:
        k = key(f.stem)
        if k is not None and k in seen:
            res.problems.append({"kind": "duplicate-name", "file": str(f),
                                 "detail": f"the same {what} as {seen[k].name}: one output name for both; that one is used"})
            continue
        if k is not None:
            seen[k] = f
        out.append(f)
    return out


def _gopro_key(stem: str) -> str | None:
    """<SEQ>_<frame> from a flat copy's name, the hyphen form <SEQ>-<frame> included."""
    from ..sources.gopro_test import FLAT_NAME

    m = FLAT_NAME.match(stem)
    return None if m is None else f"{m[1]}_{m[3]}"


@register_pairing("gopro-test")
def pair_gopro_test(files: dict[str, Path]) -> PairingResult:
    """GoPro's test pairs from GOPRO_Large's test/<SEQ>/{blur,sharp}, else from a flat copy
    ({input,target} or {blur,sharp} of <SEQ>_<frame> or <SEQ>-<frame> files); named <SEQ>_<frame>."""
    from ..sources.gopro_test import FLAT_LAYOUTS, FLAT_NAME, OTHER_SETS
    from .daclip_sources import gopro_sequences, pair_gopro_sequences

    res, root = PairingResult(), _one(files)
    seq_root = gopro_sequences(root, "test")
    if seq_root is not None:
        n = pair_gopro_sequences(res, seq_root, "val", extra=(("gopro_copy", "GOPRO_Large"),))
        res.layout.append(f"GoPro copy: GOPRO_Large: {where(root, seq_root)}/<SEQ>/{{blur,sharp}}/<frame>.png "
                          f"({n} sequences), flattened to <SEQ>_<frame>")
        return res
    other = lambda d: any(x.lower() in OTHER_SETS for x in d.relative_to(root).parts)  # noqa: E731
    hit = _first_dir_with(root, tuple((a, b) for a, b, _ in FLAT_LAYOUTS), skip=other)
    if hit is None:
        _missing(res, root, "test/<SEQ>/{blur,sharp} (GOPRO_Large), or "
                 + " or ".join(f"{a}/ next to {b}/" for a, b, _ in FLAT_LAYOUTS) + f" (outside {', '.join(OTHER_SETS)})")
        return res
    d, a, b = hit
    copy = next(c for x, _, c in FLAT_LAYOUTS if x.lower() == a.lower())
    lq, gt = images_in(d / a), images_in(d / b)
    hyphen = sum(1 for f in lq + gt if (m := FLAT_NAME.match(f.stem)) and m[2] == "-")
    what = "<SEQ>_<frame>"
    match(res, "val", drop_same_key(res, lq, _gopro_key, what), drop_same_key(res, gt, _gopro_key, what),
          _gopro_key, _gopro_key, extra=(("gopro_copy", f"flat {a}/{b}"),))
    res.layout.append(f"GoPro copy: flat {a}/{b}: {where(root, d)}/{{{a},{b}}}/<SEQ>_<frame>.png ({copy})"
                      + (f"; {hyphen} files named <SEQ>-<frame>, built as <SEQ>_<frame>" if hyphen else ""))
    return res


@register_pairing("lol-eval15")
def pair_lol_eval15(files: dict[str, Path]) -> PairingResult:
    """LOL-v1's 15 test pairs: eval15/{low,high} (LOLdataset) or Test/{input,target} (the hub's
    LLIE-LoL-v1), equal names, outside the training folders; names other than eval15's are flagged."""
    from ..sources.lol import EVAL15_LAYOUTS, EVAL15_NAMES, TRAIN_FOLDERS

    res, root = PairingResult(), _one(files)
    train = lambda d: any(x.lower() in TRAIN_FOLDERS for x in d.relative_to(root).parts)  # noqa: E731
    hit = _first_dir_with(root, tuple((a, b) for a, b, _ in EVAL15_LAYOUTS), skip=train)
    if hit is None:
        _missing(res, root, " or ".join(f"{a}/ next to {b}/" for a, b, _ in EVAL15_LAYOUTS)
                 + f" (outside {', '.join(TRAIN_FOLDERS)})")
        return res
    d, a, b = hit
    copy = next(c for x, _, c in EVAL15_LAYOUTS if x.lower() == a.lower())
    match_names(res, "val", d / a, d / b)
    res.layout.append(f"LOL-v1 copy: {copy}: {where(root, d)}/{{{a},{b}}}: {len(res.pairs)} pairs")
    others = sorted(p.name for p in res.pairs if p.name not in EVAL15_NAMES)
    if others:
        res.problems.append({"kind": "other-copy", "file": str(d), "detail": (
            f"{len(others)} of the names are not eval15's ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): "
            "not the protocol's test set")})
    return res
