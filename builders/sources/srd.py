"""SRD (Qu et al. CVPR 2017): real shadows; shadow_free names carry a ``_no_shadow`` suffix."""

from .base import NeededFile, Recipe, gdrive, register_recipe

RECIPE = register_recipe(Recipe(
    name="srd",
    title="SRD (Shadow Removal Dataset)",
    tasks=("shadowed",),
    expected={("shadowed", "train"): 2680, ("shadowed", "val"): 408},
    files=(
        NeededFile("SRD_Train.zip", (gdrive("1W8vBRJYDG9imMgr9I2XaA13tlFIEHOjS"),)),
        NeededFile("SRD_Test.zip", (gdrive("1GTi4BmQ0SJ7diDMmf-b7x2VismmXtfTo"),)),
    ),
    pairing="srd",
    lq="real",
    licence="SRD: research use only; cite Qu et al. 2017",
    homepage="https://github.com/Liangqiong/DeShadowNet",
    split_note="SRD_Train.zip -> train (2680), SRD_Test.zip -> val (408)",
    notes=("GT names end in _no_shadow and are renamed to the LQ name (sort-order pairing would break)",
           "jpg sources are converted to PNG"),
))
