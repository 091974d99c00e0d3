"""CBSD68: the 68 colour BSD test images, the noisy test set (LQ: Gaussian sigma 50 made by
the builder, seeded)."""

from .base import NeededFile, Recipe, hf, published, register_recipe

RECIPE = register_recipe(Recipe(
    name="cbsd68",
    title="CBSD68",
    tasks=("noisy",),
    expected={("noisy", "val"): 68},
    files=(NeededFile("CBSD68.tar.gz", (
        hf("deepinv/CBSD68:CBSD68.tar.gz"),
    ), **published("CBSD68.tar.gz"),
        expect="the 68 clean images, under CBSD68/0/ (the hub tar) or CBSD68/original_png/ "
               "(github clausmichele/CBSD68-dataset)"),),
    pairing="cbsd68",
    lq="synthetic",
    licence="Berkeley Segmentation Dataset images: research use (BSDS terms)",
    homepage="https://github.com/clausmichele/CBSD68-dataset",
    split_note="the 68 clean images (CBSD68/0/ in the hub tar, original_png/ in the GitHub copy) -> val",
    notes=("clean images only; the archive's pre-noised folders are ignored and the LQ is re-synthesised",
           "the hub tar's CBSD68/0/ layout comes from a third-party loader (unconfirmed); "
           "the build report says which layout it met"),
))
