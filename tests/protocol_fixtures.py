"""Replica fixtures of the published layouts of the 3D / 5D / CDD-11 test sets, built in tests.

Every image holds its own random pixels, so a built pair whose pixels equal two given fixture
files proves which files were paired. Sizes are small and not multiples of 16, so the 3D/5D
centre crop is exercised.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from builders.sources.cdd11 import TYPES

H, W = 21, 35  # -> 16 x 32 after the crop to 16


def img(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, a: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **kw)
    return path


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder.parent).as_posix())
    return dest


def sots(base: Path, n_gt: int, shared: int, gt_folder: str = "gt", seed: int = 0) -> dict[str, str]:
    """<base>/SOTS/outdoor/{hazy,<gt_folder>}: n_gt scenes, the first ``shared`` with two hazy
    images. Returns hazy stem -> GT stem. Hazy images are .jpg as published (lossy, so tests
    compare built pixels with the decoded file)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(1, n_gt + 1):
        gid = f"{i:04d}"
        save(base / "SOTS" / "outdoor" / gt_folder / f"{gid}.png", img(rng))
        for k in range(2 if i <= shared else 1):
            stem = f"{gid}_0.{8 + k}_0.2"
            save(base / "SOTS" / "outdoor" / "hazy" / f"{stem}.jpg", img(rng), quality=95)
            out[stem] = gid
    return out


def rain100l(base: Path, copy: str, n: int = 100, seed: int = 1) -> Path:
    """One of the three circulating copies under <base>/Rain100L; returns the folder."""
    rng = np.random.default_rng(seed)
    root = base / "Rain100L"
    for i in range(1, n + 1):
        if copy == "prenet":
            save(root / "rainy" / f"rain-{i:03d}.png", img(rng))
            save(root / f"norain-{i:03d}.png", img(rng))
        elif copy in ("relaid", "restormer"):
            big = copy == "restormer" and i == 1
            save(root / "input" / f"{i}.png", img(rng, 512, 384) if big else img(rng))
            save(root / "target" / f"{i}.png", img(rng, 512, 384) if big else img(rng))
        else:
            raise ValueError(copy)
    return root


def cbsd68(base: Path, n: int = 68, noisy: tuple[int, ...] = (), seed: int = 2) -> dict[str, tuple[int, str]]:
    """<base>/CBSD68-dataset/CBSD68/original_png/0000.png ..: returns the member digests to
    register in place of the published ones (the fixture's own pixels)."""
    rng = np.random.default_rng(seed)
    folder = base / "CBSD68-dataset" / "CBSD68"
    digests = {}
    for k in range(n):
        p = save(folder / "original_png" / f"{k:04d}.png", img(rng))
        digests[p.name] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for s in noisy:
            q = save(folder / f"noisy{s}" / f"{k:04d}.png", img(rng))
            digests[f"noisy{s}/{q.name}"] = (q.stat().st_size, hashlib.sha256(q.read_bytes()).hexdigest())
    return digests


def cdd11(base: Path, n: int = 3, seed: int = 3) -> Path:
    """<base>/CDD-11_test/{clear,<11 types>}/<5-digit id>.png, ids non-consecutive; each type's LQ
    is its clear image plus the type's index (mod 256), so a pair proves itself."""
    rng = np.random.default_rng(seed)
    root = base / "CDD-11_test"
    for i in range(n):
        name = f"{3 * i + 2:05d}.png"
        clear = img(rng)
        save(root / "clear" / name, clear)
        for k, t in enumerate(TYPES, start=1):
            save(root / t / name, (clear.astype(np.uint16) + k).astype(np.uint8))
    return root


GOPRO_SEQS = ("GOPR0384_11_00", "GOPR0862_11_00")


def gopro_large(base: Path, frames: int = 2, seed: int = 4) -> Path:
    """<base>/GOPRO_Large/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/<frame>.png; returns the folder.
    blur_gamma holds other pixels than blur, so using it would show."""
    rng = np.random.default_rng(seed)
    root = base / "GOPRO_Large"
    for split, seqs in (("train", ("GOPR0372_07_00",)), ("test", GOPRO_SEQS)):
        for seq in seqs:
            for k in range(1, frames + 1):
                for sub in ("blur", "blur_gamma", "sharp"):
                    save(root / split / seq / sub / f"{k:06d}.png", img(rng))
    return root


def gopro_flat(folder: Path, sep: str = "_", lq: str = "input", gt: str = "target", frames: int = 2,
               seed: int = 5) -> dict[str, tuple[Path, Path]]:
    """A flat copy: <folder>/{lq,gt}/<SEQ><sep><frame>.png. Returns <SEQ>_<frame> -> (LQ, GT)."""
    rng = np.random.default_rng(seed)
    out = {}
    for seq in GOPRO_SEQS:
        for k in range(1, frames + 1):
            name = f"{seq}{sep}{k:06d}.png"
            out[f"{seq}_{k:06d}"] = (save(folder / lq / name, img(rng)), save(folder / gt / name, img(rng)))
    return out


def lol(base: Path, copy: str, names: tuple[str, ...], seed: int = 6) -> tuple[Path, Path]:
    """LOLdataset/{our485,eval15}/{low,high} or the hub's LLIE-LoL-v1/{Train,Test}/{input,target};
    the training folder holds the same names with other pixels. Returns the test (LQ, GT) folders."""
    rng = np.random.default_rng(seed)
    if copy == "LOLdataset":
        root, train, test, lq, gt = base / "LOLdataset", "our485", "eval15", "low", "high"
    else:
        root, train, test, lq, gt = base / "LLIE-LoL-v1", "Train", "Test", "input", "target"
    for folder in (train, test):
        for n in names:
            save(root / folder / lq / f"{n}.png", img(rng))
            save(root / folder / gt / f"{n}.png", img(rng))
    return root / test / lq, root / test / gt
