"""The paper's figures as labelled grids (tiny versions: random weights, a few iterations)."""

import numpy as np
import pytest
from PIL import Image

from painterly import imaging as images
from painterly import options
from painterly.cli import figures
from painterly.cli import main as cli

# normalize=False: these tests are about the grids; with random weights every run would
# otherwise measure its normalisation means on the demo images at 256 and 512 px (seconds each).
TINY = dict(weights="random", size=24, iterations=(2,), device="cpu", precision="fp32", normalize=False)


def _labelled(fig) -> bool:
    """Every label strip has dark text pixels; every picture area has been painted."""
    a = np.asarray(fig.image.convert("L"))
    for (x0, y0, x1, y1), (u0, v0, u1, v1) in zip(fig.boxes, fig.label_boxes):
        if not (a[v0:v1, u0:u1] < 128).any():
            return False
        if (a[y0:y1, x0:x1] == 255).all():
            return False
    return True


def _cells(fig) -> list:
    a = np.asarray(fig.image.convert("RGB"), dtype=np.int16)
    return [a[y0:y1, x0:x1] for x0, y0, x1, y1 in fig.boxes]


def _alike(fig) -> list:
    """Pairs of cells (by label) whose pictures are the same, or nearly (mean difference under
    half a grey level): a figure's columns and rows vary one setting each, so each cell shows
    another picture."""
    cells, same = _cells(fig), []
    for i in range(len(cells)):
        for j in range(i + 1, len(cells)):
            if cells[i].shape == cells[j].shape and np.abs(cells[i] - cells[j]).mean() < 0.5:
                same.append((fig.labels[i], fig.labels[j]))
    return same


@pytest.mark.parametrize(
    "number, shape, n_cells, first",
    [
        (
            1,
            (2, 6),
            12,
            [
                "content",
                "relu1_2",
                "relu2_2",
                "relu3_2",
                "relu4_2",
                "relu5_2",
                "style",
                "relu1_1",
                "relu1_1..relu2_1",
                "relu1_1..relu3_1",
                "relu1_1..relu4_1",
                "relu1_1..relu5_1",
            ],
        ),
        (3, (5, 2), 10, ["relu1_1 a/b=0.001", "relu1_1 a/b=0.01", "relu1_1..relu2_1 a/b=0.001"]),
        (4, (1, 4), 4, ["content", "style", "content relu2_2", "content relu4_2"]),
        (5, (1, 6), 6, ["content", "style", "init content", "init style", "noise seed 0", "noise seed 5"]),
        (6, (1, 3), 3, ["content photo", "style photo", "transfer"]),
    ],
)
def test_figure_grids_have_their_labelled_cells(small, number, shape, n_cells, first):
    fig = figures.figure(number, small["content"], small["style"], ratios=(1e-3, 1e-2), seeds=(0, 5), **TINY)
    assert fig.shape == shape and len(fig.labels) == len(fig.boxes) == n_cells
    assert fig.labels[: len(first)] == first
    rows, cols = shape
    cw, ch = fig.cell
    strip = fig.label_boxes[0][3] - fig.label_boxes[0][1]
    assert fig.image.size == (
        figures.PAD + cols * (cw + figures.PAD),
        figures.PAD + rows * (ch + strip + figures.PAD),
    )
    assert max(cw, ch) == 24 and strip >= 8
    assert _labelled(fig)


# Two steps (above) barely move a picture; with twenty the settings a figure varies show. Figure 3's
# ratios 1e-4 and 10 put one column on each side of the content/style balance. The one pair
# allowed alike: the paper's own point, relu1_2 reconstructs the photo (nearly) exactly.
@pytest.mark.parametrize(
    "number, kw, allowed",
    [
        pytest.param(1, {}, [("content", "relu1_2")], marks=pytest.mark.slow),
        pytest.param(3, dict(ratios=(1e-4, 10.0)), [], marks=pytest.mark.slow),
        (4, {}, []),
        (5, {}, []),
        (6, {}, []),
    ],
)
def test_every_cell_of_a_figure_shows_another_picture(small, number, kw, allowed):
    fig = figures.figure(number, small["content"], small["style"], **{**TINY, "iterations": (20,)}, **kw)
    assert _alike(fig) == allowed


def test_figure_cli_writes_the_grid(small, capsys):
    out = small["dir"] / "fig.png"
    code = cli.main(
        [
            "figure",
            "4",
            "-o",
            str(out),
            "--content",
            str(small["content"]),
            "--style",
            str(small["style"]),
            "--weights",
            "random",
            "--size",
            "24",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--no-normalize",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "run 1/2: content relu2_2" in err and "run 2/2: content relu4_2" in err
    labels = ["content", "style", "content relu2_2", "content relu4_2"]  # wrapped in 24 px cells, not cut
    assert (
        images.load_image(out).size
        == figures.grid([(Image.new("RGB", (24, 19)), l) for l in labels], 4).image.size
    )
    assert cli.main(["figure", "2", "-o", str(out)]) == 2  # not one of the figures: one-line argparse error
    assert "there is no figure 2; the figures are 1: " in capsys.readouterr().err


def test_labels_wrap_in_narrow_cells_and_are_never_cut():
    cells = [(Image.new("RGB", (40, 30), (90, 90, 90)), "relu1_1..relu5_1 a/b=1e-05"), (None, "content")]
    fig = figures.grid(cells, 2)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(fig.image)
    assert len(fig.label_lines[0]) >= 2 and all(
        draw.textbbox((0, 0), t, font=figures._font())[2] <= 40 for t in fig.label_lines[0]
    )
    assert ["".join(l).replace(" ", "") for l in fig.label_lines] == ["relu1_1..relu5_1a/b=1e-05", "content"]
    strip = fig.label_boxes[0][3] - fig.label_boxes[0][1]
    one = figures.grid([(Image.new("RGB", (400, 30)), "relu1_1..relu5_1 a/b=1e-05")], 1)
    assert len(one.label_lines[0]) == 1 and strip > one.label_boxes[0][3] - one.label_boxes[0][1]


def test_figure_3_weighs_the_papers_two_terms_only(small, monkeypatch):
    # The alpha/beta grid is the paper's trade-off: no palette term in its cells, whatever the default.
    from painterly import engine

    seen = []
    real = engine.Stylizer.run

    def run(self, *a, options=None, **kw):
        seen.append(options)
        return real(self, *a, options=options, **kw)

    monkeypatch.setattr(engine.Stylizer, "run", run)
    figures.figure(3, small["content"], small["style"], ratios=(1e-3,), **TINY)
    assert len(seen) == 5 and all(o.palette_weight == 0.0 and o.balance == "absolute" for o in seen)
    assert options.DEFAULTS.palette_weight > 0
