"""The engine: `Stylizer`, prepared once, run many times.

    stylizer = Stylizer(options)          # network, weights, preprocessing, normalisation, device
    result = stylizer.run(content, style) # one stylisation (Gatys, Ecker & Bethge, CVPR 2016)

Three jobs share it:
  transfer  minimise alpha * L_content + beta * L_style   (the paper's Fig. 2)
  content   content reconstruction from white noise       (Fig. 1, top)
  texture   style reconstruction (texture synthesis)      (Fig. 1, bottom)

Every surface (CLI, Python API, web page, figures, batch, video, benchmarks) runs through a
Stylizer; nothing else builds a network. A Stylizer caches each style image's targets, so
many runs with one painting (batch, video frames) compute them once.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__, color, config, images, masks, memory
from .config import Options
from .errors import InvalidOption, Stop
from .network import autocast_for, deepest, feature_fn, normalize_vgg, pick_device, reference_means
from .objective import (Objective, Targets, Term, build_targets, ceiling_factor, content_distance, layer_weights,
                        match_neighbours, rebalance, standard_terms)
from .optimize import optimise
from .starts import initial
from .weights import get_vgg

ImageLike = Union[str, "os.PathLike[str]", Image.Image]
JOBS = ("transfer", "content", "texture")
STYLE_CACHE = 32  # style targets kept per Stylizer (about 2.5 MB each for the paper's layers)
MAX_POLISHES = 2  # --content-ceiling polishes at most (objective.ceiling_factor: the second aims under it)


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
    scale: tuple = (1, 1)  # (k, n): this step is at scale k of the schedule's n
    scale_step: tuple = (0, 0)  # (i, m): step i of this scale's m
    left: Optional[float] = None  # seconds left as the engine measured them (see eta)

    @property
    def eta(self) -> float:
        """Seconds left: the engine's, from measured steps (memory.StepClock); else extrapolated."""
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
        images.save_image(self.image, path, self.recipe)
        if report:
            images.write_json(report, self.report())

    def report(self) -> dict:
        """The --report JSON: options, iterations, seconds, final per-layer losses."""
        return {"version": __version__, "options": self.recipe["options"],
                "weights_sha256": self.recipe["weights_sha256"], "iterations": self.iterations,
                "seconds": round(self.seconds, 3), "stopped": self.stopped, "losses": self.losses,
                "style_weights": list(self.style_weights)}


