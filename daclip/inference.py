"""Test-time plumbing shared by the restoration methods and training validation.

- image <-> tensor conversion (uint8 HxWx3 <-> float [1,3,H,W] in 0..1),
- per-method input fitting: pad to a multiple (reflect or zero) and crop back, or crop
  to a multiple as some upstream test scripts do (the uncovered rim keeps the input),
- tiled application of a network above a size limit, with overlapping tiles blended by
  linear ramps, so large images (2K and up) run in bounded memory,
- DA-CLIP conditioning of a batch of LQ images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from builders.errors import UserError

from .precision import choices, resolve_precision

T = TypeVar("T")

FIT_MODES = ("reflect", "zero", "crop", "none")


def to_tensor(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """HxWx3 uint8 -> [1,3,H,W] float32 in 0..1."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    t = torch.from_numpy(np.array(img, copy=True)).to(device)  # decoded images are often read-only
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] or [3,H,W] float in 0..1 -> HxWx3 uint8 (clamped, rounded)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError("to_uint8 takes one image")
        t = t[0]
    return (t.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class Fit:
    """How a method's network sees an image of any size.

    reflect/zero: pad bottom/right to a multiple, crop the output back.
    crop: run on the centred region whose sides are multiples, as PromptIR/AirNet's test
    scripts do (``crop_img``: offsets ``(h % m) // 2``, ``(w % m) // 2``); the few rim pixels
    outside it are returned unchanged from the input.
    none: pass the image as is (the network pads internally).
    """

    mode: str = "reflect"
    multiple: int = 16

    def __post_init__(self):
        if self.mode not in FIT_MODES:
            raise ValueError(f"unknown fit mode {self.mode!r}; choose from {', '.join(FIT_MODES)}")
        if self.multiple < 1:
            raise ValueError("multiple must be >= 1")


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    if not ph and not pw:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"  # reflect needs the pad smaller than the side (tiny images)
    pad_mode = "constant" if mode == "zero" else mode
    return F.pad(x, (0, pw, 0, ph), mode=pad_mode)


def crop_offsets(h: int, w: int, multiple: int) -> tuple[int, int]:
    """(top, left) of the centred crop to a multiple, as upstream ``crop_img`` takes it."""
    return (h % multiple) // 2, (w % multiple) // 2


def apply_fitted(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], fit: Fit) -> torch.Tensor:
    """fn(*inputs) with the inputs fitted to ``fit``; the output has the inputs' H, W.

    With mode "crop" the first input provides the rim pixels of the output.
    """
    h, w = inputs[0].shape[-2:]
    if fit.mode == "none" or fit.multiple == 1:
        return fn(*inputs)
    if fit.mode == "crop":
        ch, cw = h - h % fit.multiple, w - w % fit.multiple
        if ch == 0 or cw == 0:
            # Smaller than one multiple: padding is the only way to run at all.
            return apply_fitted(fn, inputs, Fit("reflect", fit.multiple))
        top, left = crop_offsets(h, w, fit.multiple)
        out = fn(*[x[..., top:top + ch, left:left + cw] for x in inputs])
        if (ch, cw) == (h, w):
            return out
        full = inputs[0].to(out.dtype).clone()
        full[..., top:top + ch, left:left + cw] = out
        return full
    out = fn(*[pad_to_multiple(x, fit.multiple, fit.mode) for x in inputs])
    return out[..., :h, :w]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)  # the last tile ends at the border
    return starts


def _ramp(length: int, ramp_lo: int, ramp_hi: int, device, dtype) -> torch.Tensor:
    """1-D blending weight of a tile: ones inside, and on a side that overlaps a neighbour
    by ``o`` pixels, zero for the outer o//4 (the pixels a tile edge corrupts most) then a
    linear ramp that sums to one with the neighbour's mirrored ramp."""
    w = torch.ones(length, device=device, dtype=torch.float64)

    def side(o: int) -> torch.Tensor:
        m = o // 4
        k = torch.arange(o, device=device, dtype=torch.float64)
        return ((k - m + 1) / (o - 2 * m + 1)).clamp(0, 1)

    if ramp_lo > 0:
        w[:ramp_lo] = side(ramp_lo)
    if ramp_hi > 0:
        w[length - ramp_hi:] = torch.minimum(w[length - ramp_hi:], side(ramp_hi).flip(0))
    return w.to(dtype)


