"""CelebA-HQ 256x256 + the 100 official RePaint "thin" inpainting masks (as in DA-CLIP's
scripts/inpainting_masks): LQ = mask * image with white holes."""

from .base import NeededFile, Recipe, gdrive, published, register_recipe, url

N_MASKS = 100
N_TEST = 100  # the first 100 images (sorted by name) are the test set
MASKS_COMMIT = "c2cc14146faac85680b4cb39ece4ef9e2a7c7c24"  # the commit whose mask digests were published
_MASK_URL = "https://raw.githubusercontent.com/Algolzw/daclip-uir/" + MASKS_COMMIT + "/scripts/inpainting_masks/{}"


def mask_names() -> list[str]:
    return [f"{i:06d}.png" for i in range(N_MASKS)]


RECIPE = register_recipe(Recipe(
    name="celebahq",
    title="CelebA-HQ 256 + RePaint thin masks",
    tasks=("uncompleted",),
    expected={("uncompleted", "train"): 29900, ("uncompleted", "val"): 100},
    files=(
        NeededFile("celeba_hq_256.zip", (
            gdrive("1oYDBcJLT5RDuC4k5C7xOMRkZ9N3kfexu"),
            url("https://www.kaggle.com/datasets/badasstechie/celebahq-resized-256x256",
                "Kaggle needs a login: download by hand"),
        ), expect="the CelebA-HQ images at 256x256 (<n>.jpg), in any folder"),
        *(NeededFile(n, (url(_MASK_URL.format(n)),), **published(f"inpainting_masks/{n}"), group="inpainting masks")
          for n in mask_names()),
    ),
    pairing="celebahq",
    lq="mask",
    licence="CelebA-HQ: non-commercial research use only (CelebA terms); masks: RePaint, CC BY-NC-SA 4.0",
    homepage="https://github.com/tkarras/progressive_growing_of_gans",
    split_note="images sorted by name: first 100 -> val (image i with mask i), the rest -> train "
               "(mask drawn per image from the 100 with a recorded seed, as DA-CLIP's add_random_mask)",
    notes=("masks are 255 keep / 0 hole, resized to the image with area interpolation; holes are white",),
))
