"""Demo images: bundled with the package (data/), small, decodable, credited in data/NOTICE;
`painterly demo` runs offline and writes into the current directory."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ci import shared_images
from painterly import assets, options
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.net import weights

DATA = Path(assets.__file__).with_name("data")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"
MAX_BYTES = 200 * 1024  # each bundled image stays small: the wheel carries them


def no_network(monkeypatch):
    """Make any network access fail loudly: urllib (also as imported by weights) and raw sockets."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(weights, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_demo_images_are_the_two_bundled_files(monkeypatch):
    no_network(monkeypatch)
    content, style = assets.demo_images()
    assert (content, style) == (assets.DEMO_CONTENT, assets.DEMO_STYLE)
    assert content == DATA / "tubingen.jpg" and style == DATA / "starry_night.jpg"
    for p in (content, style):
        assert p.is_file() and 0 < p.stat().st_size <= MAX_BYTES, (p, p.stat().st_size)
    with pytest.raises(TypeError):
        assets.demo_images(urls=("http://x/a.jpg", "http://x/b.jpg"))  # nothing is downloaded any more


def test_demo_images_decode_as_512_px_rgb_jpegs():
    sizes = []
    for p in assets.demo_images():
        with Image.open(p) as im:
            assert im.format == "JPEG"
            im.verify()  # the whole file is well formed
        img = images.load_image(p)
        assert img.mode == "RGB" and max(img.size) == 512
        a = np.asarray(img, dtype=np.float32)
        assert a.std() > 20  # a picture, not a flat colour
        sizes.append(img.size)
    assert all(w > h for w, h in sizes)  # both are landscape (the paper's Fig. 2 pair)


def test_the_bundled_images_are_the_papers_pair_scaled_down():
    shared_images()
    # Each bundled file is close to its full-size original once that is scaled down, and far
    # from the other picture: the content is Tuebingen, the style The Starry Night.
    content, style = assets.demo_images()
    for bundled, original, other in (
        (content, "tubingen.jpg", "starry_night.jpg"),
        (style, "starry_night.jpg", "tubingen.jpg"),
    ):
        a = np.asarray(images.load_image(bundled), dtype=np.float32)
        size = (a.shape[1], a.shape[0])

        def diff(name):
            b = images.load_image(SHARED / name).resize(size, Image.BICUBIC)
            return float(np.abs(a - np.asarray(b, dtype=np.float32)).mean())

        assert diff(original) < 15 < 40 < diff(other), bundled


def test_notice_names_both_sources_and_licences():
    text = (DATA / "NOTICE").read_text(encoding="utf-8")
    for name in ("tubingen.jpg", "starry_night.jpg"):
        assert name in text
    # Tuebingen: photograph by Andreas Praefcke, CC BY 3.0 (attribution required).
    assert "Andreas Praefcke" in text
    assert "https://commons.wikimedia.org/wiki/File:Tuebingen_Neckarfront.jpg" in text
    assert "CC BY 3.0" in text and "https://creativecommons.org/licenses/by/3.0/" in text
    # The Starry Night: public domain.
    assert "Van Gogh" in text or "van Gogh" in text
    assert "https://commons.wikimedia.org/wiki/File:Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg" in text
    assert "Public domain" in text or "public domain" in text
    # Every file shipped in data/ is accounted for.
    for p in DATA.iterdir():
        if p.name != "NOTICE" and not p.name.startswith("."):
            assert p.name in text, p.name


def test_every_data_file_is_declared_as_package_data():
    try:
        import tomllib
    except ImportError:  # Python 3.9-3.10: the same parser as the tomli package (a test extra there)
        import tomli as tomllib
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["painterly"]
    for p in DATA.iterdir():
        if not p.name.startswith("."):
            assert any(p.relative_to(DATA.parent).match(pat) for pat in patterns), p.name


def test_demo_writes_into_the_current_directory_offline(tmp_path, monkeypatch, capsys):
    no_network(monkeypatch)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["demo", "--size", "64", "--weights", "random", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = tmp_path / assets.DEMO_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == [assets.DEMO_OUTPUT]  # nothing else written
    assert str(result) in out
    img = images.load_image(result)
    assert img.size == (64, 48)  # Tuebingen's 4:3 at --size 64
    recipe = images.read_recipe(result)
    assert recipe["job"] == "transfer" and recipe["weights_sha256"] == "random"
    assert recipe["content"]["path"] == assets.DEMO_CONTENT.name  # the file name only (--recipe-paths name)
    assert [s["path"] for s in recipe["styles"]] == [assets.DEMO_STYLE.name]
    assert recipe["options"]["size"] == 64
    # The bundled images are left as they were.
    assert not (DATA / assets.DEMO_OUTPUT).exists()


def test_demo_output_size_and_weights_flags(tmp_path, monkeypatch, capsys):
    # The flags reach the run (the run itself is exercised above): -o, --size, --weights;
    # without --weights the demo uses the default set.
    no_network(monkeypatch)
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(
        cli, "run_job", lambda job, c, s, o, args: calls.append((job, c, s, o, args.output)) or 0
    )
    (tmp_path / "sub").mkdir()
    assert cli.main(["demo", "-o", "sub/mine.png", "--size", "96", "--weights", "random", "--quiet"]) == 0
    assert cli.main(["demo", "--quiet"]) == 0
    (job, c, s, o, out), (_, _, _, o2, out2) = calls
    assert job == "transfer" and c == str(assets.DEMO_CONTENT) and s == [str(assets.DEMO_STYLE)]
    assert out == str(tmp_path / "sub" / "mine.png")  # absolute, as the default is
    assert o.size == 96 and o.weights == "random"
    assert f"the demo result is {tmp_path / 'sub' / 'mine.png'}" in capsys.readouterr().out
    assert out2 == str(tmp_path / assets.DEMO_OUTPUT)
    assert o2.size == options.DEFAULTS.size and o2.weights is None  # None: the "original" set
    assert list(tmp_path.iterdir()) == [tmp_path / "sub"]


def test_a_demo_that_cannot_write_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["demo", "-o", "missing/demo.png", "--weights", "random"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not exist; run the demo from a folder you can write to, or give -o PATH" in err
