"""The two demo images, bundled with the package (data/, sources and licences in data/NOTICE).

The demo, the figures and the normalisation of weights without shipped means use them; no
network is ever touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

DATA = Path(__file__).with_name("data")
DEMO_CONTENT = DATA / "tubingen.jpg"  # Tuebingen, Neckarfront (the paper's Fig. 2 photograph)
DEMO_STYLE = DATA / "starry_night.jpg"  # Van Gogh, The Starry Night (public domain)
DEMO_OUTPUT = "painterly-demo-tuebingen-starry-night.png"


def demo_images() -> Tuple[Path, Path]:
    """(content_path, style_path) of the bundled demo images."""
    return DEMO_CONTENT, DEMO_STYLE
