"""GoPro's 1,111 test pairs for the 5D protocol, from any of the copies in circulation; the
build report says which copy it met:

- ``GOPRO_Large``: the authors' ``test/<SEQ>/{blur,sharp}/<frame>.png`` (``blur``, never
  ``blur_gamma``), flattened to ``<SEQ>_<frame>``;
- flat copies, files already named ``<SEQ>_<frame>.png``: Restormer's test zip
  ``test/GoPro/{input,target}`` (AdaIR's Drive copy is taken to share it: its layout is not
  published) and, as a variant, a flat ``{blur,sharp}``. Some copies name the files
  ``GOPR0384_11_00-000001.png`` [unconfirmed]: the hyphen form is mapped to the same
  ``<SEQ>_<frame>`` output name.

The train split of GOPRO_Large is the ``gopro`` recipe (``--with-train``). No digest is published.
"""

import re
from pathlib import PurePosixPath

from .base import NeededFile, Recipe, gdrive, register_recipe
from .gopro import RECIPE as GOPRO

GOPRO_LARGE = GOPRO.file("GOPRO_Large.zip")

# Flat layouts, (LQ folder, GT folder, which copy it is), in order of preference.
FLAT_LAYOUTS = (
    ("input", "target", "Restormer's test zip layout (AdaIR's copy taken to be the same)"),
    ("blur", "sharp", "flat blur/sharp folders [unconfirmed]"),
)
# Folders of a flat copy that are not GoPro's test set (Restormer's Datasets/test/ holds
# HIDE and RealBlur beside GoPro, each from its own test.zip; training folders of any copy).
OTHER_SETS = ("hide", "realblur_j", "realblur_r", "train")
# <SEQ>_<frame> or <SEQ>-<frame>: GOPR0384_11_00_000001, GOPR0384_11_00-000001.
FLAT_NAME = re.compile(r"^(GOPR\d+_\d+_\d+)([_-])(\d+)$")


def _test_members(member: str) -> bool:
    parts = [p.lower() for p in PurePosixPath(member).parts]
    return "blur_gamma" not in parts and "train" not in parts


RECIPE = register_recipe(Recipe(
    name="gopro-test",
    title="GoPro test set (GOPRO_Large, or a flat copy)",
    tasks=("gopro",),
    expected={("gopro", "val"): 1111},
    files=(NeededFile("GoPro", (
        gdrive("1k6DTSHu4saUgrGTYkkZXTptILyG9RRll", "Restormer's test zip: test/GoPro/{input,target}"),
        gdrive("1y_wQ5G5B65HS_mdIjxKYTcnRys_AGh5v", "AdaIR's INSTALL.md 'Deblur: GoPro'; layout not published"),
        *GOPRO_LARGE.candidates,  # the whole GOPRO_Large.zip (train and test, about 9.5 GB): its test part is kept
    ), folder=True, aliases=("GOPRO_Large.zip", "GOPRO_Large", "test.zip"),
        expect="[GOPRO_Large/]test/<SEQ>/{blur,sharp}/<frame>.png, or test/GoPro/{input,target}/<SEQ>_<frame>.png "
               "(Restormer's test.zip; AdaIR's test/deblur/gopro)"),),
    pairing="gopro-test",
    lq="real",
    licence=GOPRO.licence,
    homepage=GOPRO.homepage,
    split_note="the 1,111 test pairs -> val, named <SEQ>_<frame>",
    notes=("LQ is 'blur', never 'blur_gamma' (the PromptIR family's choice)",
           "<SEQ>-<frame> names (some copies, [unconfirmed]) are built as <SEQ>_<frame>"),
    keep_member=_test_members,
    preset=True,
))
