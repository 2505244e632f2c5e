"""The content loss (the paper's eq. 1) and the feature matrices every loss reads.

Notation (the paper's): a layer's features F are an (N, M) matrix, N filters by M = H * W
positions. P: the content image's features.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def as_matrix(f: Tensor) -> Tensor:
    """(1, N, H, W) or (N, H, W) activations -> (N, M) float32 feature matrix."""
    if f.dim() == 4:
        # squeeze, not f[0]: the same numbers, but the backward pass of a select fills a zero
        # tensor of the whole batch and copies the gradient in (3-4% of an fp32 step at 512 px)
        f = f.squeeze(0) if f.shape[0] == 1 else f[0]
    return f.reshape(f.shape[0], -1).float()


def content_loss(f: Tensor, p: Tensor) -> Tensor:
    """L_content = 1/2 * sum_ij (F_ij - P_ij)^2.   f, p: (N, M)."""
    return 0.5 * (f - p).pow(2).sum()
