"""The losses: hand-computed values, minima, gradients, masks, blending, the registry."""

from __future__ import annotations

import math

import pytest
import torch

from painterly import losses, options
from painterly.errors import InvalidOption
from painterly.losses import GramLoss, MeanStdLoss, SlicedLoss, W2Loss, content_loss, gram, statistic, tv_loss

NAMES = tuple(losses.STATISTICS)  # the per-layer statistics (neighbour: test_neighbour.py)


def _feats(seed: int, n: int = 4, m: int = 12, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, m), generator=g, dtype=torch.float64).to(dtype)


def _call(loss, f, target, mask=None, directions=None):
    """loss(f, target, mask), with fixed directions for the sliced loss when given."""
    if directions is not None and isinstance(loss, SlicedLoss):
        return loss(f, target, mask, directions=directions)
    return loss(f, target, mask)


def _dirs(n: int, k: int = None, seed: int = 99, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn((k or n, n), generator=g, dtype=torch.float64)
    return (d / d.norm(dim=1, keepdim=True)).to(dtype)


# --- hand computations ----------------------------------------------------------------------------
def test_content_loss_by_hand():
    f = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    p = torch.tensor([[0.0, 2.0, 1.0], [4.0, 4.0, 4.0]])
    # differences 1, 0, 2, 0, 1, 2 -> squares sum to 10 -> 1/2 * 10
    assert content_loss(f, p).item() == 5.0


def test_gram_loss_by_hand():
    f = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    s = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(gram(f), torch.tensor([[5.0, 2.0], [2.0, 2.0]]))
    assert torch.equal(gram(s), torch.tensor([[2.0, 1.0], [1.0, 1.0]]))
    # G - A = [[3, 1], [1, 1]]: sum of squares 12; E = 12 / (4 * 2^2 * 3^2) = 1/12
    g = GramLoss()
    assert math.isclose(g(f, g.target(s)).item(), 1 / 12, rel_tol=1e-6)


def test_gram_gradient_is_autograds():
    f = _feats(4, 5, 9, torch.float64).requires_grad_()
    w = _feats(5, 5, 5, torch.float64)  # not symmetric: (D + D^T) F, not 2 D F
    (gram(f) * w).sum().backward()
    g = f.detach().clone().requires_grad_()
    ((g @ g.t()) * w).sum().backward()
    assert torch.allclose(f.grad, g.grad, rtol=1e-12)
    assert torch.autograd.gradcheck(gram, (f.detach().clone().requires_grad_(),))


def test_gram_loss_normalises_by_own_positions():
    g = GramLoss()
    f, s = _feats(0, 3, 7, torch.float64), _feats(1, 3, 11, torch.float64)
    n = 3
    expected = (gram(f) / 7 - gram(s) / 11).pow(2).sum() / (4 * n * n)
    assert torch.allclose(g(f, g.target(s)), expected)
    # equal position counts: the paper's E_l = 1/(4 N^2 M^2) sum (G - A)^2
    s = _feats(2, 3, 7, torch.float64)
    paper = (gram(f) - gram(s)).pow(2).sum() / (4 * n * n * 7 * 7)
    assert torch.allclose(g(f, g.target(s)), paper)


def test_mean_std_loss_by_hand():
    f = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])  # means 2, 1; variances 2/3, 2
    s = torch.tensor([[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])  # means 2, 1; variances 0, 0
    loss = MeanStdLoss(eps=0.0)
    # 1/N * [(sd differences)^2] = 1/2 * (2/3 + 2)
    assert math.isclose(loss(f, loss.target(s)).item(), 4 / 3, rel_tol=1e-6)


def test_w2_loss_by_hand():
    f = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])  # mu 0, 0; cov I
    s = torch.tensor([[3.0, -1.0, 3.0, -1.0], [2.0, 2.0, 0.0, 0.0]])  # mu 1, 1; cov diag(4, 1)
    # |dmu|^2 = 2; tr(I + diag(4, 1) - 2 diag(2, 1)) = 7 - 6 = 1; W2^2 = 3; / N = 1.5
    w2 = W2Loss()
    assert math.isclose(w2(f, w2.target(s)).item(), 1.5, rel_tol=1e-6)
    # uncorrelated channels: equal to the mean-std loss (eps 0)
    ms = MeanStdLoss(eps=0.0)
    assert math.isclose(ms(f, ms.target(s)).item(), 1.5, rel_tol=1e-6)


