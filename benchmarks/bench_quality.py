"""Time to quality: the default settings against the paper's procedure, wall time, objective, memory.

For tubingen x starry_night (../shared/images) at each size:
  baseline  `--preset paper --no-channels-last`: fp32, contiguous layout, one scale,
            500 L-BFGS iterations from white noise (the exact procedure of the paper);
  default   `neural-style transfer` with no options (see config.Options).
Each run is a fresh process (common.run_worker): its wall time covers the whole run (network,
normalisation, targets, iterations, final losses) and its peak RSS is its own ru_maxrss.
Every output is then scored the same way (common.Evaluator: the paper's objective in fp32, at
full size, on the saved 8-bit image, same normalised network and targets).

    python benchmarks/bench_quality.py                 # 256 and 512 px, default 3 times, baseline once
    python benchmarks/bench_quality.py --sizes 256 --configs default

Writes benchmarks/results/quality.json after every run (partial results survive) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import (CONTENT, RESULTS, STYLE, Evaluator, describe_weights, machine, paper_options, run_worker,
                    weights_arg, write_json)

from neural_style import config

CONFIGS = ("baseline", "default")


def options(name: str, size: int, weights: str) -> config.Options:
    if name == "baseline":
        return paper_options(size, weights).replace(device="auto")
    return config.DEFAULTS.replace(size=size, weights=weights)


def command(name: str, size: int, weights: str) -> str:
    """The CLI line that makes the same run."""
    extra = " --preset paper --no-channels-last" if name == "baseline" else ""
    return (f"neural-style transfer {CONTENT.name} {STYLE.name} -o out.png --size {size} --weights {weights}{extra}")


def table(rows) -> str:
    lines = ["| size | settings | wall time s | iterations (per scale) | objective (clipped output) | "
             "time vs baseline | objective vs baseline | peak RSS MiB |",
             "|---:|---|---:|---|---:|---:|---:|---:|"]
    base = {r["size"]: r for r in rows if r["config"] == "baseline"}
    for r in rows:
        b = base.get(r["size"])
        tr = f"1/{b['seconds'] / r['seconds']:.1f}" if b and r is not b else ("1" if b else "-")
        orl = f"{r['objective'] / b['objective']:.3f}" if b else "-"
        lines.append(f"| {r['size']} | {r['config']} | {r['seconds']:.1f} | {r['schedule']} | {r['objective']:.4e} | "
                     f"{tr} | {orl} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="runs of the default settings (median time reported)")
    p.add_argument("--weights", default=None, help="VGG-19 weights file (default: seeded random VGG-19)")
    p.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    args = p.parse_args(argv)
    weights = weights_arg(args.weights)
    sizes = [int(v) for v in args.sizes.split(",")]
    configs = [c for c in args.configs.split(",") if c]
    from neural_style import transfer

    rows = []
    data = {"machine": machine(), "weights": describe_weights(weights), "content": CONTENT.name, "style": STYLE.name,
            "rows": rows}
    print(f"weights: {describe_weights(weights)}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ns_quality_"))
    # Short runs first, the long 512 px baseline last: partial results are useful early.
    order = sorted(((s, c) for s in sizes for c in configs), key=lambda sc: (sc[1] == "baseline" and sc[0] > 256, sc[0]))
    for size, name in order:
        evaluate = Evaluator(size, weights)
        o = options(name, size, weights)
        reps = []
        for i in range(args.repeats if name != "baseline" else 1):
            rep = run_worker(o, tmp / f"{name}_{size}_{i}.png")
            rep["eval"] = evaluate(rep["output"])
            reps.append(rep)
            print(f"  {size} {name} run {i + 1}: {rep['seconds']:.1f} s, objective {rep['eval']['total']:.4e}, "
                  f"rss {rep['peak_rss_mib']:.0f} MiB", flush=True)
        mid = sorted(reps, key=lambda r: r["seconds"])[len(reps) // 2]
        plan = transfer.schedule(transfer.check_options(o))
        rows.append({"size": size, "config": name, "command": command(name, size, weights),
                     "schedule": " + ".join(f"{n} @ {side}" for side, n in plan), "init": o.init,
                     "precision": o.precision, "seconds": round(mid["seconds"], 2),
                     "all_seconds": [round(r["seconds"], 2) for r in reps], "iterations": mid["iterations"],
                     "objective": mid["eval"]["total"], "content": mid["eval"]["content"], "style": mid["eval"]["style"],
                     "all_objectives": [r["eval"]["total"] for r in reps],
                     "optimiser_reported_total": mid["run_total"],
                     "peak_rss_mib": round(max(r["peak_rss_mib"] for r in reps), 1)})
        data["table_markdown"] = table(rows)
        write_json(args.out, data)
    data["machine"]["load_average_after"] = list(__import__("os").getloadavg())
    write_json(args.out, data)
    print(data["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
