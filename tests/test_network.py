import copy

import pytest
import torch

from painterly import options
from painterly.errors import InvalidOption
from painterly.net import normalize
from painterly.net import vgg as network
from painterly.net.normalize import filter_means, normalize_vgg
from painterly.net.vgg import TORCHVISION_INDEX, VGG19, deepest, load_vgg, random_vgg


def test_layer_names_follow_vgg19():
    assert len(options.LAYERS) == 37
    assert [n for n in options.LAYERS if n.startswith("conv")][-1] == "conv5_4"
    # torchvision's indices: conv4_2 is features.21, pool5 is features.36
    assert TORCHVISION_INDEX["conv1_1"] == 0 and TORCHVISION_INDEX["conv4_2"] == 21
    assert TORCHVISION_INDEX["pool5"] == 36 and TORCHVISION_INDEX["relu5_1"] == 29


def test_network_is_cut_after_the_deepest_layer():
    net = VGG19(deepest(["conv1_1", "conv4_2", "conv3_1"]))
    assert net.names[-1] == "conv4_2"
    assert "conv4_3" not in net.layers
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in VGG19().parameters())


def test_unknown_layer_lists_valid_names():
    with pytest.raises(InvalidOption, match="relu4_1.*valid: conv1_1"):
        deepest(["relu4_11"])


def test_features_shapes_and_pooling():
    net = random_vgg("pool5", pooling="max")
    assert isinstance(net.layers["pool1"], torch.nn.MaxPool2d)
    out = net(torch.rand(1, 3, 64, 64), ["conv1_1", "relu2_1", "conv4_2", "pool5"])
    assert out["conv1_1"].shape == (1, 64, 64, 64)
    assert out["relu2_1"].shape == (1, 128, 32, 32)
    assert out["conv4_2"].shape == (1, 512, 8, 8)
    assert out["pool5"].shape == (1, 512, 2, 2)
    assert isinstance(random_vgg("pool1").layers["pool1"], torch.nn.AvgPool2d)


def test_conv_output_is_not_overwritten_by_inplace_relu():
    net = random_vgg("relu1_1")
    out = net(torch.rand(1, 3, 16, 16), ["conv1_1", "relu1_1"])
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_weights_are_frozen():
    assert not any(p.requires_grad for p in random_vgg("conv2_1").parameters())


def test_torchvision_layout_round_trip():
    net = random_vgg("conv3_1", seed=3)
    sd = {
        f"features.{TORCHVISION_INDEX[k.split('.')[1]]}.{k.split('.')[2]}": v
        for k, v in net.state_dict().items()
    }
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    net2 = load_vgg(sd, "conv3_1")
    x = torch.rand(1, 3, 24, 24)
    assert torch.equal(net(x, ["conv3_1"])["conv3_1"], net2(x, ["conv3_1"])["conv3_1"])


