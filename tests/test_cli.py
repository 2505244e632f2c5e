"""The command line: jobs, outputs, reports, recipes, signals, and bad input as one line."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from holds import hold_env, release, wait_held
from painterly import imaging as images
from painterly import options
from painterly.cli import main as cli
from painterly.cli import terminal

FAST = ["--weights", "random", "--size", "32", "--iterations", "4", "--device", "cpu", "--quiet"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_transfer_writes_png_with_recipe_and_report(small, capsys):
    out, report = small["dir"] / "out.png", small["dir"] / "r.json"
    code, _, err = run_cli(
        [
            "transfer",
            small["content"],
            small["style"],
            "-o",
            out,
            "--report",
            report,
            "--content-weight",
            "2",
            "--style-weight",
            "500",
            "--balance",
            "absolute",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    recipe = images.read_recipe(out)
    assert recipe["job"] == "transfer" and recipe["options"]["content_weight"] == 2.0
    assert recipe["weights_sha256"] == "random" and recipe["seed"] == 0
    rep = json.loads(report.read_text())
    assert rep["iterations"] == 4 and rep["seconds"] > 0
    o = rep["options"]
    assert o["content_weight"] == 2.0 and o["style_weight"] == 500.0
    assert o["style_layer_weights"] == pytest.approx([0.2] * 5) and o["weights_sha256"] == "random"
    assert o["range_weight"] == 3e4 and o["content_average"] is True and o["noise_amplitude"] == 0.2
    L = rep["losses"]
    assert set(L["content"]) == {"relu4_2"} and set(L["style"]) == {
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "relu4_1",
        "relu5_1",
    }
    # The final losses are measured on the saved (clipped) pixels: no range penalty.
    assert L["range"] == 0.0 and L["tv"] == 0.0
    # content_average: L_content counts once per position of relu4_2 (after three poolings).
    w, h = images.load_image(out).size
    m = (w // 8) * (h // 8)
    total = 2.0 * L["content"]["relu4_2"] / m + 500.0 * sum(0.2 * e for e in L["style"].values())
    assert L["total"] == pytest.approx(total, rel=1e-5)


def test_jpeg_output_and_iterations_zero(small, capsys):
    out = small["dir"] / "out.jpg"
    code, _, err = run_cli(
        ["transfer", small["content"], small["style"], "-o", out, *FAST, "--iterations", "0"], capsys
    )
    assert code == 0, err
    assert out.read_bytes()[:2] == b"\xff\xd8"


def test_iterations_zero_says_it_wrote_the_starting_image(small, capsys):
    out = small["dir"] / "start.png"
    code, _, err = run_cli(
        [
            "transfer",
            small["content"],
            small["style"],
            "-o",
            out,
            *FAST[:-1],
            "--iterations",
            "0",
            "--init",
            "content",
        ],
        capsys,
    )
    assert code == 0 and out.exists(), err
    assert "(0 iterations: the starting image (--init content), not optimised," in err.splitlines()[-1]


def test_a_ctrl_c_before_the_run_says_nothing_was_written(small, capsys, monkeypatch):
    """A Ctrl-C before the run's own handler is in place (importing torch takes seconds)."""

    def interrupt(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "Progress", interrupt)  # made before the run installs its handler
    out = small["dir"] / "never.png"
    code, _, err = run_cli(["transfer", small["content"], small["style"], "-o", out, *FAST], capsys)
    assert code == 130 and err == "painterly: interrupted; nothing was written\n" and not out.exists()


def test_content_and_texture_verbs(small, capsys):
    out = small["dir"] / "reconstruction.png"
    assert run_cli(["content", small["content"], "-o", out, "--layer", "conv2_2", *FAST], capsys)[0] == 0
    assert images.read_recipe(out)["options"]["content_layers"] == ["conv2_2"]
    out = small["dir"] / "texture.png"
    assert (
        run_cli(
            ["texture", small["style"], "-o", out, "--layers", "conv1_1,conv2_1", *FAST, "--size", "24"],
            capsys,
        )[0]
        == 0
    )
    assert images.load_image(out).size == (24, 24)
    assert images.read_recipe(out)["options"]["style_layers"] == ["conv1_1", "conv2_1"]


