"""The neighbour mode's colour step, three ways on the same pictures: none (the preset), oklab
(NNST's step with our gamut compression) and oklab-clip (the reference's step, channels clipped).

It reads the neighbour outputs of a bench_neighbour.py run (made with the preset, so with no
colour step), applies color.oklab_recolor to each with the photo and the painting at the
output's size, and scores all three with the quality benchmark's scores. The colour step is a
function of the finished picture, so this equals running the preset with each --recolor, except
that here it starts from the saved 8-bit picture instead of the float pixels (measured: its
oklab-clip scores are within 0.002 of those of the neighbour runs made with the reference's step,
results/quality_wide-neighbour-clip.json, and its medians equal theirs).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_recolor.py            # after bench_neighbour.py

Writes benchmarks/results/recolor-neighbour.json and recolor-neighbour_montage.png (photo,
painting, none, oklab, oklab-clip) and prints a table with the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import bench_quality as bq
from common import machine
from painterly import imaging as images
from painterly import scores
from painterly.imaging import color

WAYS = {"none": None, "oklab": "compress", "oklab-clip": "clip"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bench",
        default=str(bq.RESULTS / "quality_wide-neighbour.json"),
        help="a bench_neighbour.py JSON whose neighbour run used the preset",
    )
    ap.add_argument("--out", default=str(bq.RESULTS / "recolor-neighbour.json"))
    args = ap.parse_args(argv)
    bench = json.loads(Path(args.bench).read_text())
    outdir = bq.OUTPUTS / "recolor"  # ignored by git
    outdir.mkdir(parents=True, exist_ok=True)
    # Shaped like a bench_quality JSON (a run per --recolor), so that its table and montage apply.
    data = {
        "benchmark": "recolor",
        "from": Path(args.bench).name,
        "label": "recolor",
        "size": bench["size"],
        "runs": list(WAYS),
        "extra": [],
        "machine": machine(),
        "pairs": {},
    }
    net = None
    for pair, entry in bench["pairs"].items():
        run = entry["runs"].get("neighbour")
        if run is None:
            continue
        if "--recolor" in run["command"]:
            raise SystemExit(
                f"{pair}: the neighbour run has its own --recolor; this needs the preset's pictures"
            )
        raw_path = bq.HERE / run["image"]
        raw = images.load_image(raw_path)
        photo = images.fit_to(images.load_image(bq.IMAGES / f"{entry['photo']}.jpg"), raw.size)
        painting = images.load_image(bq.IMAGES / f"{entry['painting']}.jpg")
        scorer = scores.Scorer(photo, painting, net=net)
        net = scorer.net
        x, c, s = (images.to_tensor(im.convert("RGB")) for im in (raw, photo, painting))
        ways = {}
        for way, gamut in WAYS.items():
            path = raw_path
            if gamut is not None:
                path = outdir / f"{pair}-{bench['size']}-{way}.png"
                images.to_pil(color.oklab_recolor(x, c, s, gamut=gamut)).save(path)
            ways[way] = {
                "image": str(path.relative_to(bq.HERE)),
                **{k: round(v, 4) for k, v in scorer(images.load_image(path)).items()},
            }
        data["pairs"][pair] = {
            "photo": entry["photo"],
            "painting": entry["painting"],
            "kind": entry["kind"],
            "runs": ways,
        }
        print(
            pair,
            json.dumps({w: {k: r[k] for k in bq.SCORES} for w, r in ways.items()}),
            file=sys.stderr,
            flush=True,
        )
    out = Path(args.out)
    out.write_text(json.dumps(data, indent=1))
    print(table(data))
    png = bq.montage(data, out.with_name(out.stem + "_montage.png"))
    print(f"\nJSON: {out}\nmontage: {png}", file=sys.stderr)
    return 0


def table(data: dict) -> str:
    """Each pair's scores per --recolor, then the medians (no times: the step takes about a second)."""
    keys = bq.SCORES
    lines = [
        "| pair | --recolor | " + " | ".join(bq.HEAD[k] for k in keys) + " |",
        "|---|---|" + "---:|" * len(keys),
    ]
    for pair, e in data["pairs"].items():
        for way, r in e["runs"].items():
            lines.append(f"| {pair} | {way} | " + " | ".join(bq._fmt(k, r[k]) for k in keys) + " |")
    for way in data["runs"]:
        have = [e["runs"][way] for e in data["pairs"].values()]
        lines.append(
            f"| **median** | {way} | "
            + " | ".join(bq._fmt(k, statistics.median(r[k] for r in have)) for k in keys)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
