"""Make docs/hero.jpg, the README's first picture: the photograph, the painting and the result
side by side, from committed images only (the bundled demo images and the gallery's default run
of the same pair, made by benchmarks/make_gallery.py).

    .venv/bin/python docs/make_hero.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PARTS = (
    ROOT / "src/painterly/data/tubingen.jpg",
    ROOT / "src/painterly/data/starry_night.jpg",
    ROOT / "docs/gallery/wide/tubingen--starry_night.jpg",
)
HEIGHT, GAP = 256, 8


def main() -> int:
    ims = []
    for p in PARTS:
        with Image.open(p) as im:
            im = im.convert("RGB")
            ims.append(im.resize((round(im.width * HEIGHT / im.height), HEIGHT), Image.LANCZOS))
    out = Image.new("RGB", (sum(i.width for i in ims) + GAP * (len(ims) - 1), HEIGHT), "white")
    x = 0
    for im in ims:
        out.paste(im, (x, 0))
        x += im.width + GAP
    out.save(ROOT / "docs/hero.jpg", quality=88, optimize=True)
    print(ROOT / "docs/hero.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
