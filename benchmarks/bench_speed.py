"""Seconds per iteration of the real objective, per execution mode and size, against a conv ceiling.

One iteration = one forward and backward pass of the objective `Stylizer.run` optimises
(network.feature_fn + build_targets + Objective, the paper's layers conv1_1..conv5_1 and
conv4_2, the normalised network) at size x size pixels (tubingen x starry_night resized to a
square, so that the FLOP counts match ../shared/PAPER.md). The L-BFGS update itself is not
included (it is timed separately: `lbfgs_update_s`, history 100, at each size).

FLOP count (analytic, from the layer shapes; what PAPER.md's 25/99/397/1588 GFLOP are):
  * each 3x3 convolution up to conv5_1: forward 2*Cin*Cout*9*H*W, backward the same again for
    the input gradient (the weights need no gradient), so 2x the forward;
  * each style layer's Gram matrix G = F F^T (N x N from N x M): forward 2*N^2*M and backward
    the same again.
  Pooling, ReLU, casts and the losses' element-wise work are not counted (they are memory-bound).
GFLOP/s = that count / seconds per iteration; `fraction` divides it by the conv ceiling of the
mode's precision measured in the same run: the best of a few large 3x3 convolutions
(channels_last, forward), fp32 and bf16.

    python benchmarks/bench_speed.py                       # 256, 512 (5 repeats), 1024 (2 repeats)
    python benchmarks/bench_speed.py --sizes 256,512,1024,2048 --modes fp32,bf16_cl   # the docs' table
    python benchmarks/bench_speed.py --sizes 512 --modes fp32,bf16_cl --repeats 9

Prints a table and writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# A fresh compile cache, so that `first call` shows what compiling costs a new user (torch
# keeps compiled kernels on disk between processes); set TORCHINDUCTOR_CACHE_DIR to reuse one.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="ns_inductor_"))

import torch
import torch.nn.functional as F

from common import CONTENT, RESULTS, STYLE, describe_weights, machine, weights_arg, write_json
from painterly import imaging as images
from painterly import options
from painterly.engine import Stylizer
from painterly.net.device import native_bf16
from painterly.net.vgg import deepest

# Execution modes: (precision, channels_last, compile).
MODES = {
    "fp32": ("fp32", False, False),  # the baseline: fp32, contiguous (NCHW)
    "fp32_cl": ("fp32", True, False),
    "bf16_cl": ("bf16", True, False),  # the default on a CPU with native bf16
    "bf16_cl_compiled": ("bf16", True, True),  # --compile
}
REPEATS = {256: 9, 512: 5, 1024: 2, 2048: 2}
CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # VGG-19 filters per block


def flops(o: options.Options, h: int, w: int) -> float:
    """Analytic FLOPs of one forward+backward (see the module docstring)."""
    last = deepest(list(o.content_layers) + list(o.style_layers))
    total, cin = 0.0, 3
    for name in options.LAYERS[: options.LAYERS.index(last) + 1]:
        if name.startswith("conv"):
            cout = CHANNELS[int(name[4])]
            total += 2 * (2.0 * cin * cout * 9 * h * w)
            if name in o.style_layers:
                total += 2 * (2.0 * cout * cout * h * w)
            cin = cout
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    return total


def conv_ceiling(dtype: torch.dtype, repeats: int = 5) -> dict:
    """GFLOP/s of the best of a few large 3x3 convolutions (channels_last, forward)."""
    best = {}
    for cin, cout, side in ((128, 128, 256), (256, 256, 128), (512, 512, 64)):
        x = torch.randn(1, cin, side, side).to(dtype).contiguous(memory_format=torch.channels_last)
        w = (torch.randn(cout, cin, 3, 3) * 0.02).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            F.conv2d(x, w, padding=1)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                F.conv2d(x, w, padding=1)
                times.append(time.perf_counter() - t0)
        best[f"{cin}x{cout}@{side}"] = 2.0 * cin * cout * 9 * side * side / statistics.median(times) / 1e9
    return {"gflops": max(best.values()), "shapes": best}


def lbfgs_update_seconds(numel: int, history: int = 100, repeats: int = 3) -> float:
    """The L-BFGS two-loop recursion with a full history (2 * history vectors of `numel`)."""
    s = [torch.randn(numel) for _ in range(history)]
    y = [torch.randn(numel) for _ in range(history)]
    g = torch.randn(numel)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        q, al = g.neg(), []
        for si, yi in zip(reversed(s), reversed(y)):
            a = si.dot(q) * 0.5
            al.append(a)
            q.add_(yi, alpha=-float(a))
        for si, yi, a in zip(s, y, reversed(al)):
            b = yi.dot(q) * 0.5
            q.add_(si, alpha=float(a - b))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(size: int, mode: str, weights: str, repeats: int) -> dict:
    precision, channels_last, compile_ = MODES[mode]
    o = options.DEFAULTS.replace(
        size=size,
        weights=weights,
        device="cpu",
        precision=precision,
        channels_last=channels_last,
        compile=compile_,
    )
    stylizer = Stylizer(o)
    # Both images at size x size, so every mode and size computes the same shapes.
    c_img = images.fit_to(images.load_image(CONTENT), (size, size))
    s_img = images.fit_to(images.load_image(STYLE), (size, size))
    objective, c = stylizer.objective(c_img, s_img, size)
    amp = stylizer.amp
    x = torch.rand(c.shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)

    def step() -> float:
        x.grad = None
        t0 = time.perf_counter()
        total = objective.total(objective.parts(x))
        total.backward()
        return time.perf_counter() - t0

    first = step()  # compiles in the compiled mode; warms the allocator and oneDNN's caches
    times = [step() for _ in range(repeats)]
    med = statistics.median(times)
    gf = flops(o, size, size) / 1e9
    objective = stylizer = None
    gc.collect()
    return {
        "size": size,
        "mode": mode,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_,
        "bf16_used": amp is not contextlib.nullcontext,
        "first_call_s": round(first, 3),
        "s_per_iter": round(med, 4),
        "min_s": round(min(times), 4),
        "times": [round(t, 4) for t in times],
        "gflop": round(gf, 1),
        "gflops": round(gf / med, 1),
    }


def table(rows, ceilings) -> str:
    base = {r["size"]: r["s_per_iter"] for r in rows if r["mode"] == "fp32"}
    lines = [
        "| size | mode | s/iter (median) | speed-up vs fp32 | GFLOP | GFLOP/s | fraction of conv ceiling | first call s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ceil = ceilings["bf16" if r["bf16_used"] else "fp32"]["gflops"]
        r["fraction"] = round(r["gflops"] / ceil, 3)
        up = base.get(r["size"], 0) / r["s_per_iter"] if r["size"] in base else float("nan")
        r["speedup_vs_fp32"] = round(up, 2)
        lines.append(
            f"| {r['size']} | {r['mode']} | {r['s_per_iter']:.3f} | {up:.2f}x | {r['gflop']:.0f} | "
            f"{r['gflops']:.0f} | {r['fraction']:.0%} of {'bf16' if r['bf16_used'] else 'fp32'} | "
            f"{r['first_call_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument(
        "--repeats", type=int, default=0, help="timed iterations per cell (default: 9/5/2 by size)"
    )
    p.add_argument(
        "--weights", default=None, help="weights set or file (default: original, the package's default)"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = p.parse_args(argv)
    weights = weights_arg(args.weights)
    sizes = [int(v) for v in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    print(
        f"weights: {describe_weights(weights)}; native bf16: {native_bf16(torch.device('cpu'))}; "
        f"threads: {torch.get_num_threads()}",
        flush=True,
    )
    ceilings = {"fp32": conv_ceiling(torch.float32), "bf16": conv_ceiling(torch.bfloat16)}
    print(
        f"conv ceiling: fp32 {ceilings['fp32']['gflops']:.0f} GFLOP/s, bf16 {ceilings['bf16']['gflops']:.0f} GFLOP/s",
        flush=True,
    )
    rows, lbfgs = [], {}
    data = {
        "command": " ".join(["bench_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "weights": describe_weights(weights),
        "ceilings": ceilings,
        "rows": rows,
        "lbfgs_update_s": lbfgs,
    }
    for size in sizes:
        lbfgs[size] = round(lbfgs_update_seconds(3 * size * size), 4)
        for mode in modes:
            r = measure(size, mode, weights, args.repeats or REPEATS.get(size, 3))
            rows.append(r)
            print(
                f"{size:5d} {mode:18s} {r['s_per_iter']:.3f} s/iter (min {r['min_s']:.3f}, first {r['first_call_s']:.1f} s)"
                f"  {r['gflops']:.0f} GFLOP/s",
                flush=True,
            )
            write_json(args.out, data)
    # The ceiling again at the end: a drift between the two says the machine was busy.
    data["ceilings_after"] = {"fp32": conv_ceiling(torch.float32), "bf16": conv_ceiling(torch.bfloat16)}
    data["machine"]["load_average_after"] = list(__import__("os").getloadavg())
    md = table(rows, ceilings)
    data["table_markdown"] = md
    write_json(args.out, data)
    print(md)
    print(f"L-BFGS update (history 100), s: {lbfgs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
