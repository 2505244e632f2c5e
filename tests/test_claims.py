"""Behaviours the rest of the suite did not pin down (issue 22, item 6): the prepared engines and
their style-target cache, the public API's lazy imports, and the output guards of the command
line. Random weights and tiny sizes throughout."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import painterly
from painterly import engine, options
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.errors import InvalidOption
from painterly.runtime import style_cache

FAST = dict(weights="random", size=32, iterations=(1,), device="cpu", precision="fp32", init="content")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _img(path: Path, seed: int, size=(40, 32)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


# --- the prepared engines ------------------------------------------------------------------------
def test_a_stylizer_refuses_other_network_options_and_takes_any_other(small):
    st = engine.Stylizer(options.DEFAULTS.replace(**FAST))
    for field, value in (("pooling", "avg"), ("normalize", False), ("precision", "bf16")):
        with pytest.raises(InvalidOption, match=f"prepared with other {field};"):
            st.run(small["content"], [small["style"]], options=st.options.replace(**{field: value}))
    # (no --content-ceiling polish: on the random network 2 steps may end either side of K 0.9)
    res = st.run(
        small["content"],
        [small["style"]],
        options=st.options.replace(style_weight=3.0, iterations=(2,), content_ceiling=0.0),
    )
    assert res.iterations == 2 and res.options.style_weight == 3.0


def test_prepared_reuses_an_engine_per_network_and_keeps_only_the_last_two():
    base = options.DEFAULTS.replace(**FAST)
    a = engine.prepared(base)
    assert engine.prepared(base.replace(style_weight=9.0, size=48)) is a  # not a network field
    b = engine.prepared(base.replace(pooling="avg"))
    assert b is not a and engine.prepared(base) is a  # a is the most recent again
    c = engine.prepared(base.replace(normalize=False))
    assert len(engine._PREPARED) == 2 and set(engine._PREPARED.values()) == {a, c}  # b, the oldest, went
    assert engine.prepared(base.replace(pooling="avg")) is not b  # b was evicted: a new engine


def test_the_style_target_cache_reuses_keys_by_pixels_and_options_and_evicts_the_oldest(small, monkeypatch):
    st = engine.Stylizer(options.DEFAULTS.replace(**FAST))
    styles = [_img(small["dir"] / f"s{i}.png", i, (36, 36)) for i in range(3)]
    st.run(small["content"], [styles[0]])
    assert len(st._styles) == 1
    first = next(iter(st._styles.values()))
    copy = small["dir"] / "copy.png"
    copy.write_bytes(styles[0].read_bytes())  # another file, the same pixels: the same key
    st.run(small["content"], [copy], options=st.options.replace(style_weight=2.0, iterations=(2,)))
    assert len(st._styles) == 1 and next(iter(st._styles.values())) is first  # reused, not recomputed
    st.run(small["content"], [styles[0]], options=st.options.replace(style_layers=("relu1_1", "relu2_1")))
    assert len(st._styles) == 2  # other layers: another key
    st._styles.size = 2  # the cache keeps two
    st.run(small["content"], [styles[1]])
    assert len(st._styles) == 2 and all(v is not first for v in st._styles.values())  # the oldest was evicted
    keys = list(st._styles)
    st.run(small["content"], [styles[1]])
    assert list(st._styles) == keys  # a hit changes nothing


def test_on_a_gpu_the_style_cache_keeps_its_entries_in_host_memory(monkeypatch):
    """The memory plan counts a run's own targets, not the cache's: on a GPU the cached entries are
    moved to host memory, the last style used stays on the device for the next run of it, and
    CUDA's cache is emptied when that copy is replaced."""
    import torch

    st = engine.Stylizer(options.DEFAULTS.replace(**FAST))
    st._styles.device = torch.device("cuda")  # the bookkeeping only: nothing computes here
    moves, emptied = [], []
    monkeypatch.setattr(style_cache, "moved", lambda v, d: moves.append(str(d)) or {"on": str(d)})
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    lookup, made = st._styles.lookup(()), []

    def compute(s):
        made.append(1)
        return {"relu1_1": s.sum()}

    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    first = lookup(a, compute)
    assert made == [1] and moves == ["cpu"] and list(st._styles.values()) == [{"on": "cpu"}]
    assert lookup(a, compute) is first and made == [1] and moves == ["cpu"]  # the device copy, reused
    lookup(b, compute)
    assert made == [1, 1] and emptied == [1]  # a's device copy was dropped
    assert lookup(a, compute) == {"on": "cuda"} and made == [1, 1]  # from host memory to the device


# --- the public API ------------------------------------------------------------------------------
def test_importing_the_package_does_no_work_and_exports_load_lazily():
    code = (
        "import sys, painterly\n"
        "print(sorted(m for m in sys.modules if m.startswith('painterly') or m in ('torch', 'PIL', 'numpy')))\n"
        "print(dir(painterly) == sorted(painterly.__all__))\n"
        "painterly.Options\n"
        "print(sorted(m for m in sys.modules if m.startswith('painterly.')))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
    ).stdout.splitlines()
    assert out[0] == "['painterly']"  # nothing else imported: no torch, no network, no files read
    assert out[1] == "True"
    assert "painterly.options" in out[2] and "painterly.engine" not in out[2]  # only what Options needs
    assert out[3] == "False"


