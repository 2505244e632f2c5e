"""Quality scores of a stylised image, independent of the loss a run optimised.

Every score compares the output x with the content photograph c and the style image s on the
original VGG-19 (the "original" weights set, max pooling as trained, not normalised), so runs
with different losses, layers or weights are judged by one ruler. Lower is better for all:

  style    S = mean over relu1_1..relu5_1 of |G(x) - G(s)|^2 / |G(c) - G(s)|^2
               (G = F F^T / (C H W)): 1 = no closer to the style's statistics than the photo
  content  K = |F(x) - F(c)|^2 / |F(c)|^2 at relu4_2: 0 = the photo's structure untouched
  palette  P = SW(x, s) / SW(c, s): sliced Wasserstein distance between the RGB pixel sets
  clipped  share of pixels saturated (a channel at 0 or 255) in x but not in c

Used by benchmarks/bench_quality.py and by the tests that check a transfer works.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from PIL import Image

from . import images

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


@dataclass
class Scorer:
    """Scores images against one (content, style) pair at the content's size.

    `net` is a network.VGG19 (default: the original weights, max pooling); the targets are
    computed once, so scoring many outputs of one pair costs one forward pass each.
    """

    content: Image.Image
    style: Image.Image
    net: Optional[torch.nn.Module] = None

    def __post_init__(self):
        if self.net is None:
            from .engine import Stylizer

            # The original VGG-19 as published (max pooling, not normalised), in fp32.
            self.net = Stylizer(weights=None, pooling="max", normalize=False, precision="fp32",
                                channels_last=False, device="cpu", content_layers=(CONTENT_LAYER,),
                                style_layers=STYLE_LAYERS).prepare().net
        self.size = self.content.size
        c = images.to_tensor(self.content.convert("RGB"))
        s = images.to_tensor(images.resize_long_side(self.style.convert("RGB"), max(self.size)))
        self._c, self._s = c, s
        self.fc = self._features(c)
        self.fs = self._features(s)
        self.c_saturated = _saturated(c)

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.net(x, STYLE_LAYERS + (CONTENT_LAYER,))
        out = {l: _gram(feats[l]) for l in STYLE_LAYERS}
        out[CONTENT_LAYER] = feats[CONTENT_LAYER].float()
        return out

    def __call__(self, output: Image.Image) -> Dict[str, float]:
        """{"style": S, "content": K, "palette": P, "clipped": share} for one output image."""
        x = images.to_tensor(images.fit_to(output.convert("RGB"), self.size))
        fx = self._features(x)
        s = sum(float((fx[l] - self.fs[l]).pow(2).sum() / (self.fc[l] - self.fs[l]).pow(2).sum().clamp_min(1e-12))
                for l in STYLE_LAYERS) / len(STYLE_LAYERS)
        k = float((fx[CONTENT_LAYER] - self.fc[CONTENT_LAYER]).pow(2).sum()
                  / self.fc[CONTENT_LAYER].pow(2).sum().clamp_min(1e-12))
        p = sliced_wasserstein(x, self._s) / max(sliced_wasserstein(self._c, self._s), 1e-12)
        clipped = float((_saturated(x) & ~self.c_saturated).float().mean())
        return {"style": s, "content": k, "palette": p, "clipped": clipped}


def _gram(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W).   f: (1, C, H, W) -> (C, C)."""
    _, c, h, w = f.shape
    m = f.float().reshape(c, h * w)
    return m @ m.t() / (c * h * w)


def _saturated(x: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: some channel at 0 or 255 after 8-bit rounding.   x: (1, 3, H, W) in [0, 1]."""
    q = (x[0] * 255).round()
    return ((q <= 0) | (q >= 255)).any(dim=0)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_dirs: int = 64, n_quantiles: int = 256,
                       seed: int = 0) -> float:
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
