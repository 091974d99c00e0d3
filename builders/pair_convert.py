"""One output pair of a real-source build: the picklable ``Job`` a worker process runs, and
``convert`` that writes its LQ and GT PNGs (copied as they are when already plain 8-bit RGB
PNGs and not cropped; synthesised or masked LQ otherwise) and returns its manifest row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError
from .io import atomic_write_bytes, centre_crop, is_plain_png, read_image, save_image, sha256_bytes, sha256_file
from .layout import item_id, pair_relpaths
from .synth import synthesize
from .synth.inpaint import apply_mask
from .synth.noise import add_gaussian


@dataclass(frozen=True)
class Job:
    """One output pair; picklable so it can run in a worker process."""

    task: str
    split: str
    name: str  # output file name (<stem>.png)
    gt: str
    lq: str | None
    mask: str | None
    lq_kind: str  # "real" | "synthetic" | "mask" | "gaussian" (add_gaussian, seeded, sigma in params)
    seed: int | None
    origin: str  # manifest "source"
    licence: str
    params: str  # JSON of what identifies the inputs (recipe, source files, extras)
    gt_expect: tuple | None = None  # published (size, sha256) of the GT file: checked before use
    store: str | None = None  # uint8 store convention of the synthetic LQ (noisy, jpeg-compressed)
    crop: int = 0  # centre-crop LQ and GT to a multiple of this (a protocol's test geometry; 0: none)

    @property
    def id(self) -> str:
        return item_id(self.split, self.task, self.name)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.lq_kind, self.seed, self.params]).encode()).hexdigest()[:16]


def _digest_problem(job: "Job") -> str | None:
    """Why the GT file is not the published one (expected and actual values), or None."""
    if job.gt_expect is None:
        return None
    size, sha = job.gt_expect
    have_size, have = Path(job.gt).stat().st_size, sha256_file(job.gt)
    if have == sha and (size is None or have_size == size):
        return None
    return (f"{Path(job.gt).name}: sha256 {have} ({have_size} bytes), expected the published {sha}"
            + (f" ({size} bytes)" if size is not None else "") + "; the file is not used")


def _read_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as im:
        m = im.convert("L")
        if m.size != size:
            # Area interpolation, as DA-CLIP's cv2.resize(..., INTER_AREA).
            m = m.resize(size, Image.Resampling.BOX)
        return np.asarray(m)


def _png_bytes_if_plain(path: str) -> bytes | None:
    """The file's bytes when it already is an 8-bit RGB PNG: copied as is, saving a re-encode."""
    if not path.lower().endswith(".png") or not is_plain_png(path):
        return None
    return Path(path).read_bytes()


def _write(path: Path, img: np.ndarray, src: str | None) -> bytes:
    raw = _png_bytes_if_plain(src) if src else None
    if raw is None:
        return save_image(path, img)
    atomic_write_bytes(path, raw)
    return raw


def _is_current(root: Path, job: Job, row: dict | None) -> bool:
    if row is None:
        return False
    try:
        if json.loads(row["parameters"]).get("job_key") != job.key:
            return False
    except ValueError:
        return False
    lq, gt = root / row["lq_path"], root / row["gt_path"]
    return (lq.is_file() and gt.is_file() and sha256_file(lq) == row["sha256"]
            and sha256_file(gt) == row["gt_sha256"])


def convert(job: Job, root: str, row: dict | None, force: bool) -> dict:
    """Build one pair. Returns {"status": "built"|"skipped"|"failed", "row" or "problem"}."""
    root = Path(root)
    if not force and _is_current(root, job, row):
        return {"status": "skipped", "id": job.id}
    params = {**json.loads(job.params), "job_key": job.key}
    bad = _digest_problem(job)
    if bad is not None:
        return {"status": "failed", "id": job.id, "problem": {
            "id": job.id, "kind": "digest-mismatch", "lq": job.lq, "gt": job.gt, "detail": bad}}
    try:
        whole = read_image(job.gt)
        gt = centre_crop(whole, job.crop)
        cropped = gt.shape != whole.shape
        if job.lq_kind == "real":
            whole = read_image(job.lq)
            lq = centre_crop(whole, job.crop)
            cropped = cropped or lq.shape != whole.shape
            if lq.shape != gt.shape:
                return {"status": "failed", "id": job.id, "problem": {
                    "id": job.id, "kind": "size-mismatch", "lq": job.lq, "gt": job.gt,
                    "detail": f"LQ {lq.shape[1]}x{lq.shape[0]} vs GT {gt.shape[1]}x{gt.shape[0]}"}}
        elif job.lq_kind == "gaussian":
            # A protocol's training noise: drawn here, so a pair already built is not redrawn.
            z = np.random.default_rng(job.seed).standard_normal(gt.shape)
            lq = add_gaussian(gt, z, float(params["sigma"]))
        elif job.lq_kind == "synthetic":
            out = synthesize(job.task, gt, job.seed, store=job.store)
            lq, params = out.lq, {**params, **out.params}
        else:
            out = apply_mask(gt, _read_mask(job.mask, (gt.shape[1], gt.shape[0])))
            lq, params = out.lq, {**params, **out.params}
    except UserError as exc:
        return {"status": "failed", "id": job.id, "problem": {
            "id": job.id, "kind": "unreadable", "lq": job.lq, "gt": job.gt, "detail": str(exc)}}
    lq_rel, gt_rel = pair_relpaths(job.split, job.task, job.name)
    # A file is copied as it is only when nothing was cropped from it.
    gt_bytes = _write(root / gt_rel, gt, None if cropped else job.gt)
    lq_bytes = _write(root / lq_rel, lq, job.lq if job.lq_kind == "real" and not cropped else None)
    return {"status": "built", "id": job.id, "row": {
        "id": job.id, "type": job.task, "split": job.split, "name": job.name,
        "lq_path": lq_rel, "gt_path": gt_rel, "source": job.origin, "licence": job.licence,
        "width": int(gt.shape[1]), "height": int(gt.shape[0]),
        "parameters": json.dumps(params, sort_keys=True),
        "sha256": sha256_bytes(lq_bytes), "gt_sha256": sha256_bytes(gt_bytes)}}


def convert_packed(args: tuple) -> dict:
    """``convert(*args)``: one picklable argument, for ProcessPoolExecutor.submit and the serial loop."""
    return convert(*args)
