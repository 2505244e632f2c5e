"""The optimisation: Gatys, Ecker & Bethge (CVPR 2016), read top to bottom in `run`.

Three jobs share one engine:
  transfer  minimise alpha * L_content + beta * L_style   (Fig. 2)
  content   content reconstruction from white noise       (Fig. 1, top)
  texture   style reconstruction (texture synthesis)      (Fig. 1, bottom)
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__, color, config, images, masks, memory
from .config import Options
from .errors import InvalidOption, Stop, choice
from .features import VGG19, deepest, normalize_vgg, reference_means, validate_layers
from .losses import as_matrix, content_loss, range_loss, style_loss_fn, tv_loss
from .weights import get_vgg

ImageLike = Union[str, "os.PathLike[str]", Image.Image]
JOBS = ("transfer", "content", "texture")


# --- what a run reports ---------------------------------------------------------------------
@dataclass
class Iterate:
    """One optimisation step, as passed to `callback`. `image()` renders it on demand."""

    step: int  # 1-based, counted over all scales
    total: int  # steps in the whole schedule
    losses: Dict[str, float]  # "content", "style", "tv", "range", "total" (weighted, this step's point)
    elapsed: float  # seconds since the run started
    size: tuple  # (width, height) of the current scale
    _render: Callable[[], Image.Image] = field(repr=False, default=None)

    @property
    def eta(self) -> float:
        """Seconds left, extrapolated from the steps so far."""
        return self.elapsed / max(self.step, 1) * (self.total - self.step)

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
    # The output as (1, 3, H, W) float RGB before clipping and 8-bit rounding (luminance mode:
    # the optimised Y recombined with the content's I and Q, exactly).
    pixels: Optional[torch.Tensor] = field(default=None, repr=False)

    def report(self) -> dict:
        """The --report JSON: options, iterations, seconds, final per-layer losses."""
        return {"version": __version__, "options": self.recipe["options"],
                "weights_sha256": self.recipe["weights_sha256"], "iterations": self.iterations,
                "seconds": round(self.seconds, 3), "stopped": self.stopped, "losses": self.losses}


# --- checking options ------------------------------------------------------------------------
def check_options(o: Options, job: str = "transfer", n_styles: int = 1) -> Options:
    """Validate every field; return the options with derived fields filled in."""
    choice("job", job, JOBS)
    if o.preprocess is not None:
        choice("preprocess", o.preprocess, config.PREPROCESS)
    for kind, value, allowed in (
        ("pooling", o.pooling, config.POOLING), ("optimizer", o.optimizer, config.OPTIMIZERS),
        ("device", o.device, config.DEVICES),
        ("precision", o.precision, config.PRECISIONS), ("style loss", o.style_loss, config.STYLE_LOSSES),
        ("colour preservation", o.preserve_color, config.PRESERVE_COLOR),
        ("colour match", o.color_match, config.COLOR_MATCH), ("mask mode", o.mask_mode, config.MASK_MODES),
    ):
        choice(kind, value, allowed)
    if not 16 <= o.size <= config.MAX_SIZE:
        raise InvalidOption(f"--size {o.size} is outside 16..{config.MAX_SIZE}")
    if o.style_scale <= 0:
        raise InvalidOption(f"--style-scale must be positive, got {o.style_scale}")
    validate_layers(o.content_layers)
    validate_layers(o.style_layers)
    if job == "transfer" and not (o.content_layers or o.style_layers):
        raise InvalidOption("no content or style layers given")
    for flag, w in (("--content-weight", o.content_weight), ("--style-weight", o.style_weight),
                    ("--tv-weight", o.tv_weight), ("--range-weight", o.range_weight),
                    ("--learning-rate", o.learning_rate)):
        if not w >= 0:
            raise InvalidOption(f"{flag} must be >= 0, got {w}")
    if not 0 <= o.noise_amplitude <= 1:
        raise InvalidOption(f"--noise-amplitude must be within 0..1, got {o.noise_amplitude}")
    if o.style_layer_weights is not None:
        if len(o.style_layer_weights) != len(o.style_layers):
            raise InvalidOption(f"--style-layer-weights has {len(o.style_layer_weights)} values for "
                                f"{len(o.style_layers)} style layers")
        if any(w < 0 for w in o.style_layer_weights):
            raise InvalidOption("--style-layer-weights must be >= 0")
    scales = config.scale_sides(o)
    if any(not 16 <= s <= config.MAX_SIZE for s in scales):
        raise InvalidOption(f"--scales {','.join(map(str, scales))}: each must be within 16..{config.MAX_SIZE}")
    if not 1 <= len(o.iterations) <= len(scales) or any(i < 0 for i in o.iterations):
        raise InvalidOption(f"--iterations needs 1 to {len(scales)} non-negative values (one per scale, the "
                            f"last for the finest), got {','.join(map(str, o.iterations))}")
    if o.style_blend is not None:
        if len(o.style_blend) != n_styles:
            raise InvalidOption(f"--style-blend has {len(o.style_blend)} weights for {n_styles} style images")
        if any(b < 0 for b in o.style_blend) or sum(o.style_blend) <= 0:
            raise InvalidOption("--style-blend weights must be >= 0 with a positive sum")
    if o.tile < 0:
        raise InvalidOption(f"--tile must be >= 0 (0: automatic, tiles only when needed to fit in memory), got {o.tile}")
    if o.init not in config.INITS:
        images.load_image(o.init)  # a path: fail now if it is not a readable image
    return o


def layer_weights(o: Options) -> List[float]:
    """w_l: the given weights, or equal weights summing to 1 (the paper's 1/5 each)."""
    if o.style_layer_weights is not None:
        return list(o.style_layer_weights)
    return [1.0 / len(o.style_layers)] * len(o.style_layers) if o.style_layers else []


def schedule(o: Options) -> List[tuple]:
    """[(long side, iterations)] for each scale, coarse to fine (the rule: config.schedule)."""
    return config.schedule(o)


# --- execution settings -------------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidOption("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidOption("--device mps: no MPS device is available")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 natively: AVX-512 BF16 or AMX (through oneDNN) on a CPU,
    Ampere or newer on CUDA (not the emulated bf16 of older GPUs)."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.4 has no emulation and no such argument
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():
            return False
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


@dataclass(frozen=True)
class Autocast:
    """A context factory (what feature_fn's `amp` takes): autocast to `dtype` on `device_type`."""

    device_type: str
    dtype: torch.dtype

    def __call__(self):
        return torch.autocast(self.device_type, dtype=self.dtype)


def autocast_for(o: Options, device: torch.device):
    """bf16 autocast for the convolutions (Grams and losses stay fp32: as_matrix casts up).

    "auto": bf16 where the device computes it natively, else fp32; "fp32": never; "bf16": always
    (on a CPU without native bf16 it is emulated: same results, slower).
    """
    native = native_bf16(device)
    use = o.precision == "bf16" or (o.precision == "auto" and native)
    if use and not native and device.type != "cpu":
        raise InvalidOption(f"--precision bf16 is not supported on {device.type}")
    return Autocast(device.type, torch.bfloat16) if use else contextlib.nullcontext


# --- the pieces of the objective -----------------------------------------------------------------
@dataclass
class Region:
    """One spatially controlled region (the whole image when there are no masks)."""

    weight: float  # lambda_r
    masks: Dict[str, Optional[torch.Tensor]]  # style layer -> (M,) mask of the output, or None
    targets: Dict[str, object]  # style layer -> style loss target


@dataclass
class Targets:
    content: Dict[str, torch.Tensor]  # content layer -> P (N, M)
    regions: List[Region]


def feature_fn(net: VGG19, to_net=None, channels_last: bool = False, amp=contextlib.nullcontext,
               compile: bool = False):
    """features(x, layers) -> {layer: activation}: input adaptation, memory layout, precision.

    Under autocast (`amp` an Autocast) the convolutions use a copy of `net` whose weights are
    already in the low precision: autocast casts parameters that need no gradient again on
    every call. The copy is made on first use and again only when `net`'s weights change (the
    normalisation rescales them in place). `compile`: torch.compile the network for the passes
    that need gradients (the optimisation steps), one specialisation per image shape; the
    one-off passes without gradients (targets, final losses) stay eager and compile nothing.
    """
    low = getattr(amp, "dtype", None)
    cache: dict = {}

    def network() -> VGG19:
        if low is None:
            return net
        version = tuple(p._version for p in net.parameters())
        if cache.get("version") != version:
            shadow = copy.deepcopy(net)
            for _, conv in shadow.convs():
                conv.to(low)
            cache.update(version=version, net=shadow, compiled=None)
        return cache["net"]

    def features(x: torch.Tensor, layers) -> Dict[str, torch.Tensor]:
        x = to_net(x) if to_net else x
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n = network()
        if compile and torch.is_grad_enabled():
            if cache.get("compiled_for") is not n:
                cache.update(compiled=torch.compile(n, dynamic=False), compiled_for=n)
            n = cache["compiled"]
        with amp():
            return n(x, layers)

    return features


class Objective:
    """alpha * sum_l L_content + beta * sum_l w_l E_l (+ tv): the function the optimiser sees."""

    def __init__(self, features, o: Options, targets: Targets):
        self.o, self.t = o, targets
        self.style_loss = style_loss_fn(o.style_loss, seed=o.seed)
        self.w = dict(zip(o.style_layers, layer_weights(o)))
        self.layers = list(dict.fromkeys(list(targets.content) + list(o.style_layers if targets.regions else ())))
        self.features = lambda x: features(x, self.layers)

    def parts(self, x: torch.Tensor) -> dict:
        """Unweighted per-layer losses in the paper's units, as tensors."""
        feats = self.features(x)
        content = {l: content_loss(as_matrix(feats[l]), p) for l, p in self.t.content.items()}
        style = {}
        for l in self.o.style_layers if self.t.regions else ():
            f = as_matrix(feats[l])
            # A region whose mask is empty at this layer (or that no style provides there) has no term.
            style[l] = sum((r.weight * self.style_loss(f, r.targets[l], r.masks.get(l)) for r in self.t.regions
                            if r.targets.get(l) is not None), f.new_zeros(()))
        tv = tv_loss(x) if self.o.tv_weight else x.new_zeros(())
        return {"content": content, "style": style, "tv": tv, "range": _range(x, self.o)}

    def content_scale(self, layer: str) -> float:
        """1, or 1/M_l with --content-average (see Options.content_average)."""
        # Departure (default, also in --preset paper): the paper's L_content is a sum over
        # the M_l positions while E_l is normalised by M_l^2, so the same alpha/beta stylises a
        # 1024 px image 16x less than a 256 px one. Dividing L_content by M_l makes alpha/beta
        # mean the same at every size (and every scale of a coarse-to-fine run).
        return 1.0 / self.t.content[layer].shape[1] if self.o.content_average else 1.0

    def weighted(self, parts: dict) -> Dict[str, torch.Tensor]:
        """The weighted terms: alpha * content, beta * style, tv, range."""
        o = self.o
        c = sum(self.content_scale(l) * v for l, v in parts["content"].items()) if parts["content"] else 0.0
        s = sum(self.w[l] * e for l, e in parts["style"].items()) if parts["style"] else 0.0
        return {"content": o.content_weight * c, "style": o.style_weight * s, "tv": o.tv_weight * parts["tv"],
                "range": o.range_weight * parts.get("range", 0.0)}

    def total(self, parts: dict) -> torch.Tensor:
        return sum(self.weighted(parts).values())

    def summary(self, parts: dict, total: torch.Tensor) -> Dict[str, float]:
        """Weighted loss terms as floats (for progress display)."""
        with torch.no_grad():
            return {**{k: float(v) for k, v in self.weighted(parts).items()}, "total": float(total)}


@torch.no_grad()
def build_targets(net_features, o: Options, content: Optional[torch.Tensor], styles: Sequence[torch.Tensor],
                  blend: Sequence[float], masks=None, tiler=None) -> Targets:
    """Content features P and blended style targets at one scale (computed once per scale).

    masks: a masks.ScaleMasks (spatial control, 1611.07865) or None; tiler: a tiling.Tiler to
    compute the features tile by tile (large images) or None.
    """
    loss = style_loss_fn(o.style_loss)
    P = {}
    if content is not None and o.content_layers and o.content_weight > 0:
        feats = tiler.assemble(content, o.content_layers) if tiler else net_features(content, o.content_layers)
        P = {l: as_matrix(feats[l]) for l in o.content_layers}
    regions = []
    if styles and o.style_layers and masks is None and tiler is None:
        per_style = [net_features(s, o.style_layers) for s in styles]
        targets = {l: loss.blend([loss.target(as_matrix(f[l])) for f in per_style], blend) for l in o.style_layers}
        regions.append(Region(1.0, {}, targets))
    elif styles and o.style_layers:
        regions = _region_targets(net_features, o, styles, blend, masks, tiler, loss)
    return Targets(P, regions)


def _region_targets(net_features, o: Options, styles, blend, masks, tiler, loss) -> List[Region]:
    """One Region per mask region (or one for the whole image), each with its blended targets.

    Region r's target at layer l blends the targets of the styles that provide r there (a
    style without a mask provides every region), its blend weights renormalised over them.
    A region whose output mask or every providing style mask is empty at a layer gets no term
    there (masks.empty), and a style whose mask for r is empty at a layer drops out of the blend.
    """
    from . import masks as _masks

    n_regions = masks.n_regions if masks else 1
    per_style = []  # per style: {layer: [target per region]} (one entry if the style has no mask)
    for i, s in enumerate(styles):
        sm = masks.styles[i] if masks else None
        region_masks = [{}] if sm is None else [{l: sm[l][r] for l in o.style_layers} for r in range(n_regions)]
        if tiler is not None:
            per_style.append(tiler.style_targets(s, o.style_layers, region_masks, loss))
        else:
            feats = net_features(s, o.style_layers)
            per_style.append({l: [None if _masks.empty(rm.get(l)) else loss.target(as_matrix(feats[l]), rm.get(l))
                                  for rm in region_masks] for l in o.style_layers})
    regions = []
    for r in range(n_regions):
        out_masks = {l: masks.output[l][r] for l in o.style_layers} if masks else {}
        targets = {}
        for l in o.style_layers:
            if _masks.empty(out_masks.get(l)):
                targets[l] = None
                continue
            parts = [(t[l][0 if len(t[l]) == 1 else r], b) for t, b in zip(per_style, blend)]
            parts = [(t, b) for t, b in parts if t is not None and b > 0]
            total = sum(b for _, b in parts)
            targets[l] = loss.blend([t for t, _ in parts], [b / total for _, b in parts]) if parts else None
        regions.append(Region(masks.weights[r] if masks else 1.0, out_masks, targets))
    return regions


# --- the optimiser loop ----------------------------------------------------------------------------
OVERSHOOT = 1e3  # a step whose loss is this many times the last good one is retaken (optimise)


class _Overflow(Exception):
    """The loss at the current point is not finite (see optimise)."""


def optimise(objective: Objective, x: torch.Tensor, o: Options, iterations: int,
             on_step: Callable[[Dict[str, float], torch.Tensor], None]) -> tuple:
    """Run `iterations` steps of L-BFGS or Adam on the pixels x; returns (final x, stopped).

    on_step(losses, x) follows every step; raising Stop there ends the loop early.

    Pixels are not clamped inside the closure (the paper optimises unconstrained pixels);
    they are clipped to [0, 1] only when the image is rendered or saved.
    """
    x = x.detach().clone().requires_grad_(True)

    def make():
        if o.optimizer != "lbfgs":
            return torch.optim.Adam([x], lr=o.learning_rate)
        # One L-BFGS iteration per step() (one objective evaluation without line search). The
        # line search needs its own evaluation budget: max_eval defaults to max_iter * 5 // 4 = 1,
        # which would leave it none (no step at all); 25 is torch's own max_ls.
        return torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=1 + 25, history_size=o.lbfgs_history,
                                 tolerance_grad=-1.0, tolerance_change=-1.0,
                                 line_search_fn="strong_wolfe" if o.lbfgs_line_search else None)

    opt = make()
    last: Dict[str, float] = {}
    # Safeguard for L-BFGS without line search: its unit step can overshoot to a point where the
    # loss overflows (seen on tiny images), after which every gradient is NaN, or explodes (1e23
    # from 2.7e6, seen from noise at 32 px), after which the history never recovers. Then the
    # step is retaken from the last good point with a fresh history (whose first step is a short
    # gradient step). Runs that never overshoot are unaffected.
    guard = o.optimizer == "lbfgs" and not o.lbfgs_line_search
    good: Optional[torch.Tensor] = None  # the last point whose loss was finite
    good_loss = [float("inf")]  # its loss

    def closure():
        opt.zero_grad(set_to_none=True)
        parts = objective.parts(x)
        total = objective.total(parts)
        if guard:
            value = float(total.detach())
            if good is not None and not (math.isfinite(value) and value <= OVERSHOOT * good_loss[0]):
                raise _Overflow
            good_loss[0] = min(good_loss[0], value)
        total.backward()
        last.update(objective.summary(parts, total))
        return total

    def step():
        if o.optimizer == "lbfgs":
            opt.step(closure)
        else:
            closure()
            opt.step()

    for _ in range(iterations):
        here = x.detach().clone() if guard else None
        try:
            step()
            good = here
        except _Overflow:
            with torch.no_grad():
                x.copy_(good)
            opt = make()
            step()
        try:
            on_step(dict(last), x)
        except Stop:
            return x.detach(), True
    return x.detach(), False


