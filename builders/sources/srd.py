"""SRD (Qu et al. CVPR 2017): real shadows.

Train GT names end in ``_no_shadow``, test GT names in ``_free``; both are paired by the name
without the suffix. Some copies use train_A/train_C and test_A/test_C folders instead of
shadow/shadow_free; the report says which layout it met.
"""

from .base import NeededFile, Recipe, gdrive, register_recipe

RECIPE = register_recipe(Recipe(
    name="srd",
    title="SRD (Shadow Removal Dataset)",
    tasks=("shadowed",),
    expected={("shadowed", "train"): 2680, ("shadowed", "val"): 408},
    files=(
        NeededFile("SRD_Train.zip", (gdrive("1W8vBRJYDG9imMgr9I2XaA13tlFIEHOjS"),),
                   expect="shadow/<name>.jpg + shadow_free/<name>_no_shadow.jpg, or train_A/ + train_C/"),
        NeededFile("SRD_Test.zip", (gdrive("1GTi4BmQ0SJ7diDMmf-b7x2VismmXtfTo"),),
                   expect="shadow/<name>.jpg + shadow_free/<name>_free.jpg, or test_A/ + test_C/"),
    ),
    pairing="srd",
    lq="real",
    licence="SRD: research use only; cite Qu et al. 2017",
    homepage="https://github.com/Liangqiong/DeShadowNet",
    split_note="SRD_Train.zip -> train (2680), SRD_Test.zip -> val (408)",
    notes=("GT names end in _no_shadow (train) or _free (test) and are renamed to the LQ name",
           "jpg sources are converted to PNG"),
))
