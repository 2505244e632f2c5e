"""The losses, as pure functions of feature matrices.

Notation (the paper's): a layer's features F are an (N, M) matrix, N filters by M = H * W
positions. P: the content image's features; G = F F^T; A: the style image's Gram matrix.

Style losses share one small interface so that several styles, regions and loss kinds
compose in the optimisation without special cases:

    loss.target(F, mask=None) -> T            computed once per style image (and region)
    loss.blend([T1, T2, ...], [b1, b2, ...])  -> T   (weights sum to 1)
    loss(F, T, mask=None) -> scalar           the per-layer style loss E_l

`mask` is an (M,) tensor of weights in [0, 1] (a region of a spatial-control run) or None.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

Tensor = torch.Tensor


def as_matrix(f: Tensor) -> Tensor:
    """(1, N, H, W) or (N, H, W) activations -> (N, M) float32 feature matrix."""
    if f.dim() == 4:
        f = f[0]
    return f.reshape(f.shape[0], -1).float()


def content_loss(f: Tensor, p: Tensor) -> Tensor:
    """L_content = 1/2 * sum_ij (F_ij - P_ij)^2.   f, p: (N, M)."""
    return 0.5 * (f - p).pow(2).sum()


def gram(f: Tensor) -> Tensor:
    """G = F F^T.   f: (N, M) -> (N, N)."""
    return f @ f.t()


def tv_loss(x: Tensor) -> Tensor:
    """Total variation: sum of squared differences of neighbouring pixels. x: (B, C, H, W).

    Not in the paper (its weight defaults to 0); offered because users expect it.
    """
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()
    return dh + dw


def _apply_mask(f: Tensor, mask: Optional[Tensor]):
    """Guided features T * F and the number of positions they count (sum of T^2)."""
    if mask is None:
        return f, float(f.shape[1])
    return f * mask, mask.pow(2).sum().clamp_min(1e-8)


class GramLoss:
    """The paper's style loss: E_l = 1/(4 N^2 M^2) * sum_ij (G_ij - A_ij)^2.

    The target is stored as A / M_style so that E_l = 1/(4 N^2) sum (G/M - A/M_style)^2.
    Departure: when the style image has as many positions as the output (the paper resizes
    it to the content's size) this is exactly the paper's E_l; otherwise (--style-scale,
    another aspect ratio, a region) each Gram is divided by its own position count, which
    the paper's formula, written for equal sizes, leaves open.
    With a mask T (spatial control, 1611.07865) G is the guided Gram (T F)(T F)^T and M the
    mask's area sum(T^2).
    """

    name = "gram"

    def target(self, f: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        f, m = _apply_mask(f, mask)
        return gram(f) / m

    @staticmethod
    def blend(targets: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
        return sum(w * t for w, t in zip(weights, targets))

    def __call__(self, f: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        f, m = _apply_mask(f, mask)
        n = f.shape[0]
        return (gram(f) / m - target).pow(2).sum() / (4.0 * n * n)


STYLE_LOSSES = {"gram": GramLoss()}


def style_loss_fn(name: str):
    """The style loss object registered under `name` (see config.STYLE_LOSSES)."""
    from .config import STYLE_LOSSES as NAMES
    from .errors import choice

    return STYLE_LOSSES[choice("style loss", name, NAMES)]
