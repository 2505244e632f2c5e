"""Spatial control: region masks (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling
Perceptual Factors in Neural Style Transfer", CVPR 2017, arXiv 1611.07865, Sec. 4.1).

A content mask splits the output into regions r = 0..R-1; each style image may carry a mask
with the same labels saying which of its pixels may provide region r's style. Each mask is
propagated to every style layer and the style loss becomes a sum over regions of guided
losses (guided Gram matrices for the paper's loss), weighted by lambda_r (default 1/R).

Mask forms (see `read_content_masks`, `read_style_mask`):
  content  one label image with values 0..R-1 (greyscale or palette; a greyscale image whose
           only values are 0 and 255 is read as 0/1), or a comma-separated list of binary
           masks, one per region (non-zero = inside; regions may then overlap or leave
           pixels uncovered);
  style    a label image with the content mask's labels; or region numbers "r" / "r+s+..."
           meaning the whole style image provides those regions; or "all" (or an empty
           entry) for a style image that provides every region (the default).

Tensors: masks are float (R, H, W) stacks of 0/1 at pixel level; propagated masks are
{layer: (R, M_l)} with M_l = H_l * W_l, in the layer's position order.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from painterly.errors import InvalidOption
from painterly.options import MAX_INPUT_PIXELS

MAX_REGIONS = 32  # a mask with more labels than this is almost certainly not a label image
_REGION_LIST = re.compile(r"^\d+(\+\d+)*$")


@dataclass
class RegionMasks:
    """The masks of one run at their own resolution (nearest-resized per scale by `at_size`)."""

    content: torch.Tensor  # (R, H, W) float 0/1: region r of the output
    styles: List[Optional[torch.Tensor]]  # per style image: (R, H_s, W_s) 0/1, or None (every region)
    weights: List[float]  # lambda_r


# --- reading --------------------------------------------------------------------------------
def _name(path) -> str:
    return os.path.basename(str(path)) or str(path)


def read_label_map(path, what: str) -> np.ndarray:
    """A mask file -> (H, W) int64 labels. Raises InvalidOption with a one-line message.

    Palette images give their palette indices; greyscale images their values, except that a
    mask whose only values are 0 and 255 (0 and 65535 for 16 bits) reads as 0/1 (a binary
    mask drawn in black and white). RGB(A) images are accepted when grey (R = G = B).
    Alpha channels are ignored. EXIF orientation is applied.
    """
    p = Path(path)
    name = _name(p)
    if not p.is_file():
        raise InvalidOption(f"{what} '{name}': no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
    except Exception as e:
        raise InvalidOption(f"{what} '{name}': cannot read it as an image ({type(e).__name__})") from None
    if im.size[0] * im.size[1] > MAX_INPUT_PIXELS:
        raise InvalidOption(f"{what} '{name}': more than {MAX_INPUT_PIXELS:,} pixels")
    mode = im.mode
    if mode == "1":
        a = np.array(im.convert("L"), dtype=np.int64)
    elif mode in ("P", "PA"):
        a = np.array(im.convert("P") if mode == "PA" else im, dtype=np.int64)
    elif mode in ("L", "LA", "I", "I;16", "I;16B", "I;16L"):
        a = np.array(im.getchannel(0) if mode == "LA" else im, dtype=np.int64)
    elif mode in ("RGB", "RGBA"):
        rgb = np.array(im.convert("RGB"), dtype=np.int64)
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            raise InvalidOption(
                f"{what} '{name}' is a colour image; a mask is a greyscale or palette "
                "image with values 0..R-1"
            )
        a = rgb[..., 0]
    else:
        raise InvalidOption(f"{what} '{name}': unsupported image mode {mode} (use greyscale or palette)")
    values = np.unique(a)
    top = 65535 if a.max(initial=0) > 255 else 255
    if len(values) <= 2 and set(values.tolist()) <= {0, top} and top in values:
        a = (a == top).astype(np.int64)  # black/white: 0/1
    elif a.min(initial=0) < 0 or a.max(initial=0) >= MAX_REGIONS:
        raise InvalidOption(
            f"{what} '{name}' has values up to {int(a.max())}; a mask has values 0..R-1 "
            f"(at most {MAX_REGIONS} regions) or is black and white"
        )
    return a


def _check_size(
    mask_hw: Tuple[int, int], image_wh: Tuple[int, int], what: str, name: str, image: str
) -> None:
    """A mask must have its image's size, or its aspect ratio (to within one pixel of rounding)."""
    mh, mw = mask_hw
    iw, ih = image_wh
    if (mw, mh) == (iw, ih):
        return
    if abs(mw * ih / iw - mh) <= 1.0 and abs(mh * iw / ih - mw) <= 1.0:
        return
    raise InvalidOption(
        f"{what} '{name}' is {mw}x{mh} but {image} is {iw}x{ih}; a mask must have its "
        "image's size or aspect ratio"
    )


