"""How many finest-scale steps does a finished picture need? (issue 41: the schedule lever)

The default run on the wide set's pairs, with the picture kept after finest steps 10, 15, 20,
25, 30 and 40 (the default's last) and each scored (S, K, P, clipped) against the pair. Cutting
L-BFGS off after k steps is the same run as `--iterations 60,k` up to that point (the history,
line search and rebalance before the finest scale do not look ahead), except that the
--content-ceiling polish, which runs after the finest scale, is not applied to the cut pictures:
the rows at 40 are the default before its polish.

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_finest_steps.py [--size 384] [--pairs N]

Writes benchmarks/results/finest_steps.json and prints the medians per cut and the pairs over
bench_quality's targets (S 0.35, P 0.8, K 0.9, clipped 5%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

import painterly
from bench_quality import IMAGES, PAIRS, RESULTS, TARGETS
from common import machine
from painterly import imaging as images
from painterly import scores

CUTS = (10, 15, 20, 25, 30, 40)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--pairs", type=int, default=0, help="only the first N pairs (0: all)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument(
        "--detail-start", action="store_true", help="start each finer scale with the photo's band added"
    )
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)
    if args.detail_start:
        detail_start()
    pairs = list(PAIRS.items())[: args.pairs or None]
    rows, net = [], None
    for name, (photo, painting) in pairs:
        c, s = (images.load_image(IMAGES / f"{n}.jpg") for n in (photo, painting))
        kept, times = {}, {}

        def keep(it):
            k, n = it.scale
            i, _ = it.scale_step
            if k == n and i in CUTS and i not in kept:  # the finest scale (a polish's steps come later)
                kept[i], times[i] = it.image(), it.elapsed

        t0 = time.perf_counter()
        r = painterly.run_transfer(c, s, size=args.size, precision=args.precision, callback=keep)
        wall = time.perf_counter() - t0
        scorer = scores.Scorer(images.resize_long_side(c, args.size), s, net=net, extras=False)
        net = scorer.net
        row = dict(
            pair=name, seconds=round(wall, 2), betas=[round(b, 3) for b in r.report()["style_weights"]]
        )
        for i, img in kept.items():
            row[str(i)] = {k: round(v, 4) for k, v in scorer(img).items()} | {"elapsed": round(times[i], 2)}
        row["final"] = {k: round(v, 4) for k, v in scorer(r.image).items()}
        rows.append(row)
        print(name, {k: row[k] for k in row if k not in ("pair",)}, file=sys.stderr, flush=True)
        out = dict(
            machine=machine(), size=args.size, precision=args.precision, detail_start=args.detail_start
        )
        out["rows"] = rows  # written after every pair: a cut-short run keeps what it measured
        (RESULTS / f"finest_steps{'-' + args.label if args.label else ''}.json").write_text(
            json.dumps(out, indent=1)
        )
    print(table(out))
    return 0


def detail_start() -> None:
    """A finer scale starts from the upsampled result plus the photo's band between the two
    sizes, c - up(down(c)) (NNST's search image, here as the start): the detail the upsampled
    picture lacks, so the finest steps need not rebuild it from the content loss."""
    from painterly import engine
    from painterly.net.device import resize

    plain = engine.initial

    def initial(o, prev, size, content, *rest, **kw):
        x = plain(o, prev, size, content, *rest, **kw)
        if prev is None or content is None:
            return x
        h, w = x.shape[-2:]
        low = resize(resize(content, tuple(prev.shape[-2:]), "bilinear", False), (h, w), "bilinear", False)
        return (x + content - low).clamp(0, 1)

    engine.initial = initial


def table(data: dict) -> str:
    rows = data["rows"]
    lines = [
        f"{len(rows)} pairs at {data['size']} px; medians of the picture after k finest steps",
        "| finest steps | S | K | P | clipped | elapsed s | pairs over a target |",
        "|---|---|---|---|---|---|---|",
    ]
    for cut in [str(c) for c in CUTS] + ["final"]:
        have = [r for r in rows if cut in r]
        if not have:
            continue
        med = {
            k: statistics.median(r[cut][k] for r in have) for k in ("style", "content", "palette", "clipped")
        }
        el = statistics.median(r[cut].get("elapsed", r["seconds"]) for r in have)
        over = [r["pair"] for r in have if any(r[cut][k] > v for k, v in TARGETS.items())]
        lines.append(
            f"| {cut} | {med['style']:.3f} | {med['content']:.3f} | {med['palette']:.3f} | "
            f"{med['clipped']:.3f} | {el:.1f} | {len(over)}: {' '.join(over)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
