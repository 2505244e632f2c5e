"""The sliced Wasserstein style loss (Heitz et al., CVPR 2021). The interface is gram.py's."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from painterly.losses.quantiles import resample_quantiles, sort_rows

Tensor = torch.Tensor


class SlicedLoss:
    """Sliced Wasserstein distance between the feature distributions (Heitz et al., CVPR 2021).

    Features (columns of F, points in R^N) are projected onto K random unit directions
    (K = N unless n_directions is set); each direction's sorted projections of the output and
    the style are compared: E_l = 1/K sum_k 1/M sum_i (sort(d_k F)_i - sort(d_k F_S)_i)^2,
    the mean over directions of the squared 1D Wasserstein-2 distance (for Gaussians about
    W2^2 / N, the scale of the other losses).

    The directions are redrawn at every call (every loss evaluation, as in the paper) from a
    torch.Generator the object holds; set `seed` (constructor or attribute) to restart it
    reproducibly. `directions=` passes a fixed (K, N) set instead (for gradient checks).
    Departure: when the style has M_S != M positions its sorted projections are resampled to
    M by linear interpolation of the quantiles (`resample_quantiles`); Heitz et al. use equal sizes.
    Masks select the positions where mask > 0.5 (a hard region; no weighting). An empty region
    of the output gives 0.
    The target is a list of (features (N, M_S), weight) pairs and the loss is their weighted
    sum; blending concatenates the lists with the blend weights multiplied in.
    """

    name = "sliced"

    def __init__(self, n_directions: Optional[int] = None, seed: Optional[int] = 0):
        self.n_directions = n_directions
        self.generator = torch.Generator()
        self.seed = seed
        self._positions: dict = {}  # id(mask) -> (mask, the indices of its positions > 0.5)

    @property
    def seed(self) -> Optional[int]:
        return self._seed

    @seed.setter
    def seed(self, value: Optional[int]) -> None:
        """Restart the directions' generator from `value` (None: a nondeterministic seed)."""
        self._seed = value
        if value is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(value)

    def directions(self, n: int, like: Tensor) -> Tensor:
        """K fresh random unit directions (K, n), drawn on the CPU, on like's device/dtype."""
        k = self.n_directions or n
        d = torch.randn(k, n, generator=self.generator, dtype=torch.float64)
        if like.device.type != "cuda":
            # to like's dtype on the CPU, then to its device (MPS holds no float64)
            return (d / d.norm(dim=1, keepdim=True)).to(like.dtype).to(like.device)
        # On CUDA the same numbers (drawn and rounded on the host, so a seed gives one set of
        # directions on every device), sent from pinned memory without waiting for the device.
        return (
            (d / d.norm(dim=1, keepdim=True)).to(like.dtype).pin_memory().to(like.device, non_blocking=True)
        )

    @staticmethod
    def _select(f: Tensor, mask: Optional[Tensor]) -> Tensor:
        return f if mask is None else f[:, mask > 0.5]

    def _selected(self, f: Tensor, mask: Optional[Tensor]) -> Tensor:
        """_select for the loss's evaluations: the mask's positions found once per mask (a
        boolean index finds them at every call, which on a GPU waits for the device) and
        gathered; the same values, and the same gradient (each position is taken once)."""
        if mask is None:
            return f
        kept = self._positions.get(id(mask))
        if kept is None or kept[0] is not mask:
            if len(self._positions) >= 64:
                self._positions.clear()
            kept = self._positions[id(mask)] = (mask, (mask > 0.5).nonzero().squeeze(1))
        return f.index_select(1, kept[1])

    def target(self, f: Tensor, mask: Optional[Tensor] = None):
        return [(self._select(f, mask), 1.0)]

    @staticmethod
    def blend(targets, weights: Sequence[float]):
        return [(g, w * v) for t, w in zip(targets, weights) for g, v in t]

    def __call__(
        self, f: Tensor, target, mask: Optional[Tensor] = None, directions: Optional[Tensor] = None
    ) -> Tensor:
        f = self._selected(f, mask)
        if f.shape[1] == 0:
            return f.new_zeros(())
        d = self.directions(f.shape[0], f) if directions is None else directions.to(f)
        p = sort_rows(d @ f)
        loss = f.new_zeros(())
        for g, w in target:
            q = sort_rows(d @ g.to(f))
            if q.shape[1] != p.shape[1]:
                q = resample_quantiles(q, p.shape[1])
            loss = loss + w * (p - q).pow(2).mean()
        return loss
