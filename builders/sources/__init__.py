"""Registry of the real source datasets behind the paper's ten-type training set.

Importing this package registers one :class:`Recipe` per source (one module each).
"""

# Importing the modules registers the recipes (all_recipes() orders them by type).
from . import (  # noqa: F401
    bsd400_wed,
    cbsd68,
    cbsd68_test,
    cdd11,
    celebahq,
    daclip_val,
    div2k_flickr2k,
    gopro,
    gopro_test,
    live1,
    lol,
    rain100h,
    rain100l,
    raintrainl,
    raindrop,
    reside6k,
    reside_ots,
    sots_outdoor,
    snow100k,
    srd,
)
from .base import (  # noqa: F401
    Candidate,
    NeededFile,
    Recipe,
    all_recipes,
    get_recipe,
    preset_recipes,
    page,
    published,
    recipes_for,
    register_recipe,
)
