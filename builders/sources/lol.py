"""LOL (Wei et al. BMVC 2018): real low-light / normal-light pairs."""

from .base import NeededFile, Recipe, gdrive, hf, register_recipe

RECIPE = register_recipe(Recipe(
    name="lol",
    title="LOL (LOw-Light)",
    tasks=("low-light",),
    expected={("low-light", "train"): 485, ("low-light", "val"): 15},
    files=(NeededFile("LOLdataset.zip", (
        gdrive("157bjO1_cFuSd0HWDUuAmcHRJDVyWpOxB"),
        hf("geekyrakshit/LoL-Dataset:lol_dataset.zip", "file name inside the repo unconfirmed"),
    )),),
    pairing="lol",
    lq="real",
    licence="LOL: research use only; cite Wei et al. 2018",
    homepage="https://daooshee.github.io/BMVC2018website/",
    split_note="our485/{low,high} -> train (485), eval15/{low,high} -> val (15)",
))
