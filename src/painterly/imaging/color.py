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
import torch.nn.functional as F

from painterly import errors
from painterly.options import COLOR_MATCH

Tensor = torch.Tensor

# NTSC RGB -> YIQ (the standard matrix, as in MATLAB's rgb2ntsc). Each of the I and Q rows sums
# to 0 and the Y row to 1, so grey (R = G = B) has I = Q = 0.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
# The exact inverse, not the rounded published one, so that the two are inverses to float64
# precision (the published 3-decimal inverse would leave a ~1e-3 round-trip error).
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _wide(x: Tensor) -> torch.dtype:
    """The dtype to compute in: float64, except on MPS (no float64 there)."""
    return torch.float32 if x.device.type == "mps" else torch.float64


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    """Per-pixel colour transform.   matrix: (C, C), x: (B, C, H, W) -> (B, C, H, W), x's dtype."""
    if x.dim() != 4 or x.shape[1] != matrix.shape[1]:
        raise ValueError(f"expected a (B, {matrix.shape[1]}, H, W) tensor, got {tuple(x.shape)}")
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
    """Pixel mean and population covariance.   x: (B, C, H, W) -> (C,), (C, C) in dtype dt."""
    p = x.to(dt).transpose(0, 1).reshape(x.shape[1], -1)  # (C, B*H*W)
    mu = p.mean(dim=1)
    pc = p - mu[:, None]
    return mu, pc @ pc.T / p.shape[1]


def histogram_transform(
    style: Tensor, content: Tensor, mode: str = "pca", eps: float = 1e-5
) -> Tuple[Tensor, Tensor]:
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
    errors.choice("colour match", mode, COLOR_MATCH)
    if style.shape[-3] != content.shape[-3]:  # RGB; oklab_recolor matches 2 chroma channels
        raise ValueError(
            f"expected tensors with as many channels, got {tuple(style.shape)} and {tuple(content.shape)}"
        )
    dt = _wide(style)
    mu_s, cov_s = _stats(style, dt)
    mu_c, cov_c = _stats(content.to(style.device), dt)
    eye = torch.eye(style.shape[-3], dtype=dt, device=style.device)
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


def match_histogram(
    style: Tensor, content: Tensor, mode: str = "pca", eps: float = 1e-5, clip: bool = False
) -> Tensor:
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


