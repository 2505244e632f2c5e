"""How much memory a run needs, checked before it starts.

`estimate_peak_bytes(options, width, height)` predicts the peak resident memory (RSS) of a
run from the pixel counts of its images, the optimiser's state and the activations of one
forward and backward pass through VGG-19 (of the whole image, or of one tile with its halo).
The per-pixel coefficients below were fitted to peak RSS measured in subprocesses on this
project's reference machine (x86-64, PyTorch 2.x CPU build); `python -m painterly.memory`
re-measures them and prints the fit, so they can be checked on another machine.

`plan` (called by transfer.run before any heavy work) returns the tile side to use: 0 when
the whole image fits, else the largest tile that makes the run fit when --tile is 0
(automatic); with neither it raises ResourceError naming the largest --size that fits.
Set PAINTERLY_NO_MEMORY_CHECK=1 to skip the check (the estimate is then ignored).
"""
from __future__ import annotations

import functools
import math
import os
from typing import Dict, Optional, Sequence, Tuple

from . import config
from .errors import ResourceError

GiB = 1024 ** 3

# --- the model's coefficients (bytes), fitted by relative least squares to peak RSS measured
# with `measure` (2 iterations, random weights, CPU, 2 threads): untiled runs at 256/512/768 px
# in fp32 and bf16, tiled bf16 runs at 1024 (tiles 256, 512), 1536 and 2048 px (tile 512),
# and one 4096 x 4096 run (tile 2048, 9.8 GiB). The fit's residuals are within -14%..+16%;
# SAFETY puts every measured peak under the estimate (which is then 0..+40% high).
# interpreter, torch, the network's weights, allocator slack; +0.05e9 since 2026-12-01 for the
# dequantised original weights and the normalisation means measured at 512 px (a 512 px run
# then peaked at 1.064 GiB against an estimate of 1.040).
BASE = 0.67e9
# Working memory of one forward + backward pass per pixel of the evaluated area (the whole
# image, or one tile with its halo), for the paper's layers (up to conv5_1), by precision;
# scaled by `_depth_factor` for shallower or deeper layer sets.
ACT = {"fp32": 2120.0, "bf16": 1380.0}
FULL = 220.0  # per output pixel: the optimiser's working vectors, content features, copies
SAFETY = 1.18  # the estimate is this much above the fitted model

# --style-loss neighbour, per pixel of the scale's output and of its style image (and of each of
# the three rotated copies with --rotations): hypercolumns, their centred and unit copies, the
# targets and the search's chunk. Fitted (2026-12-03, tubingen x starry_night, --iterations
# 1,1,1,2, glibc's default allocator) to peaks of 0.74 GiB at 256 px, 3.52 GiB at 768 (3.29 with
# --style-scale 0.5, 4.54 with --rotations) and 5.53 GiB at 1024 px, which the estimate then tops
# by 3-60%; before, it ignored the search and predicted 2.1 GiB at 1024 px.
NEIGHBOUR_PX = {"content": 3700.0, "style": 1100.0, "rotated": 1200.0}
# With keep_freed_memory the heap fragments: peaks measured against glibc's default, same runs:
# neighbour 1.09x at 256 px, 1.24x at 512, 1.28x at 768, 1.42x with --rotations, 1.47x at 1024;
# the Gatys default 1.04x at 512, 1.24x at 1024, 1.25x at 2048 tiled (512 px tiles).
KEPT_FACTOR = 1.5
FINAL_STEPS = 3.0  # the final fp32 evaluation of the losses (targets, calibration, parts) in steps' time
TILE_CANDIDATES = (2048, 1536, 1024, 768, 512, 384, 256)
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def _floats_per_pixel(layers: Sequence[str]) -> float:
    """Feature values per input pixel of the given layers: N_l / stride_l^2 summed."""
    total = 0.0
    for l in layers:
        b = int(l[4])
        total += _CHANNELS[b] / 4 ** (b - 1)
    return total


