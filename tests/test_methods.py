"""The method seam: a style method is one unit behind one interface (painterly.methods.base).

A toy method registered here, from the test suite, runs end to end through the command line's
`transfer` (its --style-loss name and its --preset) without an edit anywhere in the package.
"""

import numpy as np
import pytest
from PIL import Image

from painterly import methods, options
from painterly.cli import main as cli
from painterly.errors import InvalidOption
from painterly.methods import Method, StyleInputs
from painterly.objective import Term


class MeanColourTerm(Term):
    """beta * |mean colour of x - the painting's|^2: a style term on the pixels alone."""

    name = "style"

    def __init__(self, weight, target):
        self.weight, self.target = weight, target

    def value(self, x, feats):
        if self.target is None:
            return x.new_zeros(())
        return (x.mean(dim=(2, 3))[0] - self.target.to(x)).pow(2).sum()


class MeanColour(Method):
    """A toy method: the painting's mean colour, nothing of its texture."""

    names = ("toy-mean-colour",)
    preset = options.Preset(
        "toy", "the test suite's toy method", dict(style_loss="toy-mean-colour", style_weight=50.0)
    )
    seen: list = []

    def check(self, o, job, n_styles):
        if job == "texture":
            raise InvalidOption("--style-loss toy-mean-colour has no texture to synthesise")

    def targets(self, o, inputs: StyleInputs):
        return inputs.styles[0].mean(dim=(2, 3))[0] if inputs.styles else None

    def term(self, o, targets):
        return MeanColourTerm(o.style_weight, targets)

    def before_scale(self, objective, x, content, first, o):
        self.seen.append((tuple(x.shape[-2:]), first))


@pytest.fixture
def toy():
    method = methods.register(MeanColour())
    MeanColour.seen = []
    yield method
    methods.unregister(method)
    assert "toy-mean-colour" not in options.STYLE_LOSSES and "toy" not in options.PRESETS


def _image(path, colour, size=(40, 32), seed=0):
    rng = np.random.default_rng(seed)
    a = np.clip(np.array(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(path)
    return str(path)


def test_a_registered_method_runs_through_the_cli_transfer(toy, tmp_path):
    photo, painting = (
        _image(tmp_path / "p.png", (60, 60, 200)),
        _image(tmp_path / "s.png", (220, 120, 30), seed=1),
    )
    out = tmp_path / "out.png"
    args = [
        "transfer",
        photo,
        painting,
        "--weights",
        "random",
        "--size",
        "64",
        "--iterations",
        "4,6",
        "-o",
        str(out),
        "--quiet",
        "--style-loss",
        "toy-mean-colour",
        "--style-weight",
        "50",
        "--palette-weight",
        "0",
    ]
    assert cli.main(args) == 0
    before = np.asarray(Image.open(photo).convert("RGB"), float).mean((0, 1))
    after = np.asarray(Image.open(out).convert("RGB"), float).mean((0, 1))
    want = np.asarray(Image.open(painting).convert("RGB"), float).mean((0, 1))
    assert (
        np.abs(after - want).sum() < 0.5 * np.abs(before - want).sum()
    )  # the mean colour moved to the painting's
    assert [first for _, first in MeanColour.seen] == [True, False]  # before_scale at each of the two scales


def test_a_registered_method_brings_its_preset_and_its_refusals(toy, tmp_path, capsys):
    photo, painting = (
        _image(tmp_path / "p.png", (60, 60, 200)),
        _image(tmp_path / "s.png", (220, 120, 30), seed=1),
    )
    out = tmp_path / "out.png"
    common = ["--weights", "random", "--size", "32", "--iterations", "3", "-o", str(out), "--quiet"]
    assert cli.main(["transfer", photo, painting, "--preset", "toy", *common]) == 0
    assert methods.get(options.options_from(overrides={"preset": "toy"}).style_loss) is toy
    code = cli.main(["texture", painting, "--style-loss", "toy-mean-colour", *common])
    err = capsys.readouterr().err
    assert code != 0 and "has no texture to synthesise" in err and "Traceback" not in err


def test_an_unknown_method_is_one_line_with_a_suggestion():
    with pytest.raises(InvalidOption, match="did you mean 'neighbour'"):
        methods.get("neighbor")


def test_every_method_answers_the_interface():
    for name in methods.names():
        m = methods.get(name)
        assert isinstance(m, Method) and name in m.names
        assert isinstance(m.cache_key(options.DEFAULTS.replace(style_loss=name)), tuple)
        assert m.extra_bytes(options.DEFAULTS.replace(style_loss=name), "transfer", 1000, [1000], False) >= 0
    # the neighbour method's refusals, from its own module
    with pytest.raises(InvalidOption, match="works only in the transfer job"):
        methods.validate(options.DEFAULTS.replace(style_loss="neighbour"), "content")
