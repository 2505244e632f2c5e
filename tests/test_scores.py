"""painterly.scores: CFSD and LP by hand on tiny feature maps, and the Scorer's end points
(identical images, the photo as the result, a shuffled result) on a seeded random VGG-19."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from painterly import scores
from painterly.net.vgg import random_vgg


def _image(seed: int, size=(48, 40)) -> Image.Image:
    """Smooth random blobs (a photo-like image with structure), deterministic."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 14)
        rgb += rng.uniform(0, 1, 3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
    rgb = rgb / rgb.max()
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


@pytest.fixture(scope="module")
def net():
    return random_vgg("relu5_1", pooling="max")


# --- CFSD by hand ----------------------------------------------------------------------------
def test_cfsd_of_two_positions_by_hand():
    # C = 2 channels, 2 positions. Photo: (2, 0) and (0, 2) -> F/C = e1, e2 -> A = I, rows
    # softmax([1, 0]). Result: (2, 0) twice -> A = all ones -> uniform rows.
    c = torch.tensor([[2.0, 0.0], [0.0, 2.0]]).reshape(1, 2, 1, 2)
    x = torch.tensor([[2.0, 2.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)
    a = math.e / (1 + math.e)
    row_kl = a * math.log(a / 0.5) + (1 - a) * math.log((1 - a) / 0.5)
    got = scores._kl_rows(scores._self_similarity(c), scores._self_similarity(x))
    assert got == pytest.approx(2 * row_kl, rel=1e-5)
    assert scores._kl_rows(scores._self_similarity(c), scores._self_similarity(c)) == 0.0
    # The scale divides the features before the product: x57.6 features, scale 57.6, same maps.
    assert torch.allclose(scores._self_similarity(57.6 * c, 57.6), scores._self_similarity(c))


def test_cfsd_pools_large_maps_and_chunks_exactly(monkeypatch):
    assert scores._pooled_size(64, 64, 4096) == (64, 64)
    ph, pw = scores._pooled_size(96, 72, 4096)
    assert ph * pw <= 4096 and abs(ph / pw - 96 / 72) < 0.05
    f = torch.rand(1, 8, 7, 9, generator=torch.Generator().manual_seed(0))
    assert scores._self_similarity(f, max_positions=20).shape == (15, 15)  # 7x9 -> 3x5 (floors)
    whole = scores._self_similarity(f)
    monkeypatch.setattr(scores, "CFSD_CHUNK", 5)
    assert torch.allclose(scores._self_similarity(f), whole, atol=1e-6)


# --- LP by hand ------------------------------------------------------------------------------
def test_lp_patches_and_best_matches_by_hand():
    ones = torch.ones(1, 1, 3, 3)
    hole = ones.clone()
    hole[0, 0, 1, 1] = 0.0  # one of nine values zero: cosine with all-ones = 8 / (sqrt(8) * 3)
    p = scores._patches(torch.cat([ones, hole], dim=3))  # 3x6 map -> 4 patches
    assert p.shape == (4, 9) and torch.allclose(p.norm(dim=1), torch.ones(4))
    best, idx = scores._best_matches(scores._patches(hole), scores._patches(ones))
    assert float(best[0]) == pytest.approx(math.sqrt(8) / 3, rel=1e-6) and int(idx[0]) == 0
    # Ties go to the first patch; zero patches stay zero.
    best, idx = scores._best_matches(scores._patches(ones), scores._patches(torch.ones(1, 1, 3, 5)))
    assert int(idx[0]) == 0 and float(best[0]) == pytest.approx(1.0)
    assert float(scores._patches(torch.zeros(1, 2, 3, 3)).abs().sum()) == 0.0
    assert scores._patches(torch.ones(1, 2, 2, 5)).shape == (0, 18)


def test_lp_subsamples_at_a_regular_stride():
    f = torch.arange(1 * 1 * 12 * 12, dtype=torch.float32).reshape(1, 1, 12, 12) + 1
    every = scores._patches(f)  # 10 x 10 = 100 patches
    some = scores._patches(f, max_patches=25)
    assert some.shape == (25, 9) and torch.equal(some, every[torch.arange(25) * 4])


def test_lp_chunks_exactly(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(37, 5, generator=gen), torch.randn(23, 5, generator=gen)
    whole = scores._best_matches(q, k)
    monkeypatch.setattr(scores, "LP_CHUNK", 4)
    part = scores._best_matches(q, k)
    assert torch.equal(whole[1], part[1]) and torch.allclose(whole[0], part[0])


# --- the Scorer's end points -----------------------------------------------------------------
def test_identical_images_score_perfectly(net):
    img = _image(0)
    sc = scores.Scorer(img, img, net=net)(img)
    assert sc["cfsd"] == 0.0 and sc["content"] == 0.0
    assert sc["lp"] == pytest.approx(1.0, abs=1e-5) and sc["lp_coverage"] == 1.0


def test_the_photo_as_result_keeps_structure_and_misses_the_painting(net):
    c, s = _image(0), _image(1, (44, 52))
    sc = scores.Scorer(c, s, net=net)(c)
    assert sc["cfsd"] == 0.0 and sc["style"] == pytest.approx(1.0)
    assert sc["lp"] < 1.0 and sc["lp_coverage"] < 1.0


def test_a_shuffled_result_loses_structure(net):
    c, s = _image(0), _image(1, (44, 52))
    arr = np.array(c)
    shuffled = Image.fromarray(
        arr.reshape(-1, 3)[np.random.default_rng(0).permutation(arr.shape[0] * arr.shape[1])].reshape(
            arr.shape
        )
    )
    scorer = scores.Scorer(c, s, net=net)
    sc = scorer(shuffled)
    assert sc["cfsd"] > 0.0 and 0.0 < sc["lp"] < 1.0 and 0.0 < sc["lp_coverage"] <= 1.0
    assert scorer(shuffled) == sc  # deterministic
    # The painting itself is closer to the painting's patches than the shuffled photo.
    assert scorer(s)["lp"] > sc["lp"]


def test_extras_off_and_the_caffe_scale(net):
    img = _image(0)
    assert set(scores.Scorer(img, img, net=net, extras=False)(img)) == {
        "style",
        "content",
        "palette",
        "clipped",
    }
    assert scores.Scorer(img, img, net=net)._cfsd_scale == 1.0
    caffe = random_vgg("relu5_1", pooling="max", preprocess="caffe")
    assert scores.Scorer(img, img, net=caffe)._cfsd_scale == scores.CAFFE_TO_TORCH_SCALE
