"""DIV2K (800 train + 100 valid HR) + Flickr2K (2650 HR): clean GT for the synthetic
jpeg-compressed (quality 10) and noisy (sigma 50) training pairs.

DIV2K comes in two releases: ETH's DIV2K_train_HR.zip (0001-0800) + DIV2K_valid_HR.zip
(0801-0900), whose sizes and sha256 are published, and EDSR's DIV2K.tar, whose
DIV2K/DIV2K_train_HR holds 0001-0900 (train and valid together) and may have no
DIV2K_valid_HR. Either is used; the build report says which it met.
"""

from .base import NeededFile, Recipe, published, register_recipe, url

_ETH = "http://data.vision.ee.ethz.ch/cvl/DIV2K/{}"

RECIPE = register_recipe(Recipe(
    name="div2k-flickr2k",
    title="DIV2K + Flickr2K (HR)",
    tasks=("jpeg-compressed", "noisy"),
    expected={("jpeg-compressed", "train"): 3550, ("noisy", "train"): 3550},
    files=(
        NeededFile("DIV2K_train_HR.zip", (url(_ETH.format("DIV2K_train_HR.zip")),), **published("DIV2K_train_HR.zip"),
                   expect="DIV2K_train_HR/0001.png ... 0800.png"),
        NeededFile("DIV2K_valid_HR.zip", (url(_ETH.format("DIV2K_valid_HR.zip")),), **published("DIV2K_valid_HR.zip"),
                   expect="DIV2K_valid_HR/0801.png ... 0900.png"),
        NeededFile("DIV2K.tar", (url("https://cv.snu.ac.kr/research/EDSR/DIV2K.tar"),),
                   expect="DIV2K/DIV2K_train_HR/0001.png ... 0900.png (and maybe DIV2K_valid_HR/)"),
        NeededFile("Flickr2K.tar", (url("https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar"),), **published("Flickr2K.tar"),
                   expect="Flickr2K/Flickr2K_HR/000001.png ... 002650.png"),
    ),
    variants=(("ETH DIV2K_train_HR.zip + DIV2K_valid_HR.zip", ("DIV2K_train_HR.zip", "DIV2K_valid_HR.zip")),
              ("EDSR DIV2K.tar", ("DIV2K.tar",))),
    pairing="div2k-flickr2k",
    lq="synthetic",
    licence="DIV2K: academic research use only (NTIRE); Flickr2K: images from Flickr under their "
            "owners' licences, research use",
    homepage="https://data.vision.ee.ethz.ch/cvl/DIV2K/",
    split_note="DIV2K 0001-0900 (train + valid HR) + Flickr2K_HR -> train (3550); no val (see LIVE1, CBSD68)",
    notes=("the author also quoted 3440 training images; this builder uses all 3550",),
    # Only the HR folders are needed; the LR folders would triple the disk use.
    keep_member=lambda m: "_HR/" in m or m.rstrip("/").endswith("_HR"),
))