# --- the prepared engine ------------------------------------------------------------------------
class Stylizer:
    """A network prepared for runs: weights set and its preprocessing, pooling, normalisation,
    device, precision and memory layout fixed once (config.NETWORK_FIELDS), style targets
    cached per style image. `run` takes any other option per call.
    """

    def __init__(self, options: Optional[Options] = None, **overrides):
        o = (options or config.DEFAULTS).replace(**overrides)
        self.options = o
        for name in config.NETWORK_FIELDS:  # checked before torch takes any of them
            config.check_type(name, getattr(o, name))
            config.SPECS[name].check(name, getattr(o, name))
        self.device = pick_device(o.device)
        if o.threads:
            torch.set_num_threads(o.threads)
        # The network is built on first need (`prepare`, or a run after its memory check), cut
        # after the deepest layer these options use; a run that asks for a deeper one rebuilds it.
        self.net, self.last = None, None
        self._styles: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()
        self._lock = threading.Lock()  # runs in several threads (the web page) share the caches

    def _build(self, last: str) -> None:
        o = self.options
        net, self.sha256, self.preprocess = get_vgg(o.weights, last=last, pooling=o.pooling,
                                                    preprocess=o.preprocess, seed=0)
        net = net.to(self.device).eval()
        self.channels_last = o.channels_last and self.device.type in ("cpu", "cuda")
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        scales = None
        if o.normalize:
            # The normalised network of the paper, with means fixed per network (reference_means:
            # not measured on a run's images, so every run with a network is normalised alike).
            means = reference_means(net, self.sha256, o.pooling)
            scales = normalize_vgg(net, means={k: v.to(self.device) for k, v in means.items()})
        self.scales = scales  # each filter's divisor (content_distance undoes it)
        self.net, self.last = net, last
        self.amp = autocast_for(o.precision, self.device)
        self._styles: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()
        self._features: dict = {}  # (luminance, fp32, compile) -> feature function

    def prepare(self) -> "Stylizer":
        """Load and normalise the network now (else the first run does); returns self."""
        o = self.options
        self._need(list(o.content_layers) + list(o.style_layers) or ["relu5_1"])
        return self

    def _need(self, layers: Sequence[str]) -> None:
        with self._lock:  # two runs starting together (the web page) build the network once
            want = deepest(list(layers) + ([self.last] if self.last else []))
            if want != self.last:
                self._build(want)

    def features(self, luminance: bool = False, fp32: bool = False, compile: bool = False):
        """features(x, layers) -> {layer: activation} (see network.feature_fn); luminance: x has
        one channel (Y), repeated to three for the network."""
        key = (luminance, fp32, compile)
        if key not in self._features:  # kept, so the bf16 copy of the network is made once, not per run
            to_net = (lambda t: t.expand(-1, 3, -1, -1)) if luminance else None
            self._features[key] = feature_fn(self.net, to_net, self.channels_last,
                                             contextlib.nullcontext if fp32 else self.amp, compile=compile)
        return self._features[key]

    def _style_cache(self, key_extra: tuple):
        """(style tensor, compute) -> its targets, remembered by the tensor's pixels."""
        def lookup(s: torch.Tensor, compute):
            key = (hashlib.sha256(s.detach().float().cpu().numpy().tobytes()).hexdigest(), tuple(s.shape)) + key_extra
            with self._lock:
                found = self._styles.get(key)
            if found is None:
                found = compute(s)
                with self._lock:
                    self._styles[key] = found
                    while len(self._styles) > STYLE_CACHE:
                        self._styles.popitem(last=False)
            return found
        return lookup

    # --- one run ----------------------------------------------------------------------------
    def run(self, content: Optional[ImageLike], styles=None, *, job: str = "transfer",
            options: Optional[Options] = None, init: Optional[Union[ImageLike, torch.Tensor]] = None,
            extra_terms: Sequence[Term] = (), callback: Optional[Callable[[Iterate], None]] = None,
            on_stage: Optional[Callable[[str, int, int], None]] = None, **overrides) -> Result:
        """Run one job ("transfer", "content" or "texture") and return its Result.

        options: this run's options (default: the Stylizer's), with `overrides` applied; the
        network fields must equal the Stylizer's. init: a starting image (PIL, path, or a
        (1, 3, H, W) tensor in [0, 1]) that replaces --init at the first scale. extra_terms:
        objective.Term objects added to the objective at every scale. Raising painterly.Stop
        inside `callback` ends the run early; the current iterate is returned, `stopped=True`.

        on_stage(what, i, n) reports the work before and between steps: "preparing", "scale 1/2
        (2048x1536): targets", and for a tiled run each tile (i of n) of the targets and of
        every step's forward and backward pass ("step 3/100: backward", 5, 16); i = n = 0 for a
        stage without parts. Raising Stop there ends the run as from `callback`, within a tile;
        when no step has completed yet there is no iterate to return and Stop propagates.
        """
        start = time.perf_counter()
        stage = ["preparing"]

        def say(what: str = "", i: int = 0, n: int = 0) -> None:
            if on_stage is not None:
                on_stage(f"{stage[0]}: {what}" if what else stage[0], i, n)

        say()
        # 1-3. Options, images, colour mode, masks, memory plan, network (see _setup).
        r = self._setup(content, styles, job, options, overrides)
        o, plan = r.o, config.schedule(r.o)
        # 4. Coarse to fine: at each scale the targets at that size, starting from the previous
        #    result (the first scale from `init` or --init).
        features = self.features(r.luminance, compile=o.compile)
        gen = torch.Generator().manual_seed(o.seed)
        x, step, total_steps, stopped, last = None, 0, sum(n for _, n in plan), False, {}
        run_o, style_weights = o, []  # beta per scale run (--content-target, --content-ceiling change it)
        clock = memory.StepClock(plan, r.shape_src.size)  # the time left, from measured steps
        try:
            for k, (long_side, n_iter) in enumerate(plan):
                w, h = images.long_side_size(r.shape_src.size, long_side)
                stage[0] = f"scale {k + 1}/{len(plan)} ({w}x{h})"
                say("targets")
                objective, (w, h), c, ss = self._scale(r, long_side, features, run_o, extra_terms, on_tile=say)
                x = initial(o, x, (w, h), c, ss, gen, self.device, r.luminance, init)
                match_neighbours(objective, x, c, k == 0, run_o.neighbour_photo)
                stage[0] = f"step {step + 1}/{total_steps}"
                say()  # the targets are ready: a stop here keeps the last scale's image

                began, first = time.perf_counter(), step

                def on_step(losses, live, size=(w, h), k=k, n_iter=n_iter):
                    nonlocal step
                    step += 1
                    stage[0] = f"step {step + 1}/{total_steps}"
                    last.update(losses)
                    if callback is not None:  # image() renders the live iterate: call it inside the callback
                        now = time.perf_counter()
                        left = clock.left(k, step - first, now, began)
                        callback(Iterate(step, total_steps, losses, now - start, size,
                                         lambda: _render(live, r.content_img, r.luminance, size),
                                         (k + 1, len(plan)), (step - first, n_iter), left))

                x, stopped = optimise(objective, x, run_o, n_iter, on_step)
                # --content-ceiling: up to MAX_POLISHES polishes, each half the last scale's steps at a lower beta
                previous, done = None, n_iter
                for _ in range(MAX_POLISHES if k + 1 == len(plan) and not stopped else 0):
                    polish, k_now = self._polish(r, x, c, previous)
                    if polish >= 1.0:
                        break
                    style_weights.append(run_o.style_weight)
                    run_o = run_o.replace(style_weight=run_o.style_weight * polish)
                    objective.term("style").weight = run_o.style_weight
                    total_steps, done = total_steps + n_iter // 2, done + n_iter // 2
                    # From the clipped pixels: the fresh L-BFGS history otherwise pushes the pixels
                    # held at the range walls out further (brad_pitt x asheville, --preset quality:
                    # newly clipped 19.2% from the unclipped iterate, 12.1% from the clipped one).
                    x, stopped = optimise(objective, x.clamp(0, 1), run_o, n_iter // 2,
                                          lambda l, v, n=done: on_step(l, v, n_iter=n))
                    if stopped:
                        break
                    previous = (polish, k_now)
                if stopped:
                    break
                style_weights.append(run_o.style_weight)
                if o.content_target and k + 1 < len(plan) and job == "transfer":
                    run_o = run_o.replace(style_weight=run_o.style_weight * rebalance(objective, x, o.content_target))
        except Stop:
            stopped = True
        if stopped and step == 0:
            raise Stop
        # 5. The final image and its losses, in fp32 at the final size, on the clipped pixels.
        objective = c = ss = None  # free the last scale's before building the final ones
        w, h = images.long_side_size(r.shape_src.size, plan[-1][0])
        with torch.no_grad():
            if x.shape[-2:] != (h, w):
                x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
            x = x.clamp(0, 1)
            losses = dict(last)  # stopped, or neighbour (targets from a search): the last step's losses
            if not stopped and o.style_loss != "neighbour":  # (minutes for a huge tiled image)
                stage[0] = "final losses"
                say(f"{w}x{h} in fp32")
                try:
                    objective, _, c, ss = self._scale(r, plan[-1][0], self.features(r.luminance, fp32=True),
                                                      run_o.replace(precision="fp32"), extra_terms, on_tile=say)
                    parts = objective.parts(x)
                    losses = {name: ({l: float(v) for l, v in value.items()} if isinstance(value, dict)
                                     else float(value)) for name, value in parts.items()}
                    losses["total"] = float(objective.total(parts))
                except Stop:
                    stopped = True
        pixels = _pixels(x, r.content_img, r.luminance, (w, h)).float().cpu()
        if o.recolor != "none" and r.content_img is not None and job == "transfer":  # NNST's colour step
            pixels = color.oklab_recolor(pixels, images.to_tensor(images.fit_to(r.content_img, (w, h))),
                                         images.to_tensor(r.style_imgs[0].convert("RGB")),
                                         gamut="clip" if o.recolor == "oklab-clip" else "compress")
        image = images.to_pil(pixels.clamp(0, 1))
        recipe = self._recipe(job, o, content, r)
        image.info[images.RECIPE_KEY] = recipe
        return Result(image, losses, o, recipe, step, time.perf_counter() - start, stopped, pixels,
                      tuple(style_weights))

    def _polish(self, r: "_Run", x: torch.Tensor, c: torch.Tensor, previous=None) -> tuple:
        """(beta's factor for a polish after the last scale, K now): objective.ceiling_factor, with
        `previous` = (factor, K before) of an earlier polish; a factor of 1: none. Not for a tiled run
        (K would need the tiles) or neighbour (no content term); video turns it off (flicker)."""
        o = r.o
        if not o.content_ceiling or r.job != "transfer" or r.tile or o.style_loss == "neighbour" \
                or not o.content_layers:
            return 1.0, 0.0
        k = content_distance(self.features(r.luminance, fp32=True), x, c, o.content_layers, self.scales)
        # A higher --content-target raises the ceiling (else a polish undoes it: 2.0 ended at K 0.89)
        return ceiling_factor(k, max(o.content_ceiling, o.content_target), previous), k

    def objective(self, content: Optional[ImageLike], styles=None, long_side: Optional[int] = None, *,
                  job: str = "transfer", options: Optional[Options] = None, fp32: bool = False, **overrides):
        """(objective, content tensor) of a run at one size (default: --size): the function a run
        minimises there, for benchmarks and scoring. The objective is called as
        `objective.total(objective.parts(x))` on a (1, 3, H, W) image in [0, 1]."""
        r = self._setup(content, styles, job, options, overrides)
        o = r.o.replace(precision="fp32") if fp32 else r.o
        features = self.features(r.luminance, fp32=fp32, compile=o.compile and not fp32)
        objective, _, c, _ = self._scale(r, long_side or o.size, features, o, ())
        return objective, c

    def _setup(self, content, styles, job: str, options: Optional[Options], overrides: dict) -> "_Run":
        """Steps 1-3 of a run: checked options, loaded images, colour mode, masks, memory plan."""
        styles = _as_list(styles)
        o = (options or self.options).replace(**overrides)
        o = self._check(config.validate(o, job, max(len(styles), 1)))
        if o.init not in config.INITS:
            images.load_image(o.init)  # --init PATH: fail now, before any heavy work, if unreadable
        # 1. Images: load, then the output size (long side = --size, the content's aspect ratio;
        #    a texture takes the style's).
        content_img = images.load_image(content) if content is not None else None
        style_imgs = [images.load_image(s) for s in styles]
        o, blend = _job_options(job, o, content_img, style_imgs)
        shape_src = content_img if job != "texture" else style_imgs[0]
        # 2. Colour preservation (1606.05897): recolour the style on the float tensors at each
        #    scale (no clipping or 8-bit rounding), or work on luminance alone.
        histogram = o.preserve_color == "histogram" and content_img is not None
        luminance = o.preserve_color == "luminance" and content_img is not None
        # 3. Spatial control (1611.07865) and memory: estimate the peak before any heavy work;
        #    tile the evaluation when that makes it fit (--tile 0), or refuse (see memory.py).
        regions = masks.load(o, content_img.size if job == "transfer" else None, [s.size for s in style_imgs], blend)
        tile = memory.plan(o, job, shape_src.size, [s.size for s in style_imgs],
                           n_regions=regions.content.shape[0] if regions else 0)
        layers = list(o.content_layers) + list(o.style_layers)
        self._need(layers)
        return _Run(job, o, styles, content_img, style_imgs, shape_src, blend, histogram, luminance, regions,
                    tile, layers)

    def _scale(self, r: "_Run", long_side: int, features, opts: Options, extra_terms, on_tile=None):
        """The objective at one scale (targets, masks, tiling, terms) and the scale's images."""
        w, h = images.long_side_size(r.shape_src.size, long_side)
        c = self._tensor(r.content_img, long_side, r.luminance) if r.content_img is not None else None
        # The paper resizes the style image to the content's size; we keep its aspect ratio
        # and scale its long side to the output's times --style-scale.
        ss = [self._tensor(s, max(16, round(max(w, h) * opts.style_scale)), r.luminance) for s in r.style_imgs]
        if r.histogram:
            ss = [color.match_histogram(s, c, opts.color_match) for s in ss]
        if r.luminance:
            ss = [color.match_luminance(s, c) for s in ss]
        _check_fits(deepest(r.layers), [("the output", (w, h), r.shape_src.size)] + [
            (f"style image {i + 1}", (t.shape[-1], t.shape[-2]), r.style_imgs[i].size) for i, t in enumerate(ss)
            if r.job != "content"])
        tiler = _tiler(features, self.net.names, r.layers, r.tile, (w, h))
        if tiler is not None:
            tiler.on_tile = on_tile
        sm = masks.for_scale(r.regions, self.net.names, opts.style_layers, opts.mask_mode, (w, h),
                             [(t.shape[-1], t.shape[-2]) for t in ss], self.device) if r.regions else None
        cache = self._style_cache((tuple(opts.style_layers), opts.style_loss, opts.precision, opts.rotations))
        targets = build_targets(features, opts, c if r.job != "texture" else None, ss if r.job != "content" else [],
                                r.blend, masks=sm, tiler=tiler, style_cache=cache)
        objective = make_objective(features, opts, targets, extra_terms, tiler)
        if opts.balance == "photo" and r.job == "transfer" and c is not None:
            objective.calibrate(c)  # each loss relative to its value at the photo (objective.Term.calibrate)
        return objective, (w, h), c, ss

    def _check(self, o: Options) -> Options:
        differ = [f for f in config.NETWORK_FIELDS if getattr(o, f) != getattr(self.options, f)]
        if differ:
            raise InvalidOption(f"this Stylizer was prepared with other {', '.join(differ)}; "
                                "prepare a Stylizer with those options (painterly.Stylizer(...))")
        return o

    def _tensor(self, img: Image.Image, long_side: int, luminance: bool) -> torch.Tensor:
        t = images.to_tensor(images.resize_long_side(img, long_side)).to(self.device)
        return color.luminance_only(t)[:, :1] if luminance else t

    def _recipe(self, job, o: Options, content, r: "_Run") -> dict:
        recipe = {"painterly": __version__, "job": job, "options": o.to_dict(), "weights_sha256": self.sha256,
                  "preprocess": self.preprocess, "seed": o.seed,
                  "content": images.describe(content, r.content_img, o.recipe_paths) if content is not None else None,
                  "styles": [images.describe(s, img, o.recipe_paths) for s, img in zip(r.styles, r.style_imgs)],
                  "style_blend": r.blend,
                  "style_layer_weights": layer_weights(o)}
        recipe["options"]["style_layer_weights"] = layer_weights(o)
        recipe["options"]["weights_sha256"] = self.sha256
        return recipe


