"""LOL (Wei et al. BMVC 2018): real low-light / normal-light pairs.

Two archives exist: the hub's lol_dataset.zip (size and sha256 published; lol_dataset/our485,
eval15) and the Drive LOLdataset.zip (LOLdataset/our485, eval15). Either is used, the verified
hub file first; the pairing finds our485/ and eval15/ below any top folder.

``lol-eval15`` is the 5D protocol's test set alone: eval15 from either archive, or the hub copy
laxury/LLIE-LoL-v1's ``Test/{input,target}``; the report says which copy it met.
"""

from dataclasses import replace

from .base import NeededFile, Recipe, gdrive, hf, hf_folder, published, register_recipe

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

# ------------------------------------------------------------------- the 5D protocol's test set

# LOL-v1 eval15's file names (protocols.md); a copy holding other names is flagged.
EVAL15_NAMES = ("1", "22", "23", "55", "79", "111", "146", "179", "493", "547", "665", "669", "748", "778", "780")
# (LQ folder, GT folder, which copy it is): LOLdataset's eval15/{low,high}, the hub copy
# laxury/LLIE-LoL-v1's Test/{input,target}.
EVAL15_LAYOUTS = (("low", "high", "LOLdataset eval15"), ("input", "target", "hub laxury/LLIE-LoL-v1 Test"))
# Training folders of either copy, never the test set.
TRAIN_FOLDERS = ("our485", "train")

EVAL15 = register_recipe(Recipe(
    name="lol-eval15",
    title="LOL-v1 eval15 (LOLdataset, or the hub's LLIE-LoL-v1)",
    tasks=("lol",),
    expected={("lol", "val"): 15},
    files=(
        # The two archives of the lol recipe, found anywhere below --from-dir, extracted or not.
        replace(RECIPE.file("lol_dataset.zip"), aliases=("lol_dataset",)),
        replace(RECIPE.file("LOLdataset.zip"), aliases=("LOLdataset",)),
        NeededFile("LLIE-LoL-v1", (hf_folder("laxury/LLIE-LoL-v1", ("Test*",), "its Test/ folder (or a Test archive)"),), folder=True,
                   aliases=("datasets--laxury--LLIE-LoL-v1",), expect="Test/{input,target}/<n>.png"),
    ),
    variants=(("hub lol_dataset.zip", ("lol_dataset.zip",)), ("Drive LOLdataset.zip", ("LOLdataset.zip",)),
              ("hub laxury/LLIE-LoL-v1", ("LLIE-LoL-v1",))),
    pairing="lol-eval15",
    lq="real",
    licence=RECIPE.licence,
    homepage=RECIPE.homepage,
    split_note="eval15/{low,high} or Test/{input,target} -> val (15), equal names",
    notes=("the train split (our485) is the lol recipe (--with-train)",),
    preset=True,
))
