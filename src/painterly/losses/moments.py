"""Style statistics of moments: per-channel mean and standard deviation (AdaIN's), and the
Wasserstein-2 distance between Gaussian fits (W2). The interface is gram.py's.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from painterly.losses.gram import GramLoss
from painterly.net.device import wide, wide_dtype

Tensor = torch.Tensor


def _moments(f: Tensor, mask: Optional[Tensor]):
    """Weighted mean and centred features.   f: (N, M), mask: (M,) or None.

    Returns mu (N,), fc = f - mu (N, M) and the normalised weights w (M,) summing to 1.
    The mask's values are the weights (for a 0/1 mask: the statistics of the region alone).
    Departure: GramLoss's guided features T F weight positions by T^2; here by T. The two agree
    for 0/1 masks and differ only on the soft edges of resized masks.
    """
    w = (
        f.new_full((f.shape[1],), 1.0 / f.shape[1])
        if mask is None
        else mask.to(f) / mask.sum().clamp_min(1e-8)
    )
    mu = f @ w
    return mu, f - mu[:, None], w


def _moment_stats(f: Tensor, mask: Optional[Tensor], full: bool) -> list:
    """Additive statistics for the tiled evaluation: s0 = sum w, s1 = sum w F, s2 = sum w F^2
    (full=False) or sum w F F^T (full=True), in float64 (float32 on MPS: net.device.wide_dtype);
    w = the mask, or 1.
    One pass over the positions, so the tiled mean-std and W2 losses equal the untiled ones up
    to float rounding (tests/test_tiling.py), not bit for bit."""
    f = f.reshape(f.shape[0], -1)
    f = f.to(wide_dtype(f.device))
    w = torch.ones(f.shape[1], dtype=f.dtype, device=f.device) if mask is None else mask.to(f)
    s2 = (f * w) @ f.t() if full else f.pow(2) @ w
    return [w.sum(), f @ w, s2]


def _moments_of_stats(st):
    """(mean, second moment, total weight) from _moment_stats' sums."""
    s0 = st[0].clamp_min(1e-8)
    return st[1] / s0, st[2] / s0, s0


