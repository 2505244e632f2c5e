"""Regenerate the gallery's pictures (docs/gallery/) with the tool itself, on the original VGG-19.

Every picture is made by the command printed beside it in docs/gallery/README.md (written
here too): photographs x paintings from ../shared/images with the defaults, the paper's
Figure 1 (reconstructions) and its alpha/beta grid (our figure 3).

    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py            # ~40 min on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py --only transfers
    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py --from-bench benchmarks/results/quality_wide.json
    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py \\
        --from-neighbour benchmarks/results/quality_wide-neighbour.json [--pairs tubingen-starry_night,...]

--from-bench takes the pictures bench_quality.py made over the wide set instead of running them
again: each was made by `painterly transfer PHOTO PAINTING -o out.png --size 384` in a fresh
process, and the same command gives the same bytes, so they are the gallery's pictures; they
are re-encoded as JPEG with their recipe. It writes docs/gallery/wide/ and prints the gallery
table of docs/gallery.md (one row per kind of painting).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]  # painterly and bench_quality, imported lazily
IMAGES = ROOT.parent / "shared" / "images"
OUT = ROOT / "docs" / "gallery"
# The gallery's pairs are the wide set's (bench_quality.PAIRS): every photograph and every painting.
SIZE = 384


def jobs():
    """(name, section, argv after `painterly`) for every gallery picture (transfers into wide/)."""
    from bench_quality import PAIRS  # noqa: E402

    for photo, painting in PAIRS.values():
        name = f"wide/{photo}--{painting}.jpg"
        yield (
            name,
            "transfers",
            ["transfer", f"{photo}.jpg", f"{painting}.jpg", "-o", name, "--size", str(SIZE)],
        )
    yield (
        "wide/tubingen--starry_night--quality.jpg",
        "transfers",
        [
            "transfer",
            "tubingen.jpg",
            "starry_night.jpg",
            "-o",
            "wide/tubingen--starry_night--quality.jpg",
            "--size",
            str(SIZE),
            "--preset",
            "quality",
        ],
    )
    yield (
        "figure1.jpg",
        "figures",
        [
            "figure",
            "1",
            "-o",
            "figure1.jpg",
            "--content",
            "tubingen.jpg",
            "--style",
            "starry_night.jpg",
            "--size",
            "160",
            "--iterations",
            "150",
        ],
    )
    yield (
        "figure3.jpg",
        "figures",
        [
            "figure",
            "3",
            "-o",
            "figure3.jpg",
            "--content",
            "tubingen.jpg",
            "--style",
            "starry_night.jpg",
            "--size",
            "160",
            "--ratios",
            "1e-5,1e-4,1e-3,1e-2",
        ],
    )


def from_bench(path: Path) -> str:
    """Copy the default run's outputs of a bench_quality JSON into docs/gallery/wide/ as JPEG;
    return docs/gallery.md's table, grouped by kind of painting."""
    import json

    from bench_quality import KIND, KINDS  # noqa: E402

    data = json.loads(Path(path).read_text())
    wide = OUT / "wide"
    wide.mkdir(parents=True, exist_ok=True)
    cells = {kind: [] for kind in KINDS}
    for entry in data["pairs"].values():
        photo, painting = entry["photo"], entry["painting"]
        # The quality picture is shown in docs/gallery.md for the paper's pair only: the others would
        # double the files in the repository for pictures close to the default's.
        if "quality" in entry["runs"] and (photo, painting) == ("tubingen", "starry_night"):
            _copy(entry["runs"]["quality"], wide / f"{photo}--{painting}--quality.jpg")
        if "default" not in entry["runs"]:
            continue
        name = f"{photo}--{painting}.jpg"
        _copy(entry["runs"]["default"], wide / name)
        cells[KIND[painting]].append(
            (
                name,
                f"painterly transfer {photo}.jpg {painting}.jpg -o out.png --size {data['size']}",
                f"{photo} x {painting}",
            )
        )
    lines = []
    for kind, items in cells.items():
        if not items:
            continue
        lines += [f"**{kind.capitalize()}**", ""]
        for i in range(0, len(items), 4):  # four pictures a row, each captioned photo x painting
            row = items[i : i + 4]
            lines += [
                "| " + " | ".join(c for _, _, c in row) + " |",
                "|" + "---|" * len(row),
                "| " + " | ".join(f"![](gallery/wide/{n})" for n, _, _ in row) + " |",
                "",
            ]
    doc = [
        "# Gallery: the wide set",
        "",
        "Made by `benchmarks/bench_quality.py` (then `make_gallery.py --from-bench`) "
        "with the original VGG-19; inputs from the project's shared image folder. Each picture's command:",
        "",
    ]
    for kind, items in cells.items():
        for n, cmd, _ in items:
            doc += [f"![{n}]({n})", "", f"`{cmd}`", ""]
    (wide / "README.md").write_text("\n".join(doc))
    return "\n".join(lines)