# --- NNST's colour step in OkLab (--recolor oklab) ---------------------------------------------------
# OkLab (Bjorn Ottosson, 2020, bottosson.github.io/posts/oklab): linear sRGB -> LMS -> cube root -> Lab.
_OK_M1 = torch.tensor(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_OK_M2 = torch.tensor(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
_OK_M1_INV, _OK_M2_INV = torch.linalg.inv(_OK_M1.double()), torch.linalg.inv(_OK_M2.double())
RECOLOR_FLAT = 6e-5  # a painting whose chroma covariance stays below this is treated as colourless (NNST)


def srgb_to_linear(x: Tensor) -> Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    x = x.clamp_min(0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def rgb_to_oklab(x: Tensor) -> Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> OkLab (L in [0, 1], a and b about -0.4..0.4).

    Departure from NNST's code, which applies the OkLab matrices to the sRGB values directly:
    OkLab is defined on linear light, so the sRGB curve is undone first."""
    dt = _wide(x)
    lms = _apply(_OK_M1.to(x.device, dt), srgb_to_linear(x.clamp(0, 1).to(dt)))
    return _apply(_OK_M2.to(x.device, dt), lms.clamp_min(0) ** (1 / 3)).to(x.dtype)


def _oklab_to_linear(x: Tensor) -> Tensor:
    """OkLab -> linear-light sRGB in the wide dtype, unclipped (outside [0, 1] = out of gamut)."""
    dt = _wide(x)
    lms = _apply(_OK_M2_INV.to(x.device, dt), x.to(dt)) ** 3
    return _apply(_OK_M1_INV.to(x.device, dt), lms)


def oklab_to_rgb(x: Tensor) -> Tensor:
    """OkLab -> sRGB (the exact inverse of rgb_to_oklab inside the gamut; not clipped)."""
    return linear_to_srgb(_oklab_to_linear(x)).to(x.dtype)


GAMUT_KNEE = 0.8  # chroma below this share of the gamut boundary's is left as it is
GAMUT_LIMIT = 0.95  # and chroma beyond the boundary ends below this share of it
GAMUT_STEPS = 24  # bisection steps for the boundary (2^-24 of the chroma)


def gamut_compress(lab: Tensor, knee: float = GAMUT_KNEE, limit: float = GAMUT_LIMIT) -> Tensor:
    """Bring OkLab colours into the sRGB gamut by lowering their chroma, keeping lightness and hue.

    Per pixel, the boundary chroma at its lightness and hue is found by bisection on the scale t
    of (a, b) (t = 0, a grey, is inside for L in [0, 1]); chroma r = C / C_max beyond `knee` is
    rolled off smoothly, r' = knee + (limit - knee) tanh((r - knee) / (limit - knee)), so that
    colours near and beyond the boundary keep their order and differences instead of all landing
    on it (where a channel is 0 or 1: flat, clipped areas).
    The CSS Color 4 gamut mapping and ACES's gamut compression work the same way (chroma, not
    channels). Colours inside the knee are unchanged. lab: (B, 3, H, W) OkLab, L is clamped to
    [0, 1]. Returns OkLab in lab's dtype.
    """
    dt = _wide(lab)
    x = lab.to(dt)
    light, ab = x[:, :1].clamp(0, 1), x[:, 1:]
    # Bisection for the boundary's multiple m of the pixel's chroma, within [0, 1/knee]: only a
    # colour whose boundary is nearer than that (r = 1/m > knee) is changed.
    lo, hi = torch.zeros_like(light), torch.full_like(light, 1.0 / knee)
    for _ in range(GAMUT_STEPS):
        mid = (lo + hi) / 2
        ok = _in_gamut(torch.cat([light, ab * mid], 1))
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    far = _in_gamut(torch.cat([light, ab / knee], 1))
    r = torch.where(far, torch.full_like(lo, knee), 1.0 / lo.clamp_min(1e-12))  # C / C_max
    span = limit - knee
    scale = (knee + span * torch.tanh((r - knee) / span)) / r
    return torch.cat([light, ab * torch.where(far, torch.ones_like(r), scale)], 1).to(lab.dtype)


def _in_gamut(lab: Tensor) -> Tensor:
    """(B, 3, H, W) OkLab -> (B, 1, H, W) bool: every linear sRGB channel in [0, 1]."""
    lin = _oklab_to_linear(lab)
    tol = 1e-6  # white (L = 1) is (1 + 1e-7, ...) through the published matrices
    return ((lin >= -tol) & (lin <= 1 + tol)).all(dim=1, keepdim=True)


def _guided_chroma(lab: Tensor, iterations: int = 5) -> Tensor:
    """NNST's small joint bilateral filter: the a, b channels averaged over each 3x3 window,
    weighted by exp(-5 |L_i - L_j|)^2 (L guides), `iterations` times; L is unchanged."""
    h, w = lab.shape[-2:]
    light, ab = lab[:, :1], lab[:, 1:]
    offsets = [(i, j) for i in range(3) for j in range(3)]
    lp = F.pad(light, (1, 1, 1, 1), mode="replicate")
    weights = [torch.exp(-5.0 * (light - lp[:, :, i : i + h, j : j + w]).abs()) ** 2 for i, j in offsets]
    total = sum(weights)
    for _ in range(iterations):
        cp = F.pad(ab, (1, 1, 1, 1), mode="replicate")
        ab = sum(wt * cp[:, :, i : i + h, j : j + w] for wt, (i, j) in zip(weights, offsets)) / total
    return torch.cat([light, ab], 1)


def oklab_recolor(result: Tensor, photo: Tensor, painting: Tensor, gamut: str = "compress") -> Tensor:
    """NNST's colour step (Kolkin et al. 2022, utils/colorization.py color_match), in OkLab.

    The output keeps the result's lightness L; its chroma (a, b) is the photo's, moved by an
    affine map to the painting's chroma mean and covariance ("pca" mode, the reference's ZCA),
    then smoothed along the lightness edges (_guided_chroma); every channel is clamped to the
    painting's range. For a colourless painting (chroma covariance below RECOLOR_FLAT: pencil,
    charcoal, greyscale) the reference instead maps all three channels of the result to the
    painting's mean and covariance. result, photo: (1, 3, H, W); painting: any size. Returns
    (1, 3, H, W) sRGB in [0, 1].

    gamut "clip" is the reference's last step: each sRGB channel clamped to [0, 1]. Departure
    (gamut "compress", --recolor oklab): the chroma moved to the painting's often lies outside
    sRGB at the result's lightness (deep reds and darks: 13.8% of The Scream's and 14.1% of the
    Picasso's pixels newly clipped at 512 px, benchmarks/README.md), and clamping the channels
    flattens those areas to one colour and shifts their hue; gamut_compress lowers their chroma
    instead, keeping the lightness (so the strokes) and the hue.
    """
    o, c, s = (
        rgb_to_oklab(result.clamp(0, 1)),
        rgb_to_oklab(photo.to(result)),
        rgb_to_oklab(painting.to(result)),
    )
    _, cov_s = _stats(s[:, 1:], _wide(s))
    if float(cov_s.abs().max()) < RECOLOR_FLAT:
        a, b = histogram_transform(o, s)
        new = _apply(a.to(o.dtype), o) + b.to(o.dtype)[None, :, None, None]
    else:
        a, b = histogram_transform(c[:, 1:], s[:, 1:])
        ab = _apply(a.to(o.dtype), c[:, 1:]) + b.to(o.dtype)[None, :, None, None]
        new = _guided_chroma(torch.cat([o[:, :1], ab], 1))
    lo = s.amin(dim=(0, 2, 3)).view(1, 3, 1, 1)
    hi = s.amax(dim=(0, 2, 3)).view(1, 3, 1, 1)
    new = torch.maximum(torch.minimum(new, hi), lo)
    return oklab_to_rgb(gamut_compress(new) if gamut == "compress" else new).clamp(0, 1)
