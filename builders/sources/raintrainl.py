"""RainTrainL (Yang et al. CVPR 2017, as re-released with PReNet): the 200 light-rain training
pairs of the 3D and 5D protocols, ``rain-N.png`` / ``norain-N.png`` (flat, unpadded N), paired by
the index N. Only on the PromptIR family's Drive folder, downloaded by hand; no digest published.
"""

from .base import NeededFile, Recipe, gdrive_folder, register_recipe

RECIPE = register_recipe(Recipe(
    name="raintrainl",
    title="RainTrainL (PReNet's light-rain training set)",
    tasks=("rain100l",),
    expected={("rain100l", "train"): 200},
    files=(NeededFile("RainTrainL", (
        gdrive_folder("1-_Tw-LHJF4vh8fpogKgZx1EQ9MhsJI_f", "'Train100L&Rain100L' (PromptIR INSTALL.md); contents unconfirmed"),
    ), folder=True, aliases=("RainTrainL.zip", "Train100L", "Train100L.zip"),
        expect="RainTrainL/rain-N.png + norain-N.png (flat, N = 1..200)"),),
    pairing="raintrainl",
    lq="real",
    licence="RainTrainL: research use only; cite Yang et al. 2017",
    homepage="https://github.com/csdwren/PReNet",
    split_note="the 200 pairs -> train, matched by the index N",
    preset=True,
))
