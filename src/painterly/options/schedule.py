"""The coarse-to-fine schedule: the long side and the steps of each scale (no torch here)."""

from __future__ import annotations

from typing import List, Tuple

from painterly.options.fields import Options


def auto_scales(size: int) -> Tuple[int, ...]:
    """--scales auto: halve the size until it is <= 256 (at least 128 px): 1024 -> 256, 512, 1024."""
    scales = [size]
    while scales[0] > 256 and scales[0] // 2 >= 128:
        scales.insert(0, scales[0] // 2)
    return tuple(scales)


def scale_sides(o: Options) -> Tuple[int, ...]:
    """The long sides of the schedule, coarse to fine: the one rule for every caller.

    `o.scales` when given. Otherwise they follow `o.size`: n iteration counts make n scales,
    each half the next and the last at `size` (the defaults at size 512: 50 steps at 256, then
    30 at 512; at 1024: 512, then 1024). One count is one scale at `size`: the paper.
    """
    if o.scales:
        return tuple(o.scales)
    n = max(len(o.iterations), 1)
    return tuple(max(16, round(o.size / 2 ** (n - 1 - i))) for i in range(n))


def schedule(o: Options) -> List[Tuple[int, int]]:
    """[(long side, iterations)] for each scale, coarse to fine.

    Sides from `scale_sides`. The iteration counts go with the finest scales, the last count
    with the last scale; coarser scales without a count take the first count (so one count
    serves every scale, and --scales 256,512,1024 with the default 60,40 runs 60, 60, 40).
    """
    sides = scale_sides(o)
    iters = list(o.iterations)
    iters = [iters[0]] * (len(sides) - len(iters)) + iters if iters else []
    return list(zip(sides, iters))
