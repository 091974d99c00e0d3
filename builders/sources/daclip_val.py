"""The authors' ten-type validation set (``--preset daclip-val``): one Drive zip in the official
``<type>/{LQ,GT}`` layout, the canonical test set of the paper's Table 3.

Its inner layout is unconfirmed beyond ``<type>/{LQ,GT}``: an extra top folder and a ``val/``
level are accepted, and the report says which it met. LQ and GT are paired by equal file name;
the LQ images are used as the authors made them (nothing is synthesised).
"""

from ..tasks import DEGRADATIONS, table1
from .base import NeededFile, Recipe, gdrive, register_recipe

# The paper's test-set sizes (Table 1), which the zip is expected to hold.
PAPER_VAL = table1()["test"]

RECIPE = register_recipe(Recipe(
    name="daclip-val",
    title="DA-CLIP validation set (the authors' ten-type zip)",
    tasks=DEGRADATIONS,
    expected={(t, "val"): PAPER_VAL[t] for t in DEGRADATIONS},
    files=(NeededFile("daclip_val.zip", (
        gdrive("1JKd1tA7rMoEbI9190daJqL7i6V1L8KUd", "the authors' validation zip; inner layout unconfirmed"),
    ), expect="[<top>/][val/]<type>/{LQ,GT}/<name> for the ten types (equal names)"),),
    pairing="official",
    lq="real",
    licence="a compilation of the ten source test sets: each keeps its own terms (research use; see --list)",
    homepage="https://github.com/Algolzw/daclip-uir",
    split_note="every <type>/{LQ,GT} pair -> val",
    notes=("LQ images are the authors' own (their synthetic noise and JPEG included), not re-synthesised",),
    preset=True,
))
