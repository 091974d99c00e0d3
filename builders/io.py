"""Image and file I/O with atomic writes.

Every file is written to a temporary name in the destination folder and renamed into
place, so an interrupted run never leaves a truncated file under a final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import UserError


def _umask() -> int:
    """The process umask (read without changing it where the kernel tells: Linux >= 4.7)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only here)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, else removed.

    For writers that want a file name (torch.save, np.save, ...) rather than bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    # mkstemp creates 0600 and os.replace keeps that mode: give the file what a plain open()
    # would (0666 less the umask), so a shared dataset or a served report stays readable.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array; deterministic (no timestamps, fixed zlib level)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_image(path: str | os.PathLike, img: np.ndarray) -> bytes:
    """Write an RGB uint8 image as PNG atomically; returns the bytes written."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    data = encode_png(img)
    atomic_write_bytes(path, data)
    return data


_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_DIRECT_MODES = ("RGB", "L", "1", "RGBX", "YCbCr")


def _to_rgb(im: Image.Image, path: Path, alpha: str = "refuse") -> np.ndarray:
    """HxWx3 uint8 RGB of an opened image, whatever its mode; UserError naming a mode we refuse.

    - 8-bit modes (RGB, L, 1, P, YCbCr, RGBX) convert as Pillow does (what cv2.imread gives).
    - 16-bit images keep their high byte (x >> 8: 0 -> 0, 65535 -> 255, as Pillow decodes
      16-bit colour PNGs); Pillow's own convert("RGB") would clip them to white.
    - An alpha channel is dropped when it is fully opaque; real transparency is refused (which
      background the pixels are meant to lie on is not ours to guess), unless ``alpha="drop"``
      (a user's own photo, restored as its colour channels show it).
    - CMYK goes through its embedded ICC profile to sRGB when it has one, else Pillow's formula.
    - 32-bit integer and float images (and LAB, HSV) have no agreed 0..255 range: refused.
    """
    mode = im.mode
    if mode.startswith("I;16") or (mode == "I" and im.format == "PNG"):
        # "I" is how older Pillow releases open 16-bit grey PNGs; its values are 0..65535 there.
        a = np.asarray(im).astype(np.uint32)
        return np.repeat((np.clip(a, 0, 65535) >> 8).astype(np.uint8)[..., None], 3, axis=2)
    if mode in _DIRECT_MODES:
        return np.asarray(im.convert("RGB") if mode != "RGB" else im)
    if mode == "P":
        if "transparency" not in im.info:
            return np.asarray(im.convert("RGB"))
        im, mode = im.convert("RGBA"), "P with transparency"
    elif mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            from PIL import ImageCms

            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                return np.asarray(ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"))
            except (ImageCms.PyCMSError, OSError):
                pass  # a broken profile: fall back to the plain formula
        return np.asarray(im.convert("RGB"))
    elif mode not in _ALPHA_MODES:
        kind = {"F": "32-bit float", "I": "32-bit integer"}.get(mode, mode)
        raise UserError(f"cannot read image {path}: pixel mode {mode} ({kind}) has no agreed 0..255 range; "
                        "convert it to an 8- or 16-bit RGB or grey PNG first")
    rgba = np.asarray(im.convert("RGBA"))
    if alpha != "drop" and (rgba[..., 3] != 255).any():
        raise UserError(f"cannot read image {path}: it has transparent pixels (mode {mode}); "
                        "flatten it onto a background first")
    return np.ascontiguousarray(rgba[..., :3])


#: Largest image decoded without being asked (pixels). A 12000x12000 PNG compresses to a few
#: hundred KB but decodes to 432 MB of uint8 and gigabytes of float: the size is checked from
#: the header, before any decoding. Commands raise it with --max-megapixels.
MAX_PIXELS = 64_000_000
# Our limit replaces Pillow's (warning at 89 MP, error at 179 MP): it is checked, and can be raised.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
Image.MAX_IMAGE_PIXELS = None


def add_pixel_limit_option(parser) -> None:
    """The one ``--max-megapixels`` option of the commands that read images (``pixel_limit`` reads it)."""
    parser.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6, metavar="MP",
                        help=f"refuse larger images, from their header (default {MAX_PIXELS / 1e6:g}; 0: no limit)")


def pixel_limit(megapixels: float) -> int | None:
    """Pixels for --max-megapixels (0: no limit); UserError for a negative value."""
    if megapixels < 0:
        raise UserError(f"--max-megapixels must be >= 0 (0: no limit), got {megapixels:g}")
    return None if megapixels == 0 else int(megapixels * 1_000_000)


def check_pixels(path: str | os.PathLike, width: int, height: int, max_pixels: int | None = MAX_PIXELS) -> None:
    """UserError naming the file when width x height is over ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        need = -(-width * height // 1_000_000)
        raise UserError(f"{path} is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the limit of "
                        f"{max_pixels / 1e6:g} megapixels; raise it with --max-megapixels {need} if this machine "
                        "has the memory")


def read_image(path: str | os.PathLike, *, upright: bool = False, alpha: str = "refuse",
               max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read any image Pillow can decode as an HxWx3 uint8 RGB array (see :func:`_to_rgb` for the modes).

    ``upright``: turn it by its EXIF orientation first, as photo viewers show it (dataset files
    are read as stored). ``alpha``: "refuse" real transparency, or "drop" the alpha channel.
    ``max_pixels``: larger images are refused from their header, before decoding (None: no limit).
    """
    if alpha not in ("refuse", "drop"):
        raise ValueError(f"alpha must be 'refuse' or 'drop', got {alpha!r}")
    path = Path(path)
    try:
        with Image.open(path) as im:
            check_pixels(path, *im.size, max_pixels)
            if upright and im.getexif().get(0x0112, 1) != 1:  # only when turned: the call copies the image
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            return _to_rgb(im, path, alpha)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"cannot read image {path}: it is a folder") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def is_plain_png(path: str | os.PathLike) -> bool:
    """True for an 8-bit RGB PNG without transparency: its bytes can be used as they are."""
    try:
        with Image.open(path) as im:
            return (im.format == "PNG" and im.mode == "RGB" and "transparency" not in im.info
                    and all(t[3] == "RGB" for t in im.tile))  # 16-bit colour PNGs also open as "RGB"
    except (OSError, ValueError):
        return False


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def centre_crop(img: np.ndarray, multiple: int) -> np.ndarray:
    """The centre crop to a multiple of ``multiple`` on both sides, offsets ``(h % m) // 2`` and
    ``(w % m) // 2`` (the PromptIR family's test datasets: 481x321 -> 480x320). 0: unchanged."""
    if multiple <= 1:
        return img
    h, w = img.shape[:2]
    top, left = (h % multiple) // 2, (w % multiple) // 2
    return img[top:top + h - h % multiple, left:left + w - w % multiple]
