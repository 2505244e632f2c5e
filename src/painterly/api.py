"""The public functions: each takes PIL images or paths and returns a PIL image.

Keyword arguments are fields of `painterly.Options` (see config.py), e.g.
`stylize(content, style, size=256, iterations=(200,), preserve_color="luminance")`.
The returned image carries its recipe in `image.info["painterly"]`; `save_image`
embeds it in the file.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, Union

from PIL import Image

from .config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, Options
from .transfer import ImageLike, Iterate, Result, run

Callback = Optional[Callable[[Iterate], None]]


def _options(options: Optional[Options], overrides: dict) -> Optional[Options]:
    # Accept a bare int for iterations/scales and lists for tuple fields; scales="auto" as in
    # the CLI (halving from the output size); masks as paths, lists of paths or a
    # comma-separated string; preset="quality" | "paper" | "fast" applies config.PRESET_OVERRIDES
    # first (the other keywords override it).
    from .config import PRESET_OVERRIDES, PRESETS
    from .errors import choice

    preset = overrides.pop("preset", None)
    if preset is not None:
        options = (options or Options()).replace(**PRESET_OVERRIDES[choice("preset", preset, PRESETS)])
    if overrides.get("scales") == "auto":
        from .cli import auto_scales

        overrides["scales"] = auto_scales(overrides.get("size", (options or Options()).size))
    if isinstance(overrides.get("content_mask"), (list, tuple)):
        overrides["content_mask"] = ",".join(str(p) for p in overrides["content_mask"])
    elif overrides.get("content_mask") is not None:
        overrides["content_mask"] = str(overrides["content_mask"])
    if isinstance(overrides.get("style_masks"), (str, os.PathLike)):
        overrides["style_masks"] = tuple(str(overrides["style_masks"]).split(","))
    elif overrides.get("style_masks") is not None:
        overrides["style_masks"] = tuple(str(p) for p in overrides["style_masks"])
    if overrides.get("tile") == "auto":
        overrides["tile"] = 0
    for key in ("iterations", "scales", "content_layers", "style_layers", "style_layer_weights",
                "style_blend", "style_masks", "region_weights"):
        v = overrides.get(key)
        if isinstance(v, int):
            overrides[key] = (v,)
        elif isinstance(v, str) and key.endswith("layers"):
            overrides[key] = tuple(s for s in v.split(",") if s)
        elif isinstance(v, list):
            overrides[key] = tuple(v)
    return (options or Options()).replace(**overrides)


def run_transfer(content: ImageLike, styles: Union[ImageLike, Sequence[ImageLike]],
                 options: Optional[Options] = None, callback: Callback = None, **overrides) -> Result:
    """Style transfer returning the full Result (image, per-layer losses, recipe, timing)."""
    return run("transfer", content, styles, _options(options, overrides), callback)


def stylize(content: ImageLike, style: Union[ImageLike, Sequence[ImageLike]],
            options: Optional[Options] = None, callback: Callback = None, **overrides) -> Image.Image:
    """Paint `content` in the manner of `style` (one image or several, blended)."""
    return run_transfer(content, style, options, callback, **overrides).image


def reconstruct_content(content: ImageLike, layer: str = PAPER_CONTENT_LAYERS[0], options: Optional[Options] = None,
                        callback: Callback = None, **overrides) -> Image.Image:
    """Reconstruct an image from white noise using one layer's content features (Fig. 1)."""
    overrides.setdefault("content_layers", (layer,))
    return run("content", content, None, _options(options, overrides), callback).image


def synthesize_texture(style: ImageLike, layers: Sequence[str] = PAPER_STYLE_LAYERS,
                       options: Optional[Options] = None, callback: Callback = None, **overrides) -> Image.Image:
    """Synthesise a texture from white noise matching `style`'s Grams on `layers` (Fig. 1)."""
    overrides.setdefault("style_layers", tuple(layers.split(",")) if isinstance(layers, str) else tuple(layers))
    return run("texture", None, style, _options(options, overrides), callback).image
