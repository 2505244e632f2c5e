"""How much memory a run needs, checked before it starts.

`estimate_peak_bytes(options, width, height)` predicts the peak resident memory (RSS) of a
run from the pixel counts of its images, the optimiser's state and the activations of one
forward and backward pass through VGG-19 (of the whole image, or of one tile with its halo).
The per-pixel coefficients below were fitted to peak RSS measured in subprocesses on this
project's reference machine (x86-64, PyTorch 2.x CPU build); `python -m painterly.runtime.memory`
re-measures them and prints the fit, so they can be checked on another machine.

`plan` (called by engine.Stylizer before any heavy work) returns the tile side to use: 0 when
the whole image fits, else the largest tile that makes the run fit when --tile is 0
(automatic); with neither it raises ResourceError naming the largest --size that fits.
Set PAINTERLY_NO_MEMORY_CHECK=1 to skip the check (the estimate is then ignored).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

from painterly import methods
from painterly.errors import ResourceError
from painterly.imaging import long_side_size
from painterly.options import DEFAULTS, LAYERS, floats_per_pixel, scale_sides, schedule
from painterly.runtime.allocator import KEPT_FACTOR, fit_allocator

GiB = 1024**3

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

TILE_CANDIDATES = (2048, 1536, 1024, 768, 512, 384, 256)


def _depth_factor(layers: Sequence[str]) -> float:
    """Activations of layers up to the deepest one used, relative to the paper's conv5_1."""
    if not layers:
        return 0.0
    order = LAYERS
    deepest = max(layers, key=order.index)
    upto = order[: order.index(deepest) + 1]
    ref = order[: order.index("conv5_1") + 1]
    return floats_per_pixel([n for n in upto if n[0] in "cr"]) / floats_per_pixel(
        [n for n in ref if n[0] in "cr"]
    )


def _precision(o) -> str:
    """The precision the run's convolutions will use on this machine's CPU."""
    if o.precision != "auto":
        return o.precision
    import torch

    from painterly.net.device import native_bf16

    return "bf16" if native_bf16(torch.device("cpu")) else "fp32"


def _halo(layers: Sequence[str]) -> Tuple[int, int]:
    from painterly.net.geometry import halo_for

    names = LAYERS[: max(LAYERS.index(l) for l in layers) + 1]
    return halo_for(names, layers)


