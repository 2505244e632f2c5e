"""Colour preservation (Gatys, Bethge, Hertzmann, Shechtman, arXiv 1606.05897).

Two ways to keep the content image's colours:

* luminance-only transfer: stylise the Y channel of YIQ only (`luminance_only`, after
  `match_luminance` of the style's Y to the content's), then put the content's I and Q back
  (`recombine_luminance`);
* colour histogram matching: recolour the style image so that its pixel mean and 3x3
  covariance equal the content's (`match_histogram`), then transfer as usual.

Images are torch tensors (1, 3, H, W), RGB, float (float32 in the library), nominally in
[0, 1]. Nothing here clamps unless asked: the maps are exact affine maps, and the caller clips
when it renders or saves. Arithmetic is done in float64 (float32 on MPS, which has no float64)
and the result is returned in the input's dtype.
"""
from __future__ import annotations

from typing import Tuple

import torch

from . import config, errors

Tensor = torch.Tensor

# NTSC RGB -> YIQ (the standard matrix, as in MATLAB's rgb2ntsc). Each of the I and Q rows sums
# to 0 and the Y row to 1, so grey (R = G = B) has I = Q = 0.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114],
     [0.596, -0.274, -0.322],
     [0.211, -0.523, 0.312]], dtype=torch.float64)
