"""jpeg-compressed: baseline JPEG at quality 10 with 4:2:0 chroma subsampling (libjpeg, as
OpenCV's imencode does in the paper)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .base import Degraded, register_synth

QUALITY = 10


@register_synth("jpeg-compressed")
def jpeg(gt: np.ndarray, rng: np.random.Generator, quality: int = QUALITY) -> Degraded:
    buf = io.BytesIO()
    Image.fromarray(gt).save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        lq = np.asarray(im.convert("RGB"))
    return Degraded(lq, {"quality": quality, "subsampling": "4:2:0"}, {"jpeg": data})
