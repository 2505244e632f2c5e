"""Today's default beside the default of an earlier commit (by default 6d7b4ef, the code on the
day issue 18 was filed), side by side in one run: wall time and the quality scores, 384 px.

Each run is a fresh `painterly transfer PHOTO PAINTING -o OUT --size 384` process, the earlier
code from a `git worktree` of that commit (made in a temporary folder and removed after); the two
alternate which goes first from pair to pair, so that a slow spell of the machine falls on both.
With --repeat N each pair runs N rounds (the order flipping each round too) and the table takes
the median seconds of each code; the scores are the first round's (a run's output is the same
bytes every time).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_filed.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_filed.py --commit 6d7b4ef --pairs tubingen-starry_night
    PYTHONPATH=src .venv/bin/python benchmarks/bench_filed.py --repeat 3 --out benchmarks/results/filed-3.json
    PYTHONPATH=src .venv/bin/python benchmarks/bench_filed.py --commit 6d8ad0d --size 1024 --repeat 3 \
        --pairs golden_gate-the_scream --extra "--precision fp32 --preset neighbour" --out filed-nb.json

Writes benchmarks/results/filed.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_quality import IMAGES, OUTPUTS, RESULTS, ROOT, pair_name, score, timed
from common import machine
from painterly import imaging as images
from painterly import scores

# One pair per kind of painting and more: a drawing, two flat geometric, the photograph as style,
# a strongly textured one, and the two pairs that today's --content-ceiling polishes at 384 px.
PAIRS = (
    ("tubingen", "starry_night"),
    ("cornell", "sketch"),
    ("blonde_girl", "mondrian_cropped"),
    ("cornell", "bricks"),
    ("golden_gate", "contrast_of_forms"),
    ("sailboat", "la_muse"),
)
SCORES = ("style", "content", "palette", "clipped")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="6d7b4ef", help="the earlier code (default: issue 18's filing day)")
    ap.add_argument(
        "--pairs", default="", help="comma-separated PHOTO-PAINTING names (default: six, see PAIRS)"
    )
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument(
        "--extra", default="", help='CLI arguments for both codes\' runs, e.g. "--precision fp32"'
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds per pair; the table takes the median time")
    ap.add_argument("--out", default=str(RESULTS / "filed.json"))
    args = ap.parse_args(argv)
    pairs = [tuple(p.split("-", 1)) for p in args.pairs.split(",")] if args.pairs else list(PAIRS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.commit],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"today": ROOT / "src", args.commit: old / "src"}
            for i, (photo, painting) in enumerate(pairs):
                content, style = IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg"
                scorer = scores.Scorer(
                    images.resize_long_side(images.load_image(content), args.size),
                    images.load_image(style),
                    extras=False,
                )
                for round_ in range(args.repeat):
                    for code in list(trees) if (i + round_) % 2 else list(trees)[::-1]:
                        out = OUTPUTS / "filed" / f"{pair_name(photo, painting)}-{code}.png"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        cmd = [
                            sys.executable,
                            "-m",
                            "painterly.cli",
                            "transfer",
                            str(content),
                            str(style),
                            "-o",
                            str(out),
                            "--size",
                            str(args.size),
                            "--quiet",
                            "--overwrite",
                            *shlex.split(args.extra),
                        ]
                        seconds, rss, _ = timed(cmd, {**os.environ, "PYTHONPATH": str(trees[code])})
                        r = {
                            "pair": pair_name(photo, painting),
                            "code": code,
                            "round": round_,
                            "seconds": round(seconds, 2),
                            "peak_rss_mib": round(rss),
                            **(score(scorer, out) if round_ == 0 else {}),
                        }
                        rows.append(r)
                        print(r, file=sys.stderr, flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True
            )
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "filed",
                "commit": args.commit,
                "size": args.size,
                "extra": args.extra,
                "repeat": args.repeat,
                "machine": machine(),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(table(rows, args.commit))
    print(f"\nJSON: {args.out}", file=sys.stderr)
    return 0


def table(rows: list, commit: str) -> str:
    by, times = {}, {}
    for r in rows:  # the first round's row (its scores), with the median time of the rounds
        times.setdefault((r["pair"], r["code"]), []).append(r["seconds"])
        by.setdefault(r["pair"], {}).setdefault(r["code"], r)
    by = {
        pair: {code: {**r, "seconds": statistics.median(times[pair, code])} for code, r in d.items()}
        for pair, d in by.items()
    }
    lines = [
        f"| pair | seconds {commit} / today (ratio) | " + " | ".join(SCORES) + " |",
        "|---|---|" + "---|" * len(SCORES),
    ]
    ratios = []
    for pair, d in by.items():
        a, b = d[commit], d["today"]
        ratios.append(b["seconds"] / a["seconds"])
        lines.append(
            f"| {pair} | {a['seconds']:.1f} / {b['seconds']:.1f} (x{ratios[-1]:.2f}) | "
            + " | ".join(f"{a[k]:.3f} / {b[k]:.3f}" for k in SCORES)
            + " |"
        )
    lines.append(
        f"\ntime, today / {commit}: x{statistics.median(ratios):.2f} at the median "
        f"(x{min(ratios):.2f}-x{max(ratios):.2f})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
