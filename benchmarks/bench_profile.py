"""Where a picture's time goes: seconds per scale and per step, function evaluations per step,
the convolutions' share of the time, and their FLOPs against the convolution throughput that
the same run measures (that ratio is the floor a run could reach by faster convolutions alone).

One `transfer` run in this process on the original VGG-19 (the default) per configuration, each
configuration given as CLI-style option overrides; configurations run one after the other, in
the order given, twice each when --repeat 2 (alternating), so they can be compared side by side.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_profile.py --size 512 \
        --config 'today=--precision fp32 --deep-split none --iterations 60,40' \
        --config 'default=--precision fp32'

Writes benchmarks/results/profile.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import painterly
from common import IMAGES, RESULTS, cli_options, machine
from painterly.net.vgg import VGG19, conv_flop_per_pixel
from painterly.options import LAYERS

CONV_OPS = (
    "aten::convolution",
    "aten::_convolution",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
)


def conv_ceiling(dtype=torch.float32, seconds: float = 3.0) -> float:
    """GFLOP/s of a 3x3 256->256 convolution at 64x64, forward and input gradient (the work of a
    step's middle layers), measured now."""
    x = torch.randn(1, 256, 64, 64, dtype=dtype, requires_grad=True)
    w = torch.randn(256, 256, 3, 3, dtype=dtype)
    flop = 2 * 2 * 256 * 256 * 9 * 64 * 64  # forward and backward (input gradient only)
    for _ in range(3):
        F.conv2d(x, w, padding=1).sum().backward()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        F.conv2d(x, w, padding=1).sum().backward()
        n += 1
    return n * flop / (time.perf_counter() - t0) / 1e9


def conv_flop(w: int, h: int, deepest: str, half_after) -> float:
    """FLOPs of one evaluation's convolutions on a w x h image: forward and the input gradient
    (as many again; the weights need none), the layers after `half_after` at half resolution."""
    return 2 * conv_flop_per_pixel(deepest, half_after) * w * h


def profile(label: str, args: list, size: int, content, style) -> dict:
    o = cli_options(content, style, size, args)
    stamps = []  # (time, scale k)
    evals = {"n": 0}

    def count(module, inputs, output):
        if isinstance(module, VGG19) and torch.is_grad_enabled():
            evals["n"] += 1

    def on_step(it):
        stamps.append((time.perf_counter(), it.scale[0], evals["n"]))

    hook = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        st = painterly.Stylizer(o)
        t0 = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            res = st.run(str(content), [str(style)], options=o, callback=on_step)
        wall = time.perf_counter() - t0
    finally:
        hook.remove()
    ops = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in ops)
    conv_self = sum(e.self_cpu_time_total for e in ops if e.key in CONV_OPS or "conv" in e.key.lower())
    scales = []
    prev_t, prev_e = t0, 0
    for k in sorted({s for _, s, _ in stamps}):
        mine = [(t, e) for t, s, e in stamps if s == k]
        first = stamps.index(next(x for x in stamps if x[1] == k))
        start_t = stamps[first - 1][0] if first else t0
        start_e = stamps[first - 1][2] if first else 0
        steps = len(mine)
        per_step = [b[0] - a[0] for a, b in zip(mine, mine[1:])]
        scales.append(
            {
                "scale": k,
                "steps": steps,
                "seconds": round(mine[-1][0] - start_t, 2),
                "s_per_step": round(statistics.median(per_step), 3) if per_step else None,
                "evals_per_step": round((mine[-1][1] - start_e) / steps, 2),
            }
        )
        prev_t, prev_e = mine[-1]
    return {
        "label": label,
        "args": args,
        "wall_s": round(wall, 2),
        "steps_s": round(stamps[-1][0] - t0, 2),
        "final_s": round(wall - (stamps[-1][0] - t0), 2),
        "conv_share": round(conv_self / total_self, 3) if total_self else None,
        "scales": scales,
        "losses": {k: v for k, v in res.losses.items() if not isinstance(v, dict)},
        "options": {
            k: v for k, v in res.options.to_dict().items() if k in ("iterations", "deep_split", "precision")
        },
        "output": res,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pair", default="golden_gate-the_scream", help="PHOTO-PAINTING from ../shared/images")
    ap.add_argument("--config", action="append", default=[], help="LABEL=CLI options (repeatable)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "profile.json"))
    a = ap.parse_args(argv)
    photo, painting = a.pair.split("-", 1)
    content, style = IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg"
    configs = [c.split("=", 1) for c in (a.config or ["default="])]
    ceiling = conv_ceiling()
    rows = []
    for r in range(a.repeat):
        for label, cli in configs if r % 2 == 0 else configs[::-1]:
            row = profile(label, shlex.split(cli), a.size, content, style)
            res = row.pop("output")
            w, h = res.image.size
            flop = 0.0
            o = res.options
            deepest = max(list(o.content_layers) + list(o.style_layers), key=LAYERS.index)
            plan = painterly.options.schedule(o) if hasattr(painterly.options, "schedule") else None
            for s, (side, _) in zip(row["scales"], plan or []):
                sw, sh = (side, round(side * h / w)) if w >= h else (round(side * w / h), side)
                half = o.deep_split if (o.deep_split != "none" and s["scale"] == len(plan)) else None
                s["size"] = f"{sw}x{sh}"
                s["conv_gflop"] = round(
                    conv_flop(sw, sh, deepest, half) * s["evals_per_step"] * s["steps"] / 1e9, 1
                )
                flop += s["conv_gflop"]
            row.update(round=r, conv_gflop=round(flop, 1), floor_s=round(flop / ceiling, 1))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    out = {
        "benchmark": "profile",
        "size": a.size,
        "pair": a.pair,
        "machine": machine(),
        "conv_gflops": round(ceiling, 1),
        "command": "bench_profile.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "configs": dict(configs),
        "rows": rows,
    }
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(table(out))
    print(f"\nJSON: {a.out}", file=sys.stderr)
    return 0


def table(out: dict) -> str:
    lines = [
        f"{out['pair']} at {out['size']} px; convolution throughput measured in this run: {out['conv_gflops']} GFLOP/s (fp32)",
        "",
        "| config | round | wall s | steps s | final s | conv share | conv GFLOP | floor s | wall/floor | scales (size: steps, s, s/step, evals/step) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in out["rows"]:
        sc = "; ".join(
            f"{s.get('size', s['scale'])}: {s['steps']}, {s['seconds']}, {s['s_per_step']}, {s['evals_per_step']}"
            for s in r["scales"]
        )
        lines.append(
            f"| {r['label']} | {r['round']} | {r['wall_s']} | {r['steps_s']} | {r['final_s']} | {r['conv_share']} | "
            f"{r['conv_gflop']} | {r['floor_s']} | {r['wall_s'] / r['floor_s']:.1f} | {sc} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
