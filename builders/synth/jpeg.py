"""jpeg-compressed: baseline JPEG at quality 10 with 4:2:0 chroma subsampling (libjpeg, as
OpenCV's imencode does in the paper).

``store="truncate"`` follows DA-CLIP's scripts/generate_LQ.py, which decodes to float32 / 255
and saves ``(x * 255).astype(uint8)``; for a decoded uint8 image that round trip is exact
(k / 255 * 255 == k in float32 for every k), so both conventions give the same bytes, and the
convention is recorded in the parameters all the same.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .base import Degraded, register_synth

QUALITY = 10


@register_synth("jpeg-compressed")
def jpeg(gt: np.ndarray, rng: np.random.Generator, quality: int = QUALITY, store: str = "round") -> Degraded:
    if store not in ("round", "truncate"):
        raise ValueError(f"unknown uint8 store convention {store!r} (round, truncate)")
    buf = io.BytesIO()
    Image.fromarray(gt).save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        lq = np.asarray(im.convert("RGB"))
    params = {"quality": quality, "subsampling": "4:2:0"}
    if store == "truncate":
        lq = ((lq.astype(np.float32) / np.float32(255.0)) * np.float32(255.0)).astype(np.uint8)
        params["uint8_store"] = "truncate"
    return Degraded(lq, params, {"jpeg": data})
