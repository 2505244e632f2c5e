"""The one home of every option: its default (`Options`), its description, type, range and
choices, and the surfaces that show it (`SPECS`); validation (`validate`) and the schedule rule.

The CLI's flags, the web page's controls and every check derive from here; nothing else
restates a default, a range or a help text.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
import math
import numbers
import typing
from typing import Dict, List, Optional, Tuple

# --- layer names (VGG-19, in network order) -------------------------------------------
_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block


def _layer_names() -> Tuple[str, ...]:
    names = []
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYERS: Tuple[str, ...] = _layer_names()  # conv1_1, relu1_1, ..., pool5 (37 names)

# --- string choices: each tuple feeds validation, the CLI's choices and error texts ------
POOLING = ("avg", "max")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content", "palette", "style")  # or a path to an image
BALANCES = ("photo", "absolute")
PREPROCESS = ("torch", "caffe")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
PRESERVE_COLOR = ("none", "luminance", "histogram")
COLOR_MATCH = ("chol", "pca", "sym")
STYLE_LOSSES = ("gram", "mean-std", "w2", "sliced", "neighbour")
PARAMETERIZATIONS = ("pixels", "pyramid")
RECOLOR = ("none", "oklab", "oklab-clip")
MASK_MODES = ("inside", "resize")
PRESETS = ("fast", "quality", "paper", "neighbour")
RECIPE_PATHS = ("name", "full")

# --- limits ------------------------------------------------------------------------------
MAX_INPUT_PIXELS = 100_000_000  # images larger than this are refused when loading (~10k x 10k)
MAX_SIZE = 8192  # the longest output side accepted at all

# --- the paper's network and losses ------------------------------------------------------
# The paper names conv4_2 and conv1_1 ... conv5_1. In Caffe, which the authors used, the ReLUs
# run in place, so the blobs they read under those names held the rectified responses: in our
# literal naming (convX_Y before the ReLU, reluX_Y after it) that is relu4_2 and relu1_1 ...
# relu5_1. Measured on the original VGG-19 (benchmarks/README.md): the pre-ReLU responses put
# 89-99.7% of the style loss on one layer; the rectified ones are balanced within a factor ~5.
PAPER_CONTENT_LAYERS = ("relu4_2",)
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# --style-loss neighbour (NNST, Kolkin et al. 2022): the reference's ten VGG-16 ReLUs relu1_1 ..
# relu4_3 (torchvision indices 1, 3, 6, 8, 11, 13, 15, 18, 20, 22), taken by name in VGG-19, whose
# blocks 3 and 4 have one more convolution each (relu3_4 and relu4_4 are not used).
NEIGHBOUR_LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
                    "relu4_1", "relu4_2", "relu4_3")


def validate_layers(layers) -> tuple:
    """Return the layers as a tuple, raising InvalidOption for an unknown name."""
    from .errors import choice

    layers = tuple(layers)
    for name in layers:
        choice("layer", name, LAYERS)
    return layers


# beta. --balance photo (the default) measures both losses relative to the photo, so beta is the
# price of one unit of style distance S in units of content distance K; 6 measured on the wide set
# (19 pairs of ../shared/images, 256 and 384 px: benchmarks/README.md). --balance absolute (the
# paper's losses) needs the paper-scale beta, 4e3 on the original VGG-19 (--preset paper).
DEFAULT_STYLE_WEIGHT = 6.0
ABSOLUTE_STYLE_WEIGHT = 4e3
ABSOLUTE_RANGE_WEIGHT = 3e6  # --range-weight in the paper's units (--balance absolute), as 3e4 is for photo


@dataclass(frozen=True)
class Options:
    """Every setting of a run. Field defaults are the tool's defaults.

    Loss weights follow the paper's convention: alpha (content_weight) / beta (style_weight)
    = 1e-3 on the normalised network.
    """

    # images
    size: int = 512  # long side of the output, pixels
    style_scale: float = 1.0  # style long side = content long side * style_scale
    # network
    weights: Optional[str] = None  # None: "original" (the paper's VGG-19); "torchvision"; "random"; a path
    preprocess: Optional[str] = None  # None: the weights set's own; "torch" | "caffe" for a file of your own
    # Departure (--preset paper keeps avg): max pooling, VGG's own. On the 33 wide-set pairs (384 px,
    # benchmarks/README.md) against avg: K lower on 30, S lower on 28, 27 pairs meet every target, not 22.
    pooling: str = "max"
    normalize: bool = True  # the paper's normalised network (see network.normalize_vgg)
    # losses
    content_layers: Tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: Tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: Optional[Tuple[float, ...]] = None  # None: equal, summing to 1
    content_weight: float = 1.0  # alpha
    style_weight: float = DEFAULT_STYLE_WEIGHT  # beta (alpha/beta per position; measured: benchmarks/README.md)
    balance: str = "photo"  # photo: content and style losses relative to their values at the photo (objective)
    content_target: float = 0.0  # 0: off; else beta is rescaled between scales to aim K there (engine)
    content_ceiling: float = 0.9  # a run ending further than this K from its photo is polished (engine; 0: off)
    tv_weight: float = 0.0  # the paper has no total-variation term
    range_weight: float = 3e4  # penalty on pixels outside [0, 1] (losses.range_loss; not in the paper)
    palette_weight: float = 12.0  # pixel colours vs the painting's (objective.PaletteTerm; not in the paper)
    content_average: bool = True  # L_content divided by M_l: alpha/beta independent of size (not in the paper)
    style_loss: str = "gram"
    neighbour_photo: float = 0.75  # --style-loss neighbour: the photo's share of the image whose features are matched
    rotations: bool = False  # --style-loss neighbour: also match the painting rotated by 90, 180 and 270 degrees
    # optimisation
    optimizer: str = "lbfgs"
    # The default schedule (measured on the original VGG-19: benchmarks/README.md): from the
    # content image, 60 L-BFGS steps at half the size, then 40 at full size; see `scale_sides`
    # for how it follows `size`.
    iterations: Tuple[int, ...] = (60, 40)  # one entry per scale
    scales: Tuple[int, ...] = ()  # long sides, coarse to fine; () = derived from size (scale_sides)
    init: str = "palette"  # noise | content | palette | style | path to an image (engine._initial)
    seed: int = 0
    noise_amplitude: float = 0.2  # --init noise: uniform in 0.5 +- amplitude/2 (1: the whole pixel range)
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    lbfgs_history: int = 100
    lbfgs_line_search: bool = False  # strong-Wolfe line search (more evaluations per step)
    parameterization: str = "pixels"  # what the optimiser moves: pixels | pyramid (Laplacian coefficients)
    # execution
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the CPU/GPU supports it natively
    channels_last: bool = True
    compile: bool = False  # torch.compile; repays its 10-30 s only on long runs
    threads: int = 0  # 0: every core
    # control (colour, several styles, regions)
    preserve_color: str = "none"
    recolor: str = "none"  # oklab | oklab-clip: NNST's colour step after the run (color.oklab_recolor)
    color_match: str = "pca"
    style_blend: Optional[Tuple[float, ...]] = None  # None: equal weights over style images
    content_mask: Optional[str] = None
    style_masks: Tuple[str, ...] = ()
    mask_mode: str = "inside"
    region_weights: Optional[Tuple[float, ...]] = None  # None: 1/R each
    tile: int = 0  # tile side (pixels) of the exact tiled evaluation; 0: automatic (only if needed to fit)
    # output
    recipe_paths: str = "name"  # what an output's recipe records of its inputs' paths: name | full

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Options":
        """Options from a recipe's dict; a field it lacks takes the value it had before the field
        existed (BEFORE), so an older recipe reruns as it ran, else the default."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {**BEFORE, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}}
        return cls(**kwargs)


