"""RainDrop (Qian et al. CVPR 2018): real adherent raindrops, <n>_rain / <n>_clean.

The authors' Drive id is a *folder* (never fetched automatically); the hub copy is downloaded
as a folder (its inner layout is unconfirmed: the pairing finds train/ and test_a/ anywhere
below it, and archives inside it are extracted first).
"""

from .base import NeededFile, Recipe, gdrive_folder, hf_folder, register_recipe

RECIPE = register_recipe(Recipe(
    name="raindrop",
    title="RainDrop",
    tasks=("raindrop",),
    expected={("raindrop", "train"): 861, ("raindrop", "val"): 58},
    files=(NeededFile("RainDrop", (
        hf_folder("dronefreak/RainDrop", note="hub copy; inner layout unconfirmed"),
        gdrive_folder("1e7R76s6vwUJxILOcAsthgDLPSnOrQ49K", "the authors' Drive folder"),
    ), folder=True, expect="train/{data/<n>_rain.png, gt/<n>_clean.png} and test_a/{data,gt} (test_b unused)"),),
    pairing="raindrop",
    lq="real",
    licence="RainDrop: research use only; cite Qian et al. 2018",
    homepage="https://rui1996.github.io/raindrop/raindrop_removal.html",
    split_note="train/{data,gt} -> train (861), test_a/{data,gt} -> val (58); test_b unused",
))