def _depth_factor(layers: Sequence[str]) -> float:
    """Activations of layers up to the deepest one used, relative to the paper's conv5_1."""
    if not layers:
        return 0.0
    order = config.LAYERS
    deepest = max(layers, key=order.index)
    upto = order[: order.index(deepest) + 1]
    ref = order[: order.index("conv5_1") + 1]
    return _floats_per_pixel([n for n in upto if n[0] in "cr"]) / _floats_per_pixel([n for n in ref if n[0] in "cr"])


def _precision(o) -> str:
    """The precision the run's convolutions will use on this machine's CPU."""
    if o.precision != "auto":
        return o.precision
    import torch

    from .network import native_bf16

    return "bf16" if native_bf16(torch.device("cpu")) else "fp32"


def _halo(layers: Sequence[str]) -> Tuple[int, int]:
    from .tiling import halo_for

    names = config.LAYERS[: max(config.LAYERS.index(l) for l in layers) + 1]
    return halo_for(names, layers)


def _long_to_wh(aspect_wh: Tuple[int, int], long_side: int) -> Tuple[int, int]:
    w, h = aspect_wh
    s = long_side / max(w, h)
    return max(1, math.floor(w * s + 0.5)), max(1, math.floor(h * s + 0.5))


def estimate_peak_bytes(options, width: int, height: int, *, job: str = "transfer",
                        style_sizes: Optional[Sequence[Tuple[int, int]]] = None, n_regions: int = 0,
                        tile: Optional[int] = None, kept: bool = False) -> int:
    """Predicted peak RSS in bytes of a run whose final output is width x height.

    style_sizes: (w, h) of the style images as given (only their aspect ratios matter; by
    default one square style image); n_regions: spatial-control regions (0: none);
    tile: the tile side (None or 0: untiled); kept: with keep_freed_memory on (KEPT_FACTOR).
    The coarse-to-fine schedule of `options` is taken into account (the peak is that of the
    largest scale).
    """
    o = options
    schedule = config.schedule(o)  # the run's own (long side, iterations) per scale
    scales, iters = [side for side, _ in schedule], [n for _, n in schedule]
    final = scales[-1]
    ch = 1 if o.preserve_color == "luminance" and job != "texture" else 3
    content_layers = list(o.content_layers) if job != "texture" else []
    style_layers = list(o.style_layers) if job != "content" else []
    layers = content_layers + style_layers
    styles = list(style_sizes) if style_sizes is not None else ([(1, 1)] if job != "content" else [])
    act = ACT[_precision(o)] * _depth_factor(layers)
    sliced = o.style_loss == "sliced"
    peak = 0.0
    for side, n in zip(scales, iters):
        f = side / final
        w, h = max(1, round(width * f)), max(1, round(height * f))
        p = w * h
        ps = [wh[0] * wh[1] for wh in (_long_to_wh(s, max(1, round(max(w, h) * o.style_scale))) for s in styles)]
        # the content and style images as float tensors (two copies alive at times)
        persist = 24.0 * (p + sum(ps)) + FULL * p
        # L-BFGS remembers 2 vectors per step (the fit's runs had one pair); Adam has 2 in FULL
        if o.optimizer == "lbfgs":
            persist += 8.0 * ch * p * max(0, min(o.lbfgs_history, max(n - 1, 0)) - 1)
        if n_regions:  # pixel masks of the output and the styles, and their per-layer copies
            persist += 4.0 * n_regions * (p + sum(ps)) * 2.4
        if sliced:  # the styles' features are the targets
            persist += 4.0 * sum(ps) * _floats_per_pixel(style_layers)
        if o.style_loss == "neighbour" and job == "transfer":
            nb = NEIGHBOUR_PX
            persist += nb["content"] * p + sum(ps) * (nb["style"] + 3 * nb["rotated"] * bool(o.rotations))
        area = p
        if tile and max(w, h) > tile:
            halo, stride = _halo(layers)
            t = -(-tile // stride) * stride
            area = min(w, t + 2 * halo) * min(h, t + 2 * halo)
            if sliced:  # the output's assembled features and their gradient
                persist += 8.0 * p * _floats_per_pixel(style_layers)
        # the style images' targets are computed (without gradient) at their own size
        style_area = max(ps, default=0) if not (tile and max(w, h) > tile) else area
        peak = max(peak, persist + act * max(area, 0.6 * style_area))
    return int(SAFETY * (BASE + peak) * (KEPT_FACTOR if kept else 1.0))


class StepClock:
    """Seconds left in a run, from measured steps. A scale's first step is slow (the new size's
    first pass), so from its second step on the estimate uses that scale's later steps; at a
    scale's first step it uses what the earlier scales measured (the run's very first step has
    only itself). The steps left are this scale's, then each later scale's targets (about one
    step) and steps, and the final fp32 evaluation of the losses (about FINAL_STEPS steps).

    A step's time at another size: with one scale measured, proportional to the pixel count;
    with two, the line through the last two (a fixed cost per step plus a cost per pixel), since
    at 64 px a step is mostly fixed cost and pixels alone made a 4-scale run's first estimate
    several times too long (--preset neighbour: "46:08 more" for a run of a minute)."""

    def __init__(self, plan, shape_wh):
        self.plan, self.shape = plan, shape_wh
        self.k, self.warm = -1, None
        self.measured: Dict[int, float] = {}  # pixel count -> seconds per step (each scale's last estimate)

    def _pixels(self, k: int) -> int:
        w, h = _long_to_wh(self.shape, self.plan[k][0])
        return w * h

    def _step_at(self, pixels: int) -> float:
        """Seconds per step at `pixels`, from the measured scales (at least one)."""
        (p1, t1), *rest = sorted(self.measured.items(), key=lambda m: -m[0])[:2]  # the two largest
        if rest:
            p0, t0 = rest[0]
            per_pixel = (t1 - t0) / (p1 - p0)
            fixed = t1 - per_pixel * p1
            if per_pixel > 0 and fixed >= 0:
                return fixed + per_pixel * pixels
        return t1 * pixels / p1

    def left(self, k: int, done: int, now: float, began: float) -> float:
        """After `done` steps of scale k, at time `now`; `began`: when the scale's steps began."""
        if k != self.k:
            self.k, self.warm = k, None
        here = self._pixels(k)
        if done == 1:
            self.warm = now
            per_step = self._step_at(here) if self.measured else now - began
        else:
            per_step = (now - self.warm) / (done - 1)
            self.measured[here] = per_step
        def step_at(j: int) -> float:
            return self._step_at(self._pixels(j)) if self.measured else per_step * self._pixels(j) / here

        later = sum((n + 1) * step_at(j) for j, (_, n) in enumerate(self.plan) if j > k)
        return per_step * (self.plan[k][1] - done) + later + FINAL_STEPS * step_at(len(self.plan) - 1)


KEEP_SHARE = 0.4  # keep_freed_memory stands aside for a run estimated above this share of the free memory
_keep = {"asked": False, "on": False}


@functools.lru_cache(maxsize=None)
def _glibc_mallopt():
    """glibc's mallopt, or None (another C library, whose mallopt numbers differ, or none)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc's own
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def _mallopt(keep: bool) -> bool:
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    if keep:
        return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2 ** 31 - 1))
    # glibc's defaults (its trim threshold then stays at 128 KiB instead of adapting)
    return bool(mallopt(m_mmap_max, 65536)) and bool(mallopt(m_trim_threshold, 128 * 1024))


def keep_freed_memory() -> bool:
    """Keep the memory a run frees for its next step, instead of handing it back to the kernel.

    glibc's malloc serves every block above 32 MiB (most of a 512 px run's activations) with its
    own mmap and unmaps it on free, so each step's tensors arrive as fresh pages that the kernel
    faults in and zeroes again: 20 million page faults and a quarter of the CPU time in the
    kernel for a 512 x 512 neighbour run. With mmap off and trimming raised, freed blocks stay
    in the heap for reuse. Measured side by side (2026-12-03, 2 cores, modern x the_scream at
    512 px, benchmarks/bench_allocator.py): `--preset neighbour` 111.1 s -> 80.0 s, the Gatys
    default 106.1 s -> 106.7 s (no gain there), the same bytes out. The price is fragmentation
    (glibc 2.36's aligned allocations leave holes a block of the same size just misses): the
    peak RSS of a neighbour run is 24% higher at 512 x 512, 28% at 768 px, 47% at 1024 px (8.1
    GiB), a tiled 2048 px default run 25% (KEPT_FACTOR covers these). So `plan` turns it off
    again (glibc's default) for a run whose kept estimate is above KEEP_SHARE of the free
    memory, where a page fault costs little beside the run and the extra peak could matter.

    Process-wide, so only painterly's own processes call it (the CLI and its verbs, batch
    workers, Ray actors); a Python program may call it too. A no-op returning False off glibc
    or with PAINTERLY_RETURN_MEMORY=1 set.
    """
    if os.environ.get("PAINTERLY_RETURN_MEMORY"):
        return False
    _keep["asked"] = _keep["on"] = _mallopt(True)
    return _keep["on"]


def _fit_allocator(need: int, avail: int) -> None:
    """keep_freed_memory for a run estimated at `need` bytes (glibc's default allocator) of
    `avail` (see its doc)."""
    if _keep["asked"]:
        keep = KEPT_FACTOR * need <= KEEP_SHARE * avail
        if keep != _keep["on"] and _mallopt(keep):
            _keep["on"] = keep


def available_bytes(device: str = "cpu") -> int:
    """Memory a new allocation can use now: MemAvailable (psutil or /proc/meminfo), capped by a
    cgroup limit if one is set; on CUDA the device's free memory."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        avail = int(line.split()[1]) * 1024
        except OSError:
            pass
    for limit_file, used_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(used_file) as f:
                used = int(f.read().strip())
            if limit.isdigit() and int(limit) < 1 << 60:
                room = int(limit) - used
                avail = room if avail is None else min(avail, room)
            break
        except (OSError, ValueError):
            continue
    return avail if avail is not None else 1 << 62


def _scaled(o, long_side: int):
    """Options with the output's long side (and a coarse-to-fine schedule) scaled to long_side."""
    final = config.scale_sides(o)[-1]
    scales = tuple(max(16, round(s * long_side / final)) for s in o.scales) if o.scales else ()
    return o.replace(size=long_side, scales=scales)


def plan(o, job: str, shape_wh: Tuple[int, int], style_whs: Sequence[Tuple[int, int]], n_regions: int = 0,
         available: Optional[int] = None, device: str = "cpu") -> int:
    """The tile side for a run (0: untiled), or ResourceError if it cannot fit.

    o.tile > 0: that tile side (checked); o.tile == 0: untiled if that fits, else the largest
    of TILE_CANDIDATES that fits.
    """
    final = (o.scales or (o.size,))[-1]
    w, h = _long_to_wh(shape_wh, final)
    if os.environ.get("PAINTERLY_NO_MEMORY_CHECK"):
        return o.tile
    avail = available_bytes(device) if available is None else available

    def need(opts, ww, hh, t):
        return estimate_peak_bytes(opts, ww, hh, job=job, style_sizes=style_whs or None, n_regions=n_regions, tile=t)

    candidates = [o.tile] if o.tile else [0] + [t for t in TILE_CANDIDATES if t < max(w, h)]
    for t in candidates:  # the tile is chosen as without keep_freed_memory: the same on every surface
        n = need(o, w, h, t)
        if n <= avail:
            _fit_allocator(n, avail)
            return t
    # Nothing fits: find the largest size that does (same schedule shape and tiling rule).
    smallest = candidates[-1]

    def fits(side):
        ow, oh = _long_to_wh(shape_wh, side)
        opts = _scaled(o, side)
        tiles = [opts.tile] if opts.tile else [0] + [t for t in TILE_CANDIDATES if t < side]
        return any(need(opts, ow, oh, t) <= avail for t in tiles)

    lo, hi = 16, final
    if not fits(lo):
        best = None
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        best = lo
    digits = 1 if round(need(o, w, h, smallest) / GiB, 1) != round(avail / GiB, 1) else 2  # never "0.8 but 0.8"
    msg = (f"a {w}x{h} run needs about {need(o, w, h, smallest) / GiB:.{digits}f} GiB but {avail / GiB:.{digits}f} GiB "
           f"is available")
    if o.optimizer == "lbfgs" and o.lbfgs_history > 1:
        hist = _largest_history(o, w, h, need, smallest, avail)
        if hist:
            msg += f"; --lbfgs-history {hist} (or --optimizer adam) would fit"
    msg += f"; the largest size that fits is --size {best}" if best else "; even --size 16 does not fit"
    raise ResourceError(msg)


def _largest_history(o, w, h, need, tile, avail) -> int:
    lo, hi = 0, o.lbfgs_history
    if need(o.replace(lbfgs_history=1), w, h, tile) > avail:
        return 0
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(o.replace(lbfgs_history=mid), w, h, tile) <= avail else (lo, mid)
    return lo


# --- calibration -------------------------------------------------------------------------------
_CHILD = r"""
import json, os, resource, sys, time
import painterly
from painterly import memory
size, tile, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
iters, opts = json.loads(sys.argv[4]), json.loads(sys.argv[7])
os.environ["PAINTERLY_NO_MEMORY_CHECK"] = "1"
if opts.pop("keep", False):
    memory.keep_freed_memory()  # as the CLI does
t0 = time.perf_counter()
opts["iterations"] = iters if isinstance(iters, list) else (iters,)  # one per scale, or one number
res = painterly.run_transfer(sys.argv[5], sys.argv[6], weights="random", size=size, tile=tile,
                             precision=precision, device="cpu", **opts)
# VmHWM is this process's own high-water mark; ru_maxrss also counts the parent's RSS at the
# fork (Linux keeps it across exec), so a large test process would inflate it.
try:
    peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"size": list(res.image.size), "peak": peak, "seconds": time.perf_counter() - t0}))
"""


def measure(size: int, tile: int = 0, precision: str = "fp32", iterations=2, content=None, style=None,
            **options) -> dict:
    """Peak RSS (bytes) and seconds of one run in a fresh subprocess (random weights);
    iterations: a number, or a list of one per scale; `options`: more keyword options for the
    run (JSON values), and keep=True to keep freed memory as the CLI does."""
    import json
    import subprocess
    import sys
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        if content is None or style is None:
            import numpy as np

            rng = np.random.default_rng(0)
            content = os.path.join(d, "c.png")
            style = os.path.join(d, "s.png")
            Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(content)
            Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(style)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(size), str(tile), precision, json.dumps(iterations),
                              str(content), str(style), json.dumps(options)], capture_output=True, text=True,
                             check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrate(sizes=(256, 384, 512, 768), precision: str = "fp32") -> None:
    """Measure untiled runs and print measured vs estimated peaks (see the module doc)."""
    o = config.DEFAULTS.replace(precision=precision, iterations=(2,))
    for s in sizes:
        m = measure(s, precision=precision)
        w, h = m["size"]
        est = estimate_peak_bytes(o.replace(size=s), w, h, style_sizes=[(300, 300)])
        print(f"{w}x{h} {precision}: measured {m['peak'] / GiB:.2f} GiB, estimated {est / GiB:.2f} GiB "
              f"({m['seconds']:.1f} s)")


if __name__ == "__main__":
    calibrate()
