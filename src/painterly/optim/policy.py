"""The schedule's policy between and after scales, all departures from the paper (which fixes
alpha/beta): --content-target rescales beta between scales (`rebalance`), --content-ceiling
polishes a run that ended too far from its photo (`ceiling_factor`), and the content distance
K that both read (`content_distance`)."""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from painterly.objective import Objective
from painterly.options import Options


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


def content_distance(
    features, x: torch.Tensor, photo: torch.Tensor, layers: Sequence[str], scales=None
) -> float:
    """K = sum_l |F_l(x) - F_l(c)|^2 / sum_l |F_l(c)|^2 over `layers` of the network as trained
    (scores.py's K at relu4_2): `scales`, the normalisation's filter scales (net.normalize.normalize_vgg),
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


MAX_POLISHES = 2  # --content-ceiling polishes at most (ceiling_factor: the second aims under it)


def polish(
    objective: Objective,
    x: torch.Tensor,
    o: Options,
    steps: int,
    distance: Callable[[torch.Tensor], float],
    optimise_more: Callable,
) -> Tuple[torch.Tensor, Options, bool, List[float]]:
    """--content-ceiling after the last scale: up to MAX_POLISHES polishes, each `steps` // 2 more
    steps at a lower beta (ceiling_factor), while the content distance K = distance(x) is above
    the ceiling (a higher --content-target raises it: else a polish undoes it, 2.0 ended at K 0.89).

    optimise_more(x, o, n) -> (x, stopped) runs n steps. Returns (x, options with the last beta,
    stopped, the beta before each polish).
    """
    ceiling = max(o.content_ceiling, o.content_target)
    previous, betas = None, []
    for _ in range(MAX_POLISHES):
        k = distance(x)
        factor = ceiling_factor(k, ceiling, previous)
        if factor >= 1.0:
            break
        betas.append(o.style_weight)
        o = o.replace(style_weight=o.style_weight * factor)
        objective.reweight("style", o.style_weight)
        # From the clipped pixels: the fresh L-BFGS history otherwise pushes the pixels held at
        # the range walls out further (brad_pitt x asheville, --preset quality: newly clipped
        # 19.2% from the unclipped iterate, 12.1% from the clipped one).
        x, stopped = optimise_more(x.clamp(0, 1), o, steps // 2)
        if stopped:
            return x, o, True, betas
        previous = (factor, k)
    return x, o, False, betas
