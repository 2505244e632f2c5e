"""Does the content distance K after the first scale foretell a --content-ceiling polish?

The default run (384 px) on the wide set's 33 pairs: K of the first scale's last picture (scored
against the photo at that size) beside the final K and the betas (a third entry: a polish).
A cheaper polish would lower beta before the last scale, if K there picked out the pairs that
end above the ceiling.

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_first_scale_k.py

Writes benchmarks/results/first_scale_k.json and prints a table.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

import painterly
from bench_quality import IMAGES, PAIRS, RESULTS
from common import machine
from painterly import imaging as images
from painterly import scores


def main() -> int:
    rows = []
    for name, (photo, painting) in PAIRS.items():
        c, s = (images.load_image(IMAGES / f"{n}.jpg") for n in (photo, painting))
        seen = {}

        def keep_first_scale(it):
            if it.scale[0] == 1 and it.scale_step[0] == it.scale_step[1]:
                seen["image"] = it.image()

        r = painterly.run_transfer(c, s, size=384, callback=keep_first_scale)
        first = seen["image"]
        k1 = scores.Scorer(images.fit_to(c, first.size), s, extras=False)(first)["content"]
        k = scores.Scorer(images.resize_long_side(c, 384), s, extras=False)(r.image)["content"]
        rows.append(
            dict(
                pair=name,
                k_first=round(k1, 3),
                k_final=round(k, 3),
                iterations=r.iterations,
                betas=[round(b, 3) for b in r.report()["style_weights"]],
            )
        )
        print(rows[-1], file=sys.stderr, flush=True)
    (RESULTS / "first_scale_k.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print("| pair | K first scale | K final | polished |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['k_first']:.3f} | {r['k_final']:.3f} | {'yes' if len(r['betas']) > 2 else ''} |"
        )
    polished = [r["k_first"] for r in rows if len(r["betas"]) > 2]
    if polished:
        under = sum(r["k_first"] >= min(polished) for r in rows if len(r["betas"]) == 2)
        print(
            f"\npolished: {len(polished)} of {len(rows)}, first-scale K {min(polished):.3f}-{max(polished):.3f}; "
            f"unpolished pairs with a first-scale K at least the lowest of those: {under}; "
            f"final/first median x{statistics.median(r['k_final'] / r['k_first'] for r in rows):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
