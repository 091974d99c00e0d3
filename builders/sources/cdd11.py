"""CDD-11 (OneRestore, ECCV 2024): eleven composite degradations x 200 test images, GT in
``clear/``; every type folder is paired with ``clear/`` by equal file name (5-digit ids, not
consecutive). No digest is published.
"""

from .base import NeededFile, Recipe, hf, register_recipe

TYPES = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
         "low_haze_rain", "low_haze_snow")

RECIPE = register_recipe(Recipe(
    name="cdd11",
    title="CDD-11 (OneRestore)",
    tasks=TYPES,
    expected={(t, "val"): 200 for t in TYPES},
    files=(NeededFile("CDD-11_test.zip", (hf("gy65896/CDD-11:CDD-11_test.zip"),),
                      aliases=("CDD-11_test", "CDD-11"),
                      expect="CDD-11_test/{clear,low,haze,...,low_haze_snow}/<5-digit id>.png"),),
    pairing="cdd11",
    lq="real",
    licence="CDD-11: research use; cite Guo et al., OneRestore (ECCV 2024)",
    homepage="https://github.com/gy65896/OneRestore",
    split_note="CDD-11_test/<type>/<name> with clear/<name> -> val (200 per type); CDD-11_train -> train",
    preset=True,
))

TRAIN = register_recipe(Recipe(
    name="cdd11-train",
    title="CDD-11 training set (OneRestore)",
    tasks=TYPES,
    expected={},  # no published per-type training count
    files=(NeededFile("CDD-11_train.zip", (hf("gy65896/CDD-11:CDD-11_train.zip"),), aliases=("CDD-11_train",),
                      expect="CDD-11_train/{clear,<11 types>}/<name>.png"),),
    pairing="cdd11",
    lq="real",
    licence=RECIPE.licence,
    homepage=RECIPE.homepage,
    split_note="CDD-11_train/<type>/<name> with clear/<name> -> train",
    preset=True,
))
