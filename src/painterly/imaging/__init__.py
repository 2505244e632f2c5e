"""Images in and out, colour and masks.

load.py     any image as RGB (ICC, EXIF orientation, modes), tensors, resizing
save.py     atomic PNG/JPEG saving with the recipe embedded, JSON, reading a recipe back
color.py    colour preservation (luminance, histogram) and NNST's OkLab colour step
masks.py    spatial control: region masks per layer (1611.07865)
"""

from painterly.imaging.load import (
    fit_to,
    load_image,
    long_side_size,
    resize_long_side,
    srgb_icc,
    to_pil,
    to_rgb,
    to_srgb,
    to_tensor,
)
from painterly.imaging.save import (
    RECIPE_KEY,
    check_output,
    describe,
    numbered_path,
    read_recipe,
    save_image,
    write_json,
)

__all__ = [
    "RECIPE_KEY",
    "check_output",
    "describe",
    "fit_to",
    "load_image",
    "long_side_size",
    "numbered_path",
    "read_recipe",
    "resize_long_side",
    "save_image",
    "srgb_icc",
    "to_pil",
    "to_rgb",
    "to_srgb",
    "to_tensor",
    "write_json",
]
