"""RESIDE-6K (DehazeFormer's rearrangement of RESIDE ITS/OTS): hazy / GT with equal names."""

from .base import NeededFile, Recipe, gdrive, hf, register_recipe

RECIPE = register_recipe(Recipe(
    name="reside6k",
    title="RESIDE-6K",
    tasks=("hazy",),
    expected={("hazy", "train"): 6000, ("hazy", "val"): 1000},
    files=(NeededFile("RESIDE-6K.zip", (
        hf("desonglll/RESIDE-6K:RESIDE-6K.zip", "file name inside the repo unconfirmed"),
        gdrive("1Yy_GH6_bydYPU6_JJzFQwig4LTh86VI4",
               "DehazeFormer's Drive *folder*: download RESIDE-6K.zip from it by hand and use --from-dir"),
    )),),
    pairing="reside6k",
    lq="real",
    licence="RESIDE (Li et al. 2019): research use only; terms on the RESIDE page",
    homepage="https://sites.google.com/view/reside-dehaze-datasets",
    split_note="RESIDE-6K/train -> train (6000), RESIDE-6K/test -> val (1000)",
    notes=(("DA-CLIP's own copy lives in Drive folder 1XVD0x74vKQ0-cqazACUZnjUOWURXIeqH (folders cannot be "
            "fetched automatically)"),),
))
