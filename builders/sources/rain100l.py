"""Rain100L (Yang et al. CVPR 2017, as re-released with PReNet): 100 light-rain test pairs, the
deraining test set of the 3D and 5D protocols.

Three different "Rain100L" copies circulate, all recognised; the build report says which it met:
- ``prenet``: PReNet's original, ``rainy/rain-001.png`` .. ``rain-100.png`` with GT
  ``norain-001.png`` in the folder above (also ``rainy/`` + ``gt/``, MoCE-IR's copy);
- ``relaid``: ``input/N.png`` + ``target/N.png`` (AirNet's samples; DFPIR's ``input/rain-N`` ->
  ``target/norain-N``), the same images re-laid;
- ``restormer``: Restormer's "Rain13k test" ``Rain100L/{input,target}/N.png``, which holds *other*
  images (its 1.png is 384x512): built, but flagged as not the protocol's test set.
Pairs are matched by the PReNet index (the number in the name), never by sort order.
"""

from .base import NeededFile, Recipe, gdrive_folder, register_recipe

RECIPE = register_recipe(Recipe(
    name="rain100l",
    title="Rain100L",
    tasks=("rain100l",),
    expected={("rain100l", "val"): 100},
    files=(NeededFile("Rain100L", (
        gdrive_folder("1-_Tw-LHJF4vh8fpogKgZx1EQ9MhsJI_f", "'Train100L&Rain100L' (PromptIR INSTALL.md); contents unconfirmed"),
    ), folder=True, aliases=("Rain100L.zip", "rain100l", "Rain100L.tar.gz", "derain"),
        expect="Rain100L/rainy/rain-NNN.png + Rain100L/norain-NNN.png (PReNet), or {input,target}/N.png"),),
    pairing="rain100l",
    lq="real",
    licence="Rain100L: research use only; cite Yang et al. 2017",
    homepage="https://github.com/csdwren/PReNet",
    split_note="the 100 test pairs -> val, matched by the PReNet index",
    preset=True,
))
