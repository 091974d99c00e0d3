"""LOL (Wei et al. BMVC 2018): real low-light / normal-light pairs.

Two archives exist: the hub's lol_dataset.zip (size and sha256 published; lol_dataset/our485,
eval15) and the Drive LOLdataset.zip (LOLdataset/our485, eval15). Either is used, the verified
hub file first; the pairing finds our485/ and eval15/ below any top folder.
"""

from .base import NeededFile, Recipe, gdrive, hf, published, register_recipe

_LAYOUT = "[<top>/]our485/{low,high}/<n>.png and [<top>/]eval15/{low,high}/<n>.png"

RECIPE = register_recipe(Recipe(
    name="lol",
    title="LOL (LOw-Light)",
    tasks=("low-light",),
    expected={("low-light", "train"): 485, ("low-light", "val"): 15},
    files=(
        NeededFile("lol_dataset.zip", (hf("geekyrakshit/LoL-Dataset:lol_dataset.zip"),), **published("lol_dataset.zip"),
                   expect=_LAYOUT),
        NeededFile("LOLdataset.zip", (gdrive("157bjO1_cFuSd0HWDUuAmcHRJDVyWpOxB"),), expect=_LAYOUT),
    ),
    variants=(("hub lol_dataset.zip", ("lol_dataset.zip",)), ("Drive LOLdataset.zip", ("LOLdataset.zip",))),
    pairing="lol",
    lq="real",
    licence="LOL: research use only; cite Wei et al. 2018",
    homepage="https://daooshee.github.io/BMVC2018website/",
    split_note="our485/{low,high} -> train (485), eval15/{low,high} -> val (15)",
))
