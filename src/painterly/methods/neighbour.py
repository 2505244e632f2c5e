"""Neural neighbours (NNST, Kolkin et al. 2022, arXiv 2203.13215): each hypercolumn of the
photo is replaced by its nearest in the painting, and the output is moved towards those.

Everything of the method is here: its layers and preset, the hypercolumns and their search,
its term, its re-matching before each scale, its limits and its memory.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from painterly.errors import InvalidOption
from painterly.methods.base import Method, StyleInputs
from painterly.net.device import resize
from painterly.objective import Objective, Term
from painterly.options import Options, Preset

Tensor = torch.Tensor

# The reference's ten VGG-16 ReLUs relu1_1 .. relu4_3 (torchvision indices 1, 3, 6, 8, 11, 13, 15,
# 18, 20, 22), taken by name in VGG-19, whose blocks 3 and 4 have one more convolution each
# (relu3_4 and relu4_4 are not used).
NEIGHBOUR_LAYERS = (
    "relu1_1",
    "relu1_2",
    "relu2_1",
    "relu2_2",
    "relu3_1",
    "relu3_2",
    "relu3_3",
    "relu4_1",
    "relu4_2",
    "relu4_3",
)

# NNST-Opt (Kolkin et al., arXiv 2203.13215; docs "Neural neighbours"): on VGG-19 as trained (max
# pooling, not normalised; the reference: VGG-16 so). Departure, for CPU time: 50/50/30/20 Adam steps
# at lr 1e-2 over four scales, not 200 per scale at 2e-3, no final full-size pass (76 s vs 126 s at
# 512 px for 100/100/60/30 at 5e-3, median P 0.58 vs 0.31). No colour step: LP better on 8/8.
PRESET = Preset(
    "neighbour",
    "neural neighbours (NNST, experimental)",
    dict(
        style_loss="neighbour",
        style_layers=NEIGHBOUR_LAYERS,
        content_layers=(),
        style_weight=1.0,
        pooling="max",
        normalize=False,
        optimizer="adam",
        parameterization="pyramid",
        init="content",
        recolor="none",
        style_layer_weights=None,
        iterations=(50, 50, 30, 20),
        learning_rate=1e-2,
        range_weight=3e4,
        palette_weight=0.0,
    ),
)

# Memory per pixel of the scale's output and of its style image (and of each of the three rotated
# copies with --rotations): hypercolumns, their centred and unit copies, the targets and the
# search's chunk. Fitted (2026-12-03, tubingen x starry_night, --iterations 1,1,1,2, glibc's
# default allocator) to peaks of 0.74 GiB at 256 px, 3.52 GiB at 768 (3.29 with --style-scale
# 0.5, 4.54 with --rotations) and 5.53 GiB at 1024 px, which the estimate then tops by 3-60%;
# before, it ignored the search and predicted 2.1 GiB at 1024 px.
# "content_fused" is the output's share with --fused-cosine (FusedCosine keeps no autograd copies of
# the (D, m) hypercolumns): measured 2026-12-07 (same runs, bf16) at 0.69 / 1.50 / 2.68 / 4.36 GiB
# for 256 / 512 / 768 / 1024 px, against 0.92 / 2.00 / 3.73 / 5.81 with the plain formula; the
# estimate then tops the fused peaks by 16-20% from 512 px up (46% at 256, where the base dominates).
NEIGHBOUR_PX = {"content": 3700.0, "content_fused": 1900.0, "style": 1100.0, "rotated": 1200.0}


class Neighbour(Method):
    names = ("neighbour",)
    preset = PRESET
    polishes = False  # no content term: the photo's structure comes from the search image
    final_losses = False  # the targets come from a search: the last step's losses are reported
    splits = False  # its search matches every layer at one resolution

    def check(self, o: Options, job: str, n_styles: int) -> None:
        # One clear line for what the nearest-neighbour mode does not do (yet): its targets are
        # one painting's hypercolumns matched to the whole picture.
        if job != "transfer":
            raise InvalidOption(f"--style-loss neighbour works only in the transfer job, not {job}")
        if n_styles > 1:
            raise InvalidOption(
                "--style-loss neighbour takes one style image; blend several with --style-loss gram"
            )
        if o.content_mask or o.style_masks:
            raise InvalidOption(
                "--style-loss neighbour does not support regions (--content-mask, --style-masks); "
                "use --style-loss gram for spatial control"
            )

    def cache_key(self, o: Options) -> tuple:
        return super().cache_key(o) + (o.rotations,)

    def targets(self, o: Options, inputs: StyleInputs) -> Optional[Tensor]:
        """The painting's hypercolumns (D, n), or None without a style image."""
        if inputs.tiler is not None:
            raise InvalidOption(
                "--style-loss neighbour does not tile: this size needs tiles to fit in memory; "
                "use a smaller --size"
            )
        if not inputs.styles:
            return None
        return inputs.cached(inputs.styles[0], lambda s: painting_hypercolumns(inputs.features, s, o))

    def term(self, o: Options, targets) -> "NeighbourTerm":
        layers = o.style_layers if targets is not None else ()
        return NeighbourTerm(o.style_weight, layers, targets, fused=o.fused_cosine)

    def before_scale(
        self, objective: Objective, x: Tensor, content: Optional[Tensor], first: bool, o: Options
    ) -> None:
        match_neighbours(objective, x, content, first, o.neighbour_photo)

    def extra_bytes(
        self, o: Options, job: str, pixels: int, style_pixels: Sequence[int], tiled: bool
    ) -> float:
        if job != "transfer":
            return 0.0
        nb = NEIGHBOUR_PX
        content = nb["content_fused"] if o.fused_cosine else nb["content"]
        return content * pixels + sum(style_pixels) * (nb["style"] + 3 * nb["rotated"] * bool(o.rotations))


