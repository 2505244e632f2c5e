"""Objective against wall time for candidate schedules: the evidence behind the defaults.

Each configuration runs in its own process (common.run_worker); at chosen steps the iterate
is saved as an 8-bit image (time spent saving is not counted) and afterwards scored with the
one evaluation of common.Evaluator (fp32, full size, the paper's objective on the clipped,
saved pixels). The result is, per configuration, a curve of (seconds, steps, objective).

    python benchmarks/bench_schedules.py --size 256 --config baseline --config 'c2f={"scales":[128,256],...}'
    python benchmarks/bench_schedules.py --size 256 --preset-sweep

Writes benchmarks/results/schedules_<size>.json (merged with what is there) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import (
    RESULTS,
    Evaluator,
    describe_weights,
    machine,
    paper_options,
    run_worker,
    weights_arg,
    write_json,
)
from painterly import options


def baseline(size: int, weights: str) -> options.Options:
    """The issue's baseline: the paper procedure, fp32, contiguous, single scale, 500 L-BFGS steps from noise."""
    return paper_options(size, weights).replace(device="auto")


def options_for(name: str, overrides: dict, size: int, weights: str) -> options.Options:
    if name.startswith("baseline"):
        return baseline(size, weights).replace(**overrides)
    o = options.DEFAULTS.replace(size=size, weights=weights)
    return o.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def checkpoint_steps(o: options.Options, every: int) -> list:
    plan = transfer_plan(o)
    total = sum(n for _, n in plan)
    steps = set(range(every, total + 1, every))
    acc = 0
    for _, n in plan:  # the last step of every scale, too
        acc += n
        steps.add(acc)
    return sorted(s for s in steps if s > 0)


def transfer_plan(o: options.Options):
    return options.schedule(o)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--weights", default=None, help="VGG-19 weights file (default: seeded random VGG-19)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        help="NAME or NAME=JSON overrides of Options (NAME starting 'baseline' starts from the baseline)",
    )
    p.add_argument("--every", type=int, default=25, help="score the iterate every N steps")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    weights = weights_arg(args.weights)
    out = args.out or RESULTS / f"schedules_{args.size}.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    data.setdefault("runs", {})
    data.update(machine=machine(), weights=describe_weights(weights), size=args.size)
    evaluate = Evaluator(args.size, weights)
    tmp = Path(tempfile.mkdtemp(prefix="ns_sched_"))
    for spec in args.config or ["baseline"]:
        name, _, js = spec.partition("=")
        o = options_for(name, json.loads(js) if js else {}, args.size, weights)
        steps = checkpoint_steps(o, args.every)
        rep = run_worker(o, tmp / f"{name}.png", steps)
        curve = [
            {
                "step": m["step"],
                "seconds": round(m["seconds"], 2),
                "size": m["size"],
                "optimiser_total": m["optimiser_total"],
                "objective": evaluate(m["image"])["total"],
            }
            for m in rep["checkpoints"]
            if tuple(m["size"]) == evaluate.size
        ]  # full-size iterates only
        final = evaluate(rep["output"])
        fields = (
            "iterations",
            "scales",
            "init",
            "precision",
            "channels_last",
            "lbfgs_history",
            "lbfgs_line_search",
        )
        data["runs"][name] = {
            "options": {k: v for k, v in o.to_dict().items() if k in fields},
            "schedule": " + ".join(f"{n}@{side}" for side, n in transfer_plan(o)),
            "seconds": round(rep["seconds"], 2),
            "iterations": rep["iterations"],
            "peak_rss_mib": round(rep["peak_rss_mib"]),
            "objective": final["total"],
            "content": final["content"],
            "style": final["style"],
            "curve": curve,
        }
        write_json(out, data)
        print(
            f"{name:28s} {rep['seconds']:8.1f} s  {rep['iterations']:5d} it  objective {final['total']:.4e}"
            f"  (content {final['content']:.3e}, style {final['style']:.3e})  rss {rep['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        best = min(curve, key=lambda c: c["objective"]) if curve else None
        if best:
            print(
                f"{'':28s} best checkpoint: step {best['step']} at {best['seconds']} s: {best['objective']:.4e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
