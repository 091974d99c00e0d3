"""Image decoding in DataLoader workers feeding batched BLIP generation.

Decoding a PNG and resizing it to 384 px costs more CPU time than one image's share of a
batched generate on a GPU, so workers decode and preprocess while the GPU generates; the
main process only stacks ready tensors and calls the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from builders.errors import UserError


class GTImages(Dataset):
    """(index, pixel values, error) for a list of image paths, preprocessed for BLIP."""

    def __init__(self, paths: Sequence[Path], image_processor):
        self.paths = list(paths)
        self.image_processor = image_processor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from builders.io import read_image

        path = self.paths[i]
        try:
            # A writable copy: torch warns about (and must not alias) read-only numpy buffers.
            img = read_image(path).copy()
            pv = self.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
        except UserError as exc:
            # Returned, not raised: a worker's exception would reach the user as a traceback.
            return i, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - any preprocessing failure names the file
            return i, None, f"cannot preprocess image {path}: {exc}"
        return i, pv, None


def _collate(items):
    idx = [i for i, _, _ in items]
    errors = [e for _, _, e in items if e is not None]
    pv = torch.stack([p for _, p, _ in items]) if not errors else None
    return idx, pv, errors


def _worker_init(_):
    # Many workers times many threads would oversubscribe the CPU cores.
    torch.set_num_threads(1)


def make_loader(dataset: GTImages, batch_size: int, workers: int, pin_memory: bool = False) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
        pin_memory=pin_memory, worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
    )


def caption_batches(captioner, paths: Sequence[Path], batch_size: int, workers: int) -> Iterator[tuple[list[int], list[str]]]:
    """Yield (indices into paths, raw captions) batch by batch, in order."""
    ds = GTImages(paths, captioner.image_processor)
    loader = make_loader(ds, batch_size, workers, pin_memory=captioner.device.type == "cuda")
    for idx, pv, errors in loader:
        if errors:
            raise UserError(errors[0])
        yield idx, captioner.generate(pv)
