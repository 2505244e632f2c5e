"""The paper's style statistic: the Gram matrix G = F F^T and the loss E_l (eq. 4).

Every style statistic (gram.py, moments.py, sliced.py) has one small interface, so that several
styles, regions and kinds of statistic compose in the optimisation without special cases:

    loss.target(F, mask=None) -> T            computed once per style image (and region)
    loss.blend([T1, T2, ...], [b1, b2, ...])  -> T   (weights sum to 1)
    loss(F, T, mask=None) -> scalar           the per-layer style loss E_l

`mask` is an (M,) tensor of weights in [0, 1] (a region of a spatial-control run) or None.
A statistic with additive statistics (`stats`, `target_of_stats`, `value_of_stats`: sums over
positions) can be evaluated exactly in tiles (objective/tiling.py).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch

Tensor = torch.Tensor


def gram(f: Tensor) -> Tensor:
    """G = F F^T.   f: (N, M) -> (N, N)."""
    return _Gram.apply(f)


@functools.lru_cache(maxsize=64)
def positions(m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """M as a 0-dim tensor on the device, made once per (M, dtype, device) and shared (never
    modified in place): the Gram normaliser, which a new tensor per layer and evaluation would
    copy from the host each time (on a GPU, a wait for the device)."""
    with torch.inference_mode(False):  # never an inference tensor: a later backward pass saves it
        return torch.tensor(float(m), dtype=dtype, device=device)


class _Gram(torch.autograd.Function):
    """F F^T with the backward pass dL/dF = (D + D^T) F, D = dL/dG, one matrix product where
    autograd's, through `f @ f.t()`, takes two (D F and D^T F, then adds them): the same value up
    to rounding, and 0.6x the time of a step's Grams at 384 px here (99 -> 61 ms, relu1_1 .. relu5_1)."""

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        return f @ f.t()

    @staticmethod
    def backward(ctx, d):
        (f,) = ctx.saved_tensors
        return (d + d.t()) @ f


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

    # The loss is computed from additive statistics S = sum (T F)(T F)^T and a = sum T^2 (sums
    # over positions), so that the tiled evaluation (objective/tiling.py) sums them over tiles and reuses
    # this one formula.
    @staticmethod
    def stats(f: Tensor, mask: Optional[Tensor] = None) -> list:
        f = f.reshape(f.shape[0], -1)
        if mask is None:
            return [gram(f), positions(f.shape[1], f.dtype, f.device)]
        f = f * mask
        return [gram(f), mask.pow(2).sum()]

    @staticmethod
    def target_of_stats(st) -> Tensor:
        return st[0] / st[1].clamp_min(1e-8)

    def value_of_stats(self, st, target: Tensor) -> Tensor:
        n = st[0].shape[0]
        return (self.target_of_stats(st) - target).pow(2).sum() / (4.0 * n * n)

    def target(self, f: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return self.target_of_stats(self.stats(f, mask))

    @staticmethod
    def blend(targets: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
        return sum(w * t for w, t in zip(weights, targets))

    def __call__(self, f: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return self.value_of_stats(self.stats(f, mask), target)
