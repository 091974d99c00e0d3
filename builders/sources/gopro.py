"""GoPro (GOPRO_Large, Nah et al. CVPR 2017): real motion blur, the ``blur`` frames (not
``blur_gamma``) paired with ``sharp``."""

from .base import NeededFile, Recipe, gdrive, hf, register_recipe, url

RECIPE = register_recipe(Recipe(
    name="gopro",
    title="GoPro (GOPRO_Large)",
    tasks=("motion-blurry",),
    expected={("motion-blurry", "train"): 2103, ("motion-blurry", "val"): 1111},
    files=(NeededFile("GOPRO_Large.zip", (
        hf("snah/GOPRO_Large:GOPRO_Large.zip", "the authors' hub copy"),
        gdrive("1y4wvPdOG3mojpFCHTqLgriexhbjoWVkK"),
        url("http://data.cv.snu.ac.kr:8008/webdav/dataset/GOPRO/GOPRO_Large.zip"),
    ), expect="[GOPRO_Large/]{train,test}/<SEQ>/{blur,sharp}/<frame>.png"),),
    pairing="gopro",
    lq="real",
    licence="GoPro dataset (Nah et al. 2017): CC BY 4.0 per the authors' page; cite the paper",
    homepage="https://seungjunnah.github.io/Datasets/gopro",
    split_note="GOPRO_Large/train -> train (2103), GOPRO_Large/test -> val (1111)",
    notes=("LQ is the 'blur' folder, not 'blur_gamma' (the paper's choice; recorded per pair)",
           "names are flattened: <SEQ>/{blur,sharp}/<frame>.png -> <SEQ>_<frame>.png"),
    # blur_gamma is a third copy of every frame that the paper does not use.
    keep_member=lambda m: "/blur_gamma/" not in m,
))
