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

import functools
import itertools
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

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
    return _Gram.apply(f)


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
    vs = [v for v in itertools.product((-1.0, 0.0, 1.0), repeat=channels) if next((a for a in v if a), 0.0) > 0]
    d = torch.tensor(vs)
    return d / d.norm(dim=1, keepdim=True)


RADIX_MIN = 32768  # ATen sorts a 1-D integer tensor this long (its grain size) by a parallel radix sort


def sort_rows(p: Tensor) -> Tensor:
    """p (K, M) float32, each row sorted ascending; differentiable (the gradient goes back through
    the permutation, as `Tensor.sort`'s).

    Each float is mapped to an int64 key in the same order (its IEEE bits, the negatives' flipped),
    and the keys are sorted stably: at 13 x 110,592 (a 384 x 288 picture) 20 ms forward and
    backward against `p.sort(1)`'s 65 here (2 threads), since ATen sorts long 1-D integer tensors
    by radix and floats by comparison.
    The stable sort of a total order is one permutation, so equal values (a photo's repeated
    colours) are ordered the same way by any sort algorithm, thread count or machine: `p.sort(1)`,
    unstable, leaves that order to the implementation. Rows shorter than RADIX_MIN are sorted as one
    1-D tensor, the row number in the keys' high bits, to reach the radix sort all the same.
    """
    if p.numel() == 0:
        return p
    bits = p.detach().float().contiguous().view(torch.int32)
    keys = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + 2 ** 31  # 0 .. 2^32 - 1, in the floats' order
    if p.shape[1] >= RADIX_MIN:
        order = torch.stack([k.sort(stable=True).indices for k in keys])
    else:
        rows = torch.arange(p.shape[0], device=p.device).unsqueeze(1)
        order = (keys + (rows << 32)).reshape(-1).sort(stable=True).indices.reshape(p.shape) - rows * p.shape[1]
    return _Permute.apply(p, order)


class _Permute(torch.autograd.Function):
    """p.gather(1, order) for an `order` whose rows are permutations, with the backward pass a
    scatter (as Tensor.sort's): autograd's gather backward, a scatter-add, took 28 ms at 13 x 110,592."""

    @staticmethod
    def forward(ctx, p, order):
        ctx.save_for_backward(order)
        return p.gather(1, order)

    @staticmethod
    def backward(ctx, grad):
        (order,) = ctx.saved_tensors
        return grad.new_zeros(grad.shape).scatter_(1, order, grad), None


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

    # The loss is computed from additive statistics S = sum (T F)(T F)^T and a = sum T^2 (sums
    # over positions), so that the tiled evaluation (tiling.py) sums them over tiles and reuses
    # this one formula.
    @staticmethod
    def stats(f: Tensor, mask: Optional[Tensor] = None) -> list:
        f = f.reshape(f.shape[0], -1)
        if mask is None:
            return [gram(f), f.new_tensor(float(f.shape[1]))]
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


def _moments(f: Tensor, mask: Optional[Tensor]):
    """Weighted mean and centred features.   f: (N, M), mask: (M,) or None.

    Returns mu (N,), fc = f - mu (N, M) and the normalised weights w (M,) summing to 1.
    The mask's values are the weights (for a 0/1 mask: the statistics of the region alone).
    Departure: GramLoss's guided features T F weight positions by T^2; here by T. The two agree
    for 0/1 masks and differ only on the soft edges of resized masks.
    """
    w = f.new_full((f.shape[1],), 1.0 / f.shape[1]) if mask is None else mask.to(f) / mask.sum().clamp_min(1e-8)
    mu = f @ w
    return mu, f - mu[:, None], w


def _moment_stats(f: Tensor, mask: Optional[Tensor], full: bool) -> list:
    """Additive statistics for the tiled evaluation: s0 = sum w, s1 = sum w F, s2 = sum w F^2
    (full=False) or sum w F F^T (full=True), in float64 (float32 on MPS); w = the mask, or 1.
    One pass over the positions, so the tiled mean-std and W2 losses equal the untiled ones up
    to float rounding (tests/test_tiling.py), not bit for bit."""
    f = f.reshape(f.shape[0], -1)
    f = f.to(_wide(f))
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
    every channel's mean by d changes the Gram E_l by about d^2, and this loss by d^2 too. eps = 1e-5 (as AdaIN)
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

    # The same loss from additive statistics (tiling.py).
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


def _wide(t: Tensor) -> Tensor:
    """t in float64 (float32 on MPS, which has none): the N x N algebra of W2 runs in it."""
    return t.float() if t.device.type == "mps" else t.double()


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
    gradient. The N x N algebra runs in float64 (float32 on MPS) for that reason.
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
        return mu, cov, _sqrtm(_wide(cov))

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
        c = r2 @ _wide(s1) @ r2
        root_trace = torch.linalg.eigvalsh((c + c.T) / 2).clamp_min(self.eps).sqrt().sum()
        cov_term = _wide(s1).trace() + _wide(s2).trace() - 2 * root_trace
        return ((mu1 - mu2).pow(2).sum() + cov_term.to(f.dtype)) / f.shape[0]

    # The same loss from additive statistics (tiling.py).
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
        mu1, s1 = self._mc(st)
        r2 = r2.to(s1)
        c = r2 @ s1 @ r2
        root = torch.linalg.eigvalsh((c + c.T) / 2).clamp_min(self.eps).sqrt().sum()
        cov_term = s1.trace() + s2.to(s1).trace() - 2 * root
        return (((mu1 - mu2.to(mu1)).pow(2).sum() + cov_term) / mu1.shape[0]).float()


