"""Steps 1-3 of a run, before any heavy work: the images loaded, the output's size and shape,
the blend of the styles, the job's rule, the colour mode, the masks and the memory plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from PIL import Image

from painterly import methods
from painterly.errors import InvalidOption
from painterly.imaging import color, load_image, long_side_size, masks, resize_long_side, to_tensor
from painterly.methods import Method
from painterly.net.device import on_host_if_unsupported as hosted
from painterly.options import INITS, Options, job_options
from painterly.runtime import memory


@dataclass
class RunInputs:
    """What one run fixes before optimising (read_inputs)."""

    job: str
    o: Options
    method: Method
    styles: list  # as given (paths or images), for the recipe
    content_img: Optional[Image.Image]
    style_imgs: List[Image.Image]
    shape_src: Image.Image  # the image whose aspect ratio the output takes
    blend: List[float]
    histogram: bool
    luminance: bool
    regions: object  # imaging.masks.RegionMasks or None
    tile: int
    layers: List[str]


def read_inputs(o: Options, job: str, content, styles: list, device="cpu") -> RunInputs:
    """The inputs of a run whose options `o` are checked (methods.validate): images loaded, the
    job's rule applied, the colour mode, the masks and the tile side the memory plan allows on
    `device` (the torch.device the run computes on: its memory is the one checked)."""
    if o.init not in INITS:
        load_image(o.init)  # --init PATH: fail now, before any heavy work, if unreadable
    # 1. Images: load, then the output size (long side = --size, the content's aspect ratio;
    #    a texture takes the style's).
    content_img = load_image(content) if content is not None else None
    style_imgs = [load_image(s) for s in styles]
    if job != "texture" and content_img is None:
        raise InvalidOption(f"the {job} job needs a content image")
    if job != "content" and not style_imgs:
        raise InvalidOption(f"the {job} job needs at least one style image")
    blend = (
        [b / sum(o.style_blend) for b in o.style_blend]
        if o.style_blend
        else [1 / max(len(style_imgs), 1)] * len(style_imgs)
    )
    o = job_options(job, o)
    shape_src = content_img if job != "texture" else style_imgs[0]
    # 2. Colour preservation (1606.05897): recolour the style on the float tensors at each
    #    scale (no clipping or 8-bit rounding), or work on luminance alone.
    histogram = o.preserve_color == "histogram" and content_img is not None
    luminance = o.preserve_color == "luminance" and content_img is not None
    # 3. Spatial control (1611.07865) and memory: estimate the peak before any heavy work;
    #    tile the evaluation when that makes it fit (--tile 0), or refuse (see runtime/memory.py);
    #    the memory is that of the device the run computes on (a GPU's own, not the host's).
    regions = masks.load(
        o, content_img.size if job == "transfer" else None, [s.size for s in style_imgs], blend
    )
    tile = memory.plan(
        o,
        job,
        shape_src.size,
        [s.size for s in style_imgs],
        n_regions=regions.content.shape[0] if regions else 0,
        device=device,
    )
    layers = list(o.content_layers) + list(o.style_layers)
    return RunInputs(
        job,
        o,
        methods.get(o.style_loss),
        styles,
        content_img,
        style_imgs,
        shape_src,
        blend,
        histogram,
        luminance,
        regions,
        tile,
        layers,
    )


def as_list(styles) -> list:
    """The style images as a list: one image (path or PIL) or several."""
    if styles is None:
        return []
    if isinstance(styles, (str, Image.Image)) or hasattr(styles, "__fspath__"):
        return [styles]
    return list(styles)


def images_at(r: RunInputs, long_side: int, o: Options, device) -> tuple:
    """(content (1, C, h, w) or None, [style (1, C, h_s, w_s)]) at one scale of the schedule: the
    photo at the output's size, each style at the output's long side times --style-scale, in the
    photo's colours (--preserve-color histogram) or as luminance alone (luminance)."""
    w, h = long_side_size(r.shape_src.size, long_side)
    c = _tensor(r.content_img, long_side, r.luminance, device) if r.content_img is not None else None
    # The paper resizes the style image to the content's size; we keep its aspect ratio
    # and scale its long side to the output's times --style-scale.
    ss = [_tensor(s, max(16, round(max(w, h) * o.style_scale)), r.luminance, device) for s in r.style_imgs]
    # The colour steps run in float64 with eigh: on the host on a device without either (MPS).
    if r.histogram:
        ss = [hosted(color.match_histogram, s, c, o.color_match) for s in ss]
    if r.luminance:
        ss = [hosted(color.match_luminance, s, c) for s in ss]
    return c, ss


def _tensor(img: Image.Image, long_side: int, luminance: bool, device) -> torch.Tensor:
    t = to_tensor(resize_long_side(img, long_side)).to(device)
    return hosted(color.luminance_only, t)[:, :1] if luminance else t