@dataclass
class _Run:
    """What one run fixes before optimising (Stylizer._setup)."""

    job: str
    o: Options
    styles: list  # as given (paths or images), for the recipe
    content_img: Optional[Image.Image]
    style_imgs: List[Image.Image]
    shape_src: Image.Image  # the image whose aspect ratio the output takes
    blend: List[float]
    histogram: bool
    luminance: bool
    regions: object  # masks.Regions or None
    tile: int
    layers: List[str]


_PREPARED: "collections.OrderedDict[tuple, Stylizer]" = collections.OrderedDict()
_PREPARED_LOCK = threading.Lock()


def prepared(o: Options) -> Stylizer:
    """A Stylizer for `o`'s network fields, reused across calls (the last two are kept), so
    that repeated calls from Python or the web page load and normalise the network once."""
    key = tuple(getattr(o, f) for f in config.NETWORK_FIELDS)
    with _PREPARED_LOCK:
        if key not in _PREPARED:
            _PREPARED[key] = Stylizer(o)
            while len(_PREPARED) > 2:
                _PREPARED.popitem(last=False)
        _PREPARED.move_to_end(key)
        return _PREPARED[key]


def run(job: str, content: Optional[ImageLike], styles=None, options: Optional[Options] = None,
        callback: Optional[Callable[[Iterate], None]] = None, **overrides) -> Result:
    """One run on the shared prepared engine for these options (see `prepared`)."""
    o = (options or config.DEFAULTS).replace(**overrides)
    return prepared(o).run(content, styles, job=job, options=o, callback=callback)