# Fields added after recipes were first written, with the value that reproduces the runs before them.
BEFORE = {"content_ceiling": 0.0, "palette_weight": 0.0}


#: Named sets of overrides. "paper" is the exact procedure of Gatys et al. (2016).
PRESET_OVERRIDES = {
    "fast": {},
    # Longer runs, converged further: a closer match to the painting for ~2x the time of "fast"
    # (120+80 steps instead of 60+40). Max pooling fixed here so the preset stays if the default moves.
    # --content-target is no longer part of it: the run's own K after the first scale disagreed
    # with the score's (0.23 against 1.25 on brad_pitt x asheville, average pooling).
    "quality": dict(iterations=(120, 80), pooling="max"),
    "paper": dict(
        pooling="avg", normalize=True, content_layers=PAPER_CONTENT_LAYERS,
        style_layers=PAPER_STYLE_LAYERS, style_layer_weights=None, content_weight=1.0,
        balance="absolute", style_weight=ABSOLUTE_STYLE_WEIGHT, tv_weight=0.0, range_weight=0.0, palette_weight=0.0,
        style_loss="gram", content_target=0.0, content_ceiling=0.0,
        optimizer="lbfgs", iterations=(500,), scales=(), init="noise", precision="fp32",
        lbfgs_history=100, lbfgs_line_search=False,
    ),
    # NNST-Opt (Kolkin et al., arXiv 2203.13215; README "Neural neighbours"): on VGG-19 as trained (max
    # pooling, not normalised; the reference: VGG-16 so). Departure, for CPU time: 50/50/30/20 Adam steps
    # at lr 1e-2 over four scales, not 200 per scale at 2e-3, no final full-size pass (README: 76 s vs 126
    # s at 512 px for 100/100/60/30 at 5e-3, median P 0.58 vs 0.31). No colour step: LP better on 8/8.
    "neighbour": dict(
        style_loss="neighbour", style_layers=NEIGHBOUR_LAYERS, content_layers=(), style_weight=1.0,
        pooling="max", normalize=False, optimizer="adam", parameterization="pyramid",
        init="content", recolor="none", style_layer_weights=None, iterations=(50, 50, 30, 20),
        learning_rate=1e-2, range_weight=3e4, palette_weight=0.0,
    ),
}