def test_w2_matches_reference_formula():
    def sqrtm(a):
        lam, v = torch.linalg.eigh(a)
        return (v * lam.clamp_min(0).sqrt()) @ v.T

    f, s = _feats(3, 5, 40, torch.float64), _feats(4, 5, 30, torch.float64) * 2 + 1
    mu1, mu2 = f.mean(1), s.mean(1)
    s1 = (f - mu1[:, None]) @ (f - mu1[:, None]).T / 40
    s2 = (s - mu2[:, None]) @ (s - mu2[:, None]).T / 30
    r1 = sqrtm(s1)  # the distance is symmetric: use the other square root here
    ref = (mu1 - mu2).pow(2).sum() + torch.trace(s1 + s2 - 2 * sqrtm(r1 @ s2 @ r1))
    w2 = W2Loss()
    assert torch.allclose(w2(f, w2.target(s)), ref / 5, rtol=1e-9)


def test_sliced_loss_by_hand():
    # N = 1: the only unit directions are +1 and -1, and both give the same distance.
    f, s = torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[0.0, 1.0, 5.0]])
    loss = SlicedLoss()
    # sorted 1, 2, 3 vs 0, 1, 5: differences 1, 1, -2 -> mean of squares 2
    for _ in range(3):
        assert math.isclose(loss(f, loss.target(s)).item(), 2.0, rel_tol=1e-6)
    # a target with twice the positions (each value twice) is resampled to the same quantiles
    s2 = torch.tensor([[0.0, 0.0, 1.0, 1.0, 5.0, 5.0]])
    assert math.isclose(loss(f, loss.target(s2)).item(), 2.0, rel_tol=1e-6)


def test_sliced_resampling_of_duplicated_target():
    loss = SlicedLoss()
    f, s = _feats(5, 4, 10, torch.float64), _feats(6, 4, 10, torch.float64)
    d = _dirs(4)
    doubled = s.repeat_interleave(2, dim=1)
    a = loss(f, loss.target(s), directions=d)
    b = loss(f, loss.target(doubled), directions=d)
    assert torch.allclose(a, b)


def test_tv_loss_by_hand():
    x = torch.tensor([[0.0, 1.0], [3.0, 5.0]]).reshape(1, 1, 2, 2)
    # vertical (3-0)^2 + (5-1)^2 = 25; horizontal (1-0)^2 + (5-3)^2 = 5
    assert tv_loss(x).item() == 30.0
    assert tv_loss(torch.full((1, 3, 4, 5), 0.7)).item() == 0.0
    assert tv_loss(x.repeat(2, 3, 1, 1)).item() == 6 * 30.0


def test_range_loss_by_hand():
    # Mean over all entries of the squared distance to [0, 1]: 0 inside, quadratic outside.
    x = torch.tensor([[-0.5, 0.0], [0.7, 1.0], [1.2, 3.0]]).reshape(1, 1, 3, 2)
    expect = (0.25 + 0.04 + 4.0) / 6
    assert losses.range_loss(x).item() == pytest.approx(expect)
    assert losses.range_loss(torch.rand(2, 3, 5, 4)).item() == 0.0
    # Smooth: its gradient is 2 * distance / n outside, 0 inside.
    x = x.clone().requires_grad_(True)
    losses.range_loss(x).backward()
    g = x.grad.flatten().tolist()
    assert g == pytest.approx([2 * -0.5 / 6, 0.0, 0.0, 0.0, 2 * 0.2 / 6, 2 * 2.0 / 6])


