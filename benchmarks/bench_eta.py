"""How true the time left is: the estimate each step reports (Iterate.eta, runtime.clock.StepClock)
against the time the run then really took, on the wide set.

Each pair runs `transfer` in this process (one network for all, as a web page or batch would),
at --size (384 by default) with the CLI-style options of --extra, recording at every step the
estimate and the clock; when the run returns, the real time left at each step is known. The
error of an estimate is estimate / real - 1 (+0.2: it said 20% too long). The table gives, per
pair, the error at the second step of the finest scale (the issue's checkpoint: from there the
estimate is to be within 20%), at the run's second step and at the finest scale's first step,
then the median and worst absolute error and how many pairs are within 20% there.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_eta.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_eta.py --size 512 --pairs original \\
        --extra "--precision fp32"

Writes benchmarks/results/eta.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

from bench_quality import IMAGES, RESULTS, select_pairs
from common import cli_options, machine, write_json
from painterly import Stylizer

WITHIN = 0.2  # the bound on the error from the finest scale's second step on


def one(photo: str, painting: str, size: int, extra: list, prepared: dict) -> dict:
    content, style = IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg"
    o = cli_options(content, style, size, extra)
    stylizer = prepared.setdefault("stylizer", Stylizer(o))  # the network fields of the first run
    marks = []  # (clock, estimate, scale k of n, step i of the scale)

    def on_step(it):
        marks.append((time.perf_counter(), it.eta, it.scale, it.scale_step))

    t0 = time.perf_counter()
    stylizer.run(str(content), [str(style)], options=o, callback=on_step)
    end = time.perf_counter()

    def error(pick) -> float:
        t, eta, _, _ = next(m for m in marks if pick(m))
        return round(eta / (end - t) - 1, 3)

    n = marks[-1][2][1]
    planned = next(m[3][1] for m in marks if m[2][0] == n)  # the finest scale's steps as planned
    return {
        "pair": f"{photo}-{painting}",
        "seconds": round(end - t0, 2),
        # --content-ceiling added steps when the finest scale ended (no estimate before counts them)
        "polished": marks[-1][3][1] > planned,
        "second_step": error(lambda m: m is marks[1]),
        "finest_first": error(lambda m: m[2][0] == n and m[3][0] == 1),
        "finest_second": error(lambda m: m[2][0] == n and m[3][0] == 2),
        "worst_after": round(  # the worst error at any step from the finest scale's second on
            max(
                (
                    abs(eta / (end - t) - 1)
                    for t, eta, (k, _), (i, _) in marks
                    if k == n and i >= 2 and end > t
                ),
                default=0.0,
            ),
            3,
        ),
    }


COLUMNS = ("second_step", "finest_first", "finest_second", "worst_after")


def table(rows: list) -> str:
    lines = [
        "| pair | seconds | polished | error at step 2 | at the finest scale's step 1 | step 2 | worst after |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['seconds']:.1f} | {'yes' if r.get('polished') else ''} | "
            + " | ".join(f"{r[c]:+.2f}" for c in COLUMNS)
            + " |"
        )
    for name, pick in (("median |error|", statistics.median), ("worst |error|", max)):
        lines.append(
            f"| {name} | | | " + " | ".join(f"{pick(abs(r[c]) for r in rows):.2f}" for c in COLUMNS) + " |"
        )
    lines.append(
        "| within 20% | | | "
        + " | ".join(f"{sum(abs(r[c]) <= WITHIN for r in rows)}/{len(rows)}" for c in COLUMNS)
        + " |"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument(
        "--pairs", default="all", help="'all', 'original' or PHOTO-PAINTING names (bench_quality)"
    )
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--extra", default="", help='CLI options of every run, e.g. "--precision fp32"')
    ap.add_argument("--out", default=str(RESULTS / "eta.json"))
    a = ap.parse_args(argv)
    extra = shlex.split(a.extra)
    prepared, rows = {}, []
    for photo, painting in select_pairs(a.pairs, a.limit).values():
        rows.append(one(photo, painting, a.size, extra, prepared))
        print(rows[-1], file=sys.stderr, flush=True)
        write_json(
            Path(a.out),
            {
                "benchmark": "eta",
                "size": a.size,
                "extra": extra,
                "pairs": a.pairs,
                "machine": machine(),
                "rows": rows,
            },
        )
    print(table(rows))
    print(f"\nJSON: {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
