"""Regenerate the README's gallery (docs/gallery/) with the tool itself, on the original VGG-19.

Every picture is made by the command printed beside it in docs/gallery/README.md (written
here too): photographs x paintings from ../shared/images with the defaults, the paper's
Figure 1 (reconstructions) and its alpha/beta grid (our figure 3).

    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py            # ~10 min on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/make_gallery.py --only transfers
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
OUT = ROOT / "docs" / "gallery"
PHOTOS = ("tubingen", "golden_gate", "hoovertowernight")
PAINTINGS = ("starry_night", "the_scream")
SIZE = 384


def jobs():
    """(name, section, argv after `painterly`) for every gallery picture."""
    for p in PHOTOS:
        for s in PAINTINGS:
            yield (f"{p}--{s}.jpg", "transfers",
                   ["transfer", f"{p}.jpg", f"{s}.jpg", "-o", f"{p}--{s}.jpg", "--size", str(SIZE)])
    yield ("tubingen--starry_night--quality.jpg", "transfers",
           ["transfer", "tubingen.jpg", "starry_night.jpg", "-o", "tubingen--starry_night--quality.jpg",
            "--size", str(SIZE), "--preset", "quality"])
    yield ("figure1.jpg", "figures", ["figure", "1", "-o", "figure1.jpg", "--content", "tubingen.jpg",
                                      "--style", "starry_night.jpg", "--size", "160", "--iterations", "150"])
    yield ("figure3.jpg", "figures", ["figure", "3", "-o", "figure3.jpg", "--content", "tubingen.jpg",
                                      "--style", "starry_night.jpg", "--size", "160", "--ratios",
                                      "1e-5,1e-4,1e-3,1e-2"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("transfers", "figures"))
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Gallery", "", "Made by `benchmarks/make_gallery.py` with the original VGG-19 and the defaults "
             "unless the command says otherwise; inputs from the project's shared image folder.", ""]
    for name, section, words in jobs():
        if args.only and section != args.only:
            continue
        out_at = words.index("-o") + 1  # the output goes to docs/gallery, inputs come from shared/images
        argv_ = [str(OUT / w) if i == out_at else str(IMAGES / w) if w.endswith(".jpg") else w
                 for i, w in enumerate(words)]
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
