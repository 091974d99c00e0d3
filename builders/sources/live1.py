"""LIVE1: the 29 reference images of the LIVE image quality database (release 2), the
jpeg-compressed test set (LQ: JPEG quality 10 made by the builder)."""

from .base import NeededFile, Recipe, register_recipe, url

RECIPE = register_recipe(Recipe(
    name="live1",
    title="LIVE1 (LIVE IQA release 2, refimgs)",
    tasks=("jpeg-compressed",),
    expected={("jpeg-compressed", "val"): 29},
    files=(NeededFile("databaserelease2.zip", (
        url("http://live.ece.utexas.edu/research/quality/release2/databaserelease2.zip"),
    )),),
    pairing="live1",
    lq="synthetic",
    licence="LIVE IQA database: free for research use; cite Sheikh et al.",
    homepage="https://live.ece.utexas.edu/research/quality/subjective.htm",
    split_note="refimgs/*.bmp (29) -> val",
    notes=("only the 29 reference images are used; the distorted folders are skipped",),
    keep_member=lambda m: "refimgs" in m,
))
