"""SOTS-outdoor (RESIDE's Synthetic Objective Testing Set, outdoor): 500 hazy images over their
clear scenes, the dehazing test set of the 3D and 5D protocols.

Layouts met in circulation: ``SOTS/outdoor/{hazy,gt}`` (RESIDE), ``{hazy,clear}`` (the Kaggle copy
RAM documents), PromptIR-style ``dehaze/{input,target}`` and InstructIR's ``SOTS/{IN,GT}``
[unconfirmed]. A hazy image ``0001_0.8_0.2.jpg`` pairs with the GT named by its prefix before the
first ``_`` (``0001.png``); one GT may serve several hazy images. No digest is published.
"""

from .base import NeededFile, Recipe, page, register_recipe

LAYOUTS = (("hazy", "gt"), ("hazy", "clear"), ("input", "target"), ("IN", "GT"))

RECIPE = register_recipe(Recipe(
    name="sots-outdoor",
    title="SOTS-outdoor (RESIDE)",
    tasks=("sots",),
    expected={("sots", "val"): 500},
    files=(NeededFile("SOTS", (
        page("https://www.kaggle.com/datasets/balraj98/synthetic-objective-testing-set-sots-reside", "Kaggle copy"),
        page("https://utexas.box.com/s/uqvnbfo68kns1210z5k5j17cvazavcd1", "utexas box (DiffUIR README)"),
    ), folder=True, aliases=("SOTS.zip", "outdoor", "outdoor.zip", "synthetic-objective-testing-set-sots-reside.zip",
                             "archive.zip", "dehaze"),
        expect="[SOTS/]outdoor/hazy/<id>_<A>_<beta>.jpg with outdoor/gt/<id>.png (or clear/); "
               "dehaze/{input,target}; SOTS/{IN,GT}"),),
    pairing="sots",
    lq="real",
    licence="RESIDE: research use; cite Li et al., Benchmarking Single-Image Dehazing and Beyond (TIP 2019)",
    homepage="https://sites.google.com/view/reside-dehaze-datasets",
    split_note="every hazy image -> val (500); GT by the prefix before the first '_'",
    notes=("500 hazy images over possibly 492 GT scenes [unconfirmed]: one GT may serve several hazy images",),
    preset=True,
))
