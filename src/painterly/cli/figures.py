"""The paper's figures as labelled image grids, regenerated from the user's own images.

    from painterly import figures
    fig = figures.figure(1, content="photo.jpg", style="painting.jpg", size=256)
    fig.image.save("fig1.png")

The numbers are the tool's (stable since 0.1); the paper's own figure numbers (Gatys, Ecker &
Bethge, CVPR 2016) are given for each:
  1  content reconstructions from relu1_2 .. relu5_2 (top row) and style reconstructions
     from growing layer sets relu1_1, +relu2_1, ... +relu5_1 (bottom row) (paper Fig. 1;
     the paper's conv names read as Caffe's in-place ReLU blobs, see options/layers.py);
  3  the alpha/beta grid: rows match styles on growing layer sets, columns the ratios
     1e-5 .. 1e-2 (paper Fig. 4);
  4  content layer relu2_2 vs relu4_2 (the paper's conv2_2 vs conv4_2; paper Fig. 5);
  5  initialisation from the content, the style and several noise seeds (paper Fig. 6);
  6  photo-to-photo transfer: a photograph as the style (paper Fig. 7).
(The paper's Figs. 2 and 3 are its algorithm diagram and one photograph in several styles:
`painterly transfer` makes the latter.)
Every cell is one run of one engine.Stylizer with the given options (size, iterations, weights...),
so tests build tiny figures with random weights. Labels use Pillow's default font.
Departures: the paper's figures use the authors' own images and the ImageNet network; the
first column shows the inputs; figure 3 has no inputs column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from painterly.errors import InvalidOption
from painterly.imaging import load_image
from painterly.options import ABSOLUTE_RANGE_WEIGHT, PAPER_STYLE_LAYERS, Options, options_from

FIGURES = (1, 3, 4, 5, 6)
TITLES = {
    1: "content and style reconstructions by layer",
    3: "the alpha/beta grid by style layers",
    4: "content layer relu2_2 vs relu4_2",
    5: "initialisations",
    6: "photo-to-photo",
}
RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)  # alpha / beta, the columns of figure 3 (the paper's Fig. 4)
SEEDS = (0, 1, 2)  # noise initialisations of figure 5 (the paper's Fig. 6)
CONTENT_LAYERS = (
    "relu1_2",
    "relu2_2",
    "relu3_2",
    "relu4_2",
    "relu5_2",
)  # the Caffe reading (options/layers.py)
PAD = 4  # pixels between cells and around the grid
WHITE = (255, 255, 255)


@dataclass
class Figure:
    image: Image.Image
    labels: List[str]  # one per cell, row by row
    shape: Tuple[int, int]  # (rows, columns)
    cell: Tuple[int, int]  # (width, height) of each cell's picture area
    boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)  # picture area per cell
    label_boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)  # label strip per cell
    label_lines: List[List[str]] = field(default_factory=list)  # each label as drawn: wrapped, never cut


def _font():
    return ImageFont.load_default()


def grid(
    cells: Sequence[Tuple[Optional[Image.Image], str]], columns: int, cell: Optional[Tuple[int, int]] = None
) -> Figure:
    """Lay out (image, label) cells row by row; each image is fitted into the cell (aspect kept,
    centred on white) with its label in a strip below. cell: default the largest image's size.
    A cell whose image is None stays blank (still labelled)."""
    if not cells:
        raise InvalidOption("a figure needs at least one cell")
    rows = -(-len(cells) // columns)
    if cell is None:
        cell = (
            max(im.size[0] for im, _ in cells if im is not None),
            max(im.size[1] for im, _ in cells if im is not None),
        )
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_h = probe.textbbox((0, 0), "Agjy|", font=font)[3]  # one line, whatever the labels
    cw, ch = cell
    wrapped = [_wrap(probe, label, font, cw) for _, label in cells]
    strip = max(len(w) for w in wrapped) * text_h + 2 * PAD  # every label whole, on as many lines as it takes
    width, height = PAD + columns * (cw + PAD), PAD + rows * (ch + strip + PAD)
    out = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(out)
    boxes, label_boxes = [], []
    for i, (im, label) in enumerate(cells):
        r, c = divmod(i, columns)
        x0, y0 = PAD + c * (cw + PAD), PAD + r * (ch + strip + PAD)
        boxes.append((x0, y0, x0 + cw, y0 + ch))
        label_boxes.append((x0, y0 + ch, x0 + cw, y0 + ch + strip))
        if im is not None:
            fitted = im.convert("RGB")
            s = min(cw / fitted.size[0], ch / fitted.size[1])
            if s != 1:
                fitted = fitted.resize(
                    (max(1, min(cw, round(fitted.size[0] * s))), max(1, min(ch, round(fitted.size[1] * s)))),
                    Image.Resampling.LANCZOS,
                )
            out.paste(fitted, (x0 + (cw - fitted.size[0]) // 2, y0 + (ch - fitted.size[1]) // 2))
        for j, text in enumerate(wrapped[i]):
            tw = draw.textbbox((0, 0), text, font=font)[2]
            draw.text(
                (x0 + max(0, (cw - tw) // 2), y0 + ch + PAD + j * text_h), text, fill=(0, 0, 0), font=font
            )
    return Figure(out, [label for _, label in cells], (rows, columns), cell, boxes, label_boxes, wrapped)


def _wrap(draw, text: str, font, width: int) -> List[str]:
    """The label in lines that fit the cell's width: broken at spaces, and a word too wide
    for one line after '..' or, failing that, between characters. Nothing is cut off."""

    def fits(t):
        return draw.textbbox((0, 0), t, font=font)[2] <= width

    words = []
    for w in text.split():
        while not fits(w) and len(w) > 1:
            cut = next(
                (k + 2 for k in range(len(w) - 2, 0, -1) if w[k : k + 2] == ".." and fits(w[: k + 2])), None
            )
            cut = cut or max(1, max((k for k in range(1, len(w)) if fits(w[:k])), default=1))
            words.append(w[:cut])
            w = w[cut:]
        words.append(w)
    lines: List[str] = []
    for w in words:
        if lines and fits(lines[-1] + " " + w) and not lines[-1].endswith(".."):
            lines[-1] += " " + w
        else:
            lines.append(w)
    return lines or [""]


def _layer_sets(layers: Sequence[str] = PAPER_STYLE_LAYERS) -> List[Tuple[str, ...]]:
    return [tuple(layers[: i + 1]) for i in range(len(layers))]


def _set_label(layers: Sequence[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}"


def figure(
    number: int,
    content=None,
    style=None,
    options: Optional[Options] = None,
    callback: Optional[Callable] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
    ratios: Sequence[float] = RATIOS,
    seeds: Sequence[int] = SEEDS,
    **overrides,
) -> Figure:
    """Build figure `number` (see the module doc) from `content` and `style` (paths or PIL).

    options/overrides: the usual Options (size, iterations, weights, ...) for every cell;
    callback: passed to every run; progress(i, n, label) is called before each run.
    Without content/style the bundled demo images are used.
    """
    from painterly.engine import Stylizer

    if number not in FIGURES:
        raise InvalidOption(f"unknown figure {number} (valid: {', '.join(map(str, FIGURES))})")
    if content is None or style is None:
        from painterly import assets

        demo_c, demo_s = assets.demo_images()
        content, style = content or demo_c, style or demo_s
    o = options_from(options, overrides)
    plan: List[Tuple[str, str, Options]] = []  # (label, job, options) per run
    columns = 0
    inputs = [(load_image(content), "content"), (load_image(style), "style")]
    if number == 1:
        plan += [(l, "content", o.replace(content_layers=(l,))) for l in CONTENT_LAYERS]
        plan += [(_set_label(s), "texture", o.replace(style_layers=s)) for s in _layer_sets()]
        columns = 6
        cells_layout = [inputs[0]] + [None] * 5 + [inputs[1]] + [None] * 5
    elif number == 3:
        for s in _layer_sets():
            for r in ratios:
                plan.append(
                    (
                        f"{_set_label(s)} a/b={r:g}",
                        "transfer",
                        o.replace(
                            style_layers=s,
                            content_weight=1.0,
                            style_weight=1.0 / r,
                            balance="absolute",
                            range_weight=ABSOLUTE_RANGE_WEIGHT,
                            palette_weight=0.0,
                            init="content",
                        ),
                    )
                )
        # ^ a/b in the paper's units (--balance absolute), from the photo as before --init palette, and
        #   the paper's two terms only (no palette term: it would move the trade-off the grid shows)
        columns = len(ratios)
        cells_layout = [None] * len(plan)
    elif number == 4:
        plan += [(f"content {l}", "transfer", o.replace(content_layers=(l,))) for l in ("relu2_2", "relu4_2")]
        columns = 4
        cells_layout = inputs + [None, None]
    elif number == 5:
        plan += [
            ("init content", "transfer", o.replace(init="content")),
            ("init style", "transfer", o.replace(init="style")),
        ]
        plan += [(f"noise seed {s}", "transfer", o.replace(init="noise", seed=s)) for s in seeds]
        columns = 2 + len(plan)
        cells_layout = inputs + [None] * len(plan)
    else:  # 6: photo-to-photo
        plan.append(("transfer", "transfer", o))
        columns = 3
        cells_layout = [(inputs[0][0], "content photo"), (inputs[1][0], "style photo"), None]
    results = []
    stylizer = Stylizer(o)  # one network for every cell
    for i, (label, job, opts) in enumerate(plan):
        if progress is not None:
            progress(i + 1, len(plan), label)
        if job == "content":
            res = stylizer.run(content, None, job="content", options=opts, callback=callback)
        elif job == "texture":
            res = stylizer.run(None, style, job="texture", options=opts, callback=callback)
        else:
            res = stylizer.run(content, style, options=opts, callback=callback)
        results.append((res.image, label))
    it = iter(results)
    cells = [c if c is not None else next(it) for c in cells_layout]
    fig = grid(
        cells, columns, cell=(max(im.size[0] for im, _ in results), max(im.size[1] for im, _ in results))
    )
    fig.image.info["painterly-figure"] = {"figure": number, "labels": fig.labels, "options": o.to_dict()}
    return fig
