"""The one home of every default and every string choice.

The CLI, the web page and the batch runner read their defaults and choices from here;
nothing else restates them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

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
INITS = ("noise", "content", "style")  # or a path to an image
PREPROCESS = ("torch", "caffe")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
PRESERVE_COLOR = ("none", "luminance", "histogram")
COLOR_MATCH = ("chol", "pca", "sym")
STYLE_LOSSES = ("gram", "mean-std", "w2", "sliced")
MASK_MODES = ("inside", "resize")
PRESETS = ("fast", "quality", "paper")

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


DEFAULT_STYLE_WEIGHT = 4e3  # beta; measured on the original VGG-19 (benchmarks/README.md)


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
    pooling: str = "avg"  # the paper replaces max by average pooling
    normalize: bool = True  # the paper's normalised network (see features.normalize_vgg)
    # losses
    content_layers: Tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: Tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: Optional[Tuple[float, ...]] = None  # None: equal, summing to 1
    content_weight: float = 1.0  # alpha
    style_weight: float = DEFAULT_STYLE_WEIGHT  # beta (alpha/beta per position; measured: benchmarks/README.md)
    tv_weight: float = 0.0  # the paper has no total-variation term
    range_weight: float = 3e6  # penalty on pixels outside [0, 1] (losses.range_loss; not in the paper)
    content_average: bool = True  # L_content divided by M_l: alpha/beta independent of size (not in the paper)
    style_loss: str = "gram"
    # optimisation
    optimizer: str = "lbfgs"
    # The default schedule (measured on the original VGG-19: benchmarks/README.md): from the
    # content image, 60 L-BFGS steps at half the size, then 40 at full size; see `scale_sides`
    # for how it follows `size`.
    iterations: Tuple[int, ...] = (60, 40)  # one entry per scale
    scales: Tuple[int, ...] = ()  # long sides, coarse to fine; () = derived from size (scale_sides)
    init: str = "content"  # noise | content | style | path to an image (transfer; see transfer.run)
    seed: int = 0
    noise_amplitude: float = 0.2  # --init noise: uniform in 0.5 +- amplitude/2 (1: the whole pixel range)
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    lbfgs_history: int = 100
    lbfgs_line_search: bool = False  # strong-Wolfe line search (more evaluations per step)
    # execution
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the CPU/GPU supports it natively
    channels_last: bool = True
    compile: bool = False  # torch.compile; repays its 10-30 s only on long runs
    threads: int = 0  # 0: every core
    # control (colour, several styles, regions)
    preserve_color: str = "none"
    color_match: str = "pca"
    style_blend: Optional[Tuple[float, ...]] = None  # None: equal weights over style images
    content_mask: Optional[str] = None
    style_masks: Tuple[str, ...] = ()
    mask_mode: str = "inside"
    region_weights: Optional[Tuple[float, ...]] = None  # None: 1/R each
    tile: int = 0  # tile side (pixels) of the exact tiled evaluation; 0: automatic (only if needed to fit)

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Options":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**kwargs)


#: Named sets of overrides. "paper" is the exact procedure of Gatys et al. (2016).
PRESET_OVERRIDES = {
    "fast": {},
    # Longer runs, converged further: a closer match to the painting for ~3x the time of "fast".
    # Max pooling (VGG's own; the paper prefers avg): measured at 256 px on three pairs, it gave
    # both a lower style score and a lower content score at 200+200 steps (benchmarks/README.md).
    "quality": dict(iterations=(200, 200), pooling="max"),
    "paper": dict(
        pooling="avg", normalize=True, content_layers=PAPER_CONTENT_LAYERS,
        style_layers=PAPER_STYLE_LAYERS, style_layer_weights=None, content_weight=1.0,
        style_weight=DEFAULT_STYLE_WEIGHT, tv_weight=0.0, range_weight=0.0, style_loss="gram",
        optimizer="lbfgs", iterations=(500,), scales=(), init="noise", precision="fp32",
        lbfgs_history=100, lbfgs_line_search=False,
    ),
}

DEFAULTS = Options()


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
