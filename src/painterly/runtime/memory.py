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
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from painterly import methods
from painterly.errors import ResourceError
from painterly.imaging import long_side_size
from painterly.options import DEFAULTS, LAYERS, floats_per_pixel, scale_sides, schedule
from painterly.runtime import device_memory as dm
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


def _precision(o, device=None) -> str:
    """The precision the run's convolutions will use on `device` (default: this machine's CPU)."""
    if o.precision != "auto":
        return o.precision
    import torch

    from painterly.net.device import native_bf16

    try:
        return "bf16" if native_bf16(device if device is not None else torch.device("cpu")) else "fp32"
    except (RuntimeError, AssertionError):  # a device torch cannot query: the larger estimate
        return "fp32"


def _as_device(device):
    import torch

    return device if isinstance(device, torch.device) else torch.device(device)


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
    device="cpu",
) -> int:
    """Predicted peak RSS in bytes of a run whose final output is width x height; on a GPU
    (`device` a torch.device or its name) the peak of the run's tensors there (device_memory).

    style_sizes: (w, h) of the style images as given (only their aspect ratios matter; by
    default one square style image); n_regions: spatial-control regions (0: none);
    tile: the tile side (None or 0: untiled); kept: with keep_freed_memory on (KEPT_FACTOR; the
    CPU's allocator only). The coarse-to-fine schedule of `options` is taken into account (the
    peak is that of the largest scale).
    """
    o = options
    device = _as_device(device)
    if device.type != "cpu":
        return _device_peak_bytes(o, width, height, job, style_sizes, n_regions, tile, device)
    ch = 1 if o.preserve_color == "luminance" and job != "texture" else 3
    content_layers = list(o.content_layers) if job != "texture" else []
    style_layers = list(o.style_layers) if job != "content" else []
    layers = content_layers + style_layers
    act = ACT[_precision(o)] * _depth_factor(layers)
    method = methods.get(o.style_loss)
    peak = 0.0
    for w, h, p, ps, n in _scales(o, width, height, job, style_sizes):
        # the content and style images as float tensors (two copies alive at times)
        persist = 24.0 * (p + sum(ps)) + FULL * p
        # L-BFGS remembers 2 vectors per step (the fit's runs had one pair); Adam has 2 in FULL
        if o.optimizer == "lbfgs":
            persist += 8.0 * ch * p * max(0, min(o.lbfgs_history, max(n - 1, 0)) - 1)
        if n_regions:  # pixel masks of the output and the styles, and their per-layer copies
            persist += 4.0 * n_regions * (p + sum(ps)) * 2.4
        tiled = bool(tile and max(w, h) > tile)
        persist += method.extra_bytes(o, job, p, ps, tiled)  # the style method's own (targets, search)
        area, style_area = _areas(w, h, p, ps, tile, layers)
        peak = max(peak, persist + act * max(area, 0.6 * style_area))
    return int(SAFETY * (BASE + peak) * (KEPT_FACTOR if kept else 1.0))


def _scales(o, width: int, height: int, job: str, style_sizes):
    """Per scale of the schedule: (w, h, pixels, [style pixels], iterations)."""
    steps = schedule(o)  # the run's own (long side, iterations) per scale
    final = steps[-1][0]
    styles = list(style_sizes) if style_sizes is not None else ([(1, 1)] if job != "content" else [])
    for side, n in steps:
        f = side / final
        w, h = max(1, round(width * f)), max(1, round(height * f))
        ps = [
            wh[0] * wh[1]
            for wh in (long_side_size(s, max(1, round(max(w, h) * o.style_scale))) for s in styles)
        ]
        yield w, h, w * h, ps, n