@dataclass(frozen=True)
class Tiling:
    """When and how to tile: images of at most ``max_pixels`` pixels (default 1280 x 1280,
    which covers the usual test sets whole, as the official scripts run them) or whose
    sides fit in ``tile`` run whole; larger ones run as ``tile``-sized tiles overlapping
    by ``overlap`` pixels."""

    tile: int = 768
    overlap: int = 64
    max_pixels: int = 1280 * 1280

    def __post_init__(self):
        if self.tile < 16:
            raise ValueError("tile must be >= 16 pixels")
        if not 0 <= self.overlap < self.tile:
            raise ValueError("overlap must be in [0, tile)")

    def whole(self, h: int, w: int) -> bool:
        return (h <= self.tile and w <= self.tile) or h * w <= self.max_pixels


def tiled_apply(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], tiling: Tiling | None,
                *, per_image: dict[str, torch.Tensor] | None = None, tile_batch: int = 1) -> torch.Tensor:
    """fn applied to overlapping spatial tiles of ``inputs`` (same H, W), blended.

    Inside each overlap the outputs are mixed by linear ramps that ignore the outer quarter
    of the overlap, so a network whose receptive-field radius is at most overlap/4 gives the
    same result as one whole pass; deeper networks get seamless approximations.

    ``tile_batch`` tiles go through ``fn`` in one call, stacked along the batch dimension
    (tile-major: the B images of the first tile, then of the second, ...); ``per_image``
    tensors ([B, ...], e.g. DA-CLIP embeddings) are passed to ``fn`` as keyword arguments,
    repeated to match. The blend is the same whatever ``tile_batch`` is.
    """
    per_image = per_image or {}
    h, w = inputs[0].shape[-2:]
    if tiling is None or tiling.whole(h, w):
        return fn(*inputs, **per_image)
    if tile_batch < 1:
        raise ValueError("tile_batch must be >= 1")
    th, tw = min(tiling.tile, h), min(tiling.tile, w)
    ys, xs = _starts(h, th, tiling.overlap), _starts(w, tw, tiling.overlap)
    boxes = [(iy, y, ix, x) for iy, y in enumerate(ys) for ix, x in enumerate(xs)]
    n = inputs[0].shape[0]
    out = weight = None
    for chunk in batched(boxes, tile_batch):
        if len(chunk) == 1:
            _, y, _, x = chunk[0]
            stacked, extra = [t[..., y:y + th, x:x + tw] for t in inputs], per_image
        else:
            stacked = [torch.cat([t[..., y:y + th, x:x + tw] for _, y, _, x in chunk]) for t in inputs]
            extra = {k: v.repeat(len(chunk), *([1] * (v.dim() - 1))) for k, v in per_image.items()}
        pieces = fn(*stacked, **extra)
        for k, (iy, y, ix, x) in enumerate(chunk):
            piece = pieces[k * n:(k + 1) * n]
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], h, w)
                weight = piece.new_zeros(1, 1, h, w)
            # Ramp length = the real overlap with the neighbour on that side.
            lo_y = (ys[iy - 1] + th - y) if iy > 0 else 0
            hi_y = (y + th - ys[iy + 1]) if iy + 1 < len(ys) else 0
            lo_x = (xs[ix - 1] + tw - x) if ix > 0 else 0
            hi_x = (x + tw - xs[ix + 1]) if ix + 1 < len(xs) else 0
            wy = _ramp(th, lo_y, hi_y, piece.device, piece.dtype)
            wx = _ramp(tw, lo_x, hi_x, piece.device, piece.dtype)
            win = (wy[:, None] * wx[None, :])[None, None]
            out[..., y:y + th, x:x + tw] += piece * win
            weight[..., y:y + th, x:x + tw] += win
    return out / weight