def test_save_every_writes_numbered_intermediates_not_the_output(small, capsys):
    out = small["dir"] / "out.png"
    code, _, err = run_cli(
        [
            "transfer",
            small["content"],
            small["style"],
            "-o",
            out,
            *FAST,
            "--save-every",
            "2",
            "--iterations",
            "5",
        ],
        capsys,
    )
    assert code == 0, err
    names = sorted(p.name for p in small["dir"].glob("out*.png"))
    assert names == ["out.png", "out_0002.png", "out_0004.png"]


def test_rerun_from_recipe_reproduces_the_bytes(small, capsys):
    a, b = small["dir"] / "a.png", small["dir"] / "b.png"
    assert (
        run_cli(["transfer", small["content"], small["style"], "-o", a, *FAST, "--seed", "3"], capsys)[0] == 0
    )
    code, _, err = run_cli(["rerun", a, "-o", b, "--quiet"], capsys)
    assert code == 0, err
    assert images.load_image(a).tobytes() == images.load_image(b).tobytes()
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_two_processes_write_the_same_bytes(small, suffix):
    # Same inputs, options and seed, in two fresh processes: the same file, byte for byte. The
    # embedded sRGB profile is the packaged one with its fixed creation date (an ICC profile
    # made afresh by ImageCms.createProfile is stamped with the current time).
    outs = [small["dir"] / f"{name}{suffix}" for name in "ab"]
    for out in outs:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "painterly.cli",
                "transfer",
                str(small["content"]),
                str(small["style"]),
                "-o",
                str(out),
                *FAST,
            ],
            env={**os.environ, "PYTHONPATH": SRC},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    from PIL import Image

    with Image.open(outs[0]) as im:
        icc = im.info["icc_profile"]
    assert icc == images.load.SRGB_ICC.read_bytes()
    assert icc[24:30] == bytes([0x07, 0xEA, 0, 12, 0, 1])  # 2026-12-01 in the ICC header


def test_balance_and_init_palette_reach_the_run_and_the_recipe(small, capsys):
    outs = {b: small["dir"] / f"{b}.png" for b in ("photo", "absolute")}
    for b, out in outs.items():
        code, _, err = run_cli(
            ["transfer", small["content"], small["style"], "-o", out, *FAST, "--balance", b], capsys
        )
        assert code == 0, err
        assert images.read_recipe(out)["options"]["balance"] == b
        assert images.read_recipe(out)["options"]["init"] == "palette"
    # the same beta in the two units paints two different pictures
    assert images.load_image(outs["photo"]).tobytes() != images.load_image(outs["absolute"]).tobytes()
    code, _, err = run_cli(
        [
            "transfer",
            small["content"],
            small["style"],
            "-o",
            small["dir"] / "x.png",
            *FAST,
            "--balance",
            "relative",
        ],
        capsys,
    )
    assert code == 2 and "--balance" in err and "photo" in err
    code, _, err = run_cli(
        ["texture", small["style"], "-o", small["dir"] / "t.png", *FAST, "--init", "palette"], capsys
    )
    assert code != 0 and "--init palette" in err


def test_rerun_reads_a_recipe_written_before_the_rename(small, capsys):
    # An output of neural-style (this project's earlier name) keeps its recipe under that key.
    from PIL import PngImagePlugin

    a, old, b = small["dir"] / "a.png", small["dir"] / "old.png", small["dir"] / "b.png"
    assert (
        run_cli(["transfer", small["content"], small["style"], "-o", a, *FAST, "--seed", "5"], capsys)[0] == 0
    )
    recipe = images.read_recipe(a)
    recipe["neural_style"] = recipe.pop("painterly")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("neural-style", json.dumps(recipe), zip=True)
    images.load_image(a).save(old, pnginfo=info)
    code, _, err = run_cli(["rerun", old, "-o", b, "--quiet"], capsys)
    assert code == 0, err
    assert images.load_image(a).tobytes() == images.load_image(b).tobytes()


