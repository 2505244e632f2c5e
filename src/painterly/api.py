"""The public functions: each takes PIL images or paths and returns a PIL image.

Keyword arguments are fields of `painterly.Options` (see options/fields.py), e.g.
`stylize(content, style, size=256, iterations=(200,), preserve_color="luminance")`.
The returned image carries its recipe in `image.info["painterly"]`; `save_image`
embeds it in the file.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from PIL import Image

from painterly.engine import ImageLike, Iterate, Result, run
from painterly.options import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, Options
from painterly.options import options_from as _options

Callback = Optional[Callable[[Iterate], None]]


def run_transfer(
    content: ImageLike,
    styles: Union[ImageLike, Sequence[ImageLike]],
    options: Optional[Options] = None,
    callback: Callback = None,
    **overrides,
) -> Result:
    """Style transfer returning the full Result (image, per-layer losses, recipe, timing)."""
    return run("transfer", content, styles, _options(options, overrides), callback)


def stylize(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    options: Optional[Options] = None,
    callback: Callback = None,
    **overrides,
) -> Image.Image:
    """Paint `content` in the manner of `style` (one image or several, blended)."""
    return run_transfer(content, style, options, callback, **overrides).image


def reconstruct_content(
    content: ImageLike,
    layer: str = PAPER_CONTENT_LAYERS[0],
    options: Optional[Options] = None,
    callback: Callback = None,
    **overrides,
) -> Image.Image:
    """Reconstruct an image from white noise using one layer's content features (Fig. 1)."""
    overrides.setdefault("content_layers", (layer,))
    return run("content", content, None, _options(options, overrides), callback).image


def synthesize_texture(
    style: ImageLike,
    layers: Sequence[str] = PAPER_STYLE_LAYERS,
    options: Optional[Options] = None,
    callback: Callback = None,
    **overrides,
) -> Image.Image:
    """Synthesise a texture from white noise matching `style`'s Grams on `layers` (Fig. 1)."""
    overrides.setdefault(
        "style_layers", tuple(layers.split(",")) if isinstance(layers, str) else tuple(layers)
    )
    return run("texture", None, style, _options(options, overrides), callback).image