def make_objective(features, o: Options, targets: Targets, extra: Sequence[Term] = (), tiler=None) -> Objective:
    """The objective of a run at one scale: `o`'s terms plus `extra`, tiled when `tiler` is given."""
    terms = standard_terms(o, targets) + list(extra)
    if tiler is None:
        return Objective(features, terms)
    from .tiling import TiledObjective

    return TiledObjective(features, terms, tiler)


# --- the steps of a run ---------------------------------------------------------------------------
def _job_options(job: str, o: Options, content_img, style_imgs):
    """The options each job implies, and the styles' blend weights."""
    if job != "texture" and content_img is None:
        raise InvalidOption(f"the {job} job needs a content image")
    if job != "content" and not style_imgs:
        raise InvalidOption(f"the {job} job needs at least one style image")
    blend = ([b / sum(o.style_blend) for b in o.style_blend] if o.style_blend
             else [1 / max(len(style_imgs), 1)] * len(style_imgs))
    if job == "content":
        o = o.replace(style_layers=(), style_weight=0.0)
    if job == "texture":
        # Without a content term, L-BFGS's unit steps stall on the pure Gram loss from noise
        # (measured on the original VGG-19: 0.5% lower after 40 steps; 98% lower with the
        # strong-Wolfe line search), so texture synthesis always searches the step length.
        o = o.replace(content_layers=(), content_weight=0.0, lbfgs_line_search=True)
    if job != "transfer" and o.init in ("content", "palette"):
        # The reconstructions (paper Fig. 1) start from white noise: a texture has no content
        # image, and a content reconstruction starting from its target would be no test.
        o = o.replace(init="noise")
    return o, blend