@pytest.mark.parametrize(
    "field, flag, today",
    [("content_ceiling", "--content-ceiling", 0.9), ("palette_weight", "--palette-weight", 12.0)],
)
def test_rerun_of_a_recipe_from_before_a_field_existed_runs_without_it(small, capsys, field, flag, today):
    # Recipes written before --content-ceiling or --palette-weight existed lack the field: they rerun
    # as they ran (options.BEFORE: 0, off), not with today's default.
    from PIL import PngImagePlugin

    a, old, b = small["dir"] / "a.png", small["dir"] / "old.png", small["dir"] / "b.png"
    assert run_cli(["transfer", small["content"], small["style"], "-o", a, *FAST, flag, "0"], capsys)[0] == 0
    recipe = images.read_recipe(a)
    del recipe["options"][field]
    info = PngImagePlugin.PngInfo()
    info.add_itxt(images.RECIPE_KEY, json.dumps(recipe), zip=True)
    images.load_image(a).save(old, pnginfo=info)
    code, _, err = run_cli(["rerun", old, "-o", b, "--quiet"], capsys)
    assert code == 0, err
    assert images.read_recipe(b)["options"][field] == 0.0
    assert images.load_image(a).tobytes() == images.load_image(b).tobytes()
    assert getattr(options.Options.from_dict({}), field) == 0.0 and getattr(options.DEFAULTS, field) == today


def test_command_line_round_trips_options():
    o = terminal.options_from_args(
        cli.build_parser().parse_args(
            [
                "transfer",
                "c.jpg",
                "s.jpg",
                "-o",
                "x.png",
                "--size",
                "300",
                "--style-layers",
                "conv1_1,conv2_1",
                "--no-normalize",
                "--iterations",
                "10",
            ]
        )
    )
    line = terminal.command_line("c.jpg", ["s.jpg"], "x.png", o)
    again = terminal.options_from_args(cli.build_parser().parse_args(line.split()[1:]))
    assert again == o and "--no-normalize" in line and "--size 300" in line


def _preset(name, *extra):
    return terminal.options_from_args(
        cli.build_parser().parse_args(["transfer", "c", "s", "-o", "x.png", "--preset", name, *extra])
    )


def test_paper_preset(small):
    o = _preset("paper")
    assert o.precision == "fp32" and o.init == "noise" and o.iterations == (500,) and o.scales == ()
    assert o.content_layers == ("relu4_2",) and o.pooling == "avg" and o.normalize
    assert o.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert o.style_weight == options.ABSOLUTE_STYLE_WEIGHT and o.content_weight == 1.0
    assert o.balance == "absolute"  # the paper's losses, not relative to the photo
    assert o.range_weight == 0.0 and o.tv_weight == 0.0  # no penalty the paper does not have
    # The content term stays per position (README): the default beta was chosen with it.
    assert o.content_average is True
    # A flag still overrides the preset.
    assert _preset("paper", "--range-weight", "5").range_weight == 5.0


def test_quality_and_fast_presets():
    assert tuple(options.PRESETS) == ("fast", "quality", "paper", "neighbour")
    fast = _preset("fast")
    assert fast == options.DEFAULTS
    q = _preset("quality")
    assert q.iterations == (120, 80) and q.pooling == "max"
    # nothing else changes
    assert q.replace(iterations=fast.iterations, pooling=fast.pooling) == fast
    assert _preset("quality", "--iterations", "7").iterations == (7,)


def test_defaults_are_the_paper_layers_on_the_original_weights():
    o = _preset("fast")
    assert o.weights is None and o.preprocess is None
    assert o.content_layers == options.PAPER_CONTENT_LAYERS == ("relu4_2",)
    assert o.style_layers == options.PAPER_STYLE_LAYERS
    assert o.style_weight == options.DEFAULT_STYLE_WEIGHT and o.content_weight == 1.0
    # beta in units of the photo's own distances (--balance photo), measured on the wide set
    assert o.balance == "photo" and 1 <= o.style_weight <= 30 and o.init == "palette"
    assert (o.range_weight, o.content_average, o.noise_amplitude) == (3e4, True, 0.2)
    # The content and texture verbs default to the same layers.
    args = cli.build_parser().parse_args(["content", "c", "-o", "x.png"])
    assert args.layer == "relu4_2"
    args = cli.build_parser().parse_args(["texture", "s", "-o", "x.png"])
    assert args.layers == "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"