DEFAULTS = Options()


# --- the description of every option ---------------------------------------------------------
JOBS = ("transfer", "content", "texture")
_ALL, _STYLED, _CONTENTFUL = JOBS, ("transfer", "texture"), ("transfer", "content")
# Options that fix the prepared network (engine.Stylizer); every other one may change per run.
NETWORK_FIELDS = ("weights", "preprocess", "pooling", "normalize", "device", "precision", "channels_last",
                  "compile", "threads")


@dataclass(frozen=True)
class Spec:
    """How one field of Options is described, checked and shown.

    low/high: the allowed range (inclusive; `above` makes low exclusive), checked for every
    number or every item of a list; item: a comma-separated list of this type; jobs: the verbs
    that take the option; web: shown on the web page.
    """

    help: str
    choices: Optional[Tuple[str, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    above: bool = False
    item: Optional[type] = None
    jobs: Tuple[str, ...] = _ALL
    web: bool = False

    def check(self, name: str, value) -> None:
        """Raise InvalidOption, naming the flag and the bad value, if `value` is out of range."""
        from .errors import InvalidOption, choice

        if value is None:
            return
        if self.choices is not None and isinstance(value, str):
            choice(f"{flag(name)} value", value, self.choices)
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
    "style_scale": Spec("style image long side = output long side x this", low=0.0, high=16.0, above=True,
                        jobs=_STYLED, web=True),
    "weights": Spec("VGG-19 weights: original (the default: the paper's network, installed), torchvision "
                    "(retrained, 548 MB download), random (seeded, for tests) or a local file"),
    "preprocess": Spec("input convention of --weights PATH: torch (RGB, mean/std) or caffe (BGR, 0-255, mean "
                       "pixel); a named set always uses its own", choices=PREPROCESS),
    "pooling": Spec("pooling layers (the paper: avg; default max, measured better on the wide set)",
                    choices=POOLING, web=True),
    "normalize": Spec("the paper's normalised network (mean activation 1 per filter)", web=True),
    "content_layers": Spec("comma-separated content layers", item=str, jobs=("transfer",), web=True),
    "style_layers": Spec("comma-separated style layers", item=str, jobs=("transfer",), web=True),
    "style_layer_weights": Spec("comma-separated w_l, one per style layer (default: equal, summing to 1)",
                                item=float, jobs=_STYLED, **_W),
    "content_weight": Spec("alpha, the content loss weight", jobs=_CONTENTFUL, **_W),
    "style_weight": Spec("beta, the style loss weight", jobs=_STYLED, **_W),
    "balance": Spec("photo: each loss relative to its value at the photo (content as K = |F(x)-F(c)|^2/|F(c)|^2, "
                    "each style layer as E_l(x)/E_l(photo)), so one beta means the same on every pair; absolute: "
                    "the paper's losses (the paper preset), where beta needs to be about 1e3x larger", choices=BALANCES,
                    jobs=("transfer",), web=True),
    "content_target": Spec("how much of the photo to keep, as the content distance K = |F(x)-F(c)|^2/|F(c)|^2 "
                           "at the content layers (K = 0 would be the photo itself): after each scale but the "
                           "last, beta is multiplied by this/K (x1/3..x3); 0 turns this off (not in the paper)",
                           low=0.0, high=4.0, jobs=("transfer",)),
    "content_ceiling": Spec("the most of the photo's structure a run may lose, as K (see --content-target): a run "
                            "ending above it takes half its last scale's steps again at beta x(this/K)^3 (>= x0.25), and "
                            "once more if still above; a higher --content-target raises it; 0: off (not in the paper)",
                            low=0.0, high=4.0, jobs=("transfer",)),
    "tv_weight": Spec("total-variation weight (not in the paper)", web=True, **_W),
    "range_weight": Spec("penalty on pixels outside [0, 1], keeps colours in gamut (not in the paper)", **_W),
    "palette_weight": Spec("weight of the palette term: sliced Wasserstein distance of the output's pixel colours "
                           "to the painting's (relative to the photo's; not with masks; not in the paper)",
                           jobs=("transfer",), web=True, **_W),
    "content_average": Spec("content loss per position, so alpha/beta means the same at every size",
                            jobs=_CONTENTFUL),
    "style_loss": Spec("style statistic to match (the paper: gram; neighbour: each hypercolumn of the photo "
                       "replaced by its nearest in the painting, NNST; best with the neighbour preset)",
                       choices=STYLE_LOSSES, jobs=_STYLED, web=True),
    "neighbour_photo": Spec("neighbour style loss: the photo's share (vs the current result) of the image "
                            "whose features are matched at each scale after the first (the reference: 0.75; "
                            "1: match the photo only)", low=0.0, high=1.0, jobs=("transfer",), web=True),
    "rotations": Spec("neighbour style loss: also match the painting rotated by 90, 180 and 270 degrees "
                      "(more choices of mark; 4x the search)", jobs=("transfer",), web=True),
    "optimizer": Spec("optimiser (the paper: lbfgs)", choices=OPTIMIZERS, web=True),
    "iterations": Spec("iterations, or one count per scale, the last for the finest: 300,100", item=int,
                       low=0, high=100_000, web=True),
    "scales": Spec("coarse-to-fine long sides, e.g. 256,512, or 'auto' (halving down to about 256)", item=int,
                   low=16, high=MAX_SIZE, web=True),
    "init": Spec("starting image: noise | content | palette (the photo recoloured to the painting's colour mean "
                 "and covariance) | style | PATH (content and texture jobs start from noise)",
                 web=True),
    "seed": Spec("random seed (noise, projections)", low=0, high=2**63 - 1, web=True),
    "noise_amplitude": Spec("--init noise: uniform in 0.5 +- amplitude/2 (1: the whole pixel range)",
                            low=0.0, high=1.0),
    "learning_rate": Spec("Adam's step size (pixels in [0, 1]); used only with --optimizer adam", low=0.0,
                          high=1e3, above=True, web=True),
    "lbfgs_history": Spec("L-BFGS history size", low=1, high=10_000),
    "lbfgs_line_search": Spec("L-BFGS strong-Wolfe line search (always on for texture)", jobs=_CONTENTFUL,
                              web=True),
    "parameterization": Spec("what the optimiser moves: pixels (the paper) or pyramid (the coefficients of a "
                             "Laplacian pyramid of the image, as NNST and STROTSS: coarse structure moves first)",
                             choices=PARAMETERIZATIONS, web=True),
    "device": Spec("where to compute", choices=DEVICES),
    "precision": Spec("auto: bf16 autocast where supported natively", choices=PRECISIONS, web=True),
    "channels_last": Spec("channels-last memory layout"),
    "compile": Spec("torch.compile the network"),
    "threads": Spec("CPU threads (0: torch's default, every core)", low=0, high=4096),
    "preserve_color": Spec("keep the content's colours (1606.05897)", choices=PRESERVE_COLOR,
                           jobs=("transfer",), web=True),
    "recolor": Spec("colour step after the run (NNST's): oklab keeps the result's lightness, takes the photo's "
                    "chroma moved to the painting's statistics, out-of-gamut colours lose chroma, not hue; "
                    "oklab-clip clips channels as the reference does", choices=RECOLOR, jobs=("transfer",), web=True),
    "color_match": Spec("matrix for --preserve-color histogram", choices=COLOR_MATCH, jobs=("transfer",), web=True),
    "style_blend": Spec("comma-separated blend weights, one per style image", item=float, jobs=("transfer",),
                        web=True, **_W),
    "content_mask": Spec("regions of the output: a label image with values 0..R-1, or comma-separated "
                         "black-and-white masks, one per region (1611.07865)", jobs=("transfer",)),
    "style_masks": Spec("one per style image, comma-separated: a label image, region numbers (0 or 0+2) for "
                        "the whole image, or 'all'", item=str, jobs=("transfer",)),
    "mask_mode": Spec("how masks reach each layer: inside (eroded, the authors' default) | resize",
                      choices=MASK_MODES, jobs=("transfer",)),
    "region_weights": Spec("comma-separated lambda_r per region (default 1/R)", item=float, jobs=("transfer",),
                           **_W),
    "tile": Spec("evaluate the loss exactly in tiles of this many pixels (0: automatic, only when the run "
                 "would not fit in memory otherwise)", low=0, high=MAX_SIZE),
    "recipe_paths": Spec("what the recipe embedded in an output records of the inputs' paths: name (the file "
                         "name; no folders, no user name) or full (the absolute path)", choices=RECIPE_PATHS),
}
assert set(SPECS) == {f.name for f in dataclasses.fields(Options)}, "every option needs a Spec"
# What a job sets whatever its options say (engine._job_options); --help shows these defaults.
JOB_DEFAULTS = {"content": {"init": "noise"}, "texture": {"init": "noise", "lbfgs_line_search": True}}


def job_default(job: str, name: str):
    """The default of option `name` as job `job` runs it."""
    return JOB_DEFAULTS.get(job, {}).get(name, getattr(DEFAULTS, name))


_TYPES = typing.get_type_hints(Options)  # field -> int, float, str, bool, Optional[...], Tuple[..., ...]
_KINDS = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "true or false values")}


