"""The seam for a style method: what the engine, the memory plan, tiling and the option checks
ask of one. A method is one module with one `Method` subclass, registered by name
(painterly.methods.register); nothing outside methods/ names a method.

Per scale the engine asks the method for its style targets (`targets`, computed once per
style image and remembered by the Stylizer's cache), its style term (`term`), and lets it
act before the optimisation starts there (`before_scale`: the neighbour method's re-matching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from painterly.objective import Objective, Term
from painterly.options import Options, Preset


@dataclass
class StyleInputs:
    """What a method's targets are made from at one scale.

    features: features(x, layers) -> {layer: (1, N, h, w)}; styles: the style images at this
    scale (1, C, h, w); blend: their weights (summing to 1); masks: an imaging.masks.ScaleMasks
    or None; tiler: an objective.tiling.Tiler when the scale is evaluated in tiles, else None;
    cache(style tensor, compute) -> targets: the Stylizer's per-style cache.
    """

    features: Callable
    styles: Sequence[torch.Tensor]
    blend: Sequence[float]
    masks: object = None
    tiler: object = None
    cache: Optional[Callable] = None

    def cached(self, s: torch.Tensor, compute: Callable):
        return self.cache(s, compute) if self.cache is not None else compute(s)


class Method:
    """A style method. Subclasses set `names` and override what differs from these defaults."""

    #: the --style-loss values this method takes (the first names the method)
    names: Tuple[str, ...] = ()
    #: its own preset, if any (added to --preset's choices when the method registers)
    preset: Optional[Preset] = None
    #: whether --content-ceiling may polish its runs (the polish reads the content term)
    polishes: bool = True
    #: whether the final losses are re-evaluated in fp32 on the clipped result (targets from a search
    #: would be stale there: such a method reports its last step's losses)
    final_losses: bool = True
    #: whether its terms take --deep-split (deep layers at half resolution at the finest scale)
    splits: bool = True

    def check(self, o: Options, job: str, n_styles: int) -> None:
        """Raise InvalidOption, in one line, for what this method does not do."""

    def cache_key(self, o: Options) -> tuple:
        """What, besides the style's pixels, its cached targets depend on."""
        return (tuple(o.style_layers), o.style_loss, o.precision)

    def targets(self, o: Options, inputs: StyleInputs):
        """The style targets at one scale (no gradient), or None without styles."""
        raise NotImplementedError

    def term(self, o: Options, targets) -> Term:
        """The style term of the objective, named "style"."""
        raise NotImplementedError

    def before_scale(
        self, objective: Objective, x: torch.Tensor, content: Optional[torch.Tensor], first: bool, o: Options
    ) -> None:
        """Called after the scale's start image `x` is made and before its steps."""

    def extra_bytes(
        self, o: Options, job: str, pixels: int, style_pixels: Sequence[int], tiled: bool
    ) -> float:
        """Memory this method holds beyond the network's activations at one scale, in bytes
        (runtime.memory adds it to its estimate)."""
        return 0.0

    def device_bytes(
        self, o: Options, job: str, pixels: int, style_pixels: Sequence[int], tiled: bool
    ) -> float:
        """extra_bytes on a GPU, where the estimate counts the run's tensors alone
        (runtime.device_memory): by default the same."""
        return self.extra_bytes(o, job, pixels, style_pixels, tiled)