# --- the weights verb ------------------------------------------------------------------------
@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    import torch

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home


def test_weights_verb_lists_the_sets_and_where_they_live(torch_home, capsys):
    from painterly.net import weights

    code, out, err = run_cli(["weights"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 * len(weights.describe_sets()) == 6  # a line per set, then its path
    names = [l.split()[0] for l in lines[::2]]
    assert names == ["original", "torchvision", "random"]
    assert "default" in lines[0] and weights.VGG19_ORIGINAL.title in lines[0]
    assert lines[1].strip() == str(weights.cached_path(weights.VGG19_ORIGINAL))
    assert "not downloaded" in lines[2]
    assert lines[3].strip() == str(torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")


def test_weights_verb_with_a_name_verifies_and_prints_the_path(torch_home, capsys, monkeypatch):
    from painterly.net import weights

    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(weights, "urlopen", refuse)
    code, out, err = run_cli(["weights", "original"], capsys)
    assert code == 0, err
    assert out.strip() == str(weights.cached_path(weights.VGG19_ORIGINAL))
    # torchvision's set, already in the cache: verified against its hash, not downloaded.
    tv = weights.cached_path(weights.VGG19_IMAGENET)
    tv.parent.mkdir(parents=True)
    tv.write_bytes(b"not the weights")
    code, out, err = run_cli(["weights", "torchvision"], capsys)
    assert code != 0 and "is corrupt" in err and str(tv) in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["weights", "random"], capsys)
    assert code == 0 and "random" in out
    code, out, err = run_cli(["weights", "vgg19"], capsys)
    assert code == 2 and "vgg19" in err and "original" in err and "torchvision" in err


# --- bad input: one line on stderr, non-zero exit, existing output untouched ----------------
def _bad_files(d: Path) -> dict:
    good = d / "good.png"
    images.to_pil(__import__("torch").rand(1, 3, 20, 20)).save(good)
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("not an image\n")
    data = good.read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    (d / "bad.pth").write_bytes(b"\x00garbage" * 100)
    return {"good": good}


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "text",
        "truncated",
        "outdir",
        "extension",
        "choice",
        "layer",
        "weights",
        "number",
    ],
)
def test_bad_input_is_one_line_and_leaves_output_alone(tmp_path, capsys, case):
    _bad_files(tmp_path)
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    c, s = tmp_path / "good.png", tmp_path / "good.png"
    argv = {
        "missing": ["transfer", tmp_path / "nope.jpg", s, "-o", out],
        "empty": ["transfer", tmp_path / "empty.png", s, "-o", out],
        "text": ["transfer", c, tmp_path / "text.png", "-o", out],
        "truncated": ["transfer", tmp_path / "trunc.png", s, "-o", out],
        "outdir": ["transfer", c, s, "-o", tmp_path / "no" / "dir" / "out.png"],
        "extension": ["transfer", c, s, "-o", tmp_path / "out.gif"],
        "choice": ["transfer", c, s, "-o", out, "--pooling", "median"],
        "layer": ["transfer", c, s, "-o", out, "--style-layers", "conv1_1,relu9_1"],
        "weights": ["transfer", c, s, "-o", out, "--weights", tmp_path / "bad.pth"],
        "number": ["transfer", c, s, "-o", out, "--size", "big"],
    }[case]
    if case != "weights":
        argv += ["--weights", "random"]
    code, stdout, err = run_cli(
        argv + ["--quiet", "--iterations", "1", "--size", "32"] if case != "number" else argv + ["--quiet"],
        capsys,
    )
    assert code != 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("painterly: error:")
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_unknown_layer_message_lists_valid_names(tmp_path, capsys):
    _bad_files(tmp_path)
    code, _, err = run_cli(
        [
            "transfer",
            tmp_path / "good.png",
            tmp_path / "good.png",
            "-o",
            tmp_path / "o.png",
            "--weights",
            "random",
            "--content-layers",
            "conv4_22",
        ],
        capsys,
    )
    assert code == 2 and "did you mean 'conv4_2'" in err and "valid: conv1_1, relu1_1" in err


