"""Colour preservation (1606.05897): YIQ, luminance-only transfer, colour histogram matching."""

from __future__ import annotations

import math

import pytest
import torch

from painterly.errors import InvalidOption
from painterly.imaging import color

MODES = ("chol", "pca", "sym")


def _random(seed: int, h: int = 24, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, 3, h, w), generator=g)


def _gradient_style(h: int = 40, w: int = 50) -> torch.Tensor:
    """Smooth gradients with strongly correlated channels (correlation ~0.96)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    r = x
    g = 0.8 * x + 0.1 + 0.1 * torch.sin(7 * y)
    b = 1.0 - 0.9 * x + 0.1 * torch.cos(5 * y + 3 * x)
    return torch.stack([r, g, b])[None].float()


def _gradient_content(h: int = 30, w: int = 36) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([x, y, 0.5 + 0.5 * torch.sin(6 * x) * torch.cos(5 * y)])[None].float()


PAIRS = {
    "random": lambda: (_random(1), _random(2, 20, 28) * 0.5 + 0.2),
    "structured": lambda: (_gradient_style(), _gradient_content()),
    "structured-reversed": lambda: (_gradient_content(), _gradient_style()),
}


def _stats(x: torch.Tensor):
    p = x.double()[0].reshape(3, -1)
    mu = p.mean(1)
    pc = p - mu[:, None]
    return mu, pc @ pc.T / p.shape[1]


# --- YIQ ------------------------------------------------------------------------------------------
def test_yiq_round_trip():
    x = _random(0)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-6)
    assert torch.allclose(color.rgb_to_yiq(color.yiq_to_rgb(x)), x, atol=1e-6)
    x64 = x.double()
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x64)), x64, atol=1e-13)
    assert color.rgb_to_yiq(x).dtype == torch.float32


def test_yiq_values():
    # Y = 0.299 R + 0.587 G + 0.114 B; grey has no chrominance.
    x = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    assert torch.allclose(color.rgb_to_yiq(x).flatten(), torch.tensor([0.299, 0.596, 0.211]))
    grey = torch.full((1, 3, 2, 2), 0.4)
    yiq = color.rgb_to_yiq(grey)
    assert torch.allclose(yiq[:, 0], torch.full((1, 2, 2), 0.4), atol=1e-7)
    assert yiq[:, 1:].abs().max() < 1e-7


# --- luminance-only transfer ----------------------------------------------------------------------
def test_luminance_only_is_replicated_y():
    x = _random(3)
    lum = color.luminance_only(x)
    assert lum.shape == x.shape
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        assert torch.allclose(lum[:, c], y, atol=1e-6)
    # its own luminance is itself; its chrominance is zero
    assert torch.allclose(color.rgb_to_yiq(lum)[:, 0], y, atol=1e-6)
    assert color.rgb_to_yiq(lum)[:, 1:].abs().max() < 1e-6


def test_recombine_keeps_content_iq_and_output_y():
    content, output = _random(4), _random(5)
    out = color.recombine_luminance(output, content)
    yiq, yiq_c, yiq_o = color.rgb_to_yiq(out), color.rgb_to_yiq(content), color.rgb_to_yiq(output)
    assert torch.allclose(yiq[:, 1:], yiq_c[:, 1:], atol=1e-6)
    assert torch.allclose(yiq[:, :1], yiq_o[:, :1], atol=1e-6)
    # the luminance path: a replicated-Y output (as the optimiser produces) or Y alone
    lum = color.luminance_only(output)
    for o in (lum, lum[:, :1]):
        r = color.recombine_luminance(o, content)
        assert torch.allclose(color.rgb_to_yiq(r)[:, 1:], yiq_c[:, 1:], atol=1e-6)
        assert torch.allclose(color.rgb_to_yiq(r)[:, :1], yiq_o[:, :1], atol=1e-6)


def test_recombine_does_not_clamp():
    content = torch.zeros(1, 3, 2, 2)
    content[:, 0] = 1.0  # saturated red: I, Q large
    out = color.recombine_luminance(torch.ones(1, 3, 2, 2), content)
    assert out.max() > 1.0  # the caller clips when saving


def test_recombine_size_mismatch():
    with pytest.raises(ValueError):
        color.recombine_luminance(_random(0, 4, 4), _random(1, 5, 4))


def test_match_luminance_gives_content_mean_and_std():
    s = color.luminance_only(_random(6, 20, 30))[:, :1] * 0.3
    c = color.luminance_only(_random(7, 16, 12))[:, :1] ** 2
    m = color.match_luminance(s, c)
    assert m.shape == s.shape and m.dtype == s.dtype
    assert math.isclose(float(m.mean()), float(c.mean()), abs_tol=1e-6)
    assert math.isclose(float(m.std(unbiased=False)), float(c.std(unbiased=False)), abs_tol=1e-6)
    # an affine map of the style: correlation 1 with it
    assert torch.corrcoef(torch.stack([m.flatten(), s.flatten()]))[0, 1] > 0.99999


def test_match_luminance_constant_style():
    c = _random(8)[:, :1]
    m = color.match_luminance(torch.full((1, 1, 5, 5), 0.3), c)
    assert torch.isfinite(m).all()
    assert torch.allclose(m, torch.full_like(m, float(c.mean())))


# --- colour histogram matching --------------------------------------------------------------------
@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("mode", MODES)
def test_histogram_matches_mean_and_covariance(mode, pair):
    style, content = PAIRS[pair]()
    out = color.match_histogram(style, content, mode)
    assert out.shape == style.shape and out.dtype == style.dtype
    mu_o, cov_o = _stats(out)
    mu_c, cov_c = _stats(content)
    assert torch.allclose(mu_o, mu_c, atol=1e-3)
    assert torch.allclose(cov_o, cov_c, atol=1e-3)


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("mode", MODES)
def test_histogram_transform_solves_the_equation(mode, pair):
    style, content = PAIRS[pair]()
    eps = 1e-5
    a, b = color.histogram_transform(style, content, mode, eps)
    assert a.dtype == torch.float64
    (mu_s, cov_s), (mu_c, cov_c) = _stats(style), _stats(content)
    eye = torch.eye(3, dtype=torch.float64)
    sig_s, sig_c = cov_s + eps * eye, cov_c + eps * eye
    assert torch.allclose(a @ sig_s @ a.T, sig_c, atol=1e-9, rtol=1e-7)
    assert torch.allclose(b, mu_c - a @ mu_s, atol=1e-12)
    # the recoloured image is exactly A x + b (no clamping)
    out = color.match_histogram(style.double(), content.double(), mode, eps)
    x = style.double()[0].reshape(3, -1)
    assert torch.allclose(out[0].reshape(3, -1), a @ x + b[:, None], atol=1e-12)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_histogram_modes_structure(pair):
    style, content = PAIRS[pair]()
    a_sym, _ = color.histogram_transform(style, content, "sym")
    assert torch.equal(a_sym, a_sym.T)
    assert torch.linalg.eigvalsh(a_sym).min() > 0  # the W2-optimal map: symmetric positive definite
    a_chol, _ = color.histogram_transform(style, content, "chol")
    # L_C L_S^-1 is lower triangular
    assert torch.allclose(a_chol, torch.tril(a_chol), atol=1e-12)
    # the three solutions differ (unless the covariances commute in a special way)
    a_pca, _ = color.histogram_transform(style, content, "pca")
    assert not torch.allclose(a_pca, a_chol, atol=1e-3) or not torch.allclose(a_pca, a_sym, atol=1e-3)


def test_histogram_clip_flag():
    style, content = _gradient_style(), _random(9) * 2.0 - 0.5  # content outside [0, 1]
    out = color.match_histogram(style, content, "pca")
    assert out.min() < 0 or out.max() > 1
    clipped = color.match_histogram(style, content, "pca", clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert torch.equal(clipped, out.clamp(0, 1))


def test_histogram_same_image_is_identity():
    x = _random(10)
    for mode in MODES:
        assert torch.allclose(color.match_histogram(x, x, mode), x, atol=1e-5)


def test_histogram_invalid_mode():
    with pytest.raises(InvalidOption, match="colour match 'cholesky'.*valid: chol, pca, sym"):
        color.match_histogram(_random(0), _random(1), "cholesky")


@pytest.mark.parametrize("mode", MODES)
def test_histogram_regulariser_bias_on_nearly_grey_style(mode):
    # A nearly grey style (channels ~0.999 correlated): A is large across the grey axis and the
    # recoloured covariance is Sigma_C + eps (I - A A^T), off by more than eps; a smaller eps
    # removes the bias.
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 50), indexing="ij")
    style = torch.stack([x, x + 0.02 * torch.sin(9 * y), x + 0.02 * torch.cos(7 * y)])[None]
    content = _gradient_content()
    eps = 1e-5
    a, _ = color.histogram_transform(style, content, mode, eps)
    _, cov_c = _stats(content)
    _, cov_o = _stats(color.match_histogram(style.double(), content, mode, eps))
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(cov_o, cov_c + eps * (eye - a @ a.T), atol=1e-10)
    assert (cov_o - cov_c).abs().max() > 1e-3
    _, cov_o = _stats(color.match_histogram(style.double(), content, mode, eps=1e-10))
    assert torch.allclose(cov_o, cov_c, atol=1e-6)
