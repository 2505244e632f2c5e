"""What a run reports: an `Iterate` per step (to the callback) and the `Result` at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch
from PIL import Image

from painterly import __version__
from painterly.imaging import color, describe, fit_to, save_image, to_pil, to_tensor, write_json
from painterly.net.device import on_host_if_unsupported
from painterly.objective import layer_weights
from painterly.options import Options


@dataclass
class Iterate:
    """One optimisation step, as passed to `callback`. `image()` renders it on demand."""

    step: int  # 1-based, counted over all scales
    total: int  # steps in the whole schedule
    losses: Dict[str, float]  # "content", "style", "tv", "range", "total" (weighted, this step's point)
    elapsed: float  # seconds since the run started
    size: tuple  # (width, height) of the current scale
    _render: Callable[[], Image.Image] = field(repr=False, default=None)
    scale: tuple = (1, 1)  # (k, n): this step is at scale k of the schedule's n
    scale_step: tuple = (0, 0)  # (i, m): step i of this scale's m
    left: Optional[float] = None  # seconds left as the engine measured them (see eta)

    @property
    def eta(self) -> float:
        """Seconds left: the engine's, from measured steps (runtime.clock.StepClock); else extrapolated."""
        left = self.left
        return self.elapsed / max(self.step, 1) * (self.total - self.step) if left is None else left

    def image(self) -> Image.Image:
        return self._render()


@dataclass
class Result:
    image: Image.Image
    losses: dict  # {"content": {layer: L}, "style": {layer: E_l}, "tv": float, "total": float}
    options: Options
    recipe: dict  # everything needed to regenerate the image; embedded when saving
    iterations: int
    seconds: float
    stopped: bool = False
    # The output as (1, 3, H, W) float RGB before 8-bit rounding: the optimised pixels clipped to
    # [0, 1]; in luminance mode the clipped Y recombined with the content's I and Q, exactly (so
    # it may leave [0, 1], and `image` clips it).
    pixels: Optional[torch.Tensor] = field(default=None, repr=False)
    style_weights: tuple = ()  # beta of each scale run and of a polish (--content-target, --content-ceiling)

    def save(self, path, report=None) -> None:
        """Write the image with its recipe embedded, and the report JSON if a path is given
        (each atomically: a file is either the old one or the complete new one)."""
        save_image(self.image, path, self.recipe)
        if report:
            write_json(report, self.report())

    def report(self) -> dict:
        """The --report JSON: options, iterations, seconds, final per-layer losses."""
        return {
            "version": __version__,
            "options": self.recipe["options"],
            "weights_sha256": self.recipe["weights_sha256"],
            "ran_on": self.recipe.get("ran_on"),  # the device and precision used (not "auto")
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "losses": self.losses,
            "style_weights": list(self.style_weights),
        }


def output_pixels(x: torch.Tensor, content_img, luminance: bool, size) -> torch.Tensor:
    """The RGB output before clipping: in luminance mode Y recombined with the content's I, Q."""
    x = x.detach()
    if luminance:
        c = to_tensor(fit_to(content_img, size)).to(x.device)
        x = on_host_if_unsupported(color.recombine_luminance, x.expand(-1, 3, -1, -1), c)
    return x


def render(x: torch.Tensor, content_img, luminance: bool, size) -> Image.Image:
    """Pixels -> PIL, recombining with the content's colour in luminance mode."""
    return to_pil(output_pixels(x, content_img, luminance, size).clamp(0, 1).float().cpu())


def make_recipe(
    job: str,
    o: Options,
    sha256: str,
    preprocess: str,
    content,
    content_img,
    styles,
    style_imgs,
    blend,
    ran_on: Optional[dict] = None,
) -> dict:
    """Everything needed to regenerate a run's image (`painterly rerun`): its job, options and
    weights, and each input by name and the hash of its pixels; embedded when saving.

    ran_on: the device and precision the run actually used ({"device": "cuda:0", "precision":
    "bf16"}), which --device auto and --precision auto leave to the machine. A record, not an
    option: rerun reads the options (so "auto" again), never this."""
    recipe = {
        "painterly": __version__,
        "job": job,
        "options": o.to_dict(),
        "weights_sha256": sha256,
        "preprocess": preprocess,
        "ran_on": ran_on,
        "seed": o.seed,
        "content": describe(content, content_img, o.recipe_paths) if content is not None else None,
        "styles": [describe(s, img, o.recipe_paths) for s, img in zip(styles, style_imgs)],
        "style_blend": blend,
        "style_layer_weights": layer_weights(o),
    }
    recipe["options"]["style_layer_weights"] = layer_weights(o)
    recipe["options"]["weights_sha256"] = sha256
    return recipe