def test_a_signal_in_the_first_tiled_step_stops_between_tiles_and_writes_nothing(small):
    """One step of a 16-tile image, interrupted inside its tiles: the run stops there (had it
    waited for the step to end, it would have saved a 1-step picture). stderr is a terminal
    here, so the stage line is redrawn (with "\\r") at every tile. The run holds as it announces
    the first tile of the forward pass; SIGTERM arrives then, on a slow or a fast machine."""
    import pty
    import select

    out = small["dir"] / "out.png"
    marker = small["dir"] / "held"
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "PYTHONUNBUFFERED": "1",
        **hold_env("stage step 1/1: forward 1/16", marker),
    }
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "painterly.cli",
            "transfer",
            str(small["content"]),
            str(small["style"]),
            "-o",
            str(out),
            "--weights",
            "random",
            "--size",
            "256",
            "--tile",
            "64",
            "--iterations",
            "1",
            "--device",
            "cpu",
        ],
        stderr=child,
        env=env,
    )
    os.close(child)
    seen = ""

    def drain():
        nonlocal seen
        while select.select([main], [], [], 0)[0]:
            seen += os.read(main, 4096).decode(errors="replace")

    try:
        wait_held(marker, proc, drain)
        drain()
        # said at once, before any heavy work (after the notes on the tiny inputs, enlarged to 256 px)
        said = "\n".join(l for l in seen.split("\n") if not l.startswith("painterly: note: "))
        assert said.lstrip("\r").startswith("preparing"), seen
        assert seen.rsplit("\r", 1)[-1].startswith("step 1/1: forward, tile 1/16 "), seen
        held_at = len(seen)
        proc.send_signal(signal.SIGTERM)
        release(marker)
        proc.wait(timeout=120)
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
    finally:
        proc.kill()
        os.close(main)
    assert proc.returncode == 130, seen
    assert "interrupted before the first step completed; nothing was written" in seen
    assert "tile 2/16" not in seen[held_at:]  # stopped at the first tile boundary after the signal
    assert "Traceback" not in seen and not out.exists() and list(small["dir"].glob(".*")) == []


@pytest.mark.parametrize(
    "argv, hint, helps",
    [
        (["trasnfer", "a", "b"], "did you mean 'transfer'?", "'painterly --help'"),
        (
            ["transfer", "a", "b", "-o", "o.png", "--optimizer", "lbgfs"],
            "did you mean 'lbfgs'?",
            "'painterly transfer --help'",
        ),
        (
            ["transfer", "a", "b", "-o", "o.png", "--sizee", "3"],
            "did you mean '--size'?",
            "'painterly transfer --help'",
        ),
        (
            ["transfer", "a", "b", "-o", "o.png", "--iteratoins=4"],
            "did you mean '--iterations'?",
            "'painterly transfer --help'",
        ),
        (
            ["video", "a", "b", "-o", "o.mp4", "--frame-iteratons", "3"],
            "did you mean '--frame-iterations'?",
            "'painterly video --help'",
        ),
    ],
)
def test_a_misspelling_gets_the_nearest_spelling(capsys, argv, hint, helps):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert hint in err and helps in err


def test_a_stray_word_gets_no_suggestion(capsys):
    code, _, err = run_cli(["transfer", "a", "b", "-o", "o.png", "zzz"], capsys)
    assert code == 2 and "unrecognized arguments: zzz (see 'painterly transfer --help')" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_the_current_iterate_and_report(small, sig):
    out, report = small["dir"] / "out.png", small["dir"] / "r.json"
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "painterly.cli",
            "transfer",
            str(small["content"]),
            str(small["style"]),
            "-o",
            str(out),
            "--report",
            str(report),
            "--weights",
            "random",
            "--size",
            "48",
            "--iterations",
            "100000",
            "--device",
            "cpu",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline()  # stage lines ("preparing", ...), then the progress bar
        while line and not line.startswith("["):
            line = proc.stderr.readline()
        assert "/100000" in line, line  # a step is done: the run is under way
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rep = json.loads(report.read_text())
    assert rep["stopped"] is True and 0 < rep["iterations"] < 100000
    assert images.read_recipe(out)["job"] == "transfer"


