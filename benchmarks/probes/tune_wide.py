"""A quick sweep for deriving defaults: one in-process Stylizer, the first N pairs of the wide set.

    PYTHONPATH=src .venv/bin/python benchmarks/probes/tune_wide.py LABEL '{"style_weight": 6}' [--size 256] [--limit 19]

Runs `painterly.stylize` semantics (engine.Stylizer.run) with the defaults plus the JSON overrides
(a "preset" key applies a preset first) on bench_quality's pairs (the first 19 use every
painting once), scores each output with S, K, P and newly clipped (painterly/scores.py, without
CFSD and LP, to stay quick), prints a row per pair, the median and worst of each score and the
count meeting issue 18's per-pair targets, and writes results/tune/LABEL/ (outputs, scores.json,
montage.png: photo, painting, result per pair). bench_quality.py is the judge (fresh processes,
every score, 33 pairs); this is for sweeping. The derivation of the defaults is in README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from PIL import Image, ImageDraw  # noqa: E402

from bench_quality import IMAGES, PAIRS, TARGETS  # noqa: E402
from painterly import engine, options, scores
from painterly import imaging as images  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label")
    ap.add_argument("overrides", nargs="?", default="{}", help="JSON object of Options fields")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=19)
    args = ap.parse_args(argv)
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.overrides).items()}
    base = options.DEFAULTS.replace(**options.PRESETS[over.pop("preset", "fast")].overrides)
    o = base.replace(size=args.size, **over)
    out = HERE / "results" / "tune" / args.label
    out.mkdir(parents=True, exist_ok=True)
    stylizer, net, rows = engine.Stylizer(o), None, []
    pairs = list(PAIRS.values())[: args.limit]
    for photo, painting in pairs:
        c, s = IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg"
        t = time.perf_counter()
        result = stylizer.run(c, [s], options=o)
        seconds = time.perf_counter() - t
        result.image.save(out / f"{photo}-{painting}.png")
        scorer = scores.Scorer(
            images.resize_long_side(images.load_image(c), args.size),
            images.load_image(s),
            net=net,
            extras=False,
        )
        net = scorer.net
        v = dict(scorer(result.image), seconds=seconds, pair=f"{photo}-{painting}")
        rows.append(v)
        print(
            f"{photo:>16} {painting:>30} S {v['style']:.3f} K {v['content']:.3f} P {v['palette']:.3f} "
            f"clipped {100 * v['clipped']:.1f}% {seconds:.1f} s",
            flush=True,
        )
    for k in ("style", "content", "palette", "clipped", "seconds"):
        vals = [r[k] for r in rows]
        worst = max(range(len(vals)), key=vals.__getitem__)
        print(f"{k:>8}: median {statistics.median(vals):.3f} worst {vals[worst]:.3f} ({rows[worst]['pair']})")
    ok = sum(all(r[k] <= v for k, v in TARGETS.items()) for r in rows)
    print(f"meeting every per-pair target: {ok}/{len(rows)}")
    (out / "scores.json").write_text(json.dumps({"options": o.to_dict(), "rows": rows}, indent=1))
    h = 150
    sheet = Image.new("RGB", (h * 9 + 20, (h + 14) * ((len(pairs) + 2) // 3)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, ((photo, painting), v) in enumerate(zip(pairs, rows)):
        x0, y0 = (i % 3) * (h * 3 + 10), (i // 3) * (h + 14)
        for j, p in enumerate(
            [IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg", out / f"{photo}-{painting}.png"]
        ):
            im = Image.open(p).convert("RGB")
            im.thumbnail((h, h))
            sheet.paste(im, (x0 + j * h, y0))
        draw.text(
            (x0, y0 + h),
            f"{painting[:14]} S{v['style']:.2f} K{v['content']:.2f} P{v['palette']:.2f}",
            fill="black",
        )
    sheet.save(out / "montage.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