def _is(value, kind: type) -> bool:
    """Whether `value` has the Options field type `kind` (numpy scalars and paths accepted)."""
    if kind is bool:
        return isinstance(value, bool) or type(value).__name__ in ("bool", "bool_") or (
            isinstance(value, numbers.Integral) and value in (0, 1))
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
    from .errors import InvalidOption

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
        raise InvalidOption(f"{flag(name)} must be {want}, got {shown if len(shown) <= 60 else shown[:57] + '...'}")


def auto_scales(size: int) -> Tuple[int, ...]:
    """--scales auto: halve the size until it is <= 256 (at least 128 px): 1024 -> 256, 512, 1024."""
    scales = [size]
    while scales[0] > 256 and scales[0] // 2 >= 128:
        scales.insert(0, scales[0] // 2)
    return tuple(scales)


def options_from(options: Optional[Options] = None, overrides: Optional[dict] = None) -> Options:
    """Options from Python keyword arguments, as the API and figures take them."""
    # Accept a bare int for iterations/scales and lists for tuple fields; scales="auto" as in
    # the CLI (halving from the output size); masks as paths, lists of paths or a
    # comma-separated string; preset="quality" | "paper" | "fast" applies config.PRESET_OVERRIDES
    # first (the other keywords override it).
    from .errors import choice

    overrides = dict(overrides or {})

    preset = overrides.pop("preset", None)
    if preset is not None:
        options = (options or Options()).replace(**PRESET_OVERRIDES[choice("preset", preset, PRESETS)])
    if overrides.get("scales") == "auto":
        overrides["scales"] = auto_scales(overrides.get("size", (options or Options()).size))
    if isinstance(overrides.get("content_mask"), (list, tuple)):
        overrides["content_mask"] = ",".join(str(p) for p in overrides["content_mask"])
    elif overrides.get("content_mask") is not None:
        overrides["content_mask"] = str(overrides["content_mask"])
    if isinstance(overrides.get("style_masks"), (str, os.PathLike)):
        overrides["style_masks"] = tuple(str(overrides["style_masks"]).split(","))
    elif overrides.get("style_masks") is not None:
        overrides["style_masks"] = tuple(str(p) for p in overrides["style_masks"])
    if overrides.get("tile") == "auto":
        overrides["tile"] = 0
    for key in ("iterations", "scales", "content_layers", "style_layers", "style_layer_weights",
                "style_blend", "style_masks", "region_weights"):
        v = overrides.get(key)
        if isinstance(v, int):
            overrides[key] = (v,)
        elif isinstance(v, str) and key.endswith("layers"):
            overrides[key] = tuple(s for s in v.split(",") if s)
        elif isinstance(v, list):
            overrides[key] = tuple(v)
    return (options or Options()).replace(**overrides)


def validate(o: Options, job: str = "transfer", n_styles: int = 1) -> Options:
    """Check every field against its Spec, then the rules between fields; return `o`.

    The one validation of a run: the CLI, the Python API, the web page and batch all reach it
    through engine.Stylizer.run (the page also calls it early, before queueing a job). --init
    PATH is read by the engine, which fails on an unreadable file before any heavy work.
    """
    from .errors import InvalidOption, choice

    choice("job", job, JOBS)
    for name, spec in SPECS.items():
        check_type(name, getattr(o, name))
        spec.check(name, getattr(o, name))
    validate_layers(o.content_layers)
    validate_layers(o.style_layers)
    if job == "transfer" and not (o.content_layers or o.style_layers):
        raise InvalidOption("no content or style layers given")
    if job != "transfer" and not (o.content_layers if job == "content" else o.style_layers):
        raise InvalidOption(f"the {job} job needs at least one {'content' if job == 'content' else 'style'} layer")
    if o.style_layer_weights is not None and len(o.style_layer_weights) != len(o.style_layers):
        raise InvalidOption(f"--style-layer-weights has {len(o.style_layer_weights)} values for "
                            f"{len(o.style_layers)} style layers")
    scales = scale_sides(o)
    SPECS["scales"].check("scales", scales)
    if not 1 <= len(o.iterations) <= len(scales):
        raise InvalidOption(f"--iterations needs 1 to {len(scales)} values (one per scale, the last for the "
                            f"finest), got {','.join(map(str, o.iterations)) or 'none'}")
    if o.style_loss == "neighbour":
        # One clear line for what the nearest-neighbour mode does not do (yet): its targets are
        # one painting's hypercolumns matched to the whole picture.
        if job != "transfer":
            raise InvalidOption(f"--style-loss neighbour works only in the transfer job, not {job}")
        if n_styles > 1:
            raise InvalidOption("--style-loss neighbour takes one style image; blend several with --style-loss gram")
        if o.content_mask or o.style_masks:
            raise InvalidOption("--style-loss neighbour does not support regions (--content-mask, --style-masks); "
                                "use --style-loss gram for spatial control")
    if o.style_blend is not None:
        if len(o.style_blend) != n_styles:
            raise InvalidOption(f"--style-blend has {len(o.style_blend)} weights for {n_styles} style images")
        if sum(o.style_blend) <= 0:
            raise InvalidOption("--style-blend weights must have a positive sum")
    return o


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