def test_the_test_hold_point_needs_both_variables_and_holds_once(tmp_path, monkeypatch):
    import threading

    from painterly import testhooks

    marker = tmp_path / "held"
    monkeypatch.setenv(testhooks.HOLD, "here")
    testhooks.hold("here")  # no file named: a user's stray variable does nothing
    monkeypatch.setenv(testhooks.HOLD_FILE, str(marker))
    testhooks.hold("elsewhere")
    assert not marker.exists()
    released = []

    def release_when_held():
        while not marker.exists():
            threading.Event().wait(0.01)
        released.append(int(marker.read_text()))
        marker.unlink()

    t = threading.Thread(target=release_when_held, daemon=True)
    t.start()
    testhooks.hold("here")  # returns only once the file is gone
    t.join(60)
    assert released == [os.getpid()] and not marker.exists()
    testhooks.hold("here")  # once per process: the second time it passes
    assert not marker.exists() and testhooks.HOLD_FILE not in os.environ


def _iterate(step, total, scale, scale_step, left):
    from painterly.result import Iterate

    return Iterate(
        step,
        total,
        {"content": 1.0, "style": 2.0, "total": 3.0},
        1.0,
        (64, 48),
        None,
        scale,
        scale_step,
        left,
    )


def test_the_bar_names_the_scale_and_every_new_stage_is_shown_at_once():
    import io

    from painterly.cli.terminal import Progress

    out = io.StringIO()
    p = Progress(True, out)  # a log (not a terminal): step lines at most every 5 s
    p.stage("preparing")
    p.stage("scale 1/2 (32x24): targets")  # a new stage: shown though it follows at once
    p.stage("scale 1/2 (32x24): targets", 1, 4)  # a tile of it: throttled
    p(_iterate(1, 5, (1, 2), (1, 3), 9.0))  # a scale's first step: shown
    p(_iterate(2, 5, (1, 2), (2, 3), 8.0))  # throttled
    p(_iterate(4, 5, (2, 2), (1, 2), 4.0))  # a new scale's first step: shown, with its label
    p(_iterate(5, 5, (2, 2), (2, 2), 2.0))  # the last: shown; 2 s left for the final losses
    p.stage("final losses: 64x48 in fp32")
    lines = out.getvalue().splitlines()
    assert [l.split(" (")[0] for l in lines[:2]] == ["preparing", "scale 1/2"]
    assert len(lines) == 6 and "tile" not in out.getvalue() and "2/5" not in out.getvalue()
    assert "1/5 scale 1/2 step 1/3 64x48" in lines[2]
    assert "4/5 scale 2/2 step 1/2 64x48" in lines[3] and "5/5 scale 2/2 step 2/2" in lines[4]
    assert lines[4].endswith("0:02 left") and lines[5].startswith("final losses: 64x48 in fp32")
    single = io.StringIO()
    Progress(True, single)(_iterate(1, 1, (1, 1), (1, 1), 0.0))
    assert "scale" not in single.getvalue()  # one scale: no label


def test_a_long_or_large_run_gets_a_note_up_front(small, capsys, monkeypatch):
    from painterly.cli import terminal
    from painterly.runtime import memory

    assert terminal.time_note(_iterate(2, 100, (1, 1), (2, 100), 60.0)) == ""
    note = terminal.time_note(_iterate(2, 100, (1, 1), (2, 100), 3 * 3600.0))
    assert note.startswith("painterly: note: this run will take about 3:00:00 more") and "--size" in note
    # several scales: not before the second step of the first of the last two (a small first
    # scale's rate overstates the run: --preset neighbour's 64 px of a 512 px run)
    assert terminal.time_note(_iterate(2, 150, (1, 4), (2, 50), 3 * 3600.0)) == ""
    assert terminal.time_note(_iterate(52, 150, (2, 4), (2, 50), 3 * 3600.0)) == ""
    assert terminal.time_note(_iterate(102, 150, (3, 4), (1, 30), 3 * 3600.0)) == ""
    assert terminal.time_note(_iterate(103, 150, (3, 4), (2, 30), 3 * 3600.0)).startswith("painterly: note:")
    assert terminal.time_note(_iterate(62, 100, (2, 2), (2, 40), 3 * 3600.0)).startswith("painterly: note:")
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 10 * 1024**3)
    o = options.DEFAULTS.replace(weights="random", size=32, iterations=(2,), device="cpu")
    assert terminal.memory_note(o, "transfer", small["content"], [small["style"]]) == ""
    big = o.replace(size=2000)
    note = terminal.memory_note(big, "transfer", small["content"], [small["style"]])
    assert note.startswith("painterly: note: a 2000x1600 run needs about ") and "10.0 GiB available" in note
    assert terminal.memory_note(o, "transfer", small["dir"] / "missing.png", [small["style"]]) == ""
    # The CLI shows it (with --quiet too) before the run.
    monkeypatch.setattr(terminal, "LARGE_RUN_BYTES", 0)
    code, _, err = run_cli(
        ["transfer", small["content"], small["style"], "-o", small["dir"] / "o.png", *FAST], capsys
    )
    assert code == 0 and err.startswith("painterly: note: a 32x26 run needs about "), err


