"""--deep-split: at the finest of several scales the layers after a ReLU see half the resolution."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import painterly
from painterly import options
from painterly.net.vgg import VGG19, random_vgg


def test_the_layers_after_the_split_see_a_2x2_average_of_its_activations():
    net = random_vgg("relu5_1")
    x = torch.rand(1, 3, 40, 56)
    layers = ["relu1_1", "relu3_1", "relu4_1", "relu5_1"]
    plain, split = net(x, layers), net(x, layers, half_after="relu3_1")
    assert torch.equal(plain["relu1_1"], split["relu1_1"]) and torch.equal(plain["relu3_1"], split["relu3_1"])
    assert split["relu4_1"].shape[-2:] == (plain["relu4_1"].shape[-2] // 2, plain["relu4_1"].shape[-1] // 2)
    # the same as running the deep layers by hand on the pooled relu3_1
    h = F.avg_pool2d(plain["relu3_1"], 2, ceil_mode=True)
    for name in ("conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3", "conv4_1"):
        h = net.layers[name](h)
    assert torch.allclose(F.relu(h), split["relu4_1"], atol=1e-6)


def test_an_odd_side_keeps_its_last_row():
    net = random_vgg("relu2_1")
    out = net(torch.rand(1, 3, 9, 12), ["conv1_2"], half_after="relu1_1")
    assert out["conv1_2"].shape[-2:] == (5, 6)


def _halves(monkeypatch):
    """The half_after of every network pass with gradients, with the image's size."""
    seen = []
    real = VGG19.forward

    def forward(self, x, layers, half_after=None):
        if torch.is_grad_enabled():
            seen.append((tuple(x.shape[-2:]), half_after))
        return real(self, x, layers, half_after)

    monkeypatch.setattr(VGG19, "forward", forward)
    return seen


def test_only_the_finest_scale_splits(small, fast, monkeypatch):
    seen = _halves(monkeypatch)
    o = dict(fast, size=48, iterations=(2, 2), deep_split="relu3_1")
    res = painterly.run_transfer(small["content"], small["style"], **o)
    sizes = sorted({s for s, _ in seen})
    assert {h for s, h in seen if s == sizes[-1]} == {"relu3_1"}
    assert {h for s, h in seen if s != sizes[-1]} == {None}
    assert res.options.deep_split == "relu3_1" and res.recipe["options"]["deep_split"] == "relu3_1"


@pytest.mark.parametrize(
    "extra",
    [dict(iterations=(3,)), dict(style_loss="neighbour", optimizer="adam"), dict(deep_split="none")],
    ids=["one scale (the paper)", "neighbour", "none"],
)
def test_no_split_where_it_does_not_apply(small, fast, monkeypatch, extra):
    seen = _halves(monkeypatch)
    o = {**dict(fast, size=48, iterations=(2, 2), deep_split="relu3_1"), **extra}
    painterly.run_transfer(small["content"], small["style"], **o)
    assert seen and {h for _, h in seen} == {None}


def test_no_split_when_tiled(small, fast, monkeypatch):
    seen = _halves(monkeypatch)
    o = dict(fast, size=64, iterations=(1, 2), deep_split="relu3_1", tile=32)
    painterly.run_transfer(small["content"], small["style"], **o)
    assert seen and {h for _, h in seen} == {None}


def test_the_paper_preset_and_old_recipes_do_not_split():
    assert options.PRESETS["paper"].overrides["deep_split"] == "none"
    assert options.Options.from_dict({"size": 64}).deep_split == "none"  # a recipe from before the option


def test_a_split_run_reruns_to_the_same_bytes(small, fast):
    o = dict(fast, size=48, iterations=(2, 2), deep_split="relu3_1")
    a = painterly.run_transfer(small["content"], small["style"], **o)
    b = painterly.run_transfer(small["content"], small["style"], **o)
    assert a.image.tobytes() == b.image.tobytes()


def test_a_bad_split_is_one_line_and_exit_2(small):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "painterly",
            "transfer",
            str(small["content"]),
            str(small["style"]),
            "-o",
            str(small["dir"] / "o.png"),
            "--deep-split",
            "conv9_9",
            "--weights",
            "random",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "--deep-split" in p.stderr and "Traceback" not in p.stderr


def test_the_clock_counts_a_split_scale_as_its_share_of_the_work():
    from painterly.net.vgg import conv_flop_per_pixel
    from painterly.runtime.clock import StepClock

    share = conv_flop_per_pixel("relu5_1", "relu3_1") / conv_flop_per_pixel("relu5_1")
    assert 0.4 < share < 0.55  # relu1_1..relu3_1 are about a third of the convolutions' work
    plan = [(100, 10), (200, 10)]
    plain, split = StepClock(plan, (200, 200)), StepClock(plan, (200, 200), work=[1.0, share])
    for c in (plain, split):
        c.left(0, 1, 1.0, 0.0)
        c.left(0, 2, 2.0, 0.0)  # 1 s per step at 100x100
    # the finest scale's 10 steps: 4 s each unsplit, 4 * share split (the final losses alike)
    assert plain.left(0, 2, 2.0, 0.0) - split.left(0, 2, 2.0, 0.0) == pytest.approx(11 * 4 * (1 - share))


def test_a_split_scale_counts_the_part_of_a_step_that_does_not_shrink():
    from types import SimpleNamespace

    from painterly import methods, progress
    from painterly.net.vgg import conv_flop_per_pixel

    o = options.DEFAULTS.replace(deep_split="relu3_1")
    r = SimpleNamespace(o=o, tile=0, regions=None, method=methods.get(o.style_loss), layers=o.style_layers)
    plan = [(256, 60), (512, 40)]
    ratio = conv_flop_per_pixel("relu5_1", "relu3_1") / conv_flop_per_pixel("relu5_1")
    w = progress.work(plan, r)
    assert w[0] == 1.0 and w[1] == pytest.approx(1 - progress.SPLIT_SCALING * (1 - ratio))
    # measured (bench_profile, fp32): a split finest step took 0.63-0.72 of an unsplit one
    assert 0.6 < w[1] < 0.75
    assert progress.work(plan, SimpleNamespace(**{**vars(r), "o": options.DEFAULTS})) == [1.0, 1.0]
    assert progress.work([(512, 40)], r) == [1.0]  # one scale: nothing splits
