"""DIV2K (800 train + 100 valid HR) + Flickr2K (2650 HR): clean GT for the synthetic
jpeg-compressed (quality 10) and noisy (sigma 50) training pairs."""

from .base import NeededFile, Recipe, register_recipe, url

RECIPE = register_recipe(Recipe(
    name="div2k-flickr2k",
    title="DIV2K + Flickr2K (HR)",
    tasks=("jpeg-compressed", "noisy"),
    expected={("jpeg-compressed", "train"): 3550, ("noisy", "train"): 3550},
    files=(
        NeededFile("DIV2K.tar", (url("https://cv.snu.ac.kr/research/EDSR/DIV2K.tar"),)),
        NeededFile("Flickr2K.tar", (url("https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar"),)),
    ),
    pairing="div2k-flickr2k",
    lq="synthetic",
    licence="DIV2K: academic research use only (NTIRE); Flickr2K: images from Flickr under their "
            "owners' licences, research use",
    homepage="https://data.vision.ee.ethz.ch/cvl/DIV2K/",
    split_note="DIV2K_train_HR + DIV2K_valid_HR + Flickr2K_HR -> train (3550); no val (see LIVE1, CBSD68)",
    notes=("the author also quoted 3440 training images; this builder uses all 3550",),
    # Only the HR folders are needed; the LR folders would triple the disk use.
    keep_member=lambda m: "_HR/" in m or m.rstrip("/").endswith("_HR"),
))
