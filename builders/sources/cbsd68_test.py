"""CBSD68 for the 3D and 5D protocols: the 68 clean images in ``original_png`` order, each
checked against its published digest (cbsd68_files.tsv, github clausmichele/CBSD68-dataset),
and the pre-noised ``noisyNN/`` folders for ``--noise from-files``.

``original_png/k.png`` is the k-th ``original/<bsd id>.jpg`` in numeric id order (pixel-identical),
so a copy with only ``original/`` gives the same images and names. The hub tar
(deepinv/CBSD68, ``CBSD68/0/``) has no per-file digests; the report says so.
"""

import csv
from pathlib import Path

from .base import NeededFile, Recipe, hf, published, register_recipe, url


def _member_digests() -> dict[str, tuple[int, str]]:
    """(size, sha256) of the clean images by file name (original_png/*.png, original/*.jpg), and
    of the pre-noised ones as ``noisyNN/<name>`` (their names repeat original_png's)."""
    out = {}
    with open(Path(__file__).with_name("cbsd68_files.tsv"), newline="") as fh:
        for r in csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t"):
            folder, name = r["path"].split("/")[-2:]
            key = name if folder in ("original_png", "original") else f"{folder}/{name}"
            out[key] = (int(r["size_bytes"]), r["sha256"])
    return out


NOISY_FOLDERS = {15: "noisy15", 25: "noisy25", 50: "noisy50"}

RECIPE = register_recipe(Recipe(
    name="cbsd68-test",
    title="CBSD68 (clean originals, published per-file digests)",
    tasks=("cbsd68",),
    expected={("cbsd68", "val"): 68},
    files=(
        NeededFile("CBSD68-dataset", (
            url("https://github.com/clausmichele/CBSD68-dataset/archive/refs/heads/master.zip"),
        ), folder=True, aliases=("CBSD68-dataset-master", "CBSD68-dataset-master.zip", "master.zip", "CBSD68"),
            expect="CBSD68/original_png/0000.png .. 0067.png (also original/<bsd id>.jpg, noisy{15,25,50}/)"),
        NeededFile("CBSD68.tar.gz", (hf("deepinv/CBSD68:CBSD68.tar.gz"),), **published("CBSD68.tar.gz"),
                   expect="CBSD68/0/ (hub layout; no per-file digests)"),
    ),
    variants=(("GitHub clausmichele/CBSD68-dataset", ("CBSD68-dataset",)), ("hub deepinv/CBSD68", ("CBSD68.tar.gz",))),
    pairing="cbsd68-clean",
    lq="synthetic",
    licence="Berkeley Segmentation Dataset images: research use (BSDS terms)",
    homepage="https://github.com/clausmichele/CBSD68-dataset",
    split_note="the 68 clean images -> val, named 0000..0067 (original_png order)",
    notes=("clean images only; the noisy LQ is synthesised (--noise) or taken from noisyNN/ (--noise from-files)",),
    member_digests=_member_digests(),
    preset=True,
))
