"""The function the optimiser minimises: a list of weighted terms over named layers.

    total = sum over terms of  weight * value(x)

The paper's objective (eq. 7) is two terms, alpha * L_content + beta * L_style. Beyond the
paper: total variation (--tv-weight), the pixel-range penalty (--range-weight) and any term a
caller adds (the temporal term of video mode). Each loss formula lives once, in losses.py;
tiling.TiledObjective evaluates the same terms tile by tile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from . import masks as _masks
from .config import Options
from .errors import InvalidOption
from .losses import (as_matrix, content_loss, cosine_loss, hypercolumns, nearest_neighbours, palette_directions,
                     palette_loss, palette_target, range_loss, resample_quantiles, style_loss_fn, tv_loss,
                     unit_columns)

Value = Union[torch.Tensor, Dict[str, torch.Tensor]]  # a scalar, or one per layer


# --- targets -------------------------------------------------------------------------------------
@dataclass
class Region:
    """One spatially controlled region (the whole image when there are no masks)."""

    weight: float  # lambda_r
    masks: Dict[str, Optional[torch.Tensor]]  # style layer -> (M,) mask of the output, or None
    targets: Dict[str, object]  # style layer -> style loss target


@dataclass
class Targets:
    content: Dict[str, torch.Tensor]  # content layer -> P (N, M)
    regions: List[Region]
    neighbour: Optional[torch.Tensor] = None  # --style-loss neighbour: the painting's hypercolumns (D, n)
    palette: Optional[torch.Tensor] = None  # --palette-weight: the blended painting palette (PaletteTerm)


def layer_weights(o: Options) -> List[float]:
    """w_l: the given weights, or equal weights summing to 1 (the paper's 1/5 each)."""
    if o.style_layer_weights is not None:
        return list(o.style_layer_weights)
    return [1.0 / len(o.style_layers)] * len(o.style_layers) if o.style_layers else []


@torch.no_grad()
def build_targets(net_features, o: Options, content: Optional[torch.Tensor], styles: Sequence[torch.Tensor],
                  blend: Sequence[float], masks=None, tiler=None, style_cache=None) -> Targets:
    """Content features P and blended style targets at one scale (computed once per scale).

    masks: a masks.ScaleMasks (spatial control, 1611.07865) or None; tiler: a tiling.Tiler to
    compute the features tile by tile (large images) or None; style_cache: a function
    (style tensor, compute) -> targets that remembers each style's targets (engine.Stylizer).
    """
    P, palette = {}, None
    # The palette term (PaletteTerm) on a transfer without masks: with regions one palette for the
    # whole picture would mix the regions' paintings, so a masked run goes without it.
    if content is not None and styles and o.palette_weight > 0 and masks is None:
        palette = palette_target(styles, blend, palette_directions(styles[0].shape[1]))
    if content is not None and o.content_layers and o.content_weight > 0:
        feats = tiler.assemble(content, o.content_layers) if tiler else net_features(content, o.content_layers)
        P = {l: as_matrix(feats[l]) for l in o.content_layers}
    if o.style_loss == "neighbour":
        if tiler is not None:
            raise InvalidOption("--style-loss neighbour does not tile: this size needs tiles to fit in memory; "
                                "use a smaller --size")
        style_set = None
        if styles:
            compute = lambda s: painting_hypercolumns(net_features, s, o)  # noqa: E731
            style_set = style_cache(styles[0], compute) if style_cache else compute(styles[0])
        return Targets(P, [], style_set, palette)
    loss = style_loss_fn(o.style_loss)
    regions = []
    if styles and o.style_layers and masks is None and tiler is None:
        def compute(s):
            f = net_features(s, o.style_layers)
            return {l: loss.target(as_matrix(f[l])) for l in o.style_layers}

        per_style = [style_cache(s, compute) if style_cache else compute(s) for s in styles]
        targets = {l: loss.blend([t[l] for t in per_style], blend) for l in o.style_layers}
        regions.append(Region(1.0, {}, targets))
    elif styles and o.style_layers:
        regions = _region_targets(net_features, o, styles, blend, masks, tiler, loss)
    return Targets(P, regions, palette=palette)


def quarter(size) -> tuple:
    """(h, w) of the hypercolumns of an (h, w) image: a quarter of each side (NNST), at least 1."""
    return max(1, size[0] // 4), max(1, size[1] // 4)


def painting_hypercolumns(net_features, s: torch.Tensor, o: Options) -> torch.Tensor:
    """The painting's hypercolumns (D, n) at o.style_layers, each image at a quarter of its size;
    with o.rotations also those of the painting rotated by 90, 180 and 270 degrees (the
    reference's flip_aug: more candidate marks for each position of the photo)."""
    turns = range(4) if o.rotations else range(1)
    sets = []
    for k in turns:
        r = torch.rot90(s, k, dims=(2, 3)) if k else s
        f = net_features(r, o.style_layers)
        sets.append(hypercolumns([f[l] for l in o.style_layers], quarter(r.shape[-2:])))
    return torch.cat(sets, 1)


def _region_targets(net_features, o: Options, styles, blend, masks, tiler, loss) -> List[Region]:
    """One Region per mask region (or one for the whole image), each with its blended targets.

    Region r's target at layer l blends the targets of the styles that provide r there (a
    style without a mask provides every region), its blend weights renormalised over them.
    A region whose output mask or every providing style mask is empty at a layer gets no term
    there (masks.empty), and a style whose mask for r is empty at a layer drops out of the blend.
    """
    n_regions = masks.n_regions if masks else 1
    per_style = []  # per style: {layer: [target per region]} (one entry if the style has no mask)
    for i, s in enumerate(styles):
        sm = masks.styles[i] if masks else None
        region_masks = [{}] if sm is None else [{l: sm[l][r] for l in o.style_layers} for r in range(n_regions)]
        if tiler is not None:
            per_style.append(tiler.style_targets(s, o.style_layers, region_masks, loss))
        else:
            feats = net_features(s, o.style_layers)
            per_style.append({l: [None if _masks.empty(rm.get(l)) else loss.target(as_matrix(feats[l]), rm.get(l))
                                  for rm in region_masks] for l in o.style_layers})
    regions = []
    for r in range(n_regions):
        out_masks = {l: masks.output[l][r] for l in o.style_layers} if masks else {}
        targets = {}
        for l in o.style_layers:
            if _masks.empty(out_masks.get(l)):
                targets[l] = None
                continue
            parts = [(t[l][0 if len(t[l]) == 1 else r], b) for t, b in zip(per_style, blend)]
            parts = [(t, b) for t, b in parts if t is not None and b > 0]
            total = sum(b for _, b in parts)
            targets[l] = loss.blend([t for t, _ in parts], [b / total for _, b in parts]) if parts else None
        regions.append(Region(masks.weights[r] if masks else 1.0, out_masks, targets))
    return regions


# --- the terms -----------------------------------------------------------------------------------
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

    def value(self, x, feats):
        if self.target is None:
            return x.new_zeros(())
        m = x.shape[-2] * x.shape[-1]
        if m not in self._at:
            self._at = {m: resample_quantiles(self.target, m).to(x.device)}
        return palette_loss(x, self._at[m], palette_directions(x.shape[1]))

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

    def reduce(self, value):
        return sum(self.scale[l] * v for l, v in value.items()) if value else 0.0


class StyleTerm(Term):
    """beta * sum_l w_l E_l (eq. 5), E_l summed over regions (lambda_r) with spatial control."""

    name = "style"

    def __init__(self, weight: float, regions: List[Region], layers: Sequence[str], layer_w: Sequence[float],
                 loss):
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
            style[l] = sum((r.weight * self.loss(f, r.targets[l], r.masks.get(l)) for r in self.regions
                            if r.targets.get(l) is not None), f.new_zeros(()))
        return style

    def reduce(self, value):
        return sum(self.w[l] * self.norm[l] * e for l, e in value.items()) if value else 0.0


class NeighbourTerm(Term):
    """--style-loss neighbour (NNST, Kolkin et al. 2022): beta * mean_i (1 - cos(h_i(x), t_i)).

    h_i(x) is the output's hypercolumn at position i (a quarter of the image's size, see
    losses.hypercolumns); t_i is the painting's hypercolumn nearest (centred cosine) to the
    hypercolumn of a search image at i. The engine sets the targets once per scale (`match`):
    the search image is the photo at the first scale and a mix of the photo and the current
    result after (--neighbour-photo), which is how the photo's structure is kept; there is no
    content loss. The value is 0 when every output hypercolumn points along its target.
    """

    name = "style"

    def __init__(self, weight: float, layers: Sequence[str], painting: Optional[torch.Tensor]):
        self.weight, self.layers, self.painting = weight, tuple(layers), painting
        self.target: Optional[torch.Tensor] = None  # (D, m), unit columns; set by match()
        self.size = None

    def match(self, search_feats: Dict[str, torch.Tensor], size) -> None:
        """Targets for an output of size (h, w): the painting's nearest neighbours of the search
        image's hypercolumns (search_feats: its features at self.layers)."""
        self.size = quarter(size)
        h = hypercolumns([search_feats[l] for l in self.layers], self.size)
        idx = nearest_neighbours(h, self.painting)
        self.target = unit_columns(self.painting[:, idx])

    def value(self, x, feats):
        if self.target is None:  # only Objective.calibrate evaluates before match(); 1 - cos is already
            return x.new_zeros(())  # a relative distance (0..2), so this term ignores calibration
        return cosine_loss(hypercolumns([feats[l] for l in self.layers], self.size), self.target)


def match_neighbours(objective: "Objective", x: torch.Tensor, c: Optional[torch.Tensor], first: bool,
                     photo_share: float) -> None:
    """--style-loss neighbour: set this scale's nearest-neighbour targets (objective.NeighbourTerm).

    The search image (NNST's): at the first scale the photo; after, the photo mixed with the
    current result plus the photo's finest band at this scale (the detail the upsampled result
    lacks), photo_share : 1 - photo_share (--neighbour-photo).
    """
    term = objective.term("style")
    if not hasattr(term, "match") or c is None or not term.layers:
        return
    search = c
    if not first:
        h, w = c.shape[-2:]
        low = F.interpolate(F.interpolate(c, size=(h // 2, w // 2), mode="bilinear", align_corners=False),
                            size=(h, w), mode="bilinear", align_corners=False)
        search = photo_share * c + (1.0 - photo_share) * (x + c - low)
    with torch.no_grad():
        term.match(objective.features(search), (x.shape[-2], x.shape[-1]))


def standard_terms(o: Options, targets: Targets) -> List[Term]:
    """The terms `o` asks for: content, style, tv, range, palette (each present even at weight 0, so that
    every run reports the same loss names)."""
    style_layers = o.style_layers if targets.regions else ()
    if o.style_loss == "neighbour":
        style = NeighbourTerm(o.style_weight, o.style_layers if targets.neighbour is not None else (),
                              targets.neighbour)
    else:
        style = StyleTerm(o.style_weight, targets.regions, style_layers, layer_weights(o)[:len(style_layers)],
                          style_loss_fn(o.style_loss, seed=o.seed))
    return [ContentTerm(o.content_weight, targets.content, o.content_average), style,
            PixelTerm("tv", o.tv_weight, tv_loss),
            # The pixel-range penalty (losses.range_loss): a departure, see there.
            PixelTerm("range", o.range_weight, range_loss),
            PaletteTerm(o.palette_weight, targets.palette)]


# --- the objective -------------------------------------------------------------------------------
class Objective:
    """sum of weight * term: the function the optimiser sees."""

    def __init__(self, features, terms: Sequence[Term]):
        self.terms = list(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"two objective terms share a name: {names}")
        self.layers = list(dict.fromkeys(l for t in self.terms for l in t.layers))
        self.features = lambda x: features(x, self.layers) if self.layers else {}

    def term(self, name: str) -> Optional[Term]:
        return next((t for t in self.terms if t.name == name), None)

    def calibrate(self, photo: torch.Tensor) -> None:
        """--balance photo: every term rescaled by its value at the photo (see Term.calibrate)."""
        with torch.no_grad():
            parts = self.parts(photo)
        for t in self.terms:
            t.calibrate(parts[t.name])

    def parts(self, x: torch.Tensor) -> dict:
        """Unweighted values of every term, by name. A term at weight 0 that needs no features is
        not evaluated (0.0): its value would not change the loss."""
        feats = self.features(x)
        return {t.name: (t.value(x, feats) if t.weight or t.layers else x.new_zeros(())) for t in self.terms}

    def weighted(self, parts: dict) -> Dict[str, torch.Tensor]:
        return {t.name: t.weight * t.reduce(parts[t.name]) for t in self.terms}

    def total(self, parts: dict) -> torch.Tensor:
        return sum(self.weighted(parts).values())

    def summary(self, parts: dict, total: torch.Tensor) -> Dict[str, float]:
        """Weighted loss terms as floats (for progress display)."""
        with torch.no_grad():
            return {**{k: float(v) for k, v in self.weighted(parts).items()}, "total": float(total)}


def rebalance(objective: Objective, x: torch.Tensor, target: float, limit: float = 3.0) -> float:
    """The factor for beta after a scale so that the content distance K heads for `target`.

    Departure (--content-target; not in the paper, which fixes alpha/beta): how far one beta
    carries a picture from its photo differs between pairs (256 px, --preset quality: K 0.20
    for golden_gate x the_scream, 0.68 for tubingen x starry_night). K = sum_l |F_l(x) - P_l|^2
    / sum_l |P_l|^2 over the content layers; beta is multiplied by target/K, within 1/limit..limit.
    """
    term = objective.term("content")
    if term is None or not term.targets:
        return 1.0
    with torch.no_grad():
        parts = objective.parts(x)
    apart = sum(float(v) for v in parts["content"].values())  # 1/2 |F - P|^2 per layer
    size = term.photo_size()
    k = apart / size if size > 0 else 0.0
    return min(limit, max(1.0 / limit, target / k)) if k > 0 else limit


def content_distance(features, x: torch.Tensor, photo: torch.Tensor, layers: Sequence[str], scales=None) -> float:
    """K = sum_l |F_l(x) - F_l(c)|^2 / sum_l |F_l(c)|^2 over `layers` of the network as trained
    (scores.py's K at relu4_2): `scales`, the normalisation's filter scales (network.normalize_vgg),
    are undone here."""
    with torch.no_grad():
        fx, fc = (features(t, list(layers)) for t in (x.clamp(0, 1), photo))
    apart = size = 0.0
    for l in layers:
        w = _filter_scale(l, scales).float().view(1, -1, 1, 1) ** 2 if scales else 1.0
        apart += float((w * (fx[l].float() - fc[l].float()) ** 2).sum())
        size += float((w * fc[l].float() ** 2).sum())
    return apart / size if size > 0 else 0.0


def _filter_scale(layer: str, scales):
    """The normalisation's scale of `layer`'s channels: a conv's and its ReLU's are the same (the
    filter was divided), a pooling layer's are those of the last ReLU before it."""
    if layer.startswith("pool"):
        block = [l for l in scales if l.startswith(f"relu{layer[4:]}_")]
        return scales[max(block, key=lambda l: int(l.split("_")[1]))]
    return scales["relu" + layer[4:] if layer.startswith("conv") else layer]


CEILING_AIM = 0.97  # a second polish aims this far under --content-ceiling (ceiling_factor)


def ceiling_factor(k: float, ceiling: float, previous: Optional[Tuple[float, float]] = None) -> float:
    """The factor for beta in the polish of a run that ended at K = k above --content-ceiling.

    Departure (not in the paper, which fixes alpha/beta): one beta takes a few pairs much
    further from their photo than the rest (wide set, 384 px: K 1.13 brad_pitt x asheville,
    1.11 blonde_girl x mondrian_cropped; median 0.61), so that the photo is hard to make out.
    K answers beta weakly in 20 more steps (brad_pitt x asheville: x0.5 -> K 0.81, x0.25 -> 0.67),
    hence the cube; at least x0.25 so that the style stays.

    `previous` = (factor, K before it) of a first polish that left K still above the ceiling
    (blonde_girl x mondrian_cropped, 384 px: K 0.910 after x(0.9/K)^3): the factor then comes from
    the response that polish showed, K linear in log beta, aimed at CEILING_AIM x the ceiling so
    that the second polish is the last; x0.25..x0.9.
    """
    if not ceiling or k <= ceiling:
        return 1.0
    if previous is None:
        return max(0.25, (ceiling / k) ** 3)
    factor, k_before = previous
    slope = (k_before - k) / -math.log(factor)  # K's fall per unit of -log beta (factor < 1)
    if slope <= 0:  # no response: the floor
        return 0.25
    return min(0.9, max(0.25, math.exp(-(k - CEILING_AIM * ceiling) / slope)))
