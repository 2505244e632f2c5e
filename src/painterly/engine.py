"""The engine: `Stylizer`, prepared once, run many times.

    stylizer = Stylizer(options)          # network, weights, preprocessing, normalisation, device
    result = stylizer.run(content, style) # one stylisation (Gatys, Ecker & Bethge, CVPR 2016)

Three jobs share it:
  transfer  minimise alpha * L_content + beta * L_style   (the paper's Fig. 2)
  content   content reconstruction from white noise       (Fig. 1, top)
  texture   style reconstruction (texture synthesis)      (Fig. 1, bottom)

Every surface (CLI, Python API, web page, figures, batch, video, benchmarks) runs through a
Stylizer; nothing else builds a network or an objective. The style method (painterly.methods)
supplies the style targets and term; a Stylizer caches each style image's targets, so many
runs with one painting (batch, video frames) compute them once.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
import time
from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image

from painterly import methods
from painterly.assemble import build_targets, make_objective, splits, tiler_for
from painterly.errors import InvalidOption, Stop
from painterly.imaging import (
    color,
    fit_to,
    long_side_size,
    masks,
    to_pil,
    to_tensor,
)
from painterly.imaging.save import RECIPE_KEY
from painterly.inputs import RunInputs, as_list, images_at, read_inputs
from painterly.net.device import autocast_for, configure, pick_device, precision_of, resize
from painterly.net.geometry import check_fits
from painterly.net.load import get_vgg
from painterly.net.normalize import normalize_vgg, reference_means
from painterly.net.vgg import deepest, feature_fn
from painterly.objective import Term
from painterly.optim import policy
from painterly.optim.optimise import optimise
from painterly.optim.starts import initial
from painterly.options import (
    DEFAULTS,
    NETWORK_FIELDS,
    SPECS,
    Options,
    check_type,
    schedule,
)
from painterly.progress import Stage, Steps
from painterly.result import Iterate, Result, make_recipe, output_pixels
from painterly.runtime.style_cache import StyleCache

ImageLike = Union[str, "os.PathLike[str]", Image.Image]


# --- the prepared engine ------------------------------------------------------------------------
class Stylizer:
    """A network prepared for runs: weights set and its preprocessing, pooling, normalisation,
    device, precision and memory layout fixed once (options.NETWORK_FIELDS), style targets
    cached per style image. `run` takes any other option per call.
    """

    def __init__(self, options: Optional[Options] = None, **overrides):
        o = (options or DEFAULTS).replace(**overrides)
        self.options = o
        for name in NETWORK_FIELDS:  # checked before torch takes any of them
            check_type(name, getattr(o, name))
            SPECS[name].check(name, getattr(o, name))
        self.device = pick_device(o.device)
        configure(self.device, o.deterministic)
        if o.threads:
            torch.set_num_threads(o.threads)
        # The network is built on first need (`prepare`, or a run after its memory check), cut
        # after the deepest layer these options use; a run that asks for a deeper one rebuilds it.
        self.net, self.last = None, None
        self._lock = threading.Lock()  # runs in several threads (the web page) share the caches
        self._styles = StyleCache(self.device, self._lock)  # style targets by the style's pixels

    def _build(self, last: str) -> None:
        o = self.options
        net, self.sha256, self.preprocess = get_vgg(
            o.weights, last=last, pooling=o.pooling, preprocess=o.preprocess, seed=0
        )
        net = net.to(self.device).eval()
        self.channels_last = o.channels_last and self.device.type in ("cpu", "cuda")
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        scales = None
        if o.normalize:
            # The normalised network of the paper, with means fixed per network (reference_means:
            # not measured on a run's images, so every run with a network is normalised alike).
            means = reference_means(net, self.sha256, o.pooling)
            scales = normalize_vgg(net, means={k: v.to(self.device) for k, v in means.items()})
        self.scales = scales  # each filter's divisor (policy.content_distance undoes it)
        self.net, self.last = net, last
        self.amp = autocast_for(o.precision, self.device)
        self._styles.reset()
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
        """features(x, layers) -> {layer: activation} (see net.vgg.feature_fn); luminance: x has
        one channel (Y), repeated to three for the network."""
        key = (luminance, fp32, compile)
        if key not in self._features:  # kept, so the bf16 copy of the network is made once, not per run
            to_net = (lambda t: t.expand(-1, 3, -1, -1)) if luminance else None
            self._features[key] = feature_fn(
                self.net,
                to_net,
                self.channels_last,
                contextlib.nullcontext if fp32 else self.amp,
                compile=compile,
            )
        return self._features[key]

    # --- one run ----------------------------------------------------------------------------
    def run(
        self,
        content: Optional[ImageLike],
        styles=None,
        *,
        job: str = "transfer",
        options: Optional[Options] = None,
        init: Optional[Union[ImageLike, torch.Tensor]] = None,
        extra_terms: Sequence[Term] = (),
        callback: Optional[Callable[[Iterate], None]] = None,
        on_stage: Optional[Callable[[str, int, int], None]] = None,
        **overrides,
    ) -> Result:
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
        start, stage = time.perf_counter(), Stage(on_stage)
        stage.say()
        # 1-3. Options, images, colour mode, masks, memory plan, network (see _setup).
        r = self._setup(content, styles, job, options, overrides)
        o, plan = r.o, schedule(r.o)
        features = self.features(r.luminance, compile=o.compile)
        gen = torch.Generator().manual_seed(o.seed)
        steps = Steps(plan, r, callback, stage, start)
        x, run_o, stopped = None, o, False  # run_o: beta as --content-target and --content-ceiling leave it
        try:
            # 4. Coarse to fine: at each scale the targets at that size, starting from the
            #    previous result (the first scale from `init` or --init), then its steps.
            for k, (long_side, n_iter) in enumerate(plan):
                stage.scale(k, plan, long_side_size(r.shape_src.size, long_side))
                objective, c, ss = self._scale(
                    r,
                    long_side,
                    features,
                    run_o,
                    extra_terms,
                    on_tile=stage.say,
                    split=splits(r, k, plan),
                )
                x = initial(o, x, steps.size(k), c, ss, gen, self.device, r.luminance, init)
                r.method.before_scale(objective, x, c, k == 0, run_o)
                steps.begin(k)  # the targets are ready: a stop here keeps the last scale's image
                x, stopped = optimise(objective, x, run_o, n_iter, steps.on_step)
                if not stopped:  # the schedule's policy: the ceiling polish, beta for the next scale
                    x, run_o, stopped = self._policy(r, k, objective, x, c, run_o, steps)
                if stopped:
                    break
        except Stop:
            stopped = True
        if stopped and steps.step == 0:
            raise Stop
        # 5. The final image and its losses, in fp32 at the final size, on the clipped pixels.
        objective = c = ss = None  # free the last scale's before building the final ones
        x = self._final_size(x, r, plan[-1][0])
        losses = steps.last  # stopped, or a method without final losses: the last step's
        if not stopped and r.method.final_losses:
            try:
                losses = self.final_losses(r, x, plan[-1][0], run_o, extra_terms, stage)
            except Stop:
                stopped = True
        return self._result(r, content, x, losses, steps, stopped)

    def final_losses(
        self, r: RunInputs, x: torch.Tensor, long_side: int, o: Options, extra_terms, stage
    ) -> dict:
        """Every loss of the clipped result x in fp32 at the final size (minutes for a huge tiled image)."""
        w, h = x.shape[-1], x.shape[-2]
        stage.now("final losses")
        stage.say(f"{w}x{h} in fp32")
        with torch.no_grad():
            objective, _, _ = self._scale(
                r,
                long_side,
                self.features(r.luminance, fp32=True),
                o.replace(precision="fp32"),
                extra_terms,
                on_tile=stage.say,
            )
            parts = objective.parts(x)
            losses = {
                name: ({l: float(v) for l, v in value.items()} if isinstance(value, dict) else float(value))
                for name, value in parts.items()
            }
            losses["total"] = float(objective.total(parts))
        return losses

    def _policy(self, r: RunInputs, k: int, objective, x: torch.Tensor, c, o: Options, steps: Steps):
        """After scale k's steps (optim/policy.py): the --content-ceiling polish after the last
        scale, --content-target's beta for the next; each scale's beta recorded. Returns (x, the
        options with beta as they leave it, stopped)."""
        last = k + 1 == len(steps.plan)
        if last and self._polishes(r):
            x, o, stopped, betas = policy.polish(
                objective,
                x,
                o,
                steps.plan[k][1],
                lambda x: self._distance(r, x, c),
                lambda x, o_, n: steps.more(objective, x, o_, n),
            )
            steps.betas += betas
            if stopped:
                return x, o, True
        steps.betas.append(o.style_weight)
        if r.o.content_target and not last and r.job == "transfer":
            o = o.replace(style_weight=o.style_weight * policy.rebalance(objective, x, r.o.content_target))
        return x, o, False

    def _polishes(self, r: RunInputs) -> bool:
        """Whether --content-ceiling may polish this run: not a tiled run (K would need the tiles),
        nor a method without a content term; video turns it off (flicker)."""
        o = r.o
        return bool(
            o.content_ceiling
            and r.job == "transfer"
            and not r.tile
            and r.method.polishes
            and o.content_layers
        )

    def _distance(self, r: RunInputs, x: torch.Tensor, c: torch.Tensor) -> float:
        """The content distance K of x from the photo c (policy.content_distance), in fp32."""
        return policy.content_distance(
            self.features(r.luminance, fp32=True), x, c, r.o.content_layers, self.scales
        )

    def _final_size(self, x: torch.Tensor, r: RunInputs, long_side: int) -> torch.Tensor:
        """x at the final size (a stop before the last scale), clipped to [0, 1]."""
        w, h = long_side_size(r.shape_src.size, long_side)
        with torch.no_grad():
            if x.shape[-2:] != (h, w):
                x = resize(x, (h, w), "bicubic", align_corners=False)
            return x.clamp(0, 1)

    def _result(
        self, r: RunInputs, content, x: torch.Tensor, losses: dict, steps: Steps, stopped: bool
    ) -> Result:
        """The Result: the pixels (recombined, recoloured), the image with its recipe, the losses."""
        o, (w, h) = r.o, (x.shape[-1], x.shape[-2])
        pixels = output_pixels(x, r.content_img, r.luminance, (w, h)).float().cpu()
        if o.recolor != "none" and r.content_img is not None and r.job == "transfer":  # NNST's colour step
            pixels = color.oklab_recolor(
                pixels,
                to_tensor(fit_to(r.content_img, (w, h))),
                to_tensor(r.style_imgs[0].convert("RGB")),
                gamut="clip" if o.recolor == "oklab-clip" else "compress",
            )
        image = to_pil(pixels.clamp(0, 1))
        ran_on = {"device": str(self.device), "precision": precision_of(self.amp)}  # what auto chose
        inputs = (content, r.content_img, r.styles, r.style_imgs, r.blend)
        recipe = make_recipe(r.job, o, self.sha256, self.preprocess, *inputs, ran_on)
        image.info[RECIPE_KEY] = recipe
        return Result(
            image, losses, o, recipe, steps.step, steps.seconds(), stopped, pixels, tuple(steps.betas)
        )

    def objective(
        self,
        content: Optional[ImageLike],
        styles=None,
        long_side: Optional[int] = None,
        *,
        job: str = "transfer",
        options: Optional[Options] = None,
        fp32: bool = False,
        **overrides,
    ):
        """(objective, content tensor) of a run at one size (default: --size): the function a run
        minimises there, for benchmarks and scoring. The objective is called as
        `objective.total(objective.parts(x))` on a (1, 3, H, W) image in [0, 1]."""
        r = self._setup(content, styles, job, options, overrides)
        o = r.o.replace(precision="fp32") if fp32 else r.o
        features = self.features(r.luminance, fp32=fp32, compile=o.compile and not fp32)
        objective, c, _ = self._scale(r, long_side or o.size, features, o, ())
        return objective, c

    def _setup(self, content, styles, job: str, options: Optional[Options], overrides: dict) -> RunInputs:
        """Steps 1-3 of a run: checked options, loaded images, colour mode, masks, memory plan
        (inputs.read_inputs), then the network these options need."""
        styles = as_list(styles)
        o = (options or self.options).replace(**overrides)
        o = self._check(methods.validate(o, job, max(len(styles), 1)))
        r = read_inputs(o, job, content, styles, self.device)
        self._need(r.layers)
        configure(self.device, o.deterministic)  # process-wide: another Stylizer may have run since
        return r

    def _scale(
        self, r: RunInputs, long_side: int, features, opts: Options, extra_terms, on_tile=None, split=False
    ):
        """(objective, content tensor, style tensors) at one scale: the images at that size, the
        targets (content, the method's style targets, palette), masks, tiling and the terms.
        split: the deep layers after --deep-split at half resolution (targets and image alike)."""
        w, h = long_side_size(r.shape_src.size, long_side)
        c, ss = images_at(r, long_side, opts, self.device)
        check_fits(
            deepest(r.layers),
            [("the output", (w, h), r.shape_src.size)]
            + [
                (f"style image {i + 1}", (t.shape[-1], t.shape[-2]), r.style_imgs[i].size)
                for i, t in enumerate(ss)
                if r.job != "content"
            ],
        )
        tiler = tiler_for(features, self.net.names, r.layers, r.tile, (w, h))
        if tiler is not None:
            tiler.on_tile = on_tile
        half = opts.deep_split if split and tiler is None else None
        if half:  # the targets and the steps see the same split network
            features = functools.partial(features, half_after=half)
        sm = (
            masks.for_scale(
                r.regions,
                self.net.names,
                opts.style_layers,
                opts.mask_mode,
                (w, h),
                [(t.shape[-1], t.shape[-2]) for t in ss],
                self.device,
            )
            if r.regions
            else None
        )
        targets = build_targets(
            features,
            opts,
            c if r.job != "texture" else None,
            ss if r.job != "content" else [],
            r.blend,
            masks=sm,
            tiler=tiler,
            style_cache=self._styles.lookup(r.method.cache_key(opts) + (half,)),
        )
        objective = make_objective(features, opts, targets, extra_terms, tiler)
        if opts.balance == "photo" and r.job == "transfer" and c is not None:
            objective.calibrate(c)  # each loss relative to its value at the photo (objective.Term.calibrate)
        return objective, c, ss

    def _check(self, o: Options) -> Options:
        differ = [f for f in NETWORK_FIELDS if getattr(o, f) != getattr(self.options, f)]
        if differ:
            raise InvalidOption(
                f"this Stylizer was prepared with other {', '.join(differ)}; "
                "prepare a Stylizer with those options (painterly.Stylizer(...))"
            )
        return o


_PREPARED: "collections.OrderedDict[tuple, Stylizer]" = collections.OrderedDict()
_PREPARED_LOCK = threading.Lock()


def prepared(o: Options) -> Stylizer:
    """A Stylizer for `o`'s network fields, reused across calls (the last two of each device are
    kept: the web page's jobs on several GPUs), so that repeated calls from Python or the web
    page load and normalise the network once."""
    key = tuple(getattr(o, f) for f in NETWORK_FIELDS)
    with _PREPARED_LOCK:
        if key not in _PREPARED:
            _PREPARED[key] = Stylizer(o)
            same = [k for k in _PREPARED if k[NETWORK_FIELDS.index("device")] == o.device]
            for old in same[: max(0, len(same) - 2)]:
                del _PREPARED[old]
        _PREPARED.move_to_end(key)
        return _PREPARED[key]


def run(
    job: str,
    content: Optional[ImageLike],
    styles=None,
    options: Optional[Options] = None,
    callback: Optional[Callable[[Iterate], None]] = None,
    **overrides,
) -> Result:
    """One run on the shared prepared engine for these options (see `prepared`)."""
    o = (options or DEFAULTS).replace(**overrides)
    return prepared(o).run(content, styles, job=job, options=o, callback=callback)
