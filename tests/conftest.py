"""Shared fixtures: small images (from ../shared/images when present, else generated) and
a seeded random VGG-19. No test needs the network or pretrained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def _generated(kind: str, size=(96, 72)) -> Image.Image:
    """A deterministic stand-in image: smooth gradients (content) or stripes (style)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "content":
        rgb = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 7.0) * np.cos(y / 9.0)], -1)
    else:
        rgb = np.stack(
            [0.5 + 0.5 * np.sin((x + y) / 3.0), 0.5 + 0.5 * np.cos(x / 2.0), 0.5 + 0.5 * np.sin(y / 4.0)], -1
        )
    return Image.fromarray((rgb * 255).clip(0, 255).astype(np.uint8))


def _image(name: str, kind: str, tmp_path_factory) -> Path:
    src = SHARED / name
    if src.exists():
        return src
    path = tmp_path_factory.mktemp("img") / f"{kind}.png"
    _generated(kind).save(path)
    return path


@pytest.fixture(scope="session")
def content_path(tmp_path_factory) -> Path:
    return _image("tubingen.jpg", "content", tmp_path_factory)


@pytest.fixture(scope="session")
def style_path(tmp_path_factory) -> Path:
    return _image("starry_night.jpg", "style", tmp_path_factory)


@pytest.fixture(scope="session")
def style2_path(tmp_path_factory) -> Path:
    return _image("the_scream.jpg", "style", tmp_path_factory)


@pytest.fixture
def small(tmp_path) -> dict:
    """Tiny generated content/style files in a fresh directory."""
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    _generated("content", (40, 32)).save(c)
    _generated("style", (36, 36)).save(s)
    return {"content": c, "style": s, "dir": tmp_path}


@pytest.fixture
def fast():
    """Options for quick runs: random weights, tiny size, few iterations, fp32 on CPU."""
    return dict(weights="random", size=32, iterations=(5,), device="cpu", precision="fp32")


@pytest.fixture(autouse=True)
def _fresh_prepared_engines():
    """Each test starts without the shared Stylizers earlier tests prepared (engine.prepared):
    a test that patches the network's loading or the machine's bf16 support must see it used."""
    from painterly import engine

    engine._PREPARED.clear()
    yield
    engine._PREPARED.clear()