def _verbs():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub


def test_every_verb_and_flag_has_a_description_and_shows_its_real_default():
    import argparse

    parser, sub = _verbs()
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert parser.description.startswith("painterly")
    for verb, sp in sub.choices.items():
        assert helps.get(verb) and sp.description, f"{verb} has no help or description"
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            name = f"{verb} {'/'.join(a.option_strings) or a.dest}"
            assert a.help and a.help != argparse.SUPPRESS, f"{name} has no help"
            default = a.default
            field = a.dest if a.dest in options.SPECS else None
            if field:  # an option flag: the default the verb really runs with
                default = options.job_default(verb, field)
            if isinstance(default, tuple):
                default = ",".join(map(str, default))
            if default not in (None, False, "", (), []) and not (
                field and default is True and "always" in a.help
            ):
                if not isinstance(a, argparse._StoreTrueAction):
                    shown = {f"(default: {default})"} | (
                        {f"(default: {default:g})"} if isinstance(default, float) else set()
                    )
                    assert any(s in a.help for s in shown), (
                        f"{name}: {a.help!r} hides its default {default!r}"
                    )
    # The job-implied defaults: content and texture start from noise; texture always searches.
    init = {
        v: next(a for a in sub.choices[v]._actions if a.dest == "init").help for v in ("content", "texture")
    }
    assert all(h.endswith("(default: noise)") for h in init.values()), init
    assert not any(a.dest == "lbfgs_line_search" for a in sub.choices["texture"]._actions)
    assert (
        "0: off" not in options.SPECS["content_target"].help
        and "0 turns this off" in options.SPECS["content_target"].help
    )


def test_wrong_names_list_every_valid_one(capsys):
    code, _, err = run_cli(["weights", "nosuch"], capsys)
    assert code == 2 and "(valid: original, torchvision, random)" in err
    code, _, err = run_cli(["figure", "2", "-o", "x.png"], capsys)
    assert code == 2 and "there is no figure 2; the figures are 1: " in err and "6: photo-to-photo" in err, (
        err
    )
    assert err.count("\n") == 1


def test_an_enlarged_or_transparent_style_is_noted_on_stderr_and_in_the_report(small, capsys):
    from PIL import Image

    ghost = small["dir"] / "ghost.png"
    Image.new("RGBA", (20, 20), (200, 30, 30, 10)).save(ghost)  # tiny and nearly transparent
    out, report = small["dir"] / "o.png", small["dir"] / "r.json"
    code, _, err = run_cli(
        [
            "transfer",
            small["content"],
            ghost,
            "-o",
            out,
            "--report",
            report,
            *FAST[:-1],
            "--size",
            "64",
            "--iterations",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    notes = [l for l in err.splitlines() if l.startswith("painterly: note: ")]
    assert [n[len("painterly: note: ") :] for n in notes] == json.loads(report.read_text())["notes"]
    assert any("style image 'ghost.png' is 20x20 px and is enlarged 3x to 64 px" in n for n in notes), notes
    assert any("style image 'ghost.png' is 96% transparent" in n for n in notes), notes
    assert all("content image" not in n for n in notes)  # enlarged 1.6x only: no note
