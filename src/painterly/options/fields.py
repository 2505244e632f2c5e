"""`Options`: every setting of a run, with the tool's defaults (no torch here).

The option's description, type, range and surfaces are its Spec (specs.py); the presets and
the job rule are in presets.py; checks in validate.py. Nothing else restates a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

from painterly.options.layers import LAYERS, PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS

# --- string choices: each tuple feeds validation, the CLI's choices and error texts ------
POOLING = ("avg", "max")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("noise", "content", "palette", "style")  # or a path to an image
BALANCES = ("photo", "absolute")
PREPROCESS = ("torch", "caffe")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N (DEVICE_INDEXED), one CUDA device of several
DEVICE_INDEXED = r"cuda:\d+"
PRECISIONS = ("auto", "fp32", "bf16")
PRESERVE_COLOR = ("none", "luminance", "histogram")
COLOR_MATCH = ("chol", "pca", "sym")
PARAMETERIZATIONS = ("pixels", "pyramid")
# --deep-split: none, or the ReLU after which the finest scale halves the resolution
DEEP_SPLITS = ("none",) + tuple(l for l in LAYERS if l.startswith("relu"))
RECOLOR = ("none", "oklab", "oklab-clip")
MASK_MODES = ("inside", "resize")
RECIPE_PATHS = ("name", "full")

# --- limits ------------------------------------------------------------------------------
MAX_INPUT_PIXELS = 100_000_000  # images larger than this are refused when loading (~10k x 10k)
MAX_SIZE = 8192  # the longest output side accepted at all

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
    normalize: bool = True  # the paper's normalised network (see net.normalize.normalize_vgg)
    # losses
    content_layers: Tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: Tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: Optional[Tuple[float, ...]] = None  # None: equal, summing to 1
    content_weight: float = 1.0  # alpha
    # beta (alpha/beta per position; measured: benchmarks/README.md)
    style_weight: float = DEFAULT_STYLE_WEIGHT
    # photo: content and style losses relative to their values at the photo (objective)
    balance: str = "photo"
    # 0: off; else beta is rescaled between scales to aim K there (optim/policy.py)
    content_target: float = 0.0
    # a run ending further than this K from its photo is polished (optim/policy.py; 0: off)
    content_ceiling: float = 0.9
    tv_weight: float = 0.0  # the paper has no total-variation term
    # penalty on pixels outside [0, 1] (losses/pixel.py range_loss; not in the paper)
    range_weight: float = 3e4
    # pixel colours vs the painting's (objective/terms.py PaletteTerm; not in the paper)
    palette_weight: float = 12.0
    # L_content divided by M_l: alpha/beta independent of size (not in the paper)
    content_average: bool = True
    style_loss: str = "gram"
    # --style-loss neighbour: the photo's share of the image whose features are matched
    neighbour_photo: float = 0.75
    # --style-loss neighbour: also match the painting rotated by 90, 180 and 270 degrees
    rotations: bool = False
    # --style-loss neighbour: the cosine loss's gradient written out (methods/neighbour.py FusedCosine)
    fused_cosine: bool = True
    # optimisation
    optimizer: str = "lbfgs"
    # The default schedule (measured on the original VGG-19: benchmarks/README.md): from the
    # content image, 60 L-BFGS steps at half the size, then 40 at full size; see `scale_sides`
    # for how it follows `size`.
    iterations: Tuple[int, ...] = (60, 40)  # one entry per scale
    scales: Tuple[int, ...] = ()  # long sides, coarse to fine; () = derived from size (scale_sides)
    # the finest scale of several: the layers after this one see half the resolution (net/vgg.py)
    deep_split: str = "none"
    init: str = "palette"  # noise | content | palette | style | path to an image (optim/starts.py initial)
    seed: int = 0
    noise_amplitude: float = 0.2  # --init noise: uniform in 0.5 +- amplitude/2 (1: the whole pixel range)
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    lbfgs_history: int = 100
    lbfgs_line_search: bool = False  # strong-Wolfe line search (more evaluations per step)
    parameterization: str = "pixels"  # what the optimiser moves: pixels | pyramid (Laplacian coefficients)
    # execution
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (net/device.py pick_device)
    precision: str = "auto"  # auto: bf16 autocast where the CPU/GPU supports it natively
    channels_last: bool = True
    compile: bool = False  # torch.compile; repays its 10-30 s only on long runs
    threads: int = 0  # 0: every core
    # CUDA: deterministic kernels, the same bytes on every run (net/device.py configure); False: cuDNN
    # picks the fastest kernels by timing them. No effect on the CPU, which is deterministic anyway.
    deterministic: bool = True
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
        kwargs = {
            **BEFORE,
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names},
        }
        return cls(**kwargs)


# Fields added after recipes were first written, with the value that reproduces the runs before them.
# (deterministic is not here: a recipe without it ran on the CPU, where it changes nothing, or on
# CUDA without a fixed kernel choice, which no value reproduces; it takes the default.)
BEFORE = {"content_ceiling": 0.0, "palette_weight": 0.0, "deep_split": "none", "fused_cosine": False}


DEFAULTS = Options()

# Options that fix the prepared network (engine.Stylizer); every other one may change per run.
NETWORK_FIELDS = (
    "weights",
    "preprocess",
    "pooling",
    "normalize",
    "device",
    "precision",
    "channels_last",
    "compile",
    "threads",
    "deterministic",
)
