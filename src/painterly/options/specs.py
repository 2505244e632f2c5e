"""The description of every option (`SPECS`): its help, choices, range and the surfaces that
show it, and the type check of a value (no torch here).

The CLI's flags, the web page's controls, batch manifests and every check derive from here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import typing
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from painterly.options.fields import (
    BALANCES,
    COLOR_MATCH,
    DEEP_SPLITS,
    DEVICE_INDEXED,
    DEVICES,
    MASK_MODES,
    MAX_SIZE,
    OPTIMIZERS,
    PARAMETERIZATIONS,
    POOLING,
    PRECISIONS,
    PREPROCESS,
    PRESERVE_COLOR,
    RECIPE_PATHS,
    RECOLOR,
    Options,
)
from painterly.options.presets import JOBS

_ALL, _STYLED, _CONTENTFUL = JOBS, ("transfer", "texture"), ("transfer", "content")

# The names --style-loss takes: each style statistic and each method registers its own
# (painterly.methods.register); this list is the view the option's checks and choices read.
STYLE_LOSSES: List[str] = []


@dataclass(frozen=True)
class Spec:
    """How one field of Options is described, checked and shown.

    low/high: the allowed range (inclusive; `above` makes low exclusive), checked for every
    number or every item of a list; item: a comma-separated list of this type; jobs: the verbs
    that take the option; web: shown on the web page; pattern: (regex, as shown) of a family of
    values accepted besides the choices (--device cuda:N).
    """

    help: str
    choices: Optional[Tuple[str, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    above: bool = False
    item: Optional[type] = None
    jobs: Tuple[str, ...] = _ALL
    web: bool = False
    pattern: Optional[Tuple[str, str]] = None

    @property
    def forms(self) -> Tuple[str, ...]:
        """The choices as shown: each one, and the pattern's family (cuda:N)."""
        return tuple(self.choices or ()) + ((self.pattern[1],) if self.pattern else ())

    def check(self, name: str, value) -> None:
        """Raise InvalidOption, naming the flag and the bad value, if `value` is out of range."""
        from painterly.errors import InvalidOption, choice

        if value is None:
            return
        if self.choices is not None and isinstance(value, str):
            if self.pattern and re.fullmatch(self.pattern[0], value):
                return
            if value not in self.choices:
                choice(f"{flag(name)} value", value, self.forms)
                # the pattern's placeholder itself (cuda:N) is no value
                raise InvalidOption(f"{flag(name)} takes a number for N, got '{value}'")
            return
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidOption(f"{flag(name)} must be a finite number, got {v}")
            lo_ok = self.low is None or (v > self.low if self.above else v >= self.low)
            if not lo_ok or (self.high is not None and v > self.high):
                raise InvalidOption(f"{flag(name)} must be {self.range_text()}, got {v}")

    def range_text(self) -> str:
        lo = None if self.low is None else f"{'>' if self.above else '>='} {_num(self.low)}"
        if self.high is None:
            return lo or "a number"
        if self.low is not None and not self.above:
            return f"within {_num(self.low)}..{_num(self.high)}"
        return f"{lo} and <= {_num(self.high)}" if lo else f"<= {_num(self.high)}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def flag(name: str) -> str:
    """The command-line flag of an Options field: style_weight -> --style-weight."""
    return "--" + name.replace("_", "-")