def tiled_rows(fn: Callable[..., torch.Tensor], img: np.ndarray, tiling: Tiling, device: torch.device | str = "cpu",
               *, per_image: dict[str, torch.Tensor] | None = None, tile_batch: int = 1) -> np.ndarray:
    """:func:`tiled_apply` on one HxWx3 uint8 image, one row of tiles at a time, into uint8.

    The same tiles, ramps and order of additions as tiled_apply (so the same pixels), but never
    a float copy of the whole image: only the current row of tiles is held in float (the rows it
    shares with the next row are carried over), and each finished band of rows is rounded into
    the uint8 output at once. Peak memory: the uint8 input and output plus two tile rows.
    """
    per_image = per_image or {}
    h, w = img.shape[:2]
    th, tw = min(tiling.tile, h), min(tiling.tile, w)
    ys, xs = _starts(h, th, tiling.overlap), _starts(w, tw, tiling.overlap)
    out = np.empty_like(img)
    carry = None
    for iy, y in enumerate(ys):
        acc = weight = None
        lo_y = (ys[iy - 1] + th - y) if iy > 0 else 0
        hi_y = (y + th - ys[iy + 1]) if iy + 1 < len(ys) else 0
        for chunk in batched(list(enumerate(xs)), tile_batch):
            tiles = [to_tensor(img[y:y + th, x:x + tw], device) for _, x in chunk]
            extra = per_image if len(chunk) == 1 else \
                {k: v.repeat(len(chunk), *([1] * (v.dim() - 1))) for k, v in per_image.items()}
            pieces = fn(tiles[0] if len(tiles) == 1 else torch.cat(tiles), **extra)
            for k, (ix, x) in enumerate(chunk):
                piece = pieces[k:k + 1]
                if acc is None:
                    acc = piece.new_zeros(1, piece.shape[1], th, w)
                    weight = piece.new_zeros(1, 1, th, w)
                    if carry is not None:  # partial sums of the rows shared with the row above
                        py, pacc, pweight = carry
                        shared = py + th - y
                        if shared > 0:
                            acc[..., :shared, :] = pacc[..., y - py:, :]
                            weight[..., :shared, :] = pweight[..., y - py:, :]
                lo_x = (xs[ix - 1] + tw - x) if ix > 0 else 0
                hi_x = (x + tw - xs[ix + 1]) if ix + 1 < len(xs) else 0
                wy = _ramp(th, lo_y, hi_y, piece.device, piece.dtype)
                wx = _ramp(tw, lo_x, hi_x, piece.device, piece.dtype)
                win = (wy[:, None] * wx[None, :])[None, None]
                acc[..., x:x + tw] += piece * win
                weight[..., x:x + tw] += win
        end = ys[iy + 1] if iy + 1 < len(ys) else h  # rows no later tile touches
        band = acc[..., :end - y, :] / weight[..., :end - y, :]
        out[y:end] = to_uint8(band)
        carry = (y, acc, weight)
    return out


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


#: DA-CLIP encoder precision (daclip.precision's names): the official test script encodes under
#: ``torch.cuda.amp.autocast()`` (fp16) on the GPU; on the CPU it runs fp32.
DACLIP_AMP = tuple(choices())


def resolve_daclip_amp(amp: str, device: torch.device | str) -> str:
    """'auto' -> 'fp16' on CUDA (the official path), 'none' elsewhere; other values as given."""
    try:
        return resolve_precision(amp, device, gpu="fp16")
    except UserError:
        raise ValueError(f"daclip_amp={amp!r}: choose from {', '.join(DACLIP_AMP)}") from None


class DaclipConditioner:
    """(content, degradation) DA-CLIP embeddings of LQ images, computed frozen, no grad.

    The LQ batch ([B,3,H,W] in 0..1) goes through the official test-time preprocessing
    (:func:`daclip.model.clip_preprocess`: uint8 truncation, PIL bicubic resize, centre crop,
    OpenAI normalisation) image by image, and the encoder runs under ``amp`` autocast
    ('fp16' as the official code on a GPU, 'bf16', or 'none').
    """

    def __init__(self, model: torch.nn.Module, amp: str = "none"):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if amp not in ("fp16", "bf16", "none"):
            raise ValueError(f"amp={amp!r}: choose from fp16, bf16, none")
        self.amp = amp

    @property
    def embed_dim(self) -> int:
        return int(self.model.embed_dim)

    def to(self, device) -> "DaclipConditioner":
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .model import clip_preprocess

        x = clip_preprocess(lq, image_size=self.model.image_size)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.amp)
        if dtype is None:
            content, degra = self.model.encode_image(x, control=True)
        else:
            with torch.autocast(device_type=x.device.type, dtype=dtype):
                content, degra = self.model.encode_image(x, control=True)
        return content.float(), degra.float()
