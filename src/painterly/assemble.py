"""The objective of one scale, assembled in one place: the targets (the photo's features, the
style method's targets, the palette) and the terms (content, the method's style term, tv,
range, palette, and any a caller adds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from painterly import methods
from painterly.losses import as_matrix, palette_directions, palette_target, range_loss, tv_loss
from painterly.methods import StyleInputs
from painterly.objective import ContentTerm, Objective, PaletteTerm, PixelTerm, Term
from painterly.options import Options


@dataclass
class Targets:
    """What a scale's terms compare with, computed once per scale (build_targets)."""

    content: dict  # content layer -> P (N, M)
    style: object  # the style method's targets (statistics: a list of objective.Region)
    palette: Optional[torch.Tensor] = None  # --palette-weight: the blended painting palette (PaletteTerm)


@torch.no_grad()
def build_targets(
    features,
    o: Options,
    content: Optional[torch.Tensor],
    styles: Sequence[torch.Tensor],
    blend: Sequence[float],
    masks=None,
    tiler=None,
    style_cache=None,
) -> Targets:
    """Content features P, the style method's targets and the palette at one scale.

    masks: an imaging.masks.ScaleMasks (spatial control, 1611.07865) or None; tiler: an
    objective.tiling.Tiler to compute the features tile by tile (large images) or None;
    style_cache: a function (style tensor, compute) -> targets that remembers each style's
    targets (Stylizer).
    """
    style = methods.get(o.style_loss).targets(
        o, StyleInputs(features, styles, blend, masks, tiler, style_cache)
    )
    return Targets(
        content_targets(features, o, content, tiler), style, palette(o, content, styles, blend, masks)
    )


def make_objective(
    features, o: Options, targets: Targets, extra: Sequence[Term] = (), tiler=None
) -> Objective:
    """The objective of a run at one scale: content, the method's style term, tv, range and palette
    (each present even at weight 0, so that every run reports the same loss names) plus `extra`,
    tiled when `tiler` is given."""
    terms = [
        ContentTerm(o.content_weight, targets.content, o.content_average),
        methods.get(o.style_loss).term(o, targets.style),
        PixelTerm("tv", o.tv_weight, tv_loss),
        PixelTerm("range", o.range_weight, range_loss),  # a departure: see losses/pixel.py
        PaletteTerm(o.palette_weight, targets.palette),
    ] + list(extra)
    if tiler is None:
        return Objective(features, terms)
    from painterly.objective.tiling import TiledObjective

    return TiledObjective(features, terms, tiler)


def content_targets(features, o: Options, content: Optional[torch.Tensor], tiler) -> dict:
    """P (N, M) at each content layer, or none (no content, no layers or alpha 0)."""
    if content is None or not o.content_layers or o.content_weight <= 0:
        return {}
    feats = tiler.assemble(content, o.content_layers) if tiler else features(content, o.content_layers)
    return {l: as_matrix(feats[l]) for l in o.content_layers}


def palette(o: Options, content, styles, blend, masks_at_scale) -> Optional[torch.Tensor]:
    """The palette term's target (objective.PaletteTerm) on a transfer without masks: with regions
    one palette for the whole picture would mix the regions' paintings, so a masked run goes
    without it."""
    if content is None or not styles or o.palette_weight <= 0 or masks_at_scale is not None:
        return None
    return palette_target(styles, blend, palette_directions(styles[0].shape[1]))


def tiler_for(features, names, layers, tile: int, size):
    """An objective.tiling.Tiler when tiling is on and the image at this scale is larger than a tile."""
    if not tile or max(size) <= tile:
        return None
    from painterly.objective.tiling import Tiler

    return Tiler(features, names, layers, tile)


def splits(r, k: int, plan) -> bool:
    """Whether scale k of the run with inputs `r` (inputs.RunInputs) runs its deep layers at half
    resolution (--deep-split): the finest of several scales, untiled, without masks (their
    regions are sized for the full network), of a method whose terms take it. The final losses
    never split: they are the paper's."""
    return bool(
        r.o.deep_split != "none"
        and len(plan) > 1
        and k + 1 == len(plan)
        and not r.tile
        and not r.regions
        and r.method.splits
    )
