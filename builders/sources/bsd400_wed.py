"""BSD400 + WED (Waterloo Exploration Database): the clean images of the 3D and 5D protocols'
denoising training set; the noisy LQ is synthesised by the protocol build.

Both are the Drive files of the PromptIR family's instructions (Restormer's download script
names them BSD400.zip and WaterlooED.zip); WED's original link is dead. No digest is published.
protocols.md defines no training noise, so the policy is this toolkit's and is recorded in each
pair's parameters: one draw per image and sigma, seeded from (protocol, name, sigma), at each
sigma of the protocol's noisy test tasks (3D: 15, 25, 50; 5D: 25).
"""

from .base import NeededFile, Recipe, gdrive, register_recipe

# Reference count of WED's NNNNN.bmp images (protocols.md); the report states what it found.
WED_COUNT = 4744

RECIPE = register_recipe(Recipe(
    name="bsd400-wed",
    title="BSD400 + WED (clean images; noise synthesised)",
    tasks=("cbsd68",),
    expected={},  # 4,744 WED images per protocols.md; BSD400's count is not stated there
    files=(
        NeededFile("BSD400", (gdrive("1idKFDkAHJGAFDn1OyXZxsTbOSBx9GS8N", "PromptIR/AdaIR INSTALL.md"),), folder=True,
                   aliases=("BSD400.zip",), expect="BSD400/<name>.<image>"),
        NeededFile("WaterlooED", (gdrive("19_mCE_GXfmE5yYsm-HEzuZQqmwMjPpJr", "the original WED link is dead"),),
                   folder=True, aliases=("WaterlooED.zip", "WED", "WED.zip"), expect="WaterlooED/.../NNNNN.bmp"),
    ),
    pairing="bsd400-wed",
    lq="synthetic",
    licence="BSD: research use (BSDS terms); WED: research use, cite Ma et al., TIP 2017",
    homepage="https://ece.uwaterloo.ca/~k29ma/exploration/",
    split_note="every clean image -> train, named bsd400_<name> / wed_<name>",
    notes=("noise: not defined by protocols.md; one seeded draw per (protocol, image, sigma) at the protocol's "
           "test sigmas, recorded per pair",),
    preset=True,
))
