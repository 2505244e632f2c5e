"""The losses, as pure functions of feature matrices and pixels, and the one registry of
style statistics.

    content.py    L_content (eq. 1) and the (N, M) feature matrix
    gram.py       the paper's Gram statistic and E_l (eq. 4); the statistics' shared interface
    moments.py    mean-std (AdaIN's statistics) and W2 (Gaussian Wasserstein-2)
    sliced.py     the sliced Wasserstein loss (Heitz et al. 2021)
    pixel.py      total variation, the range penalty, the palette term (not in the paper)
    quantiles.py  the sort and quantile resampling that sliced.py and pixel.py share
"""

from __future__ import annotations

from typing import Dict, Optional

from painterly.losses.content import as_matrix, content_loss
from painterly.losses.gram import GramLoss, gram
from painterly.losses.moments import MeanStdLoss, W2Loss
from painterly.losses.pixel import (
    palette_directions,
    palette_loss,
    palette_quantiles,
    palette_target,
    range_loss,
    tv_loss,
)
from painterly.losses.quantiles import RADIX_MIN, resample_quantiles, sort_rows
from painterly.losses.sliced import SlicedLoss

#: The style statistics by the name --style-loss gives them (the statistics method takes them all).
STATISTICS: Dict[str, object] = {
    "gram": GramLoss(),
    "mean-std": MeanStdLoss(),
    "w2": W2Loss(),
    "sliced": SlicedLoss(),
}


def statistic(name: str, seed: Optional[int] = None):
    """The style statistic registered under `name`.

    With a seed, a fresh instance whose random state (the sliced loss's projections)
    starts from that seed, so a run is reproducible whatever ran before it.
    """
    from painterly.errors import choice

    loss = STATISTICS[choice("style loss", name, tuple(STATISTICS))]
    if seed is not None and isinstance(loss, SlicedLoss):
        return SlicedLoss(loss.n_directions, seed=seed)
    return loss


__all__ = [
    "RADIX_MIN",
    "STATISTICS",
    "GramLoss",
    "MeanStdLoss",
    "SlicedLoss",
    "W2Loss",
    "as_matrix",
    "content_loss",
    "gram",
    "palette_directions",
    "palette_loss",
    "palette_quantiles",
    "palette_target",
    "range_loss",
    "resample_quantiles",
    "sort_rows",
    "statistic",
    "tv_loss",
]