_W = dict(low=0.0, high=1e30)  # a loss weight
SPECS: Dict[str, Spec] = {
    "size": Spec("long side of the output in pixels", low=16, high=MAX_SIZE, web=True),
    "style_scale": Spec(
        "style image long side = output long side x this",
        low=0.0,
        high=16.0,
        above=True,
        jobs=_STYLED,
        web=True,
    ),
    "weights": Spec(
        "VGG-19 weights: original (the default: the paper's network, installed), torchvision "
        "(retrained, 548 MB download), random (seeded, for tests) or a local file"
    ),
    "preprocess": Spec(
        "input convention of --weights PATH: torch (RGB, mean/std) or caffe (BGR, 0-255, mean "
        "pixel); a named set always uses its own",
        choices=PREPROCESS,
    ),
    "pooling": Spec(
        "pooling layers (the paper: avg; default max, measured better on the wide set)",
        choices=POOLING,
        web=True,
    ),
    "normalize": Spec("the paper's normalised network (mean activation 1 per filter)", web=True),
    "content_layers": Spec("comma-separated content layers", item=str, jobs=("transfer",), web=True),
    "style_layers": Spec("comma-separated style layers", item=str, jobs=("transfer",), web=True),
    "style_layer_weights": Spec(
        "comma-separated w_l, one per style layer (default: equal, summing to 1)",
        item=float,
        jobs=_STYLED,
        **_W,
    ),
    "content_weight": Spec("alpha, the content loss weight", jobs=_CONTENTFUL, **_W),
    "style_weight": Spec("beta, the style loss weight", jobs=_STYLED, **_W),
    "balance": Spec(
        "photo: each loss relative to its value at the photo (content as K = |F(x)-F(c)|^2/|F(c)|^2, "
        "each style layer as E_l(x)/E_l(photo)), so one beta means the same on every pair; absolute: "
        "the paper's losses (the paper preset), where beta needs to be about 1e3x larger",
        choices=BALANCES,
        jobs=("transfer",),
        web=True,
    ),
    "content_target": Spec(
        "how much of the photo to keep, as the content distance K = |F(x)-F(c)|^2/|F(c)|^2 "
        "at the content layers (K = 0 would be the photo itself): after each scale but the "
        "last, beta is multiplied by this/K (x1/3..x3); 0 turns this off (not in the paper)",
        low=0.0,
        high=4.0,
        jobs=("transfer",),
    ),
    "content_ceiling": Spec(
        "the most of the photo's structure a run may lose, as K (see --content-target): a run "
        "ending above it takes half its last scale's steps again at beta x(this/K)^3 (>= x0.25), and "
        "once more if still above; a higher --content-target raises it; 0: off (not in the paper)",
        low=0.0,
        high=4.0,
        jobs=("transfer",),
    ),
    "tv_weight": Spec("total-variation weight (not in the paper)", web=True, **_W),
    "range_weight": Spec("penalty on pixels outside [0, 1], keeps colours in gamut (not in the paper)", **_W),
    "palette_weight": Spec(
        "weight of the palette term: sliced Wasserstein distance of the output's pixel colours "
        "to the painting's (relative to the photo's; not with masks; not in the paper)",
        jobs=("transfer",),
        web=True,
        **_W,
    ),
    "content_average": Spec(
        "content loss per position, so alpha/beta means the same at every size", jobs=_CONTENTFUL
    ),
    "style_loss": Spec(
        "style statistic to match (the paper: gram; neighbour: each hypercolumn of the photo "
        "replaced by its nearest in the painting, NNST; best with the neighbour preset)",
        choices=STYLE_LOSSES,
        jobs=_STYLED,
        web=True,
    ),
    "neighbour_photo": Spec(
        "neighbour style loss: the photo's share (vs the current result) of the image "
        "whose features are matched at each scale after the first (the reference: 0.75; "
        "1: match the photo only)",
        low=0.0,
        high=1.0,
        jobs=("transfer",),
        web=True,
    ),
    "rotations": Spec(
        "neighbour style loss: also match the painting rotated by 90, 180 and 270 degrees "
        "(more choices of mark; 4x the search)",
        jobs=("transfer",),
        web=True,
    ),
    "fused_cosine": Spec(
        "neighbour style loss: its cosine and gradient computed in one pass, without the "
        "normalised copy of every hypercolumn (the same function; 0.76x the time of a 1024 px "
        "step); off: the plain formula, which pictures made before this option rerun with "
        "(the two differ by float rounding)",
        jobs=("transfer",),
    ),
    "optimizer": Spec("optimiser (the paper: lbfgs)", choices=OPTIMIZERS, web=True),
    "iterations": Spec(
        "iterations, or one count per scale, the last for the finest: 300,100",
        item=int,
        low=0,
        high=100_000,
        web=True,
    ),
    "scales": Spec(
        "coarse-to-fine long sides, e.g. 256,512, or 'auto' (halving down to about 256)",
        item=int,
        low=16,
        high=MAX_SIZE,
        web=True,
    ),
    "deep_split": Spec(
        "at the finest of several scales, the layers after this ReLU see the image at half "
        "resolution (a 2x2 average of its activations): the deep layers' statistics and the "
        "content describe what the coarser scales laid out, so each finest step costs about half; "
        "none: every layer sees every pixel, as the paper (not with tiling, masks or the "
        "neighbour method; not in the paper)",
        choices=DEEP_SPLITS,
        web=True,
    ),
    "init": Spec(
        "starting image: noise | content | palette (the photo recoloured to the painting's colour mean "
        "and covariance) | style | PATH (content and texture jobs start from noise)",
        web=True,
    ),
    "seed": Spec("random seed (noise, projections)", low=0, high=2**63 - 1, web=True),
    "noise_amplitude": Spec(
        "--init noise: uniform in 0.5 +- amplitude/2 (1: the whole pixel range)", low=0.0, high=1.0
    ),
    "learning_rate": Spec(
        "Adam's step size (pixels in [0, 1]); used only with --optimizer adam",
        low=0.0,
        high=1e3,
        above=True,
        web=True,
    ),
    "lbfgs_history": Spec("L-BFGS history size", low=1, high=10_000),
    "lbfgs_line_search": Spec(
        "L-BFGS strong-Wolfe line search (always on for texture)", jobs=_CONTENTFUL, web=True
    ),
    "parameterization": Spec(
        "what the optimiser moves: pixels (the paper) or pyramid (the coefficients of a "
        "Laplacian pyramid of the image, as NNST and STROTSS: coarse structure moves first)",
        choices=PARAMETERIZATIONS,
        web=True,
    ),
    "device": Spec(
        "where to compute: auto (CUDA, else Apple's MPS, else the CPU), cpu, cuda (the current "
        "CUDA device), cuda:N (CUDA device N) or mps",
        choices=DEVICES,
        pattern=(DEVICE_INDEXED, "cuda:N"),
    ),
    "precision": Spec("auto: bf16 autocast where supported natively", choices=PRECISIONS, web=True),
    "channels_last": Spec("channels-last memory layout"),
    "compile": Spec("torch.compile the network"),
    "threads": Spec("CPU threads (0: torch's default, every core)", low=0, high=4096),
    "deterministic": Spec(
        "CUDA: deterministic kernels, so a run repeats its bytes on the same machine and software "
        "(--no-deterministic: cuDNN picks the fastest kernels by timing them, faster and not "
        "repeatable); no effect on the CPU, which always repeats its bytes"
    ),
    "preserve_color": Spec(
        "keep the content's colours (1606.05897)", choices=PRESERVE_COLOR, jobs=("transfer",), web=True
    ),
    "recolor": Spec(
        "colour step after the run (NNST's): oklab keeps the result's lightness, takes the photo's "
        "chroma moved to the painting's statistics, out-of-gamut colours lose chroma, not hue; "
        "oklab-clip clips channels as the reference does",
        choices=RECOLOR,
        jobs=("transfer",),
        web=True,
    ),
    "color_match": Spec(
        "matrix for --preserve-color histogram", choices=COLOR_MATCH, jobs=("transfer",), web=True
    ),
    "style_blend": Spec(
        "comma-separated blend weights, one per style image", item=float, jobs=("transfer",), web=True, **_W
    ),
    "content_mask": Spec(
        "regions of the output: a label image with values 0..R-1, or comma-separated "
        "black-and-white masks, one per region (1611.07865)",
        jobs=("transfer",),
    ),
    "style_masks": Spec(
        "one per style image, comma-separated: a label image, region numbers (0 or 0+2) for "
        "the whole image, or 'all'",
        item=str,
        jobs=("transfer",),
    ),
    "mask_mode": Spec(
        "how masks reach each layer: inside (eroded, the authors' default) | resize",
        choices=MASK_MODES,
        jobs=("transfer",),
    ),
    "region_weights": Spec(
        "comma-separated lambda_r per region (default 1/R)", item=float, jobs=("transfer",), **_W
    ),
    "tile": Spec(
        "evaluate the loss exactly in tiles of this many pixels (0: automatic, only when the run "
        "would not fit in memory otherwise)",
        low=0,
        high=MAX_SIZE,
    ),
    "recipe_paths": Spec(
        "what the recipe embedded in an output records of the inputs' paths: name (the file "
        "name; no folders, no user name) or full (the absolute path)",
        choices=RECIPE_PATHS,
    ),
}
assert set(SPECS) == {f.name for f in dataclasses.fields(Options)}, "every option needs a Spec"


_TYPES = typing.get_type_hints(Options)  # field -> int, float, str, bool, Optional[...], Tuple[..., ...]
_KINDS = {
    int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    bool: ("true or false", "true or false values"),
}


def _is(value, kind: type) -> bool:
    """Whether `value` has the Options field type `kind` (numpy scalars and paths accepted)."""
    if kind is bool:
        return (
            isinstance(value, bool)
            or type(value).__name__ in ("bool", "bool_")
            or (isinstance(value, numbers.Integral) and value in (0, 1))
        )
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, (str, os.PathLike))


def check_type(name: str, value) -> None:
    """Raise InvalidOption unless `value` has the type of Options field `name` (a crafted
    recipe, a manifest or the Python API can pass anything; the CLI's parser already types)."""
    from painterly.errors import InvalidOption

    hint = _TYPES[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        if value is None:
            return
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        ok = isinstance(value, (tuple, list)) and all(_is(v, args[0]) for v in value)
        want = f"a comma-separated list of {_KINDS[args[0]][1]}"
    else:
        ok, want = _is(value, hint), _KINDS[hint][0]
    if not ok:
        shown = repr(value)
        raise InvalidOption(
            f"{flag(name)} must be {want}, got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        )
