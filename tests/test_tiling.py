"""Tiled evaluation (large images): the same function of the image as the untiled one."""

import contextlib

import pytest
import torch

import painterly
from painterly import engine, options
from painterly.imaging import masks
from painterly.net import vgg as network
from painterly.net.normalize import filter_means, normalize_vgg
from painterly.net.vgg import random_vgg
from painterly.objective import terms, tiling

TOL = 1e-4


def _setup(content_layers, style_layers, loss="gram", size=(96, 80), style_size=(88, 104), seed=0):
    torch.manual_seed(seed)
    o = options.DEFAULTS.replace(
        content_layers=content_layers, style_layers=style_layers, style_loss=loss, tv_weight=0.5
    )
    net = random_vgg(max(content_layers + style_layers, key=options.LAYERS.index))
    c, s = torch.rand(1, 3, *size[::-1]), torch.rand(1, 3, *style_size[::-1])
    normalize_vgg(net, [c, s])
    return o, net, network.feature_fn(net), c, s


def _region_masks(net, o, size, style_size):
    w, h = size
    cm = torch.zeros(2, h, w)
    cm[0, :, : w * 2 // 5] = 1
    cm[1, :, w * 2 // 5 :] = 1
    sm = torch.zeros(2, style_size[1], style_size[0])
    sm[0, : style_size[1] // 2] = 1
    sm[1, style_size[1] // 2 :] = 1
    rm = masks.RegionMasks(cm, [sm], [0.4, 0.6])
    return masks.for_scale(rm, net.names, o.style_layers, "resize", size, [style_size], "cpu")


@contextlib.contextmanager
def _float64_losses(on: bool):
    orig = terms.as_matrix
    if on:
        terms.as_matrix = lambda f: orig(f).double()
    try:
        yield
    finally:
        terms.as_matrix = orig


def _compare(o, feats, net, c, s, tile, sm=None, halo=None):
    """Per-layer values and gradients (each layer's own, so no term hides behind another)."""
    layers = list(o.content_layers) + list(o.style_layers)
    tl = tiling.Tiler(feats, net.names, layers, tile, halo=halo)
    t_plain = engine.build_targets(feats, o, c, [s], [1.0], masks=sm)
    t_tiled = engine.build_targets(feats, o, c, [s], [1.0], masks=sm, tiler=tl)
    worst = {"targets": 0.0, "value": 0.0, "grad": 0.0}
    for l in o.content_layers:
        a, b = t_plain.content[l], t_tiled.content[l]
        worst["targets"] = max(worst["targets"], float((a - b).norm() / a.norm()))
    for ra, rb in zip(t_plain.style, t_tiled.style):
        for l in o.style_layers:
            a, b = ra.targets[l], rb.targets[l]
            a, b = (a[0], b[0]) if isinstance(a, (tuple, list)) else (a, b)
            a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)  # sliced: [(features, w)]
            worst["targets"] = max(worst["targets"], float((a - b).norm() / a.norm()))
    x = torch.rand_like(c)
    plain = engine.make_objective(feats, o, t_plain)
    tiled = engine.make_objective(feats, o, t_plain, tiler=tl)
    # Every per-layer value, and the gradient of their sum with each layer scaled to 1 (so
    # that no layer hides behind a larger one), TV included. The untiled reference computes
    # its losses from the features in float64: in float32 the W2 loss's cancellation
    # (tr S1 + tr S2 - 2 tr(...)^1/2) alone costs it 1e-4 (the tiled W2 sums in float64).
    out = []
    for obj in (plain, tiled):
        if o.style_loss == "sliced":
            obj.term("style").loss.seed = 0  # the same random directions for both
        xx = x.clone().requires_grad_(True)
        with _float64_losses(obj is plain):
            parts = obj.parts(xx)
        terms = list(parts["content"].values()) + list(parts["style"].values()) + [parts["tv"]]
        out.append((torch.stack([t.detach() for t in terms]), terms, xx))
    scale = out[0][0].abs().clamp_min(1e-30)
    worst["value"] = float(((out[0][0] - out[1][0]).abs() / scale).max())
    grads = [torch.autograd.grad(sum(t / sc for t, sc in zip(terms, scale)), xx)[0] for _, terms, xx in out]
    worst["grad"] = float((grads[0] - grads[1]).norm() / grads[0].norm())
    return worst, tl


# The per-layer statistics; the neighbour loss refuses to tile (test_neighbour.py).
@pytest.mark.parametrize("loss", [n for n in options.STYLE_LOSSES if n != "neighbour"])
@pytest.mark.parametrize("with_masks", [False, True])
def test_tiled_equals_untiled_for_every_loss(loss, with_masks):
    o, net, feats, c, s = _setup(
        ("conv2_2",), ("conv1_1", "conv2_1", "conv3_1"), loss, size=(64, 48), style_size=(56, 72)
    )
    sm = _region_masks(net, o, (64, 48), (56, 72)) if with_masks else None
    worst, tl = _compare(o, feats, net, c, s, tile=24, sm=sm)
    assert len(tl.tiles(48, 64)) == 6 and tl.halo == 12  # real tiles, cropped halos
    # The sliced loss sorts projections: features that differ by float rounding (1e-7; a
    # tile's convolutions are blocked differently) reorder near-ties, which moves its
    # gradient by about 2e-4 of its norm whether or not anything is tiled (perturbing the
    # untiled features by 1e-7 does the same). Its values still agree to 1e-4.
    grad_tol = 2e-3 if loss == "sliced" else TOL
    assert worst["targets"] < TOL and worst["value"] < TOL and worst["grad"] < grad_tol, worst


def test_tiled_equals_untiled_with_the_papers_layers():
    o, net, feats, c, s = _setup(
        options.PAPER_CONTENT_LAYERS, options.PAPER_STYLE_LAYERS, size=(192, 176), style_size=(176, 192)
    )
    worst, tl = _compare(o, feats, net, c, s, tile=80)
    assert tl.tile == 80 and tl.halo == 80 and len(tl.tiles(176, 192)) == 9
    assert max(worst.values()) < TOL, worst


def test_a_halo_one_stride_short_is_not_exact():
    """The halo is the smallest exact one: one stride less breaks the deepest layer."""
    o, net, feats, c, s = _setup(
        ("conv2_2",), ("conv1_1", "conv2_1", "conv3_1"), size=(64, 48), style_size=(56, 72)
    )
    worst, tl = _compare(o, feats, net, c, s, tile=24, halo=12 - 4)
    assert worst["value"] > 1e-3 or worst["grad"] > 1e-3, worst


def test_tile_geometry_and_filter_means():
    names = options.LAYERS
    assert tiling.geometry(names)["conv5_1"] == (-70, 85, 16)
    assert tiling.halo_for(names, ["conv4_2", "conv5_1"]) == (80, 16)
    assert tiling.halo_for(names, ["conv1_1"]) == (1, 1)
    tl = tiling.Tiler(None, names, ["conv3_1"], 30)  # rounded up to the stride (4)
    assert tl.tile == 32 and [(s.A, s.B, s.a, s.b) for s in tl.spans(70)] == [
        (0, 44, 0, 32),
        (20, 70, 32, 64),
        (52, 70, 64, 70),
    ]
    net = random_vgg("conv4_1")
    imgs = [torch.rand(1, 3, 72, 88), torch.rand(1, 3, 64, 64)]
    want = filter_means(net, imgs)
    for tile in (None, 24):
        got = tiling.filter_means(net, imgs, tile)
        for k in want:
            assert torch.allclose(got[k], want[k], rtol=1e-5, atol=1e-7), k


@pytest.mark.parametrize("balance", ["absolute", "photo"])
def test_runs_with_and_without_tiles_agree(small, balance):
    # Adam: L-BFGS without line search on a random network takes wild steps that amplify
    # float rounding from the second step on; Adam's normalised steps do not.
    kw = dict(
        weights="random",
        size=64,
        iterations=(3,),
        device="cpu",
        precision="fp32",
        tv_weight=0.1,
        style_layers=("conv1_1", "conv2_1", "conv3_1"),
        content_layers=("conv3_2",),
        optimizer="adam",
        balance=balance,
        content_ceiling=0.0,
    )  # a tiled run has no --content-ceiling polish
    seen = {0: [], 24: []}
    res = {
        t: painterly.run_transfer(
            small["content"],
            small["style"],
            tile=t,
            callback=lambda it, t=t: seen[t].append(it.losses["total"]),
            **kw,
        )
        for t in (0, 24)
    }
    assert seen[0] == pytest.approx(seen[24], rel=TOL)
    assert res[0].losses["total"] == pytest.approx(res[24].losses["total"], rel=TOL)
    # --balance photo: the tiled calibration agrees with the untiled one to rounding (the losses
    # above), but Adam divides each pixel's step by its own gradient's size, so a pixel whose
    # gradient is near zero can take a full step either way; the mean stays tiny.
    diff = (res[0].pixels - res[24].pixels).abs()
    assert diff.max() < (1e-3 if balance == "absolute" else 2e-2) and diff.mean() < 1e-4