def resample_quantiles(p: Tensor, m: int) -> Tensor:
    """Sorted rows (K, M_t) -> (K, m) by linear interpolation of the empirical quantiles.

    Output position i reads the target at fractional index (i + 1/2) M_t / m - 1/2 (the
    quantile (i + 1/2) / m), clamped to the ends; the identity when m = M_t.
    """
    mt = p.shape[1]
    q = ((torch.arange(m, device=p.device, dtype=p.dtype) + 0.5) * (mt / m) - 0.5).clamp(0, mt - 1)
    lo = q.floor().long()
    hi = (lo + 1).clamp_max(mt - 1)
    t = q - lo
    return p[:, lo] * (1 - t) + p[:, hi] * t


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
        return (d / d.norm(dim=1, keepdim=True)).to(like.device, like.dtype)

    @staticmethod
    def _select(f: Tensor, mask: Optional[Tensor]) -> Tensor:
        return f if mask is None else f[:, mask > 0.5]

    def target(self, f: Tensor, mask: Optional[Tensor] = None):
        return [(self._select(f, mask), 1.0)]

    @staticmethod
    def blend(targets, weights: Sequence[float]):
        return [(g, w * v) for t, w in zip(targets, weights) for g, v in t]

    def __call__(self, f: Tensor, target, mask: Optional[Tensor] = None,
                 directions: Optional[Tensor] = None) -> Tensor:
        f = self._select(f, mask)
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


# --- neural neighbours (NNST, Kolkin et al. 2022, arXiv 2203.13215) -------------------------------
NEIGHBOUR_CHUNK = 2048  # rows of the (search x painting) similarity matrix computed at once


def hypercolumns(feats: Sequence[Tensor], size) -> Tensor:
    """The hypercolumns of one image: (D, m) for m = h * w positions.

    feats: (1, C_l, H_l, W_l) activations of several layers; each is divided by its channel
    count (so that wide layers do not dominate the cosine, as in the reference), resized
    bilinearly to size = (h, w) (the reference: a quarter of the image's size) and the layers
    are stacked along the channels.
    """
    h, w = size
    # Resized first, then divided (the same numbers: both are linear), so the division runs on
    # the small map; a layer already at (h, w) is not resampled (bilinear with aligned corners
    # at the same size is the identity).
    cols = [(f if tuple(f.shape[-2:]) == (h, w) else F.interpolate(f, size=(h, w), mode="bilinear",
                                                                    align_corners=True)).float() / f.shape[1]
            for f in feats]
    return torch.cat(cols, 1)[0].reshape(-1, h * w)


def unit_columns(f: Tensor) -> Tensor:
    """Each column scaled to length 1 (squared norm clamped to [1e-8, 1e8] as the reference)."""
    return f / f.pow(2).sum(0, keepdim=True).clamp(1e-8, 1e8).sqrt()


def nearest_neighbours(src: Tensor, ref: Tensor, chunk: int = NEIGHBOUR_CHUNK) -> Tensor:
    """For every column of src (D, m), the index of its nearest column of ref (D, n) under the
    centred cosine distance: each set minus its own mean column, then 1 - cosine. Computed
    `chunk` columns of src at a time, so memory stays at chunk x n whatever m is. Ties go to the
    lowest index (torch.max). Returns (m,) int64."""
    s = unit_columns(src - src.mean(1, keepdim=True))
    r = unit_columns(ref - ref.mean(1, keepdim=True)).t().contiguous()  # (n, D)
    out = []
    for i in range(0, s.shape[1], chunk):
        out.append((r @ s[:, i:i + chunk]).argmax(0))  # max cosine = min distance
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=src.device)


def cosine_loss(f: Tensor, target_unit: Tensor) -> Tensor:
    """mean over positions of 1 - cos(f_i, t_i): the reference's hypercolumn-matching loss (no
    centring here; only the search centres).   f, target_unit: (D, m), the target's columns unit."""
    return (1.0 - (unit_columns(f) * target_unit).sum(0)).mean()


STYLE_LOSSES = {"gram": GramLoss(), "mean-std": MeanStdLoss(), "w2": W2Loss(), "sliced": SlicedLoss()}


def style_loss_fn(name: str, seed: Optional[int] = None):
    """The style loss registered under `name` (see config.STYLE_LOSSES).

    With a seed, a fresh instance whose random state (the sliced loss's projections)
    starts from that seed, so a run is reproducible whatever ran before it.
    """
    from .config import STYLE_LOSSES as NAMES
    from .errors import choice

    loss = STYLE_LOSSES[choice("style loss", name, NAMES)]
    if seed is not None and isinstance(loss, SlicedLoss):
        return SlicedLoss(loss.n_directions, seed=seed)
    return loss