# --- the whole run ------------------------------------------------------------------------------------
def _as_list(styles) -> list:
    if styles is None:
        return []
    if isinstance(styles, (str, Image.Image)) or hasattr(styles, "__fspath__"):
        return [styles]
    return list(styles)


def _describe(src) -> dict:
    """How a recipe names an input: its path (when it has one) and the SHA-256 of its pixels."""
    img = images.load_image(src)
    return {"path": None if isinstance(src, Image.Image) else os.path.abspath(src),
            "size": list(img.size), "pixels_sha256": hashlib.sha256(img.tobytes()).hexdigest()}


def run(job: str, content: Optional[ImageLike], styles=None, options: Optional[Options] = None,
        callback: Optional[Callable[[Iterate], None]] = None, **overrides) -> Result:
    """Run one job ("transfer", "content" or "texture") and return its Result.

    Raising painterly.Stop inside `callback` ends the run early; the current iterate
    is returned with `stopped=True`.
    """
    start = time.perf_counter()
    styles = _as_list(styles)
    o = (options or config.DEFAULTS).replace(**overrides) if overrides else (options or config.DEFAULTS)
    o = check_options(o, job, max(len(styles), 1))

    # 1. Images: load, then the output size (long side = --size, the content's aspect ratio;
    #    a texture takes the style's).
    content_img = images.load_image(content) if content is not None else None
    style_imgs = [images.load_image(s) for s in styles]
    if job != "texture" and content_img is None:
        raise InvalidOption(f"the {job} job needs a content image")
    if job != "content" and not style_imgs:
        raise InvalidOption(f"the {job} job needs at least one style image")
    shape_src = content_img if job != "texture" else style_imgs[0]
    blend = [b / sum(o.style_blend) for b in o.style_blend] if o.style_blend else [1 / max(len(style_imgs), 1)] * len(style_imgs)
    if job == "content":
        o = o.replace(style_layers=(), style_weight=0.0)
    if job == "texture":
        # Without a content term, L-BFGS's unit steps stall on the pure Gram loss from noise
        # (measured on the original VGG-19: 0.5% lower after 40 steps; 98% lower with the
        # strong-Wolfe line search), so texture synthesis always searches the step length.
        o = o.replace(content_layers=(), content_weight=0.0, lbfgs_line_search=True)
    if job != "transfer" and o.init == "content":
        # The reconstructions (paper Fig. 1) start from white noise: a texture has no content
        # image, and a content reconstruction starting from its target would be no test.
        o = o.replace(init="noise")

    # 2. Colour preservation (1606.05897): recolour the style (in scaled_inputs, on the float
    #    tensors at each scale: no clipping or 8-bit rounding), or work on luminance alone.
    histogram = o.preserve_color == "histogram" and content_img is not None
    luminance = o.preserve_color == "luminance" and content_img is not None

    # 2b. Spatial control (1611.07865): read and check the masks. Memory: estimate the peak
    #     before any heavy work; tile the evaluation when that makes it fit (--tile 0), or
    #     refuse with the largest size that fits (see memory.py).
    regions = masks.load(o, content_img.size if job == "transfer" else None, [s.size for s in style_imgs], blend)
    tile = memory.plan(o, job, shape_src.size, [s.size for s in style_imgs],
                       n_regions=regions.content.shape[0] if regions else 0)

    # 3. Device, precision, network (cut after the deepest layer needed), normalisation.
    device = pick_device(o.device)
    if o.threads:
        torch.set_num_threads(o.threads)
    last = deepest(list(o.content_layers) + list(o.style_layers))
    net, sha, preprocess = get_vgg(o.weights, last=last, pooling=o.pooling, preprocess=o.preprocess, seed=0)
    net = net.to(device).eval()
    use_cl = o.channels_last and device.type in ("cpu", "cuda")
    if use_cl:
        net = net.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = autocast_for(o, device)

    def prepare(img: Image.Image, long_side: int, size=None) -> torch.Tensor:
        img = images.fit_to(img, size) if size else images.resize_long_side(img, long_side)
        t = images.to_tensor(img).to(device)
        return color.luminance_only(t)[:, :1] if luminance else t

    to_net = (lambda t: t.expand(-1, 3, -1, -1)) if luminance else None
    net_features = feature_fn(net, to_net, use_cl, amp, compile=o.compile)
    layers = list(o.content_layers) + list(o.style_layers)

    plan = schedule(o)
    final_side = plan[-1][0]
    full_w, full_h = images.resize_long_side(shape_src, final_side).size

    def scaled_inputs(long_side: int):
        w, h = images.resize_long_side(shape_src, long_side).size
        c = prepare(content_img, long_side) if content_img is not None else None
        # The paper resizes the style image to the content's size; we keep its aspect ratio
        # and scale its long side to the output's times --style-scale.
        ss = [prepare(s, max(16, round(max(w, h) * o.style_scale))) for s in style_imgs]
        if histogram:
            ss = [color.match_histogram(s, c, o.color_match) for s in ss]
        if luminance:
            cy = c
            ss = [color.match_luminance(s, cy) for s in ss]
        return (w, h), c, ss

    if o.normalize:
        # The normalised network of the paper, with means fixed per network (reference_means:
        # not measured on this run's images, so every run with a network is normalised alike).
        normalize_vgg(net, means={k: v.to(device) for k, v in reference_means(net, sha, o.pooling).items()})

    # 4. Coarse to fine: at each scale recompute the targets, start from the previous result.
    gen = torch.Generator().manual_seed(o.seed)
    x = None
    step, total_steps = 0, sum(n for _, n in plan)
    stopped = False
    for long_side, n_iter in plan:
        (w, h), c, ss = scaled_inputs(long_side)
        _check_fits(last, [("the output", (w, h))] + [(f"style image {i + 1}", (t.shape[-1], t.shape[-2]))
                                                      for i, t in enumerate(ss) if job != "content"])
        tiler = _tiler(net_features, net.names, layers, tile, (w, h))
        sm = masks.for_scale(regions, net.names, o.style_layers, o.mask_mode, (w, h),
                             [(t.shape[-1], t.shape[-2]) for t in ss], device) if regions else None
        targets = build_targets(net_features, o, c if job != "texture" else None, ss if job != "content" else [], blend,
                                masks=sm, tiler=tiler)
        objective = _objective(net_features, o, targets, tiler)
        x = _initial(o, x, (w, h), c, ss, gen, device, luminance)

        def on_step(losses, live, size=(w, h)):
            nonlocal step
            step += 1
            if callback is not None:
                # image() renders the live iterate: call it inside the callback.
                callback(Iterate(step, total_steps, losses, time.perf_counter() - start, size,
                                 lambda: _render(live, content_img, luminance, size)))

        x, stopped = optimise(objective, x, o, n_iter, on_step)
        if stopped:
            break

    # 5. The final image and its losses, in fp32 at the final size, on the clipped pixels.
    objective = targets = c = ss = None  # free the last scale's before building the final ones
    (w, h), c, ss = scaled_inputs(final_side)
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    x = x.clamp(0, 1)
    fp32 = o.replace(precision="fp32")
    with torch.no_grad():
        fp32_features = feature_fn(net, to_net, use_cl)
        tiler = _tiler(fp32_features, net.names, layers, tile, (w, h))
        sm = masks.for_scale(regions, net.names, o.style_layers, o.mask_mode, (w, h),
                             [(t.shape[-1], t.shape[-2]) for t in ss], device) if regions else None
        targets = build_targets(fp32_features, fp32, c if job != "texture" else None,
                                ss if job != "content" else [], blend, masks=sm, tiler=tiler)
        objective = _objective(fp32_features, fp32, targets, tiler)
        parts = objective.parts(x)
        total = float(objective.total(parts))
    losses = {"content": {l: float(v) for l, v in parts["content"].items()},
              "style": {l: float(v) for l, v in parts["style"].items()},
              "tv": float(parts["tv"]), "range": float(parts["range"]), "total": total}
    pixels = _pixels(x, content_img, luminance, (w, h)).float().cpu()
    image = images.to_pil(pixels.clamp(0, 1))
    recipe = {"painterly": __version__, "job": job, "options": o.to_dict(), "weights_sha256": sha,
              "preprocess": preprocess, "seed": o.seed,
              "content": _describe(content) if content is not None else None,
              "styles": [_describe(s) for s in styles], "style_blend": blend,
              "style_layer_weights": layer_weights(o)}
    recipe["options"]["style_layer_weights"] = layer_weights(o)
    recipe["options"]["weights_sha256"] = sha
    image.info["painterly"] = recipe
    return Result(image, losses, o, recipe, step, time.perf_counter() - start, stopped, pixels)