def _as_list(styles) -> list:
    if styles is None:
        return []
    if isinstance(styles, (str, Image.Image)) or hasattr(styles, "__fspath__"):
        return [styles]
    return list(styles)


def _check_fits(last: str, sizes) -> None:
    """Every image must survive the poolings before `last` (each halves it) with >= 1 pixel."""
    need = 2 ** sum(1 for n in config.LAYERS[: config.LAYERS.index(last)] if n.startswith("pool"))
    for what, (w, h), (sw, sh) in sizes:
        if min(w, h) < need:
            text = f"{what} would be {w}x{h} px at one scale of this run, but layer {last} needs at least {need} px " \
                   "on each side; "
            if need * max(sw, sh) > config.MAX_SIZE * min(sw, sh):  # no --size makes the short side long enough
                raise InvalidOption(text + f"its image is {sw}x{sh} px, an aspect ratio too extreme for that at any "
                                    f"size up to {config.MAX_SIZE} px: crop it, or use shallower layers")
            raise InvalidOption(text + "use a larger --size (or --style-scale), or fewer scales (one --iterations "
                                "count)")


def _tiler(features, names, layers, tile: int, size):
    """A tiling.Tiler when tiling is on and the image at this scale is larger than a tile."""
    if not tile or max(size) <= tile:
        return None
    from .tiling import Tiler

    return Tiler(features, names, layers, tile)


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
