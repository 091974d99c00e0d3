"""LIVE1: the 29 reference images of the LIVE image quality database (release 2), the
jpeg-compressed test set (LQ: JPEG quality 10 made by the builder).

Two sources: the 29 images as single files in the DnCNN repository (testsets/LIVE1, sizes and
sha256 published), tried first, and LIVE's own databaserelease2.zip (refimgs/), which may be
password-protected. The zip's reference images are checked against the same digests (whether
LIVE's files are byte-identical to DnCNN's copies is unconfirmed: a mismatch is reported per
image with both values, and that image is not used).
"""

from .base import NeededFile, Recipe, published, published_keys, register_recipe, url

DNCNN_COMMIT = "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a"
_DNCNN = "https://raw.githubusercontent.com/cszn/DnCNN/" + DNCNN_COMMIT + "/testsets/LIVE1/{}"
NAMES = tuple(k.split("/", 1)[1] for k in published_keys("LIVE1/"))  # the 29 file names
_ALTERNATIVE = ("the 29 reference images are also in the DnCNN repository: " + _DNCNN.format("<name>.bmp")
                + " (" + ", ".join(NAMES[:3]) + ", ...); put them in DIR/LIVE1/ and use --from-dir DIR")

RECIPE = register_recipe(Recipe(
    name="live1",
    title="LIVE1 (LIVE IQA release 2 reference images)",
    tasks=("jpeg-compressed",),
    expected={("jpeg-compressed", "val"): 29},
    files=(
        *(NeededFile(f"LIVE1/{n}", (url(_DNCNN.format(n)),), **published(f"LIVE1/{n}"), group="LIVE1 reference images")
          for n in NAMES),
        NeededFile("databaserelease2.zip", (
            url("http://live.ece.utexas.edu/research/quality/release2/databaserelease2.zip",
                "may be password-protected (unconfirmed)"),
        ), expect="databaserelease2/refimgs/<the 29 names>.bmp", note=_ALTERNATIVE),
    ),
    variants=(("DnCNN testsets/LIVE1 (29 files)", tuple(f"LIVE1/{n}" for n in NAMES)),
              ("LIVE databaserelease2.zip", ("databaserelease2.zip",))),
    member_digests={n: (published(f"LIVE1/{n}")["size"], published(f"LIVE1/{n}")["sha256"]) for n in NAMES},
    pairing="live1",
    lq="synthetic",
    licence="LIVE IQA database: free for research use; cite Sheikh et al.",
    homepage="https://live.ece.utexas.edu/research/quality/subjective.htm",
    split_note="the 29 reference images (*.bmp) -> val",
    notes=("only the 29 reference images are used; the zip's distorted folders are skipped",),
    keep_member=lambda m: "refimgs" in m,
))
