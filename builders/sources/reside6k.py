"""RESIDE-6K (DehazeFormer's rearrangement of RESIDE ITS/OTS): hazy / GT with equal names.

The hub copy (desonglll/RESIDE-6K) is an image-folder repository with no zip in it: its
train/ and test/ folders are downloaded as a folder. The Drive ids are folders too (by hand).
"""

from .base import NeededFile, Recipe, gdrive_folder, hf_folder, register_recipe

RECIPE = register_recipe(Recipe(
    name="reside6k",
    title="RESIDE-6K",
    tasks=("hazy",),
    expected={("hazy", "train"): 6000, ("hazy", "val"): 1000},
    files=(NeededFile("RESIDE-6K", (
        hf_folder("desonglll/RESIDE-6K", ("train/*", "test/*"), "image-folder repository: train/{GT,hazy}, test/{GT,hazy}"),
        gdrive_folder("1Yy_GH6_bydYPU6_JJzFQwig4LTh86VI4", "DehazeFormer's Drive folder"),
        gdrive_folder("1XVD0x74vKQ0-cqazACUZnjUOWURXIeqH", "DA-CLIP's Drive folder"),
    ), folder=True, expect="train/{hazy,GT}/<name> and test/{hazy,GT}/<name> (equal names)"),),
    pairing="reside6k",
    lq="real",
    licence="RESIDE (Li et al. 2019): research use only; terms on the RESIDE page",
    homepage="https://sites.google.com/view/reside-dehaze-datasets",
    split_note="RESIDE-6K/train -> train (6000), RESIDE-6K/test -> val (1000)",
))
