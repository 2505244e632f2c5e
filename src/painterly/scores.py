"""Quality scores of a stylised image, independent of the loss a run optimised.

Every score compares the output x with the content photograph c and the style image s on the
original VGG-19 (the "original" weights set, max pooling as trained, not normalised, fp32), so
runs with different losses, layers or weights are judged by one ruler. Lower is better except
for LP:

  style    S = mean over relu1_1..relu5_1 of |G(x) - G(s)|^2 / |G(c) - G(s)|^2
               (G = F F^T / (C H W)): 1 = no closer to the style's statistics than the photo
  content  K = |F(x) - F(c)|^2 / |F(c)|^2 at relu4_2: 0 = the photo's structure untouched
  palette  P = SW(x, s) / SW(c, s): sliced Wasserstein distance between the RGB pixel sets
  clipped  share of pixels saturated (a channel at 0 or 255) in x but not in c

Two more that no loss of ours optimises (so a run cannot score well on them by construction):

  cfsd     CFSD, content feature structural distance (Chung et al., CVPR 2024, "Style
           Injection in Diffusion"; as in their evaluation code, jiwoogit/StyleID
           evaluation/image_metrics.py PatchSimi). With F the relu3_1 features of an image
           as an (N, C) matrix (N positions, C = 256 channels), each divided by C:
               A = (F / C) (F / C)^T                        (N, N)
               P = row-softmax(A):  P_ij = exp(A_ij) / sum_k exp(A_ik)
               CFSD = sum_i KL(P_c[i] || P_x[i]) = sum_i sum_j P_c,ij (log P_c,ij - log P_x,ij)
           (summed over rows, not averaged: the reference's KLDivLoss 'batchmean' with a batch
           of one). The reference uses torchvision's VGG-19 on ImageNet mean/std inputs; the
           Caffe network here takes 0-255 inputs, so its features are first divided by 57.6
           (= 255 x 0.226, the ratio of the two input scales; ../shared/PAPER.md) to give the
           softmax about the reference's temperature (a random network with torch
           preprocessing is used as is). Like the reference's torchvision network this one
           max-pools. The reference does not L2-normalise the positions (no cosine
           similarity), so neither does this. Positions: x at the
           photo's size; when N > CFSD_MAX_POSITIONS (4096) both feature maps are first
           average-pooled (adaptive, aspect kept) to at most that many positions, which keeps
           the (N, N) maps at 64 MiB and bounds the cost; the value is a sum over positions,
           so it grows with N: compare scores at one size only. 0 = the photo's structure
           kept; lower is better.
  lp, lp_coverage
           LP, local patterns (Wang et al., CVIU 2021, "Evaluate and improve the quality of
           neural style transfer"; their code EndyWon/StyleEval quality_criteria.py). For
           each layer l in (relu3_1, relu4_1): all 3x3 patches (stride 1, no padding) of the
           features of x and of s, each flattened to a vector and scaled to unit length:
               LP1_l = mean over x's patches p of max over s's patches q of <p, q>
               LP2_l = |{argmax_q <p, q> : p in x}| / |{argmax_q <q', q> : q' in s}|
           (distinct painting patches that are some result patch's best match, over the
           painting's own count measured the same way: its patches' best matches among
           themselves, i.e. its distinct patches). lp = mean_l LP1_l, lp_coverage =
           mean_l LP2_l; higher is better, 1 and 1 when x is the painting. The paper's single
           LP is (lp + lp_coverage) / 2. s is resized to the photo's long side, as for S.
           A patch of zeros stays zero (cosine 0 with everything). The reference's network
           average-pools; this one max-pools (the ruler all scores share). At most
           LP_MAX_PATCHES (8192) patches per image and layer: larger sets are subsampled at a
           fixed regular stride (every k-th patch in raster order, deterministic); the
           correlations are computed LP_CHUNK rows at a time, so memory stays bounded.

Used by benchmarks/bench_quality.py and by the tests that check a transfer works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from PIL import Image

from painterly.imaging import fit_to, resize_long_side, to_tensor

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
CFSD_LAYER = "relu3_1"
LP_LAYERS = ("relu3_1", "relu4_1")
CFSD_MAX_POSITIONS = 4096
CAFFE_TO_TORCH_SCALE = 57.6  # 255 x ~0.226 (ImageNet std): Caffe features / this ~ torchvision's
LP_MAX_PATCHES = 8192
LP_CHUNK = 1024
CFSD_CHUNK = 1024


@dataclass
class Scorer:
    """Scores images against one (content, style) pair at the content's size.

    `net` is a network.VGG19 (default: the original weights, max pooling); the targets are
    computed once, so scoring many outputs of one pair costs one forward pass each (plus the
    CFSD and LP correlations; `extras=False` skips those two scores).
    """

    content: Image.Image
    style: Image.Image
    net: Optional[torch.nn.Module] = None
    extras: bool = True

    def __post_init__(self):
        if self.net is None:
            from painterly.engine import Stylizer

            # The original VGG-19 as published (max pooling, not normalised), in fp32.
            self.net = (
                Stylizer(
                    weights=None,
                    pooling="max",
                    normalize=False,
                    precision="fp32",
                    channels_last=False,
                    device="cpu",
                    content_layers=(CONTENT_LAYER,),
                    style_layers=STYLE_LAYERS,
                )
                .prepare()
                .net
            )
        # CFSD is defined on torchvision's input scale (see the module docstring).
        self._cfsd_scale = (
            CAFFE_TO_TORCH_SCALE if getattr(self.net, "preprocess", "torch") == "caffe" else 1.0
        )
        self.size = self.content.size
        c = to_tensor(self.content.convert("RGB"))
        s = to_tensor(resize_long_side(self.style.convert("RGB"), max(self.size)))
        self._c, self._s = c, s
        self.fc = self._features(c)
        self.fs = self._features(s)
        self.c_saturated = _saturated(c)
        if self.extras:
            self._c_logp = _self_similarity(self.fc["f:" + CFSD_LAYER], self._cfsd_scale)
            self._s_patches = {l: _patches(self.fs["f:" + l]) for l in LP_LAYERS}
            # The painting's own count of distinct patches: its patches' best matches among
            # themselves (the same computation as for the result, so x = s gives exactly 1).
            self._s_own = {l: _distinct(_best_matches(p, p)[1]) for l, p in self._s_patches.items()}

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        layers = STYLE_LAYERS + (CONTENT_LAYER,)
        feats = self.net(x, layers)
        out = {l: _gram(feats[l]) for l in STYLE_LAYERS}
        out[CONTENT_LAYER] = feats[CONTENT_LAYER].float()
        if self.extras:  # the raw feature maps CFSD and LP need, under "f:" + layer
            out.update({"f:" + l: feats[l].float() for l in (CFSD_LAYER,) + LP_LAYERS})
        return out

    @torch.no_grad()
    def __call__(self, output: Image.Image) -> Dict[str, float]:
        """{"style": S, "content": K, "palette": P, "clipped": share, "cfsd": CFSD, "lp": LP1,
        "lp_coverage": LP2} for one output image (the last three only with `extras`)."""
        x = to_tensor(fit_to(output.convert("RGB"), self.size))
        fx = self._features(x)
        s = sum(
            float((fx[l] - self.fs[l]).pow(2).sum() / (self.fc[l] - self.fs[l]).pow(2).sum().clamp_min(1e-12))
            for l in STYLE_LAYERS
        ) / len(STYLE_LAYERS)
        k = float(
            (fx[CONTENT_LAYER] - self.fc[CONTENT_LAYER]).pow(2).sum()
            / self.fc[CONTENT_LAYER].pow(2).sum().clamp_min(1e-12)
        )
        p = sliced_wasserstein(x, self._s) / max(sliced_wasserstein(self._c, self._s), 1e-12)
        clipped = float((_saturated(x) & ~self.c_saturated).float().mean())
        out = {"style": s, "content": k, "palette": p, "clipped": clipped}
        if self.extras:
            out["cfsd"] = _kl_rows(self._c_logp, _self_similarity(fx["f:" + CFSD_LAYER], self._cfsd_scale))
            lp1, lp2 = [], []
            for l in LP_LAYERS:
                best, idx = _best_matches(_patches(fx["f:" + l]), self._s_patches[l])
                lp1.append(float(best.mean()) if best.numel() else float("nan"))
                lp2.append(_distinct(idx) / max(self._s_own[l], 1))
            out["lp"] = sum(lp1) / len(lp1)
            out["lp_coverage"] = sum(lp2) / len(lp2)
        return out


def _gram(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W).   f: (1, C, H, W) -> (C, C)."""
    _, c, h, w = f.shape
    m = f.float().reshape(c, h * w)
    return m @ m.t() / (c * h * w)