def _copy(run: dict, dst: Path) -> None:
    """One bench_quality output (recorded relative to benchmarks/) as a JPEG with its recipe."""
    from painterly import imaging as images  # noqa: E402

    src = ROOT / "benchmarks" / run["image"]
    images.save_image(images.load_image(src), dst, images.read_recipe(src))


def from_neighbour(path: Path, pairs: str = "") -> str:
    """Copy the default and neighbour outputs of a bench_neighbour JSON into docs/gallery/neighbour/
    (only `pairs`, comma-separated PHOTO-PAINTING names in that order, when given); return docs/gallery.md's
    table: per pair (a column), the Gatys default above and --preset neighbour below."""
    import json

    data = json.loads(Path(path).read_text())
    if pairs:
        data["pairs"] = {k: data["pairs"][k] for k in pairs.split(",")}
    folder = OUT / "neighbour"
    folder.mkdir(parents=True, exist_ok=True)
    cols, doc = (
        [],
        [
            "# Gallery: neural neighbours beside the Gatys default",
            "",
            "Made by `benchmarks/bench_neighbour.py` (then `make_gallery.py --from-neighbour`) with the "
            "original VGG-19. Each picture's command:",
            "",
        ],
    )
    for entry in data["pairs"].values():
        photo, painting = entry["photo"], entry["painting"]
        if not {"default", "neighbour"} <= set(entry["runs"]):
            continue
        names = {}
        for run, extra in (("default", ""), ("neighbour", " --preset neighbour")):
            names[run] = f"{photo}--{painting}--{run}.jpg"
            _copy(entry["runs"][run], folder / names[run])
            doc += [
                f"![{names[run]}]({names[run]})",
                "",
                f"`painterly transfer {photo}.jpg {painting}.jpg -o out.png --size {data['size']}{extra}`",
                "",
            ]
        cols.append((f"{photo} x {painting}", names))
    (folder / "README.md").write_text("\n".join(doc))
    lines = []
    for i in range(0, len(cols), 4):
        row = cols[i : i + 4]
        lines += ["| | " + " | ".join(c for c, _ in row) + " |", "|---|" + "---|" * len(row)]
        for run in ("default", "neighbour"):
            lines.append(
                f"| {run} | " + " | ".join(f"![](gallery/neighbour/{n[run]})" for _, n in row) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("transfers", "figures"))
    ap.add_argument("--from-bench", metavar="JSON", help="take the pictures of a bench_quality.py run")
    ap.add_argument("--from-neighbour", metavar="JSON", help="take the pictures of a bench_neighbour.py run")
    ap.add_argument(
        "--pairs", default="", help="with --from-neighbour: only these PHOTO-PAINTING pairs, in order"
    )
    args = ap.parse_args(argv)
    if args.from_bench:
        print(from_bench(Path(args.from_bench)))
        return 0
    if args.from_neighbour:
        print(from_neighbour(Path(args.from_neighbour), args.pairs))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Gallery",
        "",
        "Made by `benchmarks/make_gallery.py` with the original VGG-19 and the defaults "
        "unless the command says otherwise; inputs from the project's shared image folder.",
        "",
    ]
    for name, section, words in jobs():
        if args.only and section != args.only:
            continue
        out_at = words.index("-o") + 1  # the output goes to docs/gallery, inputs come from shared/images
        argv_ = [
            str(OUT / w) if i == out_at else str(IMAGES / w) if w.endswith(".jpg") else w
            for i, w in enumerate(words)
        ]
        (OUT / words[out_at]).parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "painterly.cli", *argv_, "--quiet"], check=True)
        seconds = time.perf_counter() - t
        shown = "painterly " + " ".join(shlex.quote(w) for w in words)
        lines += [f"![{name}]({name})", "", f"`{shown}`", ""]  # times vary with load: stderr only
        print(f"{name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    (OUT / "README.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
