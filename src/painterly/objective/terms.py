"""The terms of the objective: each a weighted function of the image and its features.

    total = sum over terms of  weight * reduce(value(x, feats))

The paper's objective (eq. 7) is two terms, alpha * L_content + beta * L_style. Beyond the
paper: total variation (--tv-weight), the pixel-range penalty (--range-weight), the palette
term (--palette-weight) and any term a caller adds (the temporal term of video mode). A style
method (painterly.methods) supplies the style term. Each loss formula lives once, in losses/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from painterly.errors import InvalidOption
from painterly.losses import as_matrix, content_loss, palette_directions, palette_loss, resample_quantiles
from painterly.options import Options

Value = Union[torch.Tensor, Dict[str, torch.Tensor]]  # a scalar, or one per layer


@dataclass
class Region:
    """One spatially controlled region (the whole image when there are no masks)."""

    weight: float  # lambda_r
    masks: Dict[str, Optional[torch.Tensor]]  # style layer -> (M,) mask of the output, or None
    targets: Dict[str, object]  # style layer -> style loss target


def layer_weights(o: Options) -> List[float]:
    """w_l: the given weights, or equal weights summing to 1 (the paper's 1/5 each)."""
    if o.style_layer_weights is not None:
        return list(o.style_layer_weights)
    return [1.0 / len(o.style_layers)] * len(o.style_layers) if o.style_layers else []


class Term:
    """One weighted term. `value(x, feats)` is unweighted (the paper's units): a scalar, or a
    {layer: scalar} dict that `reduce` sums; `layers` are the features it reads (none: a term
    on the pixels alone, which any objective, tiled or not, can evaluate)."""

    name: str = ""
    weight: float = 0.0
    layers: Sequence[str] = ()

    def value(self, x: torch.Tensor, feats: Dict[str, torch.Tensor]) -> Value:
        raise NotImplementedError

    def reduce(self, value: Value) -> torch.Tensor:
        return sum(value.values()) if isinstance(value, dict) else value

    def calibrate(self, at_photo: Value) -> None:
        """--balance photo: rescale this term by its value at the photo (Objective.calibrate);
        a term that is not relative to the photo ignores it."""

    def tiled(self):
        """What tiling.TiledObjective needs to evaluate this term tile by tile; a term that reads
        features and cannot be tiled raises InvalidOption (the default)."""
        raise InvalidOption(f"the {self.name} term cannot be evaluated in tiles: use a smaller --size")


class PixelTerm(Term):
    """A term on the pixels alone: weight * fn(x). x: (1, C, h, w) at the current scale."""

    def __init__(self, name: str, weight: float, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.name, self.weight, self.fn = name, weight, fn

    def value(self, x, feats):
        return self.fn(x)


class PaletteTerm(Term):
    """weight * the sliced Wasserstein-2 distance between the output's pixel colours and the
    painting's (losses.palette_loss; --palette-weight), relative to the photo's under --balance photo.

    Departure (not in Gatys et al.; STROTSS, Kolkin et al. 2019, has a palette term on pixel
    colours): Gram matrices hold the colours' correlations, not their distribution, and on the
    wide set the default run left brad_pitt x asheville at P 0.83 and pushed 8-11% of the pixels of
    four pairs against the range walls (single channels at 0 or 255; the paintings at 384 px: 1.4-1.8%,
    en_campo_gris aside).
    Measured there: benchmarks/README.md.
    """

    name = "palette"

    def __init__(self, weight: float, target: Optional[torch.Tensor]):
        self.weight, self.target, self.norm = weight, target, 1.0
        self._at: Dict[int, torch.Tensor] = {}  # pixel count -> the target resampled to it
        self._directions: Dict[tuple, torch.Tensor] = {}  # (channels, device) -> palette_directions there

    def value(self, x, feats):
        if self.target is None:
            return x.new_zeros(())
        m = x.shape[-2] * x.shape[-1]
        if m not in self._at:
            self._at = {m: resample_quantiles(self.target, m).to(x.device)}
        key = (x.shape[1], x.device)
        if key not in self._directions:  # on the device once, not copied from the host per evaluation
            self._directions = {key: palette_directions(x.shape[1]).to(x.device, torch.float32)}
        return palette_loss(x, self._at[m], self._directions[key])

    def reduce(self, value):
        return self.norm * value

    def calibrate(self, at_photo):
        # --balance photo: 1 at the photo, as the other terms (a photo already in the painting's
        # colours, below 1e-4, i.e. 2.5 levels of 255, is not magnified further).
        self.norm = 1.0 / max(float(at_photo), 1e-4)


class ContentTerm(Term):
    """alpha * sum_l L_content(l) (eq. 1), each layer optionally averaged over its positions."""

    name = "content"

    def __init__(self, weight: float, targets: Dict[str, torch.Tensor], average: bool):
        self.weight, self.targets, self.layers = weight, targets, tuple(targets)
        # Departure (default, also in --preset paper): the paper's L_content is a sum over
        # the M_l positions while E_l is normalised by M_l^2, so the same alpha/beta stylises a
        # 1024 px image 16x less than a 256 px one. Dividing L_content by M_l makes alpha/beta
        # mean the same at every size (and every scale of a coarse-to-fine run).
        self.scale = {l: 1.0 / p.shape[1] if average else 1.0 for l, p in targets.items()}

    def photo_size(self) -> float:
        """sum_l 1/2 |P_l|^2: L_content of a picture with no features, the denominator of K."""
        return sum(0.5 * float(p.float().pow(2).sum()) for p in self.targets.values())

    def calibrate(self, at_photo):
        # Departure (--balance photo, the default): the term becomes the content distance
        # K = sum_l |F_l(x) - P_l|^2 / sum_l |P_l|^2 (0 at the photo; the score scores.py reports),
        # so alpha/beta means the same whatever the photo's feature energy.
        size = self.photo_size()
        self.scale = {l: 1.0 / size if size > 0 else 1.0 for l in self.targets}

    def value(self, x, feats):
        return {l: content_loss(as_matrix(feats[l]), p) for l, p in self.targets.items()}

    def tiled(self) -> Dict[str, torch.Tensor]:
        """{layer: P (N, M)}: L_content is a sum over positions, so each tile takes its part of P."""
        return self.targets

    def reduce(self, value):
        return sum(self.scale[l] * v for l, v in value.items()) if value else 0.0


class StyleTerm(Term):
    """beta * sum_l w_l E_l (eq. 5), E_l summed over regions (lambda_r) with spatial control."""

    name = "style"

    def __init__(
        self, weight: float, regions: List[Region], layers: Sequence[str], layer_w: Sequence[float], loss
    ):
        self.weight, self.regions, self.layers, self.loss = weight, regions, tuple(layers), loss
        self.w = dict(zip(layers, layer_w))
        self.norm = {l: 1.0 for l in self.layers}  # --balance photo: 1 / E_l at the photo (calibrate)

    def calibrate(self, at_photo):
        # Departure (--balance photo, the default): each layer's E_l is divided by its value at
        # the photo, so every layer and every painting starts at 1 and w_l * E_l / E_l(photo) is the
        # share of that layer's distance left (the S score of scores.py, per layer). With the
        # paper's absolute E_l, measured at the photo on 19 pairs of the wide set (256 px), E_l
        # ranges from 0.23 to 287, relu5_1 alone holds 36-96% of the sum, and the sum differs
        # 56x between pairs: one beta over-paints some pairs and leaves others a tinted photo,
        # and within a pair relu5_1 takes most of the gradient while the marks (relu1-3) wait.
        # A layer where the photo already matches the painting is floored at 1% of the largest,
        # so that it cannot take a weight 100x the others'.
        values = {l: float(v) for l, v in at_photo.items()}
        floor = 0.01 * max(values.values(), default=0.0)
        self.norm = {l: 1.0 / max(v, floor) if max(v, floor) > 0 else 1.0 for l, v in values.items()}

    def value(self, x, feats):
        style = {}
        for l in self.layers:
            f = as_matrix(feats[l])
            # A region whose mask is empty at this layer (or that no style provides there) has no term.
            style[l] = sum(
                (
                    r.weight * self.loss(f, r.targets[l], r.masks.get(l))
                    for r in self.regions
                    if r.targets.get(l) is not None
                ),
                f.new_zeros(()),
            )
        return style

    def reduce(self, value):
        return sum(self.w[l] * self.norm[l] * e for l, e in value.items()) if value else 0.0

    def tiled(self):
        """(the statistic, {layer: [(lambda_r, mask, target) of each region with a target there]})."""
        return self.loss, {
            l: [
                (r.weight, r.masks.get(l), r.targets[l]) for r in self.regions if r.targets.get(l) is not None
            ]
            for l in self.layers
        }
