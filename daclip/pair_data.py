"""Training data of the restoration networks (``daclip.train_ir``): a split's LQ/GT pairs from
the manifest, the same random crop, flips and rot90 on both images of a pair, and the endless
class-balanced index stream (a type uniformly, then a pair of it), sharded over ranks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from builders.errors import UserError
from builders.io import read_image


def load_pairs(root: Path, split: str, tasks: list[str]) -> list[tuple[str, Path, Path]]:
    """(type, LQ path, GT path) of a split, from the manifest."""
    from builders.manifest import select

    df = select(root, split, tasks).sort_values(["type", "name"])
    return [(r.type, root / r.lq_path, root / r.gt_path) for r in df.itertuples()]


def augment_pair(lq: np.ndarray, gt: np.ndarray, patch: int, rng: np.random.Generator):
    """The same random crop, flips and rot90 on both images (pads by reflection if small)."""
    if lq.shape != gt.shape:
        raise UserError(f"LQ and GT sizes differ: {lq.shape} vs {gt.shape}")
    h, w = lq.shape[:2]
    if h < patch or w < patch:
        pad = ((0, max(0, patch - h)), (0, max(0, patch - w)), (0, 0))
        lq, gt = np.pad(lq, pad, mode="reflect"), np.pad(gt, pad, mode="reflect")
        h, w = lq.shape[:2]
    y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    lq, gt = lq[y:y + patch, x:x + patch], gt[y:y + patch, x:x + patch]
    if rng.random() < 0.5:
        lq, gt = lq[:, ::-1], gt[:, ::-1]
    if rng.random() < 0.5:
        lq, gt = lq[::-1], gt[::-1]
    k = int(rng.integers(0, 4))
    lq, gt = np.rot90(lq, k), np.rot90(gt, k)
    return np.ascontiguousarray(lq), np.ascontiguousarray(gt)


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


class PairDataset(Dataset):
    """Training pairs: index -> augmented (lq, gt) patches; ``key_view`` adds a second LQ crop."""

    def __init__(self, pairs, patch: int, seed: int = 0, key_view: bool = False):
        self.pairs = pairs
        self.patch = patch
        self.seed = seed
        self.key_view = key_view
        self.types = sorted({t for t, _, _ in pairs})

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):
        # ``index`` = (pair index, draw number): the crop is a function of both, so runs
        # are reproducible whatever the number of loader workers.
        i, draw = index if isinstance(index, tuple) else (index, 0)
        task, lq_path, gt_path = self.pairs[i]
        rng = np.random.default_rng([self.seed, i, draw])
        lq, gt = augment_pair(read_image(lq_path), read_image(gt_path), self.patch, rng)
        item = {"lq": _chw(lq), "gt": _chw(gt), "type": self.types.index(task)}
        if self.key_view:
            key, _ = augment_pair(read_image(lq_path), read_image(lq_path), self.patch, rng)
            item["lq_key"] = _chw(key)
        return item


class BalancedSampler(Sampler):
    """Endless class-balanced index stream: a type uniformly, then a pair of that type.

    Every rank draws the same global stream from (seed, epoch) and keeps every
    world_size-th element, as DistributedSampler does, so ranks see disjoint samples.
    """

    def __init__(self, types: list[str], samples_per_epoch: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.by_type: dict[str, list[int]] = {}
        for i, t in enumerate(types):
            self.by_type.setdefault(t, []).append(i)
        self.names = sorted(self.by_type)
        self.samples = samples_per_epoch
        self.seed, self.rank, self.world = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples // self.world

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        picks = rng.integers(0, len(self.names), size=self.samples)
        draws = rng.random(self.samples)
        stream = []
        for n, (k, u) in enumerate(zip(picks, draws)):
            members = self.by_type[self.names[k]]
            stream.append((members[int(u * len(members))], self.epoch * self.samples + n))
        return iter(stream[self.rank:len(self) * self.world:self.world])
