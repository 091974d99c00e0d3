"""RainDrop (Qian et al. CVPR 2018): real adherent raindrops, <n>_rain / <n>_clean."""

from .base import NeededFile, Recipe, gdrive, hf, register_recipe

RECIPE = register_recipe(Recipe(
    name="raindrop",
    title="RainDrop",
    tasks=("raindrop",),
    expected={("raindrop", "train"): 861, ("raindrop", "val"): 58},
    files=(NeededFile("RainDrop.zip", (
        gdrive("1e7R76s6vwUJxILOcAsthgDLPSnOrQ49K"),
        hf("dronefreak/RainDrop:RainDrop.zip", "file name inside the repo unconfirmed"),
    )),),
    pairing="raindrop",
    lq="real",
    licence="RainDrop: research use only; cite Qian et al. 2018",
    homepage="https://rui1996.github.io/raindrop/raindrop_removal.html",
    split_note="train/{data,gt} -> train (861), test_a/{data,gt} -> val (58); test_b unused",
))
