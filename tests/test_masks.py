"""Spatial control masks (1611.07865): reading, checking, resizing and propagation to layers."""

import numpy as np
import pytest
import torch
from PIL import Image

from painterly import options
from painterly.errors import InvalidOption
from painterly.imaging import masks
from painterly.net.geometry import geometry


def _save(path, array, mode=None):
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return str(path)


def test_label_maps_greyscale_palette_black_and_white(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]])
    assert (masks.read_label_map(_save(tmp_path / "l.png", labels), "m") == labels).all()
    p = Image.fromarray(labels.astype(np.uint8), "P")
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    p.save(tmp_path / "p.png")
    assert (masks.read_label_map(tmp_path / "p.png", "m") == labels).all()
    bw = _save(tmp_path / "bw.png", [[0, 255], [255, 0]])
    assert masks.read_label_map(bw, "m").tolist() == [[0, 1], [1, 0]]
    grey_rgb = _save(tmp_path / "g.png", np.stack([labels] * 3, -1))
    assert (masks.read_label_map(grey_rgb, "m") == labels).all()


@pytest.mark.parametrize(
    "array, match",
    [
        (np.stack([np.zeros((4, 4)), np.ones((4, 4)) * 9, np.zeros((4, 4))], -1), "colour image"),
        (np.arange(16).reshape(4, 4) * 16, "values up to 240"),
    ],
)
def test_label_maps_refuse_colour_and_photos(tmp_path, array, match):
    with pytest.raises(InvalidOption, match=match):
        masks.read_label_map(_save(tmp_path / "m.png", array), "content mask")


def _opts(**kw):
    return options.DEFAULTS.replace(**kw)


def test_load_content_label_map_and_per_region_list(tmp_path):
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 20:] = 1
    one = _save(tmp_path / "c.png", labels)
    rm = masks.load(_opts(content_mask=one), (40, 30), [(20, 20)], [1.0])
    assert rm.content.shape == (2, 30, 40) and rm.weights == [0.5, 0.5]
    assert rm.content[1, :, 20:].all() and not rm.content[1, :, :20].any()
    a, b = _save(tmp_path / "a.png", labels * 255), _save(tmp_path / "b.png", (1 - labels) * 255)
    rm = masks.load(_opts(content_mask=f"{a},{b}", region_weights=(0.2, 0.8)), (80, 60), [(20, 20)], [1.0])
    assert rm.content.shape == (2, 30, 40) and rm.weights == [0.2, 0.8]  # same aspect: accepted
    assert rm.content[0, :, 20:].all() and rm.content[1, :, :20].all()


def test_style_mask_forms(tmp_path):
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 20:] = 1
    c = _save(tmp_path / "c.png", labels)
    s = _save(tmp_path / "s.png", labels[:20, :20] * 0 + 1)
    rm = masks.load(
        _opts(content_mask=c, style_masks=("all", "0", s)),
        (40, 30),
        [(9, 9), (20, 20), (20, 20)],
        [1 / 3] * 3,
    )
    assert rm.styles[0] is None
    assert rm.styles[1][0].all() and not rm.styles[1][1].any()
    assert rm.styles[2][1].all() and not rm.styles[2][0].any()


@pytest.mark.parametrize(
    "kw, sizes, match",
    [
        (dict(style_masks=("0",)), [(20, 20)], "needs --content-mask"),
        (dict(content_mask="EMPTY"), [(20, 20)], "region 1 is empty"),
        (dict(content_mask="C", style_masks=("0", "0")), [(20, 20)], "2 entries for 1 style images"),
        (
            dict(content_mask="C", style_masks=("0",)),
            [(20, 20)],
            "region 1 of the content mask is empty in every style",
        ),
        (dict(content_mask="C", style_masks=("3",)), [(20, 20)], "names region 3"),
        (dict(content_mask="C", region_weights=(1.0,)), [(20, 20)], "1 values for 2 regions"),
        (dict(content_mask="SMALL"), [(20, 20)], "is 10x10 but the content image is 40x30"),
        (dict(content_mask="C", style_masks=("S",)), [(30, 20)], "is 20x20 but style image 1 is 30x20"),
        (dict(content_mask="/no/such.png"), [(20, 20)], "no such file"),
    ],
)
def test_mask_errors_are_one_line(tmp_path, kw, sizes, match):
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 20:] = 1
    paths = {
        "C": _save(tmp_path / "c.png", labels),
        "S": _save(tmp_path / "s.png", np.zeros((20, 20))),
        "SMALL": _save(tmp_path / "small.png", np.zeros((10, 10))),
        "EMPTY": _save(tmp_path / "e.png", labels * 2),
    }  # values 0 and 2: region 1 empty
    kw = {
        k: (
            paths.get(v, v)
            if isinstance(v, str)
            else tuple(paths.get(x, x) for x in v)
            if isinstance(v, tuple) and v and isinstance(v[0], str)
            else v
        )
        for k, v in kw.items()
    }
    with pytest.raises(InvalidOption, match=match) as e:
        masks.load(_opts(**kw), (40, 30), sizes, [1.0 / len(sizes)] * len(sizes))
    assert "\n" not in str(e.value)


def test_resize_mode_is_area_downsampling():
    m = (torch.rand(2, 32, 48) > 0.5).float()
    out = masks.propagate(m, options.LAYERS, ["conv1_1", "conv3_1", "pool3"], "resize")
    assert torch.equal(out["conv1_1"], m.reshape(2, -1))
    area = torch.nn.functional.interpolate(m[:, None], size=(8, 12), mode="area")
    assert torch.allclose(out["conv3_1"], area.reshape(2, -1))
    assert out["pool3"].shape == (2, 4 * 6)


@pytest.mark.parametrize("layer", ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1"])
def test_inside_mode_keeps_exactly_the_neurons_whose_receptive_field_is_inside(layer):
    """Brute force: unit i is kept iff every pixel of [s*i + start, s*i + end] (clipped to the
    image: outside counts as inside) belongs to the region."""
    torch.manual_seed(0)
    h, w = 40, 56
    m = torch.ones(1, h, w)
    m[0, 10:14, 5:50] = 0  # a horizontal bar outside the region
    m[0, :, 40:] = (torch.rand(h, 16) > 0.05).float()  # and speckle
    out = masks.propagate(m, options.LAYERS, [layer], "inside")[layer]
    start, end, s = geometry(options.LAYERS)[layer]
    hl, wl = h // s, w // s
    expect = torch.zeros(hl, wl)
    for i in range(hl):
        for j in range(wl):
            y0, y1 = max(0, s * i + start), min(h, s * i + end + 1)
            x0, x1 = max(0, s * j + start), min(w, s * j + end + 1)
            expect[i, j] = m[0, y0:y1, x0:x1].min()
    assert torch.equal(out.reshape(hl, wl), expect)


def test_at_size_is_nearest_and_empty_rule():
    m = torch.zeros(2, 4, 4)
    m[0, :, :2] = 1
    m[1, :, 2:] = 1
    big = masks.at_size(m, (8, 6))
    assert big.shape == (2, 6, 8) and set(big.unique().tolist()) <= {0.0, 1.0}
    assert big[0, :, :4].all() and not big[0, :, 4:].any()
    assert masks.empty(torch.tensor([0.0, 0.4])) and not masks.empty(torch.tensor([0.0, 0.6]))
    assert not masks.empty(None)
