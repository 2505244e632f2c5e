"""Terms on the pixels alone: total variation, the pixel-range penalty and the palette term.

None of them is in the paper; each is a departure, marked where it is defined.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import torch

from painterly.losses.quantiles import resample_quantiles, sort_rows

Tensor = torch.Tensor


def tv_loss(x: Tensor) -> Tensor:
    """Total variation: sum of squared differences of neighbouring pixels. x: (B, C, H, W).

    Not in the paper (its weight defaults to 0); offered because users expect it.
    """
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum()
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()
    return dh + dw


def range_loss(x: Tensor) -> Tensor:
    """Mean squared distance of the pixels from [0, 1].   x: (B, C, H, W).

    Not in the paper, which optimises unconstrained pixels and leaves them to be clipped when
    saved: on the original VGG-19 that clips 6-11% of the pixels (washed-out skies, cyan and
    magenta speckles). This smooth penalty keeps L-BFGS's curvature model intact, unlike
    clamping inside the loop.
    """
    return (torch.relu(x - 1).pow(2) + torch.relu(-x).pow(2)).mean()


@functools.lru_cache(maxsize=4)
def palette_directions(channels: int) -> Tensor:
    """Fixed unit directions in colour space for the palette term, (D, channels): for RGB the 13
    lines through the cube's centre and its faces, edges and corners (the 3 axes, 6 face and 4 body
    diagonals); for one channel (--preserve-color luminance) that channel. Fixed, not redrawn as in
    Heitz et al.'s sliced loss, so that L-BFGS sees one function and a run is deterministic."""
    vs = [
        v for v in itertools.product((-1.0, 0.0, 1.0), repeat=channels) if next((a for a in v if a), 0.0) > 0
    ]
    d = torch.tensor(vs)
    return d / d.norm(dim=1, keepdim=True)


def palette_quantiles(x: Tensor, directions: Tensor) -> Tensor:
    """The sorted projections (D, H*W) of an image's pixels x (1, C, H, W) on each direction."""
    return sort_rows(directions.to(x) @ x.reshape(x.shape[1], -1))


def palette_target(styles: Sequence[Tensor], blend: Sequence[float], directions: Tensor) -> Tensor:
    """The blended painting palette as sorted projections (D, M), M the largest style's pixel count:
    per direction the blend-weighted mean of the styles' quantile functions, which in 1D is the
    Wasserstein-2 barycentre of their pixel distributions."""
    qs = [palette_quantiles(s.float(), directions) for s in styles]
    m = max(q.shape[1] for q in qs)
    return sum(b * resample_quantiles(q, m) for q, b in zip(qs, blend))


def palette_loss(x: Tensor, target: Tensor, directions: Tensor) -> Tensor:
    """Sliced Wasserstein-2 distance between the pixel colours of x (1, C, H, W) and a palette
    (palette_target, resampled to x's pixel count): mean over directions and pixels of
    (sort(d . x)_i - target_i)^2. 0 when x uses exactly the painting's colours in its proportions."""
    p = palette_quantiles(x.float(), directions)
    t = target if target.shape[1] == p.shape[1] else resample_quantiles(target, p.shape[1])
    return (p - t.to(p)).pow(2).mean()