# --- minimum at the style's features, positive elsewhere -------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_zero_at_style_features_positive_elsewhere(name):
    loss = statistic(name)
    s = _feats(7, 6, 200).relu() + 0.1
    t = loss.target(s)
    at_min = _call(loss, s.clone(), t)
    assert at_min.dtype == torch.float32 and at_min.dim() == 0
    assert abs(at_min.item()) < 1e-5
    f = (1.5 * _feats(8, 6, 200)).relu() + 0.3  # another distribution
    elsewhere = _call(loss, f, t).item()
    assert elsewhere > 1e-3
    # a different position count at the minimum: the same distribution, positions repeated
    repeated = _call(loss, s.repeat(1, 2), t).item()
    if name == "sliced":
        # the linearly interpolated target quantiles are not the output's repeated steps:
        # a small discretisation error that vanishes as M grows
        assert 0 <= repeated < 0.01 * elsewhere
    else:
        assert abs(repeated) < 1e-5


def test_w2_minimum_with_rank_deficient_covariance():
    # fewer positions than channels (deep layers at small sizes): singular covariances
    w2 = W2Loss()
    s = _feats(9, 16, 8).relu()
    assert abs(w2(s, w2.target(s)).item()) < 1e-5
    f = s.clone().requires_grad_(True)
    w2(f + 0.01 * _feats(10, 16, 8), w2.target(s)).backward()
    assert torch.isfinite(f.grad).all()


# --- gradients against finite differences ----------------------------------------------------------
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name, masked):
    loss = statistic(name)
    n, m = 3, 9
    s = _feats(11, n, 14, torch.float64)
    mask = None
    if masked:
        g = torch.Generator().manual_seed(12)
        # soft weights for the weighted statistics; the sliced loss reads mask > 0.5
        mask = torch.rand(m, generator=g, dtype=torch.float64)
    t = loss.target(s)
    d = _dirs(n)
    f = _feats(13, n, m, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: _call(loss, x, t, mask, directions=d), (f,))


def test_sliced_directions_redrawn_each_call_and_seedable():
    f, s = _feats(14, 5, 20), _feats(15, 5, 20)
    a = SlicedLoss(seed=3)
    t = a.target(s)
    first = [a(f, t).item() for _ in range(3)]
    assert len(set(first)) == 3  # new directions at every evaluation
    b = SlicedLoss(seed=3)
    assert [b(f, t).item() for _ in range(3)] == first  # reproducible from the seed
    a.seed = 3  # restart by attribute
    assert a(f, t).item() == first[0]
    assert SlicedLoss(seed=4)(f, t).item() != first[0]
    assert SlicedLoss(n_directions=7).directions(5, f).shape == (7, 5)
    d = a.directions(5, f)
    assert torch.allclose(d.norm(dim=1), torch.ones(5))


