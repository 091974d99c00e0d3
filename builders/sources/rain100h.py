"""Rain100H (Yang et al. CVPR 2017): synthetic heavy rain streaks, rain-N / norain-N."""

from .base import NeededFile, Recipe, register_recipe, url

RECIPE = register_recipe(Recipe(
    name="rain100h",
    title="Rain100H (RainTrainH + Rain100H)",
    tasks=("rainy",),
    expected={("rainy", "train"): 1800, ("rainy", "val"): 100},
    files=(
        NeededFile("RainTrainH.zip", (url("http://www.icst.pku.edu.cn/struct/att/RainTrainH.zip"),)),
        NeededFile("Rain100H.zip", (url("http://www.icst.pku.edu.cn/struct/att/Rain100H.zip"),)),
    ),
    pairing="rain100h",
    lq="real",
    licence="Rain100H/RainTrainH: research use only; cite Yang et al. 2017",
    homepage="https://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html",
    split_note="RainTrainH.zip -> train (1800), Rain100H.zip -> val (100)",
    notes=(("RainTrainH shares 546 backgrounds with the Rain100H test set; the authors kept them, so does "
            "this builder"),),
))
