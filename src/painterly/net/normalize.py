"""The paper's normalised network: every filter's mean activation 1, with means fixed per
weights set (shipped for the original weights, measured on the demo images for others)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import torch

from painterly.net.device import wide
from painterly.net.vgg import VGG19


@torch.no_grad()
def filter_means(net: VGG19, images: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Per-filter mean activation of every ReLU, averaged over `images` (each (1,3,H,W)).

    Each image counts equally whatever its size: the mean over its positions, then over images.
    """
    relus = [n for n in net.names if n.startswith("relu")]
    sums = {n: 0.0 for n in relus}
    for img in images:
        feats = net(img, relus)
        for n in relus:
            sums[n] = sums[n] + feats[n].float().mean(dim=(0, 2, 3))
    return {n: s / len(images) for n, s in sums.items()}


@torch.no_grad()
def normalize_vgg(
    net: VGG19,
    images: Sequence[torch.Tensor] = (),
    floor: float = 0.01,
    means: Optional[Mapping[str, torch.Tensor]] = None,
) -> Dict[str, torch.Tensor]:
    """The paper's normalised network, in place: every filter's mean activation becomes 1.

    Filter k of conv l is divided by its mean ReLU activation c_k (weights and bias; ReLU and
    pooling commute with positive scales) and the next conv's input weights are multiplied by
    c_k, so the function computed by the layers after is unchanged.

    The means come from `means` (a run uses `reference_means`: fixed per network) or are
    measured here on `images`. Measuring all layers in one pass equals the authors' layer-by-layer procedure,
    because each rescaling leaves the later layers' activations unchanged.
    Departure: a few images leave some filters (almost) silent, and dividing by a mean near 0
    would blow their responses up by factors of 1e4 and more, so each mean is floored at
    `floor` times the layer's average filter mean; a filter silent on these images (mean 0)
    keeps scale 1. ImageNet's millions of images make this moot in the paper.
    Returns the scales {relu_name: c}.
    """
    means = filter_means(net, images) if means is None else means
    convs = net.convs()
    scales = {}
    for j, (name, conv) in enumerate(convs):
        relu = "relu" + name[4:]
        if relu not in means:
            break
        c = means[relu].to(conv.weight.dtype)
        c = torch.where(c > 0, c.clamp_min(floor * float(c.mean())), torch.ones_like(c))
        scales[relu] = c
        conv.weight.div_(c.view(-1, 1, 1, 1))
        conv.bias.div_(c)
        if j + 1 < len(convs):
            convs[j + 1][1].weight.mul_(c.view(1, -1, 1, 1))
    return scales


# --- per-network statistics for the normalisation, fixed once per weights set ----------------
DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE_SIDES = (256, 512)  # long sides at which the reference means are measured


def means_file(sha256: str) -> Path:
    """Where the shipped reference means of a weights set live (by the first 12 hex of its hash)."""
    return DATA / f"means-{sha256[:12]}.pt"


@torch.no_grad()
def reference_means(net: VGG19, sha256: str, pooling: str) -> Dict[str, torch.Tensor]:
    """Per-filter mean ReLU activations of `net`'s weights, fixed per weights set and pooling.

    Departure: the paper measured these means over ImageNet. Here they are measured once per
    network, not per run (so a batch or a video is normalised identically for every image):
    for the original weights they ship with the package (data/means-*.pt, measured by
    benchmarks/make_means.py on six photographs and paintings at 256 and 512 px); for any
    other weights they are measured on the two bundled demo images at the same sides.
    """
    key = (sha256, pooling, float(wide(net.convs()[0][1].weight).sum()))  # the weights' identity
    cached = _MEASURED.get(key)
    if cached is not None and all("relu" + name[4:] in cached for name, _ in net.convs()):
        return cached
    path = means_file(sha256)
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        table = stored.get(pooling, {})
        if all("relu" + name[4:] in table for name, _ in net.convs()):
            return {k: v.float() for k, v in table.items()}
    from painterly import assets
    from painterly.imaging import load as _images

    means = measure_means(net, [_images.load_image(p) for p in assets.demo_images()])
    _MEASURED[key] = means
    return means


# Means measured for weights without a shipped file, per (sha256, pooling, weights' checksum):
# measuring costs seconds, and batch runs, figures and tests build the same network many times.
_MEASURED: Dict[tuple, Dict[str, torch.Tensor]] = {}


@torch.no_grad()
def measure_means(net: VGG19, pil_images, sides: Sequence[int] = REFERENCE_SIDES) -> Dict[str, torch.Tensor]:
    """filter_means over `pil_images` (PIL), each resized to every long side in `sides`."""
    from painterly.imaging import load as _images

    dev = next(net.parameters()).device
    ts = [_images.to_tensor(_images.resize_long_side(im, s)).to(dev) for im in pil_images for s in sides]
    return {k: v.cpu() for k, v in filter_means(net, ts).items()}
