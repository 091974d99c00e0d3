"""Snow100K (Liu et al. 2018), the subset whose file names contain ``beautiful_smile``."""

from .base import NeededFile, Recipe, register_recipe, url

SUBSET = "beautiful_smile"

RECIPE = register_recipe(Recipe(
    name="snow100k",
    title="Snow100K (beautiful_smile subset)",
    tasks=("snowy",),
    expected={("snowy", "train"): 1872, ("snowy", "val"): 601},
    files=(
        NeededFile("Snow100K-training.tar.gz", (
            url("https://desnownet.s3.amazonaws.com/dataset_synthetic/train/Snow100K-training.tar.gz",
                "reported dead in 2025"),
        )),
        NeededFile("Snow100K-testset.tar.gz", (
            url("https://desnownet.s3.amazonaws.com/dataset_synthetic/test/Snow100K-testset.tar.gz",
                "reported dead in 2025"),
        )),
    ),
    pairing="snow100k",
    lq="real",
    licence="Snow100K: research use only; cite Liu et al. 2018 (DesnowNet)",
    homepage="https://sites.google.com/view/yunfuliu/desnownet",
    split_note="training all/{synthetic,gt} -> train (1872), test Snow100K-L/{synthetic,gt} -> val (601); "
               "only names containing 'beautiful_smile'",
    notes=("the author's subset is also on Drive (id 11Cnnj8SK9RIpZEf2wIOwVoR0-LTMfE_j) in an unknown layout",),
    # The full archives hold 100k images; only the subset is extracted.
    keep_member=lambda m: SUBSET in m.rsplit("/", 1)[-1],
))