def test_caffe_preprocessing_is_bgr_0_255_minus_mean():
    net = VGG19("conv1_1", preprocess="caffe")
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    y = net.prepare(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_normalisation_keeps_function_up_to_positive_channel_scales():
    torch.manual_seed(0)
    net = random_vgg("relu5_1", seed=1)
    images = [torch.rand(1, 3, 48, 48), torch.rand(1, 3, 40, 56)]
    layers = [n for n in net.names if n.startswith(("relu", "conv", "pool"))]
    before = net(images[0], layers)
    before = {k: v.clone() for k, v in before.items()}
    normed = copy.deepcopy(net)
    scales = normalize_vgg(normed, images)
    after = normed(images[0], layers)
    for name in layers:
        block = name[4:] if not name.startswith("pool") else None
        # each layer's output = original / c (c of the most recent relu at or before it)
        relu = (
            "relu" + block
            if block
            else max((r for r in scales if r < "relu" + name[4] + "_9"), key=options.LAYERS.index)
        )
        c = scales[relu].view(1, -1, 1, 1)
        assert torch.all(c > 0)
        assert torch.allclose(after[name] * c, before[name], rtol=1e-4, atol=1e-5), name
    # every filter whose mean is above the floor has mean activation 1 over the run's images;
    # the (almost) silent ones below it stay below 1
    original = filter_means(net, images)
    means = filter_means(normed, images)
    for r in scales:
        typical = original[r] >= 0.01 * original[r].mean()
        assert typical.float().mean() > 0.8, r
        assert torch.allclose(means[r][typical], torch.ones(int(typical.sum())), rtol=1e-3), r
        assert torch.all(means[r][~typical] <= 1.0 + 1e-4), r


# --- fixed per-network normalisation means ----------------------------------------------------
def test_reference_means_of_the_original_weights_ship_with_the_package(monkeypatch):
    from painterly.net import weights

    sha = weights.VGG19_ORIGINAL.sha256
    path = normalize.means_file(sha)
    assert path.name == f"means-{sha[:12]}.pt" and path.is_file()
    # Read from the file: nothing is measured.
    monkeypatch.setattr(normalize, "measure_means", lambda *a, **k: pytest.fail("measured instead of read"))
    net = random_vgg("relu5_1")  # the table is chosen by hash and pooling, not by the weights
    stored = torch.load(path, map_location="cpu", weights_only=True)
    for pooling in options.POOLING:
        means = normalize.reference_means(net, sha, pooling)
        relus = [n for n in options.LAYERS if n.startswith("relu")]
        assert list(means) == relus  # all 16, deeper than the network: normalize_vgg stops in time
        for r in relus:
            assert means[r].shape == (network._CHANNELS[int(r[4])],) and means[r].dtype == torch.float32
            assert torch.equal(means[r], stored[pooling][r].float())
            assert (
                float(means[r].min()) >= 0 and float(means[r].max()) > 0
            )  # after a ReLU; not an all-zero table
    assert not torch.equal(
        normalize.reference_means(net, sha, "avg")["relu5_1"],
        normalize.reference_means(net, sha, "max")["relu5_1"],
    )


def test_reference_means_of_other_weights_are_measured_on_the_demo_images(monkeypatch):
    from painterly import assets

    seen = []
    real = normalize.measure_means

    def spy(net, pil_images, sides=normalize.REFERENCE_SIDES):
        seen.append(([im.size for im in pil_images], tuple(sides)))
        return real(net, pil_images, sides=(32,))  # small, for speed

    monkeypatch.setattr(normalize, "measure_means", spy)
    net = random_vgg("relu2_1", seed=3)
    means = normalize.reference_means(net, "random", "avg")
    from PIL import Image

    demo = [Image.open(p).size for p in assets.demo_images()]
    assert seen == [(demo, normalize.REFERENCE_SIDES)] and normalize.REFERENCE_SIDES == (256, 512)
    assert list(means) == ["relu1_1", "relu1_2", "relu2_1"]
    # Fixed per network: measuring again gives the same means (no run's images are involved).
    assert all(
        torch.equal(a, b)
        for a, b in zip(means.values(), normalize.reference_means(net, "random", "avg").values())
    )


def test_normalize_vgg_with_given_means_equals_measuring_them():
    torch.manual_seed(0)
    images = [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 24, 40)]
    a, b = random_vgg("relu3_1", seed=2), random_vgg("relu3_1", seed=2)
    means = filter_means(a, images)
    scales_a = normalize_vgg(a, means=means)
    scales_b = normalize_vgg(b, images)
    assert list(scales_a) == ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"]
    for r in scales_a:
        assert torch.allclose(scales_a[r], scales_b[r])
    for (n, ca), (_, cb) in zip(a.convs(), b.convs()):
        assert torch.allclose(ca.weight, cb.weight) and torch.allclose(ca.bias, cb.bias), n
    # Means of more layers than the network has are fine; the normalised filters average 1.
    c = random_vgg("relu1_2", seed=2)
    normalize_vgg(c, means=filter_means(random_vgg("relu3_1", seed=2), images))
    got = filter_means(c, images)
    assert torch.allclose(got["relu1_2"].mean(), torch.tensor(1.0), atol=0.05)