# --- masks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_mask_of_ones_equals_no_mask(name):
    loss = statistic(name)
    f, s = _feats(16, 4, 15), _feats(17, 4, 21)
    d = _dirs(4, dtype=torch.float32)
    t = loss.target(s)
    t_ones = loss.target(s, torch.ones(21))
    plain = _call(loss, f, t, None, d)
    for tt in (t, t_ones):
        assert torch.allclose(_call(loss, f, tt, torch.ones(15), d), plain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_mask_selects_region(name):
    loss = statistic(name)
    f, s = _feats(18, 4, 16), _feats(19, 4, 20) * 0.5 + 1
    d = _dirs(4, dtype=torch.float32)
    mask_f = (torch.arange(16) % 3 != 0).float()  # 10 of 16 positions
    mask_s = (torch.arange(20) < 9).float()
    region_f, region_s = f[:, mask_f > 0], s[:, mask_s > 0]
    masked = _call(loss, f, loss.target(s, mask_s), mask_f, d)
    region = _call(loss, region_f, loss.target(region_s), None, d)
    assert torch.allclose(masked, region, rtol=1e-5)
    # what lies outside the mask does not matter
    f2 = torch.where(mask_f > 0, f, torch.full_like(f, 100.0))
    assert torch.allclose(_call(loss, f2, loss.target(s, mask_s), mask_f, d), masked, rtol=1e-5)


def test_sliced_empty_region_is_zero():
    loss = SlicedLoss()
    assert loss(_feats(20), loss.target(_feats(21)), torch.zeros(12)).item() == 0.0


# --- blending several styles ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gram", "mean-std"])
def test_blend_averages_targets(name):
    loss = statistic(name)
    s1, s2 = _feats(22), _feats(23)
    t = loss.blend([loss.target(s1), loss.target(s2)], [0.25, 0.75])
    assert torch.allclose(t, 0.25 * loss.target(s1) + 0.75 * loss.target(s2))


def test_w2_blend_averages_moments():
    w2 = W2Loss()
    s1, s2 = _feats(24, 4, 30), _feats(25, 4, 30) * 2 + 1
    t1, t2 = w2.target(s1), w2.target(s2)
    mu, cov, root = w2.blend([t1, t2], [0.4, 0.6])
    assert torch.allclose(mu, 0.4 * t1[0] + 0.6 * t2[0])
    assert torch.allclose(cov, 0.4 * t1[1] + 0.6 * t2[1])
    assert torch.allclose(root @ root, cov.double(), atol=1e-6)
    # blending a style with itself changes nothing
    same = w2.blend([t1, t1], [0.5, 0.5])
    f = _feats(26, 4, 30)
    assert torch.allclose(w2(f, same), w2(f, t1), rtol=1e-5)


def test_sliced_blend_is_weighted_sum():
    loss = SlicedLoss()
    f, s1, s2 = _feats(27, 4, 16), _feats(28, 4, 16), _feats(29, 4, 24)
    d = _dirs(4, dtype=torch.float32)
    t1, t2 = loss.target(s1), loss.target(s2)
    t = loss.blend([t1, t2], [0.3, 0.7])
    assert [w for _, w in t] == [0.3, 0.7]
    expected = 0.3 * loss(f, t1, directions=d) + 0.7 * loss(f, t2, directions=d)
    assert torch.allclose(loss(f, t, directions=d), expected)


# --- the registry -----------------------------------------------------------------------------------
def test_registry():
    # every per-layer statistic is a choice; "neighbour" is a term of its own (neighbour.NeighbourTerm)
    assert tuple(losses.STATISTICS) + ("neighbour",) == tuple(options.STYLE_LOSSES)
    for name in NAMES:
        assert statistic(name).name == name
    with pytest.raises(InvalidOption, match="did you mean 'sliced'"):
        statistic("slice")


# --- the palette term (objective.PaletteTerm) ------------------------------------------------------
@pytest.mark.parametrize("m", [7, losses.RADIX_MIN])  # both paths: one 1-D sort over all rows, one per row
def test_sort_rows_is_sort_with_ties_in_a_fixed_order_and_its_gradient(m):
    g = torch.Generator().manual_seed(3)
    p = torch.randn((3, m), generator=g)
    p[:, :4] = torch.tensor([0.5, -0.0, 0.5, 0.0])  # ties, and both zeros
    p[1, -1] = -float("inf")
    assert torch.equal(losses.sort_rows(p), p.sort(1).values)
    # equal values come out in their original order (a stable sort): one permutation, not the
    # implementation's choice, so the gradient each tied value gets is fixed too
    x = p.clone().requires_grad_()
    w = torch.randn((3, m), generator=g)
    (losses.sort_rows(x) * w).sum().backward()
    y = p.clone().requires_grad_()
    (y.sort(dim=1, stable=True).values * w).sum().backward()
    assert torch.equal(x.grad, y.grad)
    assert torch.equal(losses.sort_rows(p.to(torch.bfloat16)), p.to(torch.bfloat16).sort(1).values)


def test_palette_directions_are_the_cubes_13_lines():
    d = losses.palette_directions(3)
    assert d.shape == (13, 3) and torch.allclose(d.norm(dim=1), torch.ones(13))
    # no two directions are the same line (+-v), and the three axes are among them
    cos = (d @ d.T).abs() - torch.eye(13)
    assert float(cos.max()) < 1 - 1e-6
    for axis in torch.eye(3):
        assert any(torch.equal(axis, row) for row in d)
    assert torch.equal(losses.palette_directions(1), torch.ones(1, 1))


def test_palette_loss_by_hand_and_against_brute_force():
    # one channel: sorted 0.1, 0.2, 0.9 vs 0, 0.5, 1 -> (0.01 + 0.09 + 0.01) / 3
    x, s = (
        torch.tensor([0.9, 0.1, 0.2]).reshape(1, 1, 1, 3),
        torch.tensor([0.5, 1.0, 0.0]).reshape(1, 1, 3, 1),
    )
    d = losses.palette_directions(1)
    assert losses.palette_loss(x, losses.palette_target([s], [1.0], d), d).item() == pytest.approx(0.11 / 3)
    # RGB: for equal pixel counts the 1D W2 of every direction is the best matching of the sorted
    # projections; brute force over all pairings of 5 pixels agrees with the sorted one
    import itertools

    g = torch.Generator().manual_seed(3)
    x, s = torch.rand((1, 3, 1, 5), generator=g), torch.rand((1, 3, 5, 1), generator=g)
    d = losses.palette_directions(3)
    px, ps = d @ x.reshape(3, -1), d @ s.reshape(3, -1)
    best = (
        sum(
            min(float((px[k] - ps[k][list(perm)]).pow(2).mean()) for perm in itertools.permutations(range(5)))
            for k in range(13)
        )
        / 13
    )
    assert losses.palette_loss(x, losses.palette_target([s], [1.0], d), d).item() == pytest.approx(
        best, rel=1e-5
    )


def test_palette_loss_is_zero_at_the_paintings_colours_whatever_their_order_and_size():
    g = torch.Generator().manual_seed(4)
    s = torch.rand((1, 3, 6, 8), generator=g)
    d = losses.palette_directions(3)
    t = losses.palette_target([s], [1.0], d)
    shuffled = s.reshape(3, -1)[:, torch.randperm(48, generator=g)].reshape(1, 3, 8, 6)
    assert losses.palette_loss(shuffled, t, d).item() == pytest.approx(0.0, abs=1e-12)
    doubled = s.repeat_interleave(2, dim=-1)  # the same colours in the same proportions, twice the pixels
    assert losses.palette_loss(s, losses.palette_target([doubled], [1.0], d), d).item() == pytest.approx(
        0.0, abs=1e-12
    )
    assert losses.palette_loss(torch.rand((1, 3, 6, 8), generator=g), t, d).item() > 1e-3


def test_palette_target_blends_the_quantile_functions():
    # 1D W2 barycentre: the blend-weighted mean of the sorted projections
    d = losses.palette_directions(3)
    a, b = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    t = losses.palette_target([a, b], [0.25, 0.75], d)
    assert torch.allclose(t, losses.palette_target([torch.full((1, 3, 2, 2), 0.75)], [1.0], d))


def test_palette_loss_gradient_pulls_the_colours_to_the_paintings():
    g = torch.Generator().manual_seed(5)
    s = 0.2 + 0.1 * torch.rand((1, 3, 8, 8), generator=g)  # a dark palette
    x = (0.7 + 0.2 * torch.rand((1, 3, 8, 8), generator=g)).requires_grad_()
    d = losses.palette_directions(3)
    t = losses.palette_target([s], [1.0], d)
    start = losses.palette_loss(x, t, d).item()
    opt = torch.optim.Adam([x], lr=0.02)
    for _ in range(100):
        opt.zero_grad()
        losses.palette_loss(x, t, d).backward()
        opt.step()
    assert losses.palette_loss(x, t, d).item() < 0.01 * start
    assert abs(float(x.mean()) - float(s.mean())) < 0.02
