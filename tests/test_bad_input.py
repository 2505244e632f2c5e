"""Nothing lost, no tracebacks, no surprises: odd and bad invocations of the command line.

A table of cases run in-process (cli.main): odd but valid inputs must simply work (exit 0, a
sensible output); bad ones end with a non-zero status and exactly one line on stderr,
"painterly: error: ...". Every numeric option of `transfer` is tried negative, zero, huge and
NaN, enumerated from options.SPECS so a new option is covered without editing this file. A
Hypothesis property fuzzes the same options; a full disk is simulated in a subprocess
(RLIMIT_FSIZE) and in-process (ENOSPC). Every case checks that no input file changed, that
an existing output is either untouched or completely replaced, and that no hidden temporary
file is left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import math
import os
import struct
import subprocess
import sys
import typing
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from painterly import engine, options
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.errors import Stop
from painterly.runtime import memory

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = [
    "--weights",
    "random",
    "--size",
    "32",
    "--iterations",
    "2",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--quiet",
]
PRECIOUS = b"precious: an earlier output that must survive a failed run"
_SET_THREADS = torch.set_num_threads  # the real one (the tests below replace it)


# --- the corpus: odd, valid and bad input files, made once ------------------------------------------
def _gradient(w: int, h: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 4.0)], -1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _raw_png(path: Path, w: int, h: int, depth: int, colour: int, rows: bytes) -> None:
    """A PNG written by hand: 16-bit RGB (Pillow cannot write it) or a header-only bomb."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _with_recipe(path: Path, text: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(images.RECIPE_KEY, text, zip=True)
    _gradient(40, 30).save(path, pnginfo=info)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    _gradient(40, 30).save(d / "c.png")
    s = np.zeros((24, 24, 3), np.uint8)
    s[::3] = (230, 40, 40)
    s[:, ::4] = (30, 30, 220)
    Image.fromarray(s).save(d / "s.png")
    # odd but valid
    Image.new("RGB", (40, 30), (200, 100, 50)).convert("CMYK").save(d / "cmyk.jpg", quality=98)
    Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(d / "gray16.png")
    assert Image.open(d / "gray16.png").mode == "I;16"
    px = np.array([65535, 0, 32896], ">u2").tobytes()
    _raw_png(d / "rgb16.png", 40, 30, 16, 2, b"".join(b"\x00" + px * 40 for _ in range(30)))
    Image.new("L", (40, 30), 90).save(d / "grey.png")
    Image.new("LA", (40, 30), (90, 0)).save(d / "la.png")  # fully transparent: white
    Image.new("RGBA", (40, 30), (0, 0, 255, 128)).save(d / "rgba.png")  # half-transparent blue on white
    _gradient(40, 30).convert("P").save(d / "palette.png")
    Image.new("P", (40, 30), 0).save(d / "palette_t.png", transparency=0)  # every pixel transparent
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    _gradient(40, 20).save(d / "exif6.jpg", exif=exif.tobytes())
    Image.new("RGB", (1, 1), (10, 200, 30)).save(d / "one.png")
    Image.fromarray(np.linspace(0, 1, 1200, dtype=np.float32).reshape(30, 40), "F").save(d / "float.tif")
    _gradient(40, 30).save(d / "jpeg inside.png", format="JPEG")
    _gradient(40, 30).save(d / "mein foto ü.png")
    _gradient(30, 40).save(d / "写真.jpg")
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 20:] = 1
    Image.fromarray(labels, "L").save(d / "mask.png")
    # bad
    (d / "empty.png").write_bytes(b"")
    good = (d / "c.png").read_bytes()
    (d / "trunc.png").write_bytes(good[: len(good) // 2])
    _gradient(40, 30).save(d / "full.jpg", quality=90)
    jpeg = (d / "full.jpg").read_bytes()
    (d / "trunc.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (d / "text.png").write_text("this is not an image\n")
    (d / "folder.png").mkdir()
    Image.new("RGB", (10000, 1), (120, 60, 30)).save(d / "wide.png")
    _raw_png(d / "bomb.png", 40000, 40000, 8, 2, b"")  # a header promising 1.6 G pixels
    _with_recipe(d / "recipe_list.png", json.dumps([1, 2, 3]))
    _with_recipe(d / "recipe_broken.png", '{"job": "transfer", "options": {')
    _with_recipe(
        d / "recipe_types.png",
        json.dumps(
            {"job": "transfer", "styles": [], "options": {"seed": "x", "size": 32, "weights": "random"}}
        ),
    )
    _with_recipe(d / "recipe_styles.png", json.dumps({"job": "transfer", "styles": 5, "options": {}}))
    _with_recipe(d / "recipe_job.png", json.dumps({"job": "paint", "options": {"weights": "random"}}))
    _with_recipe(d / "recipe_shape.png", json.dumps({"job": "transfer", "options": {"iterations": {"a": 1}}}))
    return d


def _hashes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _hidden(root: Path) -> list:
    return sorted(str(p) for p in root.rglob(".*"))


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread (tiny images gain nothing from more, and another process may hold the
    second core), and --threads N recorded, not applied: 4096 threads on two cores would make a
    32 px run take half a minute and outlive the case. Invalid counts still fail as in torch."""
    before = torch.get_num_threads()
    _SET_THREADS(1)
    applied = []

    def set_num_threads(n):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise RuntimeError("set_num_threads expects a positive integer")
        applied.append(n)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "set_num_threads", set_num_threads)
        yield applied
    _SET_THREADS(before)


# --- running one case and checking everything ---------------------------------------------------------
def _argv(tokens, corpus: Path, case: Path) -> list:
    """'@name': a corpus file; '%name': a file in the case's folder; anything else as is."""

    def one(t):
        t = str(t)
        return str(corpus / t[1:]) if t.startswith("@") else str(case / t[1:]) if t.startswith("%") else t

    return [one(t) for t in tokens]


def _run(argv, capsys) -> tuple:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(code, err) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert code not in (0, None), err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("painterly: error: "), lines[0]
    return lines[0]


def check_case(tokens, ok: bool, corpus: Path, case: Path, capsys, *, expect="", check=None, replaced=None):
    """Run `painterly TOKENS` with an existing output (precious bytes) and an unrelated file
    in the case folder; assert the outcome and that nothing was lost. replaced: whether the
    existing output is replaced by a complete new one (default: when the run succeeds)."""
    case.mkdir(parents=True, exist_ok=True)
    (case / "sub dir").mkdir(exist_ok=True)
    (case / "keep.png").write_bytes(PRECIOUS)
    replaced = ok if replaced is None else replaced
    out = Path(_argv([tokens[tokens.index("-o") + 1]], corpus, case)[0]) if "-o" in tokens else None
    mine = out is not None and out.parent == case and not out.is_dir()  # an output this test may pre-create
    if mine:
        out.write_bytes(PRECIOUS)
    corpus_before, case_before = _hashes(corpus), _hashes(case)
    code, stdout, err = _run(_argv(tokens, corpus, case), capsys)
    assert "Traceback" not in err + stdout
    if ok:
        assert code == 0, err
        assert "painterly: error" not in err
    else:
        line = _one_error_line(code, err)
        assert expect in line, line
    if replaced:
        img = images.load_image(out)  # complete and readable: an atomic replacement of the old bytes
        assert img.mode == "RGB" and min(img.size) >= 1
        if check is not None:
            check(img)
    elif mine:
        assert out.read_bytes() == PRECIOUS  # a failed run leaves the earlier output alone
    assert _hashes(corpus) == corpus_before, "an input file changed"
    after = _hashes(case)
    assert all(after.get(k) == v for k, v in case_before.items() if not (replaced and k == out.name)), (
        "a file in the output's folder was damaged"
    )
    assert _hidden(case) == [] and _hidden(corpus) == [], "a temporary file was left behind"
    return code, err


def _colour(rgb, tol=12):
    def check(img):
        mean = np.asarray(img, np.float64).reshape(-1, 3).mean(0)
        assert np.abs(mean - np.array(rgb)).max() <= tol, (mean, rgb)

    return check


def _size(w, h):
    def check(img):
        assert img.size == (w, h), img.size

    return check


# --- the table ------------------------------------------------------------------------------------------
T, OUT, ZERO = (
    "transfer",
    ["-o", "%out.png"],
    ["--iterations", "0", "--init", "content"],
)  # 0 steps from the content: the output is the content
VALID = [
    ("cmyk-jpeg", [T, "@cmyk.jpg", "@s.png", *OUT, *FAST, *ZERO], _colour((200, 100, 50))),
    ("16-bit-grey-png", [T, "@gray16.png", "@gray16.png", *OUT, *FAST, *ZERO], _colour((156, 156, 156), 2)),
    ("16-bit-rgb-png", [T, "@rgb16.png", "@rgb16.png", *OUT, *FAST, *ZERO], _colour((255, 0, 128), 2)),
    ("greyscale-L", [T, "@grey.png", "@grey.png", *OUT, *FAST, *ZERO], _colour((90, 90, 90), 2)),
    ("transparent-LA", [T, "@la.png", "@s.png", *OUT, *FAST, *ZERO], _colour((255, 255, 255), 2)),
    ("half-transparent-RGBA", [T, "@rgba.png", "@rgba.png", *OUT, *FAST, *ZERO], _colour((127, 127, 255), 3)),
    ("palette", [T, "@palette.png", "@palette.png", *OUT, *FAST], _size(32, 24)),
    ("palette-transparent", [T, "@palette_t.png", "@s.png", *OUT, *FAST, *ZERO], _colour((255, 255, 255), 2)),
    ("animated-gif-first-frame", [T, "@anim.gif", "@anim.gif", *OUT, *FAST, *ZERO], _colour((255, 0, 0), 3)),
    ("exif-rotated-jpeg-is-upright", [T, "@exif6.jpg", "@s.png", *OUT, *FAST], _size(16, 32)),
    ("1x1-image", [T, "@one.png", "@one.png", *OUT, *FAST, *ZERO], _colour((10, 200, 30), 2)),
    ("float-tiff", [T, "@float.tif", "@s.png", *OUT, *FAST], _size(32, 24)),
    ("jpeg-named-png", [T, "@jpeg inside.png", "@s.png", *OUT, *FAST], _size(32, 24)),
    ("non-ascii-names", [T, "@mein foto ü.png", "@写真.jpg", "-o", "%ergebnis ü 写真.png", *FAST], None),
    ("output-path-with-spaces", [T, "@c.png", "@s.png", "-o", "%sub dir/out put.png", *FAST], None),
    ("jpeg-output-upper-case", [T, "@c.png", "@s.png", "-o", "%OUT.JPG", *FAST], None),
    (
        "odd-styles-blended",
        [T, "@c.png", "@cmyk.jpg", "@gray16.png", "@palette_t.png", "@anim.gif", *OUT, *FAST],
        _size(32, 24),
    ),
    ("texture-from-palette", ["texture", "@palette.png", *OUT, *FAST], _size(32, 24)),
    ("content-from-LA", ["content", "@la.png", *OUT, *FAST], _size(32, 24)),
    ("with-a-report", [T, "@c.png", "@s.png", *OUT, *FAST, "--report", "%r.json"], None),
]

BAD = [
    ("empty-file", [T, "@empty.png", "@s.png", *OUT, *FAST], "is empty"),
    ("truncated-png", [T, "@trunc.png", "@s.png", *OUT, *FAST], "trunc.png"),
    ("truncated-jpeg-style", [T, "@c.png", "@trunc.jpg", *OUT, *FAST], "trunc.jpg"),
    ("text-as-image", [T, "@text.png", "@s.png", *OUT, *FAST], "not an image"),
    ("folder-as-image", [T, "@c.png", "@folder.png", *OUT, *FAST], "directory"),
    ("missing-input", [T, "@nope.png", "@s.png", *OUT, *FAST], "no such file"),
    ("empty-input-path", [T, "", "@s.png", *OUT, *FAST], "path is empty"),
    ("header-bomb", [T, "@bomb.png", "@s.png", *OUT, *FAST], "exceeds"),
    ("10000x1-content", [T, "@wide.png", "@s.png", *OUT, *FAST], "aspect ratio"),
    ("10000x1-style", [T, "@c.png", "@wide.png", *OUT, *FAST], "aspect ratio"),
    (
        "10000x1-at-the-largest-size",
        [T, "@wide.png", "@s.png", *OUT, *FAST, "--size", "8192"],
        "aspect ratio",
    ),
    ("missing-output-folder", [T, "@c.png", "@s.png", "-o", "%no/such/out.png", *FAST], "does not exist"),
    ("output-folder-is-a-file", [T, "@c.png", "@s.png", "-o", "%keep.png/out.png", *FAST], "not a directory"),
    (
        "output-is-a-folder",
        [T, "@c.png", "@s.png", "-o", "%sub dir", *FAST],
        "sub dir': it is a folder; name a file in it",
    ),
    ("empty-output-path", [T, "@c.png", "@s.png", "-o", "", *FAST], "path is empty"),
    ("output-is-the-input", [T, "@c.png", "@s.png", "-o", "@c.png", *FAST], "--overwrite-input"),
    ("output-extension-gif", [T, "@c.png", "@s.png", "-o", "%out.gif", *FAST], "'.gif' is not supported"),
    ("output-without-extension", [T, "@c.png", "@s.png", "-o", "%out", *FAST], "no extension"),
    (
        "report-folder-missing",
        [T, "@c.png", "@s.png", *OUT, *FAST, "--report", "%no/r.json"],
        "does not exist",
    ),
    (
        "unknown-style-layer",
        [T, "@c.png", "@s.png", *OUT, *FAST, "--style-layers", "relu1_1,relu9_1"],
        "relu9_1",
    ),
    (
        "unknown-content-layer",
        [T, "@c.png", "@s.png", *OUT, *FAST, "--content-layers", "conv4_22"],
        "conv4_2",
    ),
    ("content-verb-unknown-layer", ["content", "@c.png", *OUT, *FAST, "--layer", "fc7"], "fc7"),
    ("texture-verb-no-layers", ["texture", "@s.png", *OUT, *FAST, "--layers", ""], "style layer"),
    ("unknown-pooling", [T, "@c.png", "@s.png", *OUT, *FAST, "--pooling", "median"], "median"),
    ("unknown-device", [T, "@c.png", "@s.png", *OUT, *FAST, "--device", "tpu"], "tpu"),
    ("unknown-preset", [T, "@c.png", "@s.png", *OUT, *FAST, "--preset", "turbo"], "turbo"),
    (
        "unknown-optimizer",
        [T, "@c.png", "@s.png", *OUT, *FAST, "--optimizer", "lbgfs"],
        "did you mean 'lbfgs'",
    ),
    ("unknown-style-loss", [T, "@c.png", "@s.png", *OUT, *FAST, "--style-loss", "gramm"], "gramm"),
    ("a-newline-in-a-value", [T, "@c.png", "@s.png", *OUT, *FAST, "--iterations", "1\n2"], "--iterations"),
    ("seed-2**70", [T, "@c.png", "@s.png", *OUT, *FAST, "--seed", str(2**70)], "--seed"),
    ("lbfgs-history-0", [T, "@c.png", "@s.png", *OUT, *FAST, "--lbfgs-history", "0"], "--lbfgs-history"),
    ("lbfgs-history--3", [T, "@c.png", "@s.png", *OUT, *FAST, "--lbfgs-history", "-3"], "--lbfgs-history"),
    ("threads--1", [T, "@c.png", "@s.png", *OUT, *FAST, "--threads", "-1"], "--threads"),
    ("save-every--1", [T, "@c.png", "@s.png", *OUT, *FAST, "--save-every", "-1"], "--save-every"),
    ("style-blend-count", [T, "@c.png", "@s.png", *OUT, *FAST, "--style-blend", "1,2"], "--style-blend"),
    ("init-is-text", [T, "@c.png", "@s.png", *OUT, *FAST, "--init", "@text.png"], "not an image"),
    ("init-empty", [T, "@c.png", "@s.png", *OUT, *FAST, "--init", ""], "path is empty"),
    ("content-mask-missing", [T, "@c.png", "@s.png", *OUT, *FAST, "--content-mask", "@nomask.png"], "nomask"),
    ("missing-weights-file", [T, "@c.png", "@s.png", *OUT, *FAST, "--weights", "@none.pth"], "none.pth"),
    ("serve-port-99999", ["serve", "--port", "99999"], "--port"),
    ("serve-concurrency-0", ["serve", "--concurrency", "0"], "--concurrency"),
    ("serve-queue-size--1", ["serve", "--queue-size", "-1"], "--queue-size"),
    ("demo-size-0", ["demo", "--size", "0", *OUT, "--weights", "random", "--quiet"], "--size"),
    (
        "figure-threads--1",
        ["figure", "6", *OUT, "--content", "@c.png", "--style", "@s.png", *FAST, "--threads", "-1"],
        "--threads",
    ),
    ("figure-unknown", ["figure", "9", *OUT], "there is no figure 9; the figures are 1: "),
    (
        "batch-workers-0",
        ["batch", "@c.png", "--style", "@s.png", "--out-dir", "%b", "--workers", "0"],
        "--workers",
    ),
    (
        "video-frame-iterations--1",
        ["video", "@c.png", "@s.png", "-o", "%v.mp4", "--frame-iterations", "-1"],
        "--frame-iterations",
    ),
    ("weights-unknown-set", ["weights", "vgg16"], "vgg16"),
    ("unknown-verb", ["paint", "@c.png"], "invalid choice"),
    ("no-verb", [], "required"),
    ("rerun-recipe-is-a-json-list", ["rerun", "@recipe_list.png", *OUT, "--quiet"], "not a JSON object"),
    ("rerun-recipe-invalid-json", ["rerun", "@recipe_broken.png", *OUT, "--quiet"], "not a JSON object"),
    (
        "rerun-recipe-wrong-types",
        ["rerun", "@recipe_types.png", *OUT, "--quiet"],
        "--seed must be a whole number",
    ),
    (
        "rerun-recipe-styles-not-a-list",
        ["rerun", "@recipe_styles.png", *OUT, "--quiet"],
        "styles are malformed",
    ),
    ("rerun-recipe-unknown-job", ["rerun", "@recipe_job.png", *OUT, "--quiet"], "paint"),
    ("rerun-recipe-wrong-shape", ["rerun", "@recipe_shape.png", *OUT, "--quiet"], "--iterations"),
    ("rerun-no-recipe", ["rerun", "@c.png", *OUT, "--quiet"], "no painterly recipe"),
    ("rerun-stray-argument-with-newline", ["rerun", "@c.png", *OUT, "a\nb"], "unrecognized"),
]


# --- every numeric option of transfer, negative, zero, huge and NaN (from options.SPECS) ------------------
_HINTS = typing.get_type_hints(options.Options)
# Flags a value needs to matter (and to be valid at all): region weights need regions, etc.
CONTEXT = {
    "region_weights": ["--content-mask", "@mask.png"],
    "learning_rate": ["--optimizer", "adam"],
    "noise_amplitude": ["--init", "noise"],
}
COUNT = {
    "style_layer_weights": len(options.DEFAULTS.style_layers),
    "region_weights": 2,
}  # values a list needs
# In range for the Spec, refused by a rule between fields (named here, so no rule goes unnoticed).
ZERO_REFUSED = {"style_blend": "positive sum"}


def numeric_options(verb: str = "transfer") -> list:
    """(name, spec, kind) for every option of `verb` that takes numbers (a number or a list)."""
    out = []
    for f in dataclasses.fields(options.Options):
        spec = options.SPECS[f.name]
        kind = spec.item if spec.item is not None else _HINTS[f.name]
        if verb in spec.jobs and kind in (int, float):
            out.append((f.name, spec, kind))
    return out


# Which of -1, 0, a huge number and NaN each numeric option accepts, written out by hand (not
# derived from options.SPECS, which is what is under test): none takes a negative, huge or NaN
# value; these take 0 (a weight of 0 switches its term off, 0 iterations give the start, seed 0
# is a seed, --threads 0 and --tile 0 mean "automatic"/"untiled").
ZERO_VALID = {
    "style_layer_weights",
    "content_weight",
    "style_weight",
    "content_target",
    "content_ceiling",
    "tv_weight",
    "range_weight",
    "iterations",
    "seed",
    "noise_amplitude",
    "threads",
    "region_weights",
    "tile",
    "neighbour_photo",
    "palette_weight",
}
ZERO_INVALID = {"size", "style_scale", "scales", "learning_rate", "lbfgs_history", "style_blend"}


def _admits(name: str, label: str) -> bool:
    return label == "zero" and name in ZERO_VALID


def _numeric_cases():
    cases = []
    for name, spec, kind in numeric_options():
        for label, text in (
            ("negative", "-1"),
            ("zero", "0"),
            ("huge", "10" * 20 if kind is int else "1e300"),
            ("nan", "nan"),
        ):
            value = ",".join([text] * COUNT.get(name, 1))
            ok = _admits(name, label)
            refused_by_rule = label == "zero" and name in ZERO_REFUSED
            expect = "" if ok else ZERO_REFUSED[name] if refused_by_rule else options.flag(name)
            argv = [T, "@c.png", "@s.png", *OUT, *FAST, *CONTEXT.get(name, []), options.flag(name), value]
            cases.append(pytest.param(argv, ok, expect, id=f"{name}-{label}"))
    return cases


def test_the_numeric_options_are_enumerated():
    names = [n for n, _, _ in numeric_options()]
    assert {"size", "iterations", "seed", "threads", "tile", "style_weight", "lbfgs_history"} <= set(names)
    assert "pooling" not in names and "normalize" not in names
    assert set(names) == ZERO_VALID | ZERO_INVALID  # a new numeric option needs its row in the table


@pytest.mark.parametrize("tokens, check", [pytest.param(t, c, id=i) for i, t, c in VALID])
def test_odd_but_valid_input_works(tokens, check, corpus, tmp_path, capsys):
    check_case(tokens, True, corpus, tmp_path / "case", capsys, check=check)


@pytest.mark.parametrize("tokens, expect", [pytest.param(t, e, id=i) for i, t, e in BAD])
def test_bad_input_is_one_line(tokens, expect, corpus, tmp_path, capsys):
    check_case(tokens, False, corpus, tmp_path / "case", capsys, expect=expect)


@pytest.mark.parametrize("tokens, ok, expect", _numeric_cases())
def test_numeric_option_extremes(tokens, ok, expect, corpus, tmp_path, capsys):
    check_case(tokens, ok, corpus, tmp_path / "case", capsys, expect=expect)


def test_valid_threads_are_passed_on(corpus, tmp_path, capsys, _threads):
    check_case(
        [T, "@c.png", "@s.png", *OUT, *FAST, "--threads", "3"], True, corpus, tmp_path / "case", capsys
    )
    assert _threads == [3]


# --- a full disk -------------------------------------------------------------------------------------------
_FSIZE_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
from painterly.cli import main as cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")  # platform: Windows
def test_full_disk_in_a_subprocess(corpus, tmp_path):
    """The kernel refuses the write after 600 bytes (EFBIG, as a full disk's ENOSPC): one line,
    no partial output, no temp file. (An existing output's survival: test_no_space_left_on_device.)"""
    case = tmp_path / "case"
    case.mkdir()
    (case / "old.png").write_bytes(PRECIOUS)
    before = _hashes(corpus)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _FSIZE_CHILD,
            T,
            str(corpus / "c.png"),
            str(corpus / "s.png"),
            "-o",
            str(case / "new.png"),
            *FAST,
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    line = _one_error_line(proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "new.png" in line
    assert sorted(p.name for p in case.iterdir()) == ["old.png"]  # no partial new.png, no hidden temp file
    assert (case / "old.png").read_bytes() == PRECIOUS and _hashes(corpus) == before


@pytest.mark.parametrize(
    "failing, extra",
    [
        (".out.png.", []),  # the image itself
        (".r.json.", ["--report", "%r.json"]),  # the report, after a complete image
        (".out_0001.png.", ["--save-every", "1"]),  # an intermediate, during the run
    ],
)
def test_no_space_left_on_device(corpus, tmp_path, capsys, monkeypatch, failing, extra):
    """ENOSPC halfway through writing a temp file whose name starts with `failing`."""
    real_fdopen = os.fdopen
    fd_names = {}
    real_mkstemp = images.save.tempfile.mkstemp

    def mkstemp(*a, **k):
        fd, name = real_mkstemp(*a, **k)
        fd_names[fd] = os.path.basename(name)
        return fd, name

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            if self.written + len(data) > 100:
                self.f.write(bytes(data[: 100 - self.written]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.f.write(data)

        def fileno(self):  # so that Pillow writes everything through write()
            raise io.UnsupportedOperation("fileno")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fdopen(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        return Full(f) if fd_names.get(fd, "").startswith(failing) else f

    monkeypatch.setattr(images.save.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fdopen", fdopen)
    # The report is written after the image: that one is complete; no partial report.
    check_case(
        [T, "@c.png", "@s.png", *OUT, *FAST, "--iterations", "3", *extra],
        False,
        corpus,
        tmp_path / "case",
        capsys,
        expect="no space left on device",
        replaced=failing == ".r.json.",
    )
    assert sorted(p.name for p in (tmp_path / "case").iterdir()) == ["keep.png", "out.png", "sub dir"]


# --- a Hypothesis property over every numeric option of transfer ---------------------------------------------
MAX_STEPS = 3  # a valid run is stopped (as Ctrl-C would) after this many steps: iterations may be 100000
_BASE = options.DEFAULTS.replace(weights="random", size=96, iterations=(2,), device="cpu", precision="fp32")
# The memory the runs may use: what a 96 px run of the base options needs. The tool's own check then
# refuses a valid but large --size, --scales or --style-scale (one line naming the largest size that
# fits) the same way on every machine, instead of spending minutes on it.
BUDGET = memory.estimate_peak_bytes(_BASE, 96, 72, style_sizes=[(24, 24)])
ODD = [
    "1e999",
    "-1e999",
    "0x10",
    "",
    " 3",
    "3 ",
    "+7",
    "1_0",
    "٣",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e-320",
    "0.0",
    "-0",
    "9" * 30,
    "1,",
    ",",
    ",,",
    "2**70",
    "0b1",
    "None",
    "true",
    "1 2",
    "\t",
    "1\n2",
]


def _number(kind, spec):
    edges = [v for v in (spec.low, spec.high) if v is not None]
    if kind is int:
        edges = [int(e) + d for e in edges for d in (-1, 0, 1)]
        num = st.integers() | st.integers(-3, 300) | st.sampled_from([0, -1, 2**63, 2**70, -(10**30)] + edges)
    else:
        edges = [e * f for e in edges for f in (1.0, 1.0 + 1e-9, 1.0 - 1e-9)]
        num = (
            st.floats()
            | st.floats(-10, 100)
            | st.sampled_from(
                [0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7e308, math.inf, -math.inf, math.nan] + edges
            )
        )
    return num.map(str)


def _values(name, spec, kind):
    one = _number(kind, spec) | st.sampled_from(ODD)
    if spec.item is None:
        return one
    n = COUNT.get(name, 1)
    return (st.lists(_number(kind, spec), min_size=n, max_size=n) | st.lists(one, max_size=6)).map(",".join)


@contextlib.contextmanager
def _bounded():
    """Valid runs stay short: a small memory budget for the tool's own check, and a stop after
    MAX_STEPS steps through the documented callback (painterly.Stop), as Ctrl-C would."""
    real_run = engine.Stylizer.run
    state = {"stopped": False}

    def run(self, *args, callback=None, **kwargs):
        def bounded(it):
            if callback is not None:
                callback(it)
            if it.step >= MAX_STEPS:
                state["stopped"] = True
                raise Stop

        return real_run(self, *args, callback=bounded, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine.Stylizer, "run", run)
        mp.setattr(memory, "available_bytes", lambda *args, **kwargs: BUDGET)
        mp.delenv("PAINTERLY_NO_MEMORY_CHECK", raising=False)
        yield state


@pytest.mark.parametrize("name, spec, kind", [pytest.param(*o, id=o[0]) for o in numeric_options()])
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_numeric_option(name, spec, kind, data, corpus, tmp_path_factory, capsys):
    """Any text for any numeric option: a run with an output, or one line and a non-zero status."""
    text = data.draw(_values(name, spec, kind), label=options.flag(name))
    case = tmp_path_factory.mktemp("fuzz")
    (case / "out.png").write_bytes(PRECIOUS)
    before = _hashes(corpus)
    argv = _argv(
        [T, "@c.png", "@s.png", *OUT, *FAST, *CONTEXT.get(name, []), f"{options.flag(name)}={text}"],
        corpus,
        case,
    )
    with _bounded() as state:
        code, stdout, err = _run(argv, capsys)
    assert "Traceback" not in err + stdout
    if code == 0 or (code == 130 and state["stopped"]):
        images.load_image(case / "out.png")
        assert "painterly: error" not in err
    else:
        _one_error_line(code, err)
        assert (case / "out.png").read_bytes() == PRECIOUS
    assert _hashes(corpus) == before and _hidden(case) == []
