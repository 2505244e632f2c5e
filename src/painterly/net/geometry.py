"""The geometry of VGG-19's layers: what input pixels each unit sees (its receptive field and
stride), and the halo a tile needs so that its interior's features are exact."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

from painterly.errors import InvalidOption
from painterly.options import LAYERS, MAX_SIZE


def geometry(names: Sequence[str]) -> Dict[str, Tuple[int, int, int]]:
    """{layer: (start, end, stride)}: unit i of the layer sees input pixels
    [stride * i + start, stride * i + end] (3x3 convolutions, padding 1; 2x2 pools, stride 2)."""
    start, end, stride = 0, 0, 1
    out = {}
    for name in names:
        if name.startswith("conv"):
            start, end = start - stride, end + stride
        elif name.startswith("pool"):
            end += stride
            stride *= 2
        out[name] = (start, end, stride)
    return out


def round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def halo_for(names: Sequence[str], layers: Sequence[str]) -> Tuple[int, int]:
    """(halo, stride): the smallest exact halo for `layers`, rounded up to the deepest stride."""
    geo = geometry(names)
    stride = max(geo[l][2] for l in layers)
    need = max(max(-geo[l][0], geo[l][1] - geo[l][2] + 1) for l in layers)
    return round_up(need, stride), stride


def check_fits(last: str, sizes) -> None:
    """Every image must survive the poolings before `last` (each halves it) with >= 1 pixel."""
    need = 2 ** sum(1 for n in LAYERS[: LAYERS.index(last)] if n.startswith("pool"))
    for what, (w, h), (sw, sh) in sizes:
        if min(w, h) < need:
            text = (
                f"{what} would be {w}x{h} px at one scale of this run, but layer {last} needs at "
                f"least {need} px "
                "on each side; "
            )
            if need * max(sw, sh) > MAX_SIZE * min(sw, sh):  # no --size makes the short side long enough
                raise InvalidOption(
                    text + f"its image is {sw}x{sh} px, an aspect ratio too extreme for that at any "
                    f"size up to {MAX_SIZE} px: crop it, or use shallower layers"
                )
            raise InvalidOption(
                text + "use a larger --size (or --style-scale), or fewer scales (one --iterations count)"
            )