def read_content_masks(spec: str, image_wh: Tuple[int, int]) -> torch.Tensor:
    """--content-mask -> (R, H, W) float 0/1: one label image, or comma-separated binary masks."""
    paths = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not paths:
        raise InvalidOption("--content-mask is empty")
    if len(paths) == 1:
        labels = read_label_map(paths[0], "content mask")
        _check_size(labels.shape, image_wh, "content mask", _name(paths[0]), "the content image")
        r = int(labels.max()) + 1
        stack = np.stack([labels == i for i in range(r)])
        for i in range(r):
            if not stack[i].any():
                raise InvalidOption(
                    f"content mask '{_name(paths[0])}': region {i} is empty (a mask with "
                    f"values 0..{r - 1} must use each of them)"
                )
        return torch.from_numpy(stack).float()
    layers = []
    for i, p in enumerate(paths):
        labels = read_label_map(p, "content mask")
        _check_size(labels.shape, image_wh, "content mask", _name(p), "the content image")
        if layers and labels.shape != layers[0].shape:
            raise InvalidOption(
                f"content mask '{_name(p)}' is {labels.shape[1]}x{labels.shape[0]} but "
                f"'{_name(paths[0])}' is {layers[0].shape[1]}x{layers[0].shape[0]}; "
                "the masks of one image must have one size"
            )
        if not (labels > 0).any():
            raise InvalidOption(f"content mask '{_name(p)}' (region {i}) is empty")
        layers.append(labels > 0)
    return torch.from_numpy(np.stack(layers)).float()


def read_style_mask(
    spec: str, n_regions: int, image_wh: Tuple[int, int], index: int
) -> Optional[torch.Tensor]:
    """One --style-masks entry -> (R, H, W) float 0/1, or None for a style covering every region."""
    spec = str(spec).strip()
    what = f"style mask {index + 1}"
    if spec in ("", "all", "*"):
        return None
    if _REGION_LIST.match(spec) and not os.path.exists(spec):
        regions = sorted({int(v) for v in spec.split("+")})
        bad = [r for r in regions if r >= n_regions]
        if bad:
            raise InvalidOption(
                f"{what} '{spec}' names region {bad[0]} but the content mask has "
                f"{n_regions} regions (0..{n_regions - 1})"
            )
        w, h = image_wh
        out = torch.zeros(n_regions, h, w)
        out[regions] = 1.0
        return out
    labels = read_label_map(spec, what)
    _check_size(labels.shape, image_wh, what, _name(spec), f"style image {index + 1}")
    if labels.max() >= n_regions:
        raise InvalidOption(
            f"{what} '{_name(spec)}' has region {int(labels.max())} but the content mask has "
            f"{n_regions} regions (0..{n_regions - 1})"
        )
    return torch.from_numpy(np.stack([labels == i for i in range(n_regions)])).float()


