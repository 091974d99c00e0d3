"""CBSD68: the 68 colour BSD test images, the noisy test set (LQ: Gaussian sigma 50 made by
the builder, seeded)."""

from .base import NeededFile, Recipe, hf, register_recipe

RECIPE = register_recipe(Recipe(
    name="cbsd68",
    title="CBSD68",
    tasks=("noisy",),
    expected={("noisy", "val"): 68},
    files=(NeededFile("CBSD68.tar.gz", (
        hf("deepinv/CBSD68:CBSD68.tar.gz"),
    ), size=None),),
    pairing="cbsd68",
    lq="synthetic",
    licence="Berkeley Segmentation Dataset images: research use (BSDS terms)",
    homepage="https://github.com/clausmichele/CBSD68-dataset",
    split_note="the 68 clean images (original_png when present) -> val",
    notes=("clean images only; the archive's pre-noised folders are ignored and the LQ is re-synthesised",),
))
