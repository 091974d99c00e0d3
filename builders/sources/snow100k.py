"""Snow100K (Liu et al. 2018), the subset whose file names contain ``beautiful_smile``.

The desnownet S3 archives are reported dead (2024, 2025): they stay as last-resort candidates.
The author's 1872-image training subset is on Drive (file or folder, inner layout unconfirmed:
the pairing accepts {synthetic,gt} and {LQ,GT} folders and the report says which it met). The
601 test pairs come only from the S3 test archive (or a copy of it given with --from-dir).
"""

from .base import NeededFile, Recipe, gdrive, register_recipe, url

SUBSET = "beautiful_smile"
_S3 = "https://desnownet.s3.amazonaws.com/dataset_synthetic/{}"

RECIPE = register_recipe(Recipe(
    name="snow100k",
    title="Snow100K (beautiful_smile subset)",
    tasks=("snowy",),
    expected={("snowy", "train"): 1872, ("snowy", "val"): 601},
    files=(
        NeededFile("Snow100K-subset", (
            gdrive("11Cnnj8SK9RIpZEf2wIOwVoR0-LTMfE_j", "the author's 1872-image training subset; layout unconfirmed"),
        ), folder=True, keep_all=True,
            expect="the 1872 training pairs in {synthetic,gt}/ or {LQ,GT}/ folders (equal names)"),
        NeededFile("Snow100K-training.tar.gz", (url(_S3.format("train/Snow100K-training.tar.gz"),
                                                    "reported dead in 2024 and 2025", dead=True),),
                   expect="all/{synthetic,gt}/<name>.jpg"),
        NeededFile("Snow100K-testset.tar.gz", (url(_S3.format("test/Snow100K-testset.tar.gz"),
                                                   "reported dead in 2024 and 2025", dead=True),),
                   expect=".../Snow100K-L/{synthetic,gt}/<name>.jpg"),
    ),
    variants=(("the author's training subset", ("Snow100K-subset",)),
              ("Snow100K-training.tar.gz (S3, reported dead)", ("Snow100K-training.tar.gz",))),
    pairing="snow100k",
    lq="real",
    licence="Snow100K: research use only; cite Liu et al. 2018 (DesnowNet)",
    homepage="https://sites.google.com/view/yunfuliu/desnownet",
    split_note="training subset (or all/{synthetic,gt}) -> train (1872), test Snow100K-L/{synthetic,gt} -> val (601); "
               "from the full archives only names containing 'beautiful_smile'",
    notes=("whether all 601 test images come from Snow100K-L is unconfirmed",),
    # The full archives hold 100k images; only the subset is extracted.
    keep_member=lambda m: SUBSET in m.rsplit("/", 1)[-1],
))
