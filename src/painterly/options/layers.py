"""VGG-19's layer names, in network order, and the paper's layer sets (no torch here)."""

from __future__ import annotations

from typing import Sequence, Tuple

_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block


def _layer_names() -> Tuple[str, ...]:
    names = []
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYERS: Tuple[str, ...] = _layer_names()  # conv1_1, relu1_1, ..., pool5 (37 names)

# --- the paper's network and losses ------------------------------------------------------
# The paper names conv4_2 and conv1_1 ... conv5_1. In Caffe, which the authors used, the ReLUs
# run in place, so the blobs they read under those names held the rectified responses: in our
# literal naming (convX_Y before the ReLU, reluX_Y after it) that is relu4_2 and relu1_1 ...
# relu5_1. Measured on the original VGG-19 (benchmarks/README.md): the pre-ReLU responses put
# 89-99.7% of the style loss on one layer; the rectified ones are balanced within a factor ~5.
PAPER_CONTENT_LAYERS = ("relu4_2",)
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def validate_layers(layers) -> tuple:
    """Return the layers as a tuple, raising InvalidOption for an unknown name."""
    from painterly.errors import choice

    layers = tuple(layers)
    for name in layers:
        choice("layer", name, LAYERS)
    return layers


_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # filters of each block


def channels(layer: str) -> int:
    """The number of filters (feature maps) of a layer: conv, relu or pool of block b."""
    return _CHANNELS[int(layer[4])]


def floats_per_pixel(layers: Sequence[str]) -> float:
    """Feature values per input pixel of the given layers: N_l / stride_l^2 summed."""
    total = 0.0
    for l in layers:
        b = int(l[4])
        total += _CHANNELS[b] / 4 ** (b - 1)
    return total
