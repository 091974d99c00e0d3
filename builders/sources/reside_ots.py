"""RESIDE OTS (outdoor training set): the dehazing training set of the 3D and 5D protocols,
72,135 hazy images ``partK/XXXX_A_beta.jpg`` over the clear scenes ``original/XXXX.<ext>``; a
hazy image's GT is named by its prefix before the first ``_``. From the RESIDE page, by hand;
no digest is published.
"""

from .base import NeededFile, Recipe, page, register_recipe

GT_FOLDER = "original"
HAZY_FOLDER = r"part\d+"  # part1 .. part4 (a regular expression on the folder name)

RECIPE = register_recipe(Recipe(
    name="reside-ots",
    title="RESIDE OTS (outdoor training set)",
    tasks=("sots",),
    expected={("sots", "train"): 72135},
    files=(NeededFile("OTS", (
        page("https://sites.google.com/view/reside-dehaze-datasets/reside-%CE%B2", "RESIDE-beta page (AdaIR INSTALL.md)"),
    ), folder=True, aliases=("OTS.zip", "OTS_BETA"),
        expect="original/XXXX.<ext> beside [synthetic/]part1..part4/XXXX_A_beta.jpg"),),
    pairing="reside-ots",
    lq="real",
    licence="RESIDE (Li et al. 2019): research use only; terms on the RESIDE page",
    homepage="https://sites.google.com/view/reside-dehaze-datasets",
    split_note="every hazy image -> train (72,135), GT by the prefix before the first '_'",
    preset=True,
))