def _check_fits(last: str, sizes) -> None:
    """Every image must survive the poolings before `last` (each halves it) with >= 1 pixel."""
    need = 2 ** sum(1 for n in config.LAYERS[: config.LAYERS.index(last)] if n.startswith("pool"))
    for what, (w, h) in sizes:
        if min(w, h) < need:
            raise InvalidOption(
                f"{what} would be {w}x{h} px at one scale of this run, but layer {last} needs at least "
                f"{need} px on each side; use a larger --size (or --style-scale), or fewer scales "
                "(one --iterations count)")


def _range(x: torch.Tensor, o: Options) -> torch.Tensor:
    """The pixel-range penalty (losses.range_loss) when --range-weight is on; a departure."""
    return range_loss(x) if o.range_weight else x.new_zeros(())


def _tiler(features, names, layers, tile: int, size):
    """A tiling.Tiler when tiling is on and the image at this scale is larger than a tile."""
    if not tile or max(size) <= tile:
        return None
    from .tiling import Tiler

    return Tiler(features, names, layers, tile)


def _objective(features, o: Options, targets: Targets, tiler) -> "Objective":
    if tiler is None:
        return Objective(features, o, targets)
    from .tiling import TiledObjective

    return TiledObjective(features, o, targets, tiler)


def _initial(o: Options, prev, size, content, styles, gen, device, luminance) -> torch.Tensor:
    """The starting image: the upsampled previous scale, or noise | content | style | a file."""
    w, h = size
    ch = 1 if luminance else 3
    if prev is not None:
        return F.interpolate(prev, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    if o.init == "noise":
        # The paper starts from white noise without giving its amplitude. Noise over the whole
        # pixel range is never cleaned by the optimisation (measured: SSIM 0.05 to the photo after
        # 500 steps), so it is centred on mid-grey with a range of --noise-amplitude (0.2).
        u = torch.rand((1, ch, h, w), generator=gen)
        return (0.5 + o.noise_amplitude * (u - 0.5)).to(device)
    if o.init == "content":
        return content.clone()
    if o.init == "style":
        return F.interpolate(styles[0], size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    t = images.to_tensor(images.fit_to(images.load_image(o.init), (w, h))).to(device)
    return color.luminance_only(t)[:, :1] if luminance else t


def _pixels(x: torch.Tensor, content_img, luminance: bool, size) -> torch.Tensor:
    """The RGB output before clipping: in luminance mode Y recombined with the content's I, Q."""
    x = x.detach()
    if luminance:
        c = images.to_tensor(images.fit_to(content_img, size)).to(x.device)
        x = color.recombine_luminance(x.expand(-1, 3, -1, -1), c)
    return x


def _render(x: torch.Tensor, content_img, luminance: bool, size) -> Image.Image:
    """Pixels -> PIL, recombining with the content's colour in luminance mode."""
    return images.to_pil(_pixels(x, content_img, luminance, size).clamp(0, 1).float().cpu())