def estimate_peak_bytes(
    options,
    width: int,
    height: int,
    *,
    job: str = "transfer",
    style_sizes: Optional[Sequence[Tuple[int, int]]] = None,
    n_regions: int = 0,
    tile: Optional[int] = None,
    kept: bool = False,
) -> int:
    """Predicted peak RSS in bytes of a run whose final output is width x height.

    style_sizes: (w, h) of the style images as given (only their aspect ratios matter; by
    default one square style image); n_regions: spatial-control regions (0: none);
    tile: the tile side (None or 0: untiled); kept: with keep_freed_memory on (KEPT_FACTOR).
    The coarse-to-fine schedule of `options` is taken into account (the peak is that of the
    largest scale).
    """
    o = options
    steps = schedule(o)  # the run's own (long side, iterations) per scale
    scales, iters = [side for side, _ in steps], [n for _, n in steps]
    final = scales[-1]
    ch = 1 if o.preserve_color == "luminance" and job != "texture" else 3
    content_layers = list(o.content_layers) if job != "texture" else []
    style_layers = list(o.style_layers) if job != "content" else []
    layers = content_layers + style_layers
    styles = list(style_sizes) if style_sizes is not None else ([(1, 1)] if job != "content" else [])
    act = ACT[_precision(o)] * _depth_factor(layers)
    method = methods.get(o.style_loss)
    peak = 0.0
    for side, n in zip(scales, iters):
        f = side / final
        w, h = max(1, round(width * f)), max(1, round(height * f))
        p = w * h
        ps = [
            wh[0] * wh[1]
            for wh in (long_side_size(s, max(1, round(max(w, h) * o.style_scale))) for s in styles)
        ]
        # the content and style images as float tensors (two copies alive at times)
        persist = 24.0 * (p + sum(ps)) + FULL * p
        # L-BFGS remembers 2 vectors per step (the fit's runs had one pair); Adam has 2 in FULL
        if o.optimizer == "lbfgs":
            persist += 8.0 * ch * p * max(0, min(o.lbfgs_history, max(n - 1, 0)) - 1)
        if n_regions:  # pixel masks of the output and the styles, and their per-layer copies
            persist += 4.0 * n_regions * (p + sum(ps)) * 2.4
        tiled = bool(tile and max(w, h) > tile)
        persist += method.extra_bytes(o, job, p, ps, tiled)  # the style method's own (targets, search)
        area = p
        if tiled:
            halo, stride = _halo(layers)
            t = -(-tile // stride) * stride
            area = min(w, t + 2 * halo) * min(h, t + 2 * halo)
        # the style images' targets are computed (without gradient) at their own size
        style_area = max(ps, default=0) if not (tile and max(w, h) > tile) else area
        peak = max(peak, persist + act * max(area, 0.6 * style_area))
    return int(SAFETY * (BASE + peak) * (KEPT_FACTOR if kept else 1.0))


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
    for limit_file, used_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
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
    final = scale_sides(o)[-1]
    scales = tuple(max(16, round(s * long_side / final)) for s in o.scales) if o.scales else ()
    return o.replace(size=long_side, scales=scales)


def plan(
    o,
    job: str,
    shape_wh: Tuple[int, int],
    style_whs: Sequence[Tuple[int, int]],
    n_regions: int = 0,
    available: Optional[int] = None,
    device: str = "cpu",
) -> int:
    """The tile side for a run (0: untiled), or ResourceError if it cannot fit.

    o.tile > 0: that tile side (checked); o.tile == 0: untiled if that fits, else the largest
    of TILE_CANDIDATES that fits.
    """
    final = (o.scales or (o.size,))[-1]
    w, h = long_side_size(shape_wh, final)
    if os.environ.get("PAINTERLY_NO_MEMORY_CHECK"):
        return o.tile
    avail = available_bytes(device) if available is None else available

    def need(opts, ww, hh, t):
        return estimate_peak_bytes(
            opts, ww, hh, job=job, style_sizes=style_whs or None, n_regions=n_regions, tile=t
        )

    candidates = [o.tile] if o.tile else [0] + [t for t in TILE_CANDIDATES if t < max(w, h)]
    for t in candidates:  # the tile is chosen as without keep_freed_memory: the same on every surface
        n = need(o, w, h, t)
        if n <= avail:
            fit_allocator(n, avail)
            return t
    # Nothing fits: find the largest size that does (same schedule shape and tiling rule).
    smallest = candidates[-1]

    def fits(side):
        ow, oh = long_side_size(shape_wh, side)
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
    digits = (
        1 if round(need(o, w, h, smallest) / GiB, 1) != round(avail / GiB, 1) else 2
    )  # never "0.8 but 0.8"
    msg = (
        f"a {w}x{h} run needs about {need(o, w, h, smallest) / GiB:.{digits}f} GiB "
        f"but {avail / GiB:.{digits}f} GiB "
        f"is available"
    )
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
from painterly.runtime import allocator
size, tile, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
iters, opts = json.loads(sys.argv[4]), json.loads(sys.argv[7])
os.environ["PAINTERLY_NO_MEMORY_CHECK"] = "1"
if opts.pop("keep", False):
    allocator.keep_freed_memory()  # as the CLI does
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


def measure(
    size: int, tile: int = 0, precision: str = "fp32", iterations=2, content=None, style=None, **options
) -> dict:
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
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(size),
                str(tile),
                precision,
                json.dumps(iterations),
                str(content),
                str(style),
                json.dumps(options),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrate(sizes=(256, 384, 512, 768), precision: str = "fp32") -> None:
    """Measure untiled runs and print measured vs estimated peaks (see the module doc)."""
    o = DEFAULTS.replace(precision=precision, iterations=(2,))
    for s in sizes:
        m = measure(s, precision=precision)
        w, h = m["size"]
        est = estimate_peak_bytes(o.replace(size=s), w, h, style_sizes=[(300, 300)])
        print(
            f"{w}x{h} {precision}: measured {m['peak'] / GiB:.2f} GiB, estimated {est / GiB:.2f} GiB "
            f"({m['seconds']:.1f} s)"
        )


if __name__ == "__main__":
    calibrate()