def _areas(w: int, h: int, p: int, ps: Sequence[int], tile: Optional[int], layers) -> Tuple[int, int]:
    """(the area one pass evaluates: the image, or a tile with its halo; the area of the style
    images' targets, computed without gradient at their own size, or tile by tile)."""
    tiled = bool(tile and max(w, h) > tile)
    area = p
    if tiled:
        halo, stride = _halo(layers)
        t = -(-tile // stride) * stride
        area = min(w, t + 2 * halo) * min(h, t + 2 * halo)
    return area, (max(ps, default=0) if not tiled else area)


def _device_peak_bytes(o, width, height, job, style_sizes, n_regions, tile, device) -> int:
    """estimate_peak_bytes on a GPU: the tensors of the largest scale (see device_memory)."""
    ch = 1 if o.preserve_color == "luminance" and job != "texture" else 3
    content_layers = list(o.content_layers) if job != "texture" else []
    style_layers = list(o.style_layers) if job != "content" else []
    layers = content_layers + style_layers
    elem = 2 if _precision(o, device) == "bf16" else 4
    # with regions each style layer's features are weighted by each mask (kept for the backward pass)
    act = dm.activation_bytes(layers, elem, o.pooling == "max") + 4.0 * n_regions * floats_per_pixel(
        style_layers
    )
    fwd = dm.forward_bytes(layers, elem)
    method = methods.get(o.style_loss)
    peak = 0.0
    for w, h, p, ps, n in _scales(o, width, height, job, style_sizes):
        pairs = min(o.lbfgs_history, max(n - 1, 0)) if o.optimizer == "lbfgs" else 0
        persist = 4.0 * ch * p * (dm.VECTORS + 2 * pairs)  # the image and the optimiser's state
        persist += 4.0 * 3 * 2 * (p + sum(ps))  # the content and style images (two copies at times)
        persist += 4.0 * p * floats_per_pixel(content_layers)  # P
        if o.palette_weight > 0 and job == "transfer" and not n_regions:
            persist += dm.PALETTE * p
        persist += dm.style_target_bytes(style_layers, n_regions)
        if n_regions:  # pixel masks of the output and the styles, and their per-layer copies
            persist += 4.0 * n_regions * (p + sum(ps)) * 2.4
        tiled = bool(tile and max(w, h) > tile)
        persist += method.device_bytes(o, job, p, ps, tiled)  # the style method's own (targets, search)
        area, style_area = _areas(w, h, p, ps, tile, layers)
        peak = max(peak, persist + max(act * area, fwd * style_area))
    return int(dm.SAFETY * (dm.BASE + dm.weights_bytes(layers, elem) + peak))


def available_bytes(device="cpu") -> int:
    """Memory a new allocation can use now: on the CPU MemAvailable (psutil or /proc/meminfo),
    capped by a cgroup limit if one is set; on a GPU (`device` a torch.device or its name) what
    the device has free, with the blocks this process's allocator keeps (device_memory.free_bytes)."""
    free = dm.free_bytes(_as_device(device))
    return free if free is not None else _host_bytes()


def _host_bytes() -> int:
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


@dataclass(frozen=True)
class Plan:
    """What the memory check decided for a run (assess): the tile side (0: untiled), the
    estimate with it, the memory available, on which device, for an output of size (w, h)."""

    tile: int
    need: int
    available: int
    device: str
    size: Tuple[int, int]


def plan(
    o,
    job: str,
    shape_wh: Tuple[int, int],
    style_whs: Sequence[Tuple[int, int]],
    n_regions: int = 0,
    available: Optional[int] = None,
    device="cpu",
) -> int:
    """The tile side for a run (0: untiled), or ResourceError if it cannot fit (assess)."""
    return assess(o, job, shape_wh, style_whs, n_regions, available, device).tile


def assess(
    o,
    job: str,
    shape_wh: Tuple[int, int],
    style_whs: Sequence[Tuple[int, int]],
    n_regions: int = 0,
    available: Optional[int] = None,
    device="cpu",
) -> Plan:
    """The Plan of a run on `device` (the resolved torch.device, or its name), or ResourceError
    if it cannot fit. Estimate and memory are the device's: on a GPU its free memory and the
    run's tensors there, on the CPU the host's memory and the resident-set fit.

    o.tile > 0: that tile side (checked); o.tile == 0: untiled if that fits, else the largest
    of TILE_CANDIDATES that fits.
    """
    device = _as_device(device)
    final = (o.scales or (o.size,))[-1]
    w, h = long_side_size(shape_wh, final)
    avail = available_bytes(device) if available is None else available

    def need(opts, ww, hh, t):
        return estimate_peak_bytes(
            opts, ww, hh, job=job, style_sizes=style_whs or None, n_regions=n_regions, tile=t, device=device
        )

    if os.environ.get("PAINTERLY_NO_MEMORY_CHECK"):
        return Plan(o.tile, need(o, w, h, o.tile), avail, str(device), (w, h))
    candidates = [o.tile] if o.tile else [0] + [t for t in TILE_CANDIDATES if t < max(w, h)]
    for t in candidates:  # the tile is chosen as without keep_freed_memory: the same on every surface
        n = need(o, w, h, t)
        if n <= avail:
            if device.type == "cpu":  # glibc's allocator: the host's memory
                fit_allocator(n, avail)
            return Plan(t, n, avail, str(device), (w, h))
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
        f"is available{'' if device.type == 'cpu' else f' on {device}'}"
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
