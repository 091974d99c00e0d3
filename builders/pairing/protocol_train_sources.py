"""Pairing rules of the 3D/5D protocols' training sets: RainTrainL, BSD400 + WED (clean images;
the noise is synthesised by the protocol build) and RESIDE OTS."""

from __future__ import annotations

import re
from pathlib import Path

from . import PairingResult, _missing, _one, find_dirs, images_in, match, register_pairing, where
from .daclip_sources import RAIN_AUX, _gt_only
from .protocol_sources import _index_key, drop_same_key, pair_by_prefix


@register_pairing("raintrainl")
def pair_raintrainl(files: dict[str, Path]) -> PairingResult:
    """rain-N.png with norain-N.png anywhere in the folder (flat as published), by the index N."""
    res, root = PairingResult(), _one(files)
    imgs = images_in(root, recursive=True)
    lq = [f for f in imgs if f.stem.startswith("rain-")]
    gt = [f for f in imgs if f.stem.startswith("norain-")]
    res.unpaired([f for f in imgs if f not in lq and f not in gt and not f.stem.startswith(RAIN_AUX)],
                 "neither rain-N nor norain-N")
    folders = sorted({where(root, f.parent) for f in lq + gt})
    res.layout.append(f"{root.name}: {len(lq)} rain-N + {len(gt)} norain-N in "
                      + ("one flat folder" if len(folders) <= 1 else ", ".join(f"{x}/" for x in folders)))
    match(res, "train", drop_same_key(res, lq, _index_key, "index"), drop_same_key(res, gt, _index_key, "index"),
          _index_key, _index_key, name=lambda k: f"rain-{int(k)}")
    return res


@register_pairing("bsd400-wed")
def pair_bsd400_wed(files: dict[str, Path]) -> PairingResult:
    """Every image of BSD400 and of WaterlooED, GT only, named bsd400_<name> and wed_<name>."""
    from ..sources.bsd400_wed import WED_COUNT

    res = PairingResult()
    for needed, prefix in (("BSD400", "bsd400"), ("WaterlooED", "wed")):
        root = files[needed]
        imgs = images_in(root, recursive=True)
        if not imgs:
            _missing(res, root, "images")
            continue
        _gt_only(res, "train", imgs, name=lambda f, p=prefix: f"{p}_{f.stem}")
        ref = f" (protocols.md: {WED_COUNT})" if prefix == "wed" and len(imgs) != WED_COUNT else ""
        res.layout.append(f"{needed}: {len(imgs)} images{ref}")
    return res


@register_pairing("reside-ots")
def pair_reside_ots(files: dict[str, Path]) -> PairingResult:
    """original/XXXX.<ext> with the hazy partK/XXXX_A_beta.jpg below the same folder (by the prefix
    before the first '_'); one GT serves many hazy images."""
    from ..sources.reside_ots import GT_FOLDER, HAZY_FOLDER

    res, root = PairingResult(), _one(files)
    gt_dir = next(iter(find_dirs(root, GT_FOLDER)), None)
    if gt_dir is None:
        _missing(res, root, f"{GT_FOLDER}/")
        return res
    base = gt_dir.parent
    parts = sorted((d for d in base.rglob("*") if d.is_dir() and re.fullmatch(HAZY_FOLDER, d.name, re.I)),
                   key=lambda d: (len(d.parts), str(d)))
    if not parts:
        _missing(res, base, f"part1/ .. partK/ folders beside {GT_FOLDER}/")
        return res
    hazy = drop_same_key(res, [f for d in parts for f in images_in(d)], lambda s: s, "hazy name")
    used = pair_by_prefix(res, "train", hazy, images_in(gt_dir))
    res.layout.append(f"{where(root, base)}/{{{GT_FOLDER}, {', '.join(where(base, d) for d in parts)}}}: "
                      f"{len(res.pairs)} hazy over {len(used)} GT")
    return res