def test_every_export_resolves_and_an_unknown_name_is_an_attribute_error():
    assert painterly.__all__ == sorted(painterly._EXPORTS) + ["__version__"]
    for name, module in painterly._EXPORTS.items():
        value = getattr(painterly, name)
        assert value is getattr(__import__(f"painterly.{module}", fromlist=[name]), name)
    assert painterly.__version__ == "0.1.0"
    with pytest.raises(AttributeError, match="module 'painterly' has no attribute 'stylise'"):
        painterly.stylise  # noqa: B018
    assert not hasattr(painterly, "_nope")


# --- the output guards ---------------------------------------------------------------------------
def _transfer(capsys, content, style, out, *extra):
    code = cli.main(
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "32",
            "--iterations",
            "1",
            "--device",
            "cpu",
            "--quiet",
            *map(str, extra),
        ]
    )
    return code, capsys.readouterr().err


def test_a_read_only_output_is_refused_unless_overwrite(small, capsys, monkeypatch):
    out = small["dir"] / "out.png"
    _img(out, 5)
    before = out.read_bytes()
    out.chmod(stat.S_IRUSR)
    real_access = os.access
    # As root every file is writable to os.access: say what a normal user's check says.
    monkeypatch.setattr(
        images.save.os,
        "access",
        lambda p, mode, **kw: False if Path(p) == out and mode == os.W_OK else real_access(p, mode, **kw),
    )
    try:
        code, err = _transfer(capsys, small["content"], small["style"], out)
        assert code == 2 and "exists and is read-only" in err and "--overwrite" in err
        assert out.read_bytes() == before
        code, err = _transfer(capsys, small["content"], small["style"], out, "--overwrite")
        assert code == 0, err
        assert out.read_bytes() != before and images.read_recipe(out)["job"] == "transfer"
    finally:
        out.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("which", ["content", "style", "symlink", "init", "mask"])
def test_an_output_that_is_an_input_is_refused_unless_overwrite_input(small, capsys, which):
    d = small["dir"]
    extra, target = [], small["content"]
    if which == "style":
        target = small["style"]
    elif which == "init":
        target = _img(d / "start.png", 3)
        extra = ["--init", target]
    elif which == "mask":
        labels = np.zeros((32, 40), np.uint8)
        labels[:, 20:] = 1
        target = d / "mask.png"
        Image.fromarray(labels).save(target)
        extra = ["--content-mask", target]
    out = target
    if which == "symlink":
        out = d / "link.png"
        out.symlink_to(small["content"])
    before = Path(target).read_bytes()
    code, err = _transfer(capsys, small["content"], small["style"], out, *extra)
    assert code == 2 and "--overwrite-input" in err and f"is the input '{target}'" in err, err
    assert Path(target).read_bytes() == before
    if which in ("content", "symlink"):
        code, err = _transfer(capsys, small["content"], small["style"], out, "--overwrite-input")
        assert code == 0, err
        # the picture is written at the output (a link is replaced by the file, not written through)
        assert images.read_recipe(out)["job"] == "transfer"
        assert (Path(target).read_bytes() != before) == (which == "content")


# --- rerun's input checks ------------------------------------------------------------------------
def _rerun(capsys, recipe_from, out):
    code = cli.main(["rerun", str(recipe_from), "-o", str(out), "--quiet"])
    return code, capsys.readouterr().err


def test_rerun_checks_its_inputs(small, tmp_path, capsys, monkeypatch):
    a = tmp_path / "a"
    a.mkdir()
    content, style = _img(a / "photo.png", 1), _img(a / "art.png", 2, (36, 36))
    out = a / "out.png"
    assert _transfer(capsys, content, style, out)[0] == 0
    recipe = images.read_recipe(out)
    assert recipe["content"]["path"] == "photo.png" and recipe["styles"][0]["path"] == "art.png"
    assert _rerun(capsys, out, a / "again.png")[0] == 0  # found next to the image, pixels unchanged

    # changed pixels: refused, nothing written
    saved = content.read_bytes()
    _img(content, 99)
    code, err = _rerun(capsys, out, a / "changed.png")
    assert code == 2 and f"input '{content}' has changed since the recipe was written" in err
    assert not (a / "changed.png").exists()
    content.write_bytes(saved)

    # the output elsewhere, inputs named by file name only: not found there nor in the current folder
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    (elsewhere / "out.png").write_bytes(out.read_bytes())
    monkeypatch.chdir(elsewhere)
    code, err = _rerun(capsys, elsewhere / "out.png", elsewhere / "again.png")
    assert code == 2 and "input 'photo.png'" in err and "was not found" in err

    # --recipe-paths full: the absolute paths are recorded and found from anywhere
    assert _transfer(capsys, content, style, out, "--recipe-paths", "full")[0] == 0
    recipe = images.read_recipe(out)
    assert recipe["content"]["path"] == str(content.resolve()) and recipe["styles"][0]["path"] == str(
        style.resolve()
    )
    (elsewhere / "full.png").write_bytes(out.read_bytes())
    code, err = _rerun(capsys, elsewhere / "full.png", elsewhere / "again.png")
    assert code == 0, err
    assert (
        images.read_recipe(elsewhere / "again.png")["content"]["pixels_sha256"]
        == recipe["content"]["pixels_sha256"]
    )


def test_rerun_refuses_a_recipe_whose_input_was_given_in_memory(small, tmp_path, capsys):
    img = painterly.stylize(Image.open(small["content"]).convert("RGB"), small["style"], **FAST)
    out = painterly.save_image(img, tmp_path / "mem.png", img.info["painterly"])
    assert images.read_recipe(out)["content"]["path"] is None
    code, err = _rerun(capsys, out, tmp_path / "again.png")
    assert code == 2 and "names an input given in memory, not a file" in err
    assert not (tmp_path / "again.png").exists()