# The exact inverse, not the rounded published one, so that the two are inverses to float64
# precision (the published 3-decimal inverse would leave a ~1e-3 round-trip error).
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _wide(x: Tensor) -> torch.dtype:
    """The dtype to compute in: float64, except on MPS (no float64 there)."""
    return torch.float32 if x.device.type == "mps" else torch.float64


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    """Per-pixel 3x3 colour transform.   x: (B, 3, H, W) -> (B, 3, H, W), x's dtype."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
    dt = _wide(x)
    y = torch.einsum("ij,bjhw->bihw", matrix.to(x.device, dt), x.to(dt))
    return y.to(x.dtype)


def rgb_to_yiq(x: Tensor) -> Tensor:
    """RGB -> YIQ (NTSC).   x: (B, 3, H, W) -> (B, 3, H, W) with channels Y, I, Q."""
    return _apply(_RGB_TO_YIQ, x)


def yiq_to_rgb(x: Tensor) -> Tensor:
    """YIQ -> RGB, the exact inverse of `rgb_to_yiq`.   x: (B, 3, H, W) -> (B, 3, H, W)."""
    return _apply(_YIQ_TO_RGB, x)


def match_luminance(style_y: Tensor, content_y: Tensor) -> Tensor:
    """L_S' = (sd_C / sd_S) (L_S - mu_S) + mu_C: the style luminance with the content's mean/std.

    style_y, content_y: luminance tensors of any shapes, e.g. (1, 1, H_s, W_s) and
    (1, 1, H_c, W_c); mean and (population) std are taken over all their elements.
    Returns a tensor shaped and typed like style_y. A constant style (sd_S = 0) maps to the
    constant mu_C (the formula's limit would divide by zero).
    """
    dt = _wide(style_y)
    s, c = style_y.to(dt), content_y.to(dt)
    mu_s, sd_s = s.mean(), s.std(unbiased=False)
    mu_c, sd_c = c.mean(), c.std(unbiased=False)
    if sd_s <= 1e-12 * max(1.0, float(mu_s.abs())):
        return torch.full_like(style_y, float(mu_c))
    return ((sd_c / sd_s) * (s - mu_s) + mu_c).to(style_y.dtype)


def luminance_only(x: Tensor) -> Tensor:
    """The Y channel replicated to 3 channels: what VGG sees in luminance mode.

    x: (B, 3, H, W) RGB -> (B, 3, H, W) with three equal channels Y (a grey RGB image; since
    the Y row of the YIQ matrix sums to 1, its own Y is Y again and its I, Q are 0).
    A (B, 1, H, W) input is taken to be Y already and is just replicated.
    """
    y = x if x.shape[1] == 1 else rgb_to_yiq(x)[:, :1]
    return y.repeat(1, 3, 1, 1)


def recombine_luminance(output: Tensor, content: Tensor) -> Tensor:
    """The output's luminance Y with the content's chrominance I, Q, back in RGB.

    output: (B, 3, H, W) RGB (e.g. a replicated-Y image) or (B, 1, H, W) Y;
    content: (B, 3, H, W) RGB of the same H, W. Returns (B, 3, H, W) RGB in output's dtype.
    No clamping here: the result can leave [0, 1] and the caller clips when it renders or
    saves. Before that clipping, the result's I and Q are the content's exactly (to float64
    rounding, then the cast to the output's dtype) and its Y is the output's.
    """
    if output.shape[-2:] != content.shape[-2:]:
        raise ValueError(f"output {tuple(output.shape)} and content {tuple(content.shape)} differ in size")
    dt = _wide(output)
    y = output.to(dt) if output.shape[1] == 1 else rgb_to_yiq(output.to(dt))[:, :1]
    iq = rgb_to_yiq(content.to(output.device, dt))[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq.expand(y.shape[0], -1, -1, -1)], dim=1)).to(output.dtype)


# --- colour histogram matching ---------------------------------------------------------------------
def _sym_pow(s: Tensor, p: float) -> Tensor:
    """S^p of a symmetric positive definite matrix via eigh.   s: (3, 3) -> (3, 3)."""
    lam, v = torch.linalg.eigh((s + s.T) / 2)
    lam = lam.clamp_min(torch.finfo(s.dtype).tiny)
    return (v * lam.pow(p)) @ v.T


def _stats(x: Tensor, dt: torch.dtype) -> Tuple[Tensor, Tensor]:
    """Pixel mean and population covariance.   x: (B, 3, H, W) -> (3,), (3, 3) in dtype dt."""
    p = x.to(dt).transpose(0, 1).reshape(3, -1)  # (3, B*H*W)
    mu = p.mean(dim=1)
    pc = p - mu[:, None]
    return mu, pc @ pc.T / p.shape[1]


def histogram_transform(style: Tensor, content: Tensor, mode: str = "pca",
                        eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """The affine colour map (A, b) of `match_histogram`: x' = A x + b.

    style, content: (1, 3, H, W) RGB (sizes may differ). Returns A (3, 3) and b (3,), in
    float64 (float32 on MPS), with A Sigma_S A^T = Sigma_C and b = mu_C - A mu_S, where
    Sigma = pixel covariance + eps * I (the paper's regulariser). Modes:
      "chol": A = L_C L_S^-1 (Cholesky factors);
      "pca":  A = Sigma_C^1/2 Sigma_S^-1/2 (the paper's "image analogies" variant);
      "sym":  A = Sigma_S^-1/2 (Sigma_S^1/2 Sigma_C Sigma_S^1/2)^1/2 Sigma_S^-1/2 (symmetric;
              the map that moves the colours least: the Wasserstein-2 optimal map between the
              two Gaussians).
    Square roots and inverse square roots are taken via eigh.
    """
    errors.choice("colour match", mode, config.COLOR_MATCH)
    if style.shape[-3] != 3 or content.shape[-3] != 3:
        raise ValueError(f"expected RGB tensors, got {tuple(style.shape)} and {tuple(content.shape)}")
    dt = _wide(style)
    mu_s, cov_s = _stats(style, dt)
    mu_c, cov_c = _stats(content.to(style.device), dt)
    eye = torch.eye(3, dtype=dt, device=style.device)
    cov_s, cov_c = cov_s + eps * eye, cov_c + eps * eye
    if mode == "chol":
        l_s, l_c = torch.linalg.cholesky(cov_s), torch.linalg.cholesky(cov_c)
        a = torch.linalg.solve_triangular(l_s, l_c, upper=False, left=False)  # a @ l_s = l_c
    elif mode == "pca":
        a = _sym_pow(cov_c, 0.5) @ _sym_pow(cov_s, -0.5)
    else:  # "sym"
        s_half, s_ihalf = _sym_pow(cov_s, 0.5), _sym_pow(cov_s, -0.5)
        a = s_ihalf @ _sym_pow(s_half @ cov_c @ s_half, 0.5) @ s_ihalf
        a = (a + a.T) / 2  # symmetric in exact arithmetic; remove the rounding asymmetry
    return a, mu_c - a @ mu_s


def match_histogram(style: Tensor, content: Tensor, mode: str = "pca", eps: float = 1e-5,
                    clip: bool = False) -> Tensor:
    """The style image recoloured to the content's colour mean and covariance: x' = A x + b.

    style: (1, 3, H_s, W_s), content: (1, 3, H_c, W_c), RGB. Returns (1, 3, H_s, W_s) in the
    style's dtype. See `histogram_transform` for A, b and the modes; an unknown mode raises
    InvalidOption. The result is the exact affine map and can leave [0, 1]; `clip=True`
    clamps it to [0, 1] (which changes its statistics slightly).

    Because of the eps * I regulariser the recoloured covariance is
    Sigma_C_raw + eps (I - A A^T), not exactly the content's: the difference is O(eps) unless
    the style's colours are nearly degenerate (a colour direction with variance << eps), where
    A is large in that direction.
    """
    a, b = histogram_transform(style, content, mode, eps)
    x = style.to(a.dtype)
    out = (torch.einsum("ij,bjhw->bihw", a, x) + b[None, :, None, None]).to(style.dtype)
    return out.clamp(0.0, 1.0) if clip else out