class MeanStdLoss:
    """Per-channel mean and standard deviation (Huang & Belongie 2017, AdaIN's statistics).

    E_l = 1/N * sum_c [(mu_c - mu'_c)^2 + (sd_c - sd'_c)^2], sd = sqrt(var + eps).
    Departure (normalisation, our choice): Huang & Belongie sum unsquared L2 norms over
    channels; we square and divide by N so that the value is a per-channel average like E_l.
    For features whose channel means are about 1 (the paper's normalised network) shifting
    every channel's mean by d changes the Gram E_l by about d^2, and this loss by d^2 too. eps = 1e-5
    (as AdaIN)
    keeps the gradient finite at zero variance. Masks weight the statistics.
    The target is the (2, N) tensor [mu; sd]; blending averages it.
    """

    name = "mean-std"

    def __init__(self, eps: float = 1e-5):
        self.eps = eps

    def target(self, f: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        mu, fc, w = _moments(f, mask)
        return torch.stack([mu, (fc.pow(2) @ w + self.eps).sqrt()])

    blend = staticmethod(GramLoss.blend)

    def __call__(self, f: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return (self.target(f, mask) - target).pow(2).sum() / f.shape[0]

    # The same loss from additive statistics (objective/tiling.py).
    @staticmethod
    def stats(f: Tensor, mask: Optional[Tensor] = None) -> list:
        return _moment_stats(f, mask, full=False)

    def _ms(self, st) -> Tensor:
        mu, ex2, _ = _moments_of_stats(st)
        return torch.stack([mu, ((ex2 - mu * mu).clamp_min(0) + self.eps).sqrt()])

    def target_of_stats(self, st) -> Tensor:
        return self._ms(st).float()

    def value_of_stats(self, st, target: Tensor) -> Tensor:
        d = self._ms(st) - target.to(st[1].dtype)
        return (d.pow(2).sum() / d.shape[1]).float()


def _sqrtm(s: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix via eigh.   s: (N, N) -> (N, N)."""
    lam, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * lam.clamp_min(0).sqrt()) @ v.T


class W2Loss:
    """Closed-form Wasserstein-2 distance between Gaussian fits of the features (Mroueh 2020).

    W2^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_2^1/2 S_1 S_2^1/2)^1/2), with 1 = output,
    2 = style; E_l = W2^2 / N. Departure (normalisation, our choice): dividing by N makes it a
    per-channel average; for uncorrelated channels W2^2 / N equals the mean-std loss (eps 0).
    Caveat: with few positions per channel (M not >> N: deep layers of small images) sample
    covariances are noisy, and W2 between two samples of one texture is far from 0 (more so
    than the Gram loss); it is exactly 0 only for identical statistics.
    The trace of the square root is the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_2^1/2 S_1 S_2^1/2 (torch.linalg.eigvalsh, differentiable), clamped
    at eps: eigenvalues below eps (rounding noise around 0) contribute sqrt(eps) each and no
    gradient. The N x N algebra runs in float64 for that reason (net.device.wide: on the host for
    MPS, which has neither float64 nor eigh/eigvalsh).
    Covariances are population covariances, weighted by the mask if one is given.
    The target is (mu_2, S_2, S_2^1/2), with S_2^1/2 computed once there.
    """

    name = "w2"

    def __init__(self, eps: float = 1e-12):
        self.eps = eps

    @staticmethod
    def _mean_cov(f: Tensor, mask: Optional[Tensor]):
        mu, fc, w = _moments(f, mask)
        return mu, (fc * w) @ fc.t()

    @staticmethod
    def _make(mu: Tensor, cov: Tensor):
        return mu, cov, _sqrtm(wide(cov))

    def target(self, f: Tensor, mask: Optional[Tensor] = None):
        return self._make(*self._mean_cov(f, mask))

    @classmethod
    def blend(cls, targets, weights: Sequence[float]):
        """The Gaussian with the blended means and covariances.

        Approximation: not the Wasserstein barycentre of the styles' Gaussians, and not the
        moment fit of their mixture (which would add the spread of the means); simple and
        equal to both when the styles share their means and covariances.
        """
        mu = sum(w * t[0] for t, w in zip(targets, weights))
        cov = sum(w * t[1] for t, w in zip(targets, weights))
        return cls._make(mu, cov)

    def __call__(self, f: Tensor, target, mask: Optional[Tensor] = None) -> Tensor:
        mu2, s2, r2 = target
        mu1, s1 = self._mean_cov(f, mask)
        c = r2 @ wide(s1) @ r2
        root_trace = torch.linalg.eigvalsh((c + c.T) / 2).clamp_min(self.eps).sqrt().sum()
        cov_term = wide(s1).trace() + wide(s2).trace() - 2 * root_trace
        return ((mu1 - mu2).pow(2).sum() + cov_term.to(f)) / f.shape[0]

    # The same loss from additive statistics (objective/tiling.py).
    @staticmethod
    def stats(f: Tensor, mask: Optional[Tensor] = None) -> list:
        return _moment_stats(f, mask, full=True)

    @staticmethod
    def _mc(st):
        mu, exx, _ = _moments_of_stats(st)
        return mu, exx - torch.outer(mu, mu)

    def target_of_stats(self, st):
        mu, cov = self._mc(st)
        return self._make(mu.float(), cov.float())

    def value_of_stats(self, st, target) -> Tensor:
        mu2, s2, r2 = target
        mu1, s1 = self._mc([wide(t) for t in st])  # float64 already, but on the host for MPS
        r2 = r2.to(s1)
        c = r2 @ s1 @ r2
        root = torch.linalg.eigvalsh((c + c.T) / 2).clamp_min(self.eps).sqrt().sum()
        cov_term = s1.trace() + s2.to(s1).trace() - 2 * root
        value = ((mu1 - mu2.to(mu1)).pow(2).sum() + cov_term) / mu1.shape[0]
        return value.to(device=st[1].device, dtype=torch.float32)  # back from the host (MPS)
