"""The optimisation, end to end on a seeded random VGG-19 and tiny images."""
import io

import pytest
import torch
from PIL import Image

import neural_style
from neural_style import config, images, transfer
from neural_style.errors import InvalidOption, Stop
from neural_style.features import random_vgg
from neural_style.losses import as_matrix, style_loss_fn


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_objective_gradient_matches_finite_differences():
    torch.manual_seed(0)
    o = config.DEFAULTS.replace(content_layers=("conv2_2",), style_layers=("conv1_1", "conv2_1", "conv3_1"),
                                tv_weight=0.5, style_weight=10.0)
    net = random_vgg("conv3_1").double()
    feats = transfer.feature_fn(net)
    content, style = torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.rand(1, 3, 16, 16, dtype=torch.float64)
    targets = transfer.build_targets(feats, o, content, [style], [1.0])
    targets.content = {k: v.double() for k, v in targets.content.items()}
    targets.regions[0].targets = {k: v.double() for k, v in targets.regions[0].targets.items()}
    objective = transfer.Objective(feats, o, targets)
    # as_matrix casts to float32 for speed; for the check the maths must stay in float64
    import neural_style.losses as L
    orig = L.as_matrix
    transfer.as_matrix = lambda f: (f[0] if f.dim() == 4 else f).reshape(f.shape[1] if f.dim() == 4 else f.shape[0], -1)
    try:
        x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: objective.total(objective.parts(t)), (x,), eps=1e-6,
                                         atol=1e-4, rtol=1e-3, fast_mode=True)
    finally:
        transfer.as_matrix = orig


def test_report_losses_are_the_papers_units(small, fast):
    res = neural_style.run_transfer(small["content"], small["style"], **fast)
    o = res.options
    w = transfer.layer_weights(o)
    assert w == pytest.approx([0.2] * 5)
    expect = o.content_weight * sum(res.losses["content"].values()) + o.style_weight * sum(
        wl * res.losses["style"][l] for wl, l in zip(w, o.style_layers))
    assert res.losses["total"] == pytest.approx(expect, rel=1e-5)
    assert set(res.losses["content"]) == {"conv4_2"}
    assert list(res.losses["style"]) == list(config.PAPER_STYLE_LAYERS)
    assert res.iterations == 5 and res.image.size[0] == 32


def test_style_transfer_lowers_the_loss_by_a_large_factor(small, fast):
    start = neural_style.run_transfer(small["content"], small["style"], **{**fast, "iterations": 0})
    seen = []
    end = neural_style.run_transfer(small["content"], small["style"], callback=lambda it: seen.append(it.losses["total"]),
                                    **{**fast, "iterations": 60})
    assert start.iterations == 0 and len(seen) == 60
    assert seen[0] == pytest.approx(start.losses["total"], rel=1e-4)  # same start, same objective
    # The objective the optimiser sees (unclipped pixels, as in the paper) falls by orders of
    # magnitude; the saved image, clipped to [0, 1], keeps a smaller but clear gain (a random
    # network drives pixels out of range more than ImageNet weights do).
    assert seen[-1] < seen[0] / 100
    assert end.losses["total"] < start.losses["total"] / 2


def test_content_reconstruction_from_conv1_2_recovers_the_pixels(small):
    target = images.to_tensor(images.resize_long_side(images.load_image(small["content"]), 32))
    out = neural_style.reconstruct_content(small["content"], "conv1_2", weights="random", size=32,
                                           iterations=300, device="cpu", precision="fp32")
    err = (images.to_tensor(out) - target).abs().mean().item()
    assert err < 0.03, err


def test_texture_synthesis_takes_size_and_style_aspect(small):
    out = neural_style.synthesize_texture(small["style"], "conv1_1,conv2_1", weights="random", size=24,
                                          iterations=3, device="cpu")
    assert out.size == (24, 24)


def test_same_seed_same_bytes_other_seed_differs(small, fast):
    fast = {**fast, "init": "noise"}  # the seed draws the starting noise
    a = neural_style.stylize(small["content"], small["style"], **fast, seed=7)
    b = neural_style.stylize(small["content"], small["style"], **fast, seed=7)
    c = neural_style.stylize(small["content"], small["style"], **fast, seed=8)
    assert _png_bytes(a) == _png_bytes(b)
    assert _png_bytes(a) != _png_bytes(c)


def test_callback_sees_every_step_and_can_stop(small, fast):
    seen = []

    def cb(it):
        seen.append((it.step, it.total, it.losses["total"]))
        assert it.image().size == it.size
        if it.step == 3:
            raise Stop

    res = neural_style.run_transfer(small["content"], small["style"], callback=cb, **{**fast, "iterations": 10})
    assert [s for s, _, _ in seen] == [1, 2, 3] and all(t == 10 for _, t, _ in seen)
    assert res.stopped and res.iterations == 3


def test_coarse_to_fine_schedule_counts_steps_and_ends_at_full_size(small, fast):
    sizes = []
    res = neural_style.run_transfer(small["content"], small["style"], callback=lambda it: sizes.append(it.size),
                                    **{**fast, "size": 48, "scales": (24, 48), "iterations": (4, 2)})
    assert [s[0] for s in sizes] == [24] * 4 + [48] * 2
    assert res.image.size[0] == 48


def test_init_options(small, fast):
    for init in ("content", "style", str(small["style"])):
        res = neural_style.run_transfer(small["content"], small["style"], **{**fast, "iterations": 0, "init": init})
        assert res.image.size == (32, 26)
    # starting from the content itself, the content loss is tiny next to a start from noise
    from_content = neural_style.run_transfer(small["content"], small["style"], **{**fast, "iterations": 0, "init": "content"})
    from_noise = neural_style.run_transfer(small["content"], small["style"], **{**fast, "iterations": 0, "init": "noise"})
    assert from_content.losses["content"]["conv4_2"] < 1e-3 * from_noise.losses["content"]["conv4_2"]


@pytest.mark.parametrize("bad, match", [
    (dict(pooling="median"), "unknown pooling 'median'"),
    (dict(style_layers=("relu9_1",)), "unknown layer 'relu9_1'"),
    (dict(style_layer_weights=(1.0, 2.0)), "2 values for 5 style layers"),
    (dict(iterations=(-1,)), "non-negative"),
    (dict(size=8), "outside 16"),
    (dict(style_blend=(1.0, 2.0)), "2 weights for 1 style images"),
    (dict(init="/no/such/file.png"), "file.png"),
])
def test_bad_options_raise_one_line_errors(small, fast, bad, match):
    with pytest.raises(neural_style.NeuralStyleError, match=match) as e:
        neural_style.run_transfer(small["content"], small["style"], **{**fast, **bad})
    assert "\n" not in str(e.value)


def test_style_scale_sets_the_style_size(small, fast, monkeypatch):
    seen = []
    orig = transfer.build_targets

    def spy(features, o, content, styles, blend, **kw):
        seen.extend(s.shape[-2:] for s in styles)
        return orig(features, o, content, styles, blend, **kw)

    monkeypatch.setattr(transfer, "build_targets", spy)
    neural_style.run_transfer(small["content"], small["style"], **{**fast, "iterations": 0, "style_scale": 2.0})
    assert max(seen[0]) == 64  # long side 32 * 2, square style stays square
    assert seen[0][0] == seen[0][1]