def load(
    o, content_wh: Optional[Tuple[int, int]], style_whs: Sequence[Tuple[int, int]], blend: Sequence[float]
) -> Optional[RegionMasks]:
    """Read and check the masks of options `o`; None when the run has no spatial control.

    Fails (InvalidOption, one line) on unreadable masks, sizes that do not match their images,
    empty regions, a region no style image provides, and counts that do not match.
    """
    if not o.content_mask:
        if o.style_masks:
            raise InvalidOption("--style-masks needs --content-mask (the regions of the output)")
        if o.region_weights is not None:
            raise InvalidOption("--region-weights needs --content-mask")
        return None
    if content_wh is None:
        raise InvalidOption("--content-mask needs a content image (the transfer job)")
    content = read_content_masks(o.content_mask, content_wh)
    r = content.shape[0]
    if o.style_masks and len(o.style_masks) != len(style_whs):
        raise InvalidOption(
            f"--style-masks has {len(o.style_masks)} entries for {len(style_whs)} style images "
            "(use 'all' for a style image without a mask)"
        )
    styles = (
        [read_style_mask(spec, r, wh, i) for i, (spec, wh) in enumerate(zip(o.style_masks, style_whs))]
        if o.style_masks
        else [None] * len(style_whs)
    )
    for i in range(r):
        if not any(b > 0 and (m is None or bool(m[i].any())) for m, b in zip(styles, blend)):
            raise InvalidOption(
                f"region {i} of the content mask is empty in every style mask (no style image provides it)"
            )
    if o.region_weights is None:
        weights = [1.0 / r] * r
    else:
        weights = list(o.region_weights)
        if len(weights) != r:
            raise InvalidOption(f"--region-weights has {len(weights)} values for {r} regions")
        if any(not w >= 0 for w in weights):
            raise InvalidOption("--region-weights must be >= 0")
    return RegionMasks(content, styles, weights)


# --- per scale and per layer ------------------------------------------------------------------
def at_size(mask: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(R, H, W) -> (R, h, w) for size = (w, h), nearest neighbour (labels stay 0/1)."""
    w, h = size
    if mask.shape[-2:] == (h, w):
        return mask
    return F.interpolate(mask[None], size=(h, w), mode="nearest-exact")[0]


def propagate(
    mask: torch.Tensor, names: Sequence[str], layers: Sequence[str], mode: str
) -> Dict[str, torch.Tensor]:
    """Pixel-level masks (R, h, w) -> {layer: (R, M_l)} on the layers' own grids.

    The mask travels through the network's structure, so each layer's mask has exactly that
    layer's size:
      "resize": each pooling averages 2x2 blocks (area downsampling; fractional weights at the
                region borders); convolutions keep the mask.
      "inside": a neuron is kept (1) only if its whole receptive field lies inside the region:
                every 3x3 convolution erodes the mask by one position (min over 3x3) and every
                pooling keeps a position only if all of its 2x2 inputs are inside (min over
                2x2). This is exactly the theoretical receptive field (conv5_1: 156 px), which
                is much larger than the effective one; regions narrower than a layer's receptive
                field have no neurons at that layer and its term for them is dropped (see
                `empty`). Positions outside the image count as inside (the zero padding is not
                another region), so regions touching the border keep their border neurons.
    """
    wanted = set(layers)
    m = mask[:, None].float()  # (R, 1, h, w)
    out = {}
    for name in names:
        if name.startswith("conv") and mode == "inside":
            m = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1), value=1.0), 3, stride=1)
        elif name.startswith("pool"):
            m = -F.max_pool2d(-m, 2, 2) if mode == "inside" else F.avg_pool2d(m, 2, 2)
        if name in wanted:
            out[name] = m.reshape(m.shape[0], -1)
        if len(out) == len(wanted):
            break
    return out


def empty(mask: Optional[torch.Tensor]) -> bool:
    """Whether a propagated (M,) mask selects nothing: no position with weight above 1/2."""
    return mask is not None and not bool((mask > 0.5).any())


@dataclass
class ScaleMasks:
    """The masks of one scale, propagated to the style layers."""

    output: Dict[str, torch.Tensor]  # layer -> (R, M_l) on the output's grid
    styles: List[Optional[Dict[str, torch.Tensor]]]  # per style image: layer -> (R, M_l), or None
    weights: List[float]  # lambda_r

    @property
    def n_regions(self) -> int:
        return len(self.weights)


def for_scale(
    masks: RegionMasks,
    names: Sequence[str],
    layers: Sequence[str],
    mode: str,
    output_wh: Tuple[int, int],
    style_whs: Sequence[Tuple[int, int]],
    device,
) -> ScaleMasks:
    """Resize (nearest) every mask to its image's size at this scale and propagate it."""
    out = propagate(at_size(masks.content, output_wh).to(device), names, layers, mode)
    styles = [
        None if m is None else propagate(at_size(m, wh).to(device), names, layers, mode)
        for m, wh in zip(masks.styles, style_whs)
    ]
    return ScaleMasks(out, styles, list(masks.weights))