def quarter(size) -> tuple:
    """(h, w) of the hypercolumns of an (h, w) image: a quarter of each side (NNST), at least 1."""
    return max(1, size[0] // 4), max(1, size[1] // 4)


def painting_hypercolumns(net_features, s: torch.Tensor, o: Options) -> torch.Tensor:
    """The painting's hypercolumns (D, n) at o.style_layers, each image at a quarter of its size;
    with o.rotations also those of the painting rotated by 90, 180 and 270 degrees (the
    reference's flip_aug: more candidate marks for each position of the photo)."""
    turns = range(4) if o.rotations else range(1)
    sets = []
    for k in turns:
        r = torch.rot90(s, k, dims=(2, 3)) if k else s
        f = net_features(r, o.style_layers)
        sets.append(hypercolumns([f[l] for l in o.style_layers], quarter(r.shape[-2:])))
    return torch.cat(sets, 1)


class NeighbourTerm(Term):
    """--style-loss neighbour (NNST, Kolkin et al. 2022): beta * mean_i (1 - cos(h_i(x), t_i)).

    h_i(x) is the output's hypercolumn at position i (a quarter of the image's size, see
    losses.hypercolumns); t_i is the painting's hypercolumn nearest (centred cosine) to the
    hypercolumn of a search image at i. The engine sets the targets once per scale (`match`):
    the search image is the photo at the first scale and a mix of the photo and the current
    result after (--neighbour-photo), which is how the photo's structure is kept; there is no
    content loss. The value is 0 when every output hypercolumn points along its target.
    """

    name = "style"

    def __init__(
        self, weight: float, layers: Sequence[str], painting: Optional[torch.Tensor], fused: bool = True
    ):
        self.weight, self.layers, self.painting, self.fused = weight, tuple(layers), painting, fused
        self.target: Optional[torch.Tensor] = None  # (D, m), unit columns; set by match()
        self.size = None

    def match(self, search_feats: Dict[str, torch.Tensor], size) -> None:
        """Targets for an output of size (h, w): the painting's nearest neighbours of the search
        image's hypercolumns (search_feats: its features at self.layers)."""
        self.size = quarter(size)
        h = hypercolumns([search_feats[l] for l in self.layers], self.size)
        idx = nearest_neighbours(h, self.painting)
        self.target = unit_columns(self.painting[:, idx])

    def value(self, x, feats):
        if self.target is None:  # only Objective.calibrate evaluates before match(); 1 - cos is already
            return x.new_zeros(())  # a relative distance (0..2), so this term ignores calibration
        h = hypercolumns([feats[l] for l in self.layers], self.size)
        return FusedCosine.apply(h, self.target) if self.fused else cosine_loss(h, self.target)


def match_neighbours(
    objective: "Objective", x: torch.Tensor, c: Optional[torch.Tensor], first: bool, photo_share: float
) -> None:
    """--style-loss neighbour: set this scale's nearest-neighbour targets (objective.NeighbourTerm).

    The search image (NNST's): at the first scale the photo; after, the photo mixed with the
    current result plus the photo's finest band at this scale (the detail the upsampled result
    lacks), photo_share : 1 - photo_share (--neighbour-photo).
    """
    term = objective.term("style")
    if c is None or not term.layers:
        return
    search = c
    if not first:
        h, w = c.shape[-2:]
        low = resize(resize(c, (h // 2, w // 2), "bilinear", False), (h, w), "bilinear", False)
        search = photo_share * c + (1.0 - photo_share) * (x + c - low)
    with torch.no_grad():
        term.match(objective.features(search), (x.shape[-2], x.shape[-1]))


# --- the hypercolumns and their search -------------------------------------------------------------
NEIGHBOUR_CHUNK = 2048  # rows of the (search x painting) similarity matrix computed at once


def hypercolumns(feats: Sequence[Tensor], size) -> Tensor:
    """The hypercolumns of one image: (D, m) for m = h * w positions.

    feats: (1, C_l, H_l, W_l) activations of several layers; each is divided by its channel
    count (so that wide layers do not dominate the cosine, as in the reference), resized
    bilinearly to size = (h, w) (the reference: a quarter of the image's size) and the layers
    are stacked along the channels.
    """
    h, w = size
    # Resized first, then divided (the same numbers: both are linear), so the division runs on
    # the small map; a layer already at (h, w) is not resampled (bilinear with aligned corners
    # at the same size is the identity). net.device.resize: on CUDA a deterministic backward.
    cols = [
        (f if tuple(f.shape[-2:]) == (h, w) else resize(f, (h, w), "bilinear", align_corners=True)).float()
        / f.shape[1]
        for f in feats
    ]
    return torch.cat(cols, 1)[0].reshape(-1, h * w)


SQUARED_NORM = (1e-8, 1e8)  # the reference's clamp of a column's squared norm (unit_columns, FusedCosine)


def unit_columns(f: Tensor) -> Tensor:
    """Each column scaled to length 1 (squared norm clamped to SQUARED_NORM as the reference)."""
    return f / f.pow(2).sum(0, keepdim=True).clamp(*SQUARED_NORM).sqrt()


def nearest_neighbours(src: Tensor, ref: Tensor, chunk: int = NEIGHBOUR_CHUNK) -> Tensor:
    """For every column of src (D, m), the index of its nearest column of ref (D, n) under the
    centred cosine distance: each set minus its own mean column, then 1 - cosine. Computed
    `chunk` columns of src at a time, so memory stays at chunk x n whatever m is. Ties go to the
    lowest index (torch.max). Returns (m,) int64."""
    s = unit_columns(src - src.mean(1, keepdim=True))
    r = unit_columns(ref - ref.mean(1, keepdim=True)).t().contiguous()  # (n, D)
    out = []
    for i in range(0, s.shape[1], chunk):
        out.append((r @ s[:, i : i + chunk]).argmax(0))  # max cosine = min distance
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=src.device)


def cosine_loss(f: Tensor, target_unit: Tensor) -> Tensor:
    """mean over positions of 1 - cos(f_i, t_i): the reference's hypercolumn-matching loss (no
    centring here; only the search centres).   f, target_unit: (D, m), the target's columns unit."""
    return (1.0 - (unit_columns(f) * target_unit).sum(0)).mean()


class FusedCosine(torch.autograd.Function):
    """cosine_loss(f, target_unit) with its gradient written out (--fused-cosine, the default).

    The same function as cosine_loss, evaluated without the (D, m) copies autograd keeps: with
    d_i = f_i . t_i, q_i = |f_i|^2 and n_i = sqrt(clamp(q_i, 1e-8, 1e8)), the loss is
    mean_i (1 - d_i / n_i), and its gradient at column i is -(t_i / n_i - d_i f_i / n_i^3) / m
    (the second part only where the clamp passes q_i through). The norms and the dot products
    are reductions over the columns (no (D, m) temporary) and the gradient is one (D, m) tensor.
    Measured at the hypercolumns of a 1024 px output (2688 x 49152; fp32, 2-core AMD EPYC): 0.76 s
    for the loss and its gradient against 2.6 s, and the whole evaluation 7.6 s against 10.0 s.
    """

    @staticmethod
    def forward(ctx, f: Tensor, target_unit: Tensor) -> Tensor:
        q = torch.linalg.vector_norm(f, dim=0).square_()
        n = q.clamp(*SQUARED_NORM).sqrt_()
        d = torch.linalg.vecdot(f, target_unit, dim=0)
        ctx.save_for_backward(f, target_unit, q, n, d)
        return (1.0 - d / n).mean()

    @staticmethod
    def backward(ctx, grad: Tensor):
        f, t, q, n, d = ctx.saved_tensors
        m = f.shape[1]
        a = -grad / (m * n)  # the factor of t_i
        lo, hi = SQUARED_NORM
        b = torch.where((q >= lo) & (q <= hi), grad * d / (m * n * n * n), torch.zeros_like(n))
        return (t * a).addcmul_(f, b), None  # in place: one (D, m) tensor, not two