def _saturated(x: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: some channel at 0 or 255 after 8-bit rounding.   x: (1, 3, H, W) in [0, 1]."""
    q = (x[0] * 255).round()
    return ((q <= 0) | (q >= 255)).any(dim=0)


# --- CFSD ------------------------------------------------------------------------------------
def _pooled_size(h: int, w: int, max_positions: int) -> Tuple[int, int]:
    """(h, w) scaled down, aspect kept, so that h * w <= max_positions (unchanged if it fits)."""
    if h * w <= max_positions:
        return h, w
    r = math.sqrt(max_positions / (h * w))
    ph, pw = max(1, math.floor(h * r)), max(1, math.floor(w * r))
    while ph * pw > max_positions:  # floor rounding keeps this rare; guard anyway
        ph, pw = (ph - 1, pw) if ph >= pw else (ph, pw - 1)
    return ph, pw


def _self_similarity(
    f: torch.Tensor, scale: float = 1.0, max_positions: int = CFSD_MAX_POSITIONS
) -> torch.Tensor:
    """log row-softmax of A = (F/C)(F/C)^T.   f: (1, C, H, W) -> (N, N) log-probabilities.

    Feature maps with more than `max_positions` positions are average-pooled down first (see
    the module docstring); rows are computed CFSD_CHUNK at a time (exact: each row is its own
    softmax).
    """
    _, c, h, w = f.shape
    ph, pw = _pooled_size(h, w, max_positions)
    if (ph, pw) != (h, w):
        f = F.adaptive_avg_pool2d(f, (ph, pw))
    m = f.float()[0].reshape(c, -1).t() / (scale * c)  # (N, C)
    return torch.cat(
        [torch.log_softmax(m[i : i + CFSD_CHUNK] @ m.t(), dim=1) for i in range(0, m.shape[0], CFSD_CHUNK)]
    )


def _kl_rows(logp: torch.Tensor, logq: torch.Tensor) -> float:
    """sum over rows i of KL(p_i || q_i), from log-probabilities of one shape (N, N)."""
    if logp.shape != logq.shape:
        raise ValueError(f"self-similarity maps differ in shape: {tuple(logp.shape)} vs {tuple(logq.shape)}")
    total = 0.0
    for i in range(0, logp.shape[0], CFSD_CHUNK):
        lp, lq = logp[i : i + CFSD_CHUNK], logq[i : i + CFSD_CHUNK]
        total += float((lp.exp() * (lp - lq)).sum(dtype=torch.float64))
    return total


# --- LP --------------------------------------------------------------------------------------
def _patches(f: torch.Tensor, max_patches: int = LP_MAX_PATCHES) -> torch.Tensor:
    """All 3x3 patches (stride 1, no padding) as unit vectors.   f: (1, C, H, W) -> (L, 9 C).

    Zero patches stay zero. More than `max_patches` patches are subsampled at a regular
    stride over the raster order (deterministic; every image and output of a pair alike).
    """
    _, c, h, w = f.shape
    if h < 3 or w < 3:
        return f.new_zeros((0, 9 * c))
    p = F.unfold(f.float(), kernel_size=3)[0].t()  # (L, 9 C)
    if p.shape[0] > max_patches:
        p = p[torch.arange(max_patches) * p.shape[0] // max_patches]
    return F.normalize(p, dim=1)


def _best_matches(q: torch.Tensor, k: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For each row of q, the best <q_i, k_j> over k's rows and the first j reaching it.

    Computed LP_CHUNK rows of q at a time (memory LP_CHUNK x len(k)).
    """
    if q.shape[0] == 0 or k.shape[0] == 0:
        return q.new_zeros(0), torch.zeros(0, dtype=torch.long)
    best, idx = [], []
    for i in range(0, q.shape[0], LP_CHUNK):
        v, j = (q[i : i + LP_CHUNK] @ k.t()).max(dim=1)
        best.append(v)
        idx.append(j)
    return torch.cat(best), torch.cat(idx)


def _distinct(idx: torch.Tensor) -> int:
    return int(torch.unique(idx).numel())


# --- palette ---------------------------------------------------------------------------------
def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, n_dirs: int = 64, n_quantiles: int = 256, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance between the RGB pixel sets of two images.

    a, b: (1, 3, H, W) in [0, 1], any sizes. Fixed seeded directions; each projection's
    distribution is compared at `n_quantiles` quantiles, so differently sized images compare.
    """
    gen = torch.Generator().manual_seed(seed)
    dirs = F.normalize(torch.randn(n_dirs, 3, generator=gen), dim=1)
    q = torch.linspace(0, 1, n_quantiles)
    pa = torch.quantile(dirs @ a[0].reshape(3, -1).float(), q, dim=1)
    pb = torch.quantile(dirs @ b[0].reshape(3, -1).float(), q, dim=1)
    return float((pa - pb).pow(2).mean().sqrt())
