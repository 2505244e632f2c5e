"""VGG-19 with named layers, truncated after the deepest layer a run needs.

The network takes RGB images in [0, 1], shape (B, 3, H, W), and applies the preprocessing
of its weight set itself ("torch": ImageNet mean/std; "caffe": BGR, 0-255, minus the mean
pixel), so the optimised variable is always the image as the user sees it.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LAYERS, POOLING, PREPROCESS, validate_layers
from .errors import InvalidOption, WeightsError, choice

# Index of each named layer in torchvision's `vgg19().features` (the weight files' layout).
TORCHVISION_INDEX: Dict[str, int] = {name: i for i, name in enumerate(LAYERS)}
CONV_LAYERS = tuple(n for n in LAYERS if n.startswith("conv"))
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def deepest(layers: Iterable[str]) -> str:
    """The layer, among `layers`, that comes last in the network."""
    return max(validate_layers(layers), key=LAYERS.index)


class VGG19(nn.Module):
    """VGG-19's 16 convolutions and 5 poolings as named modules, up to `last`.

    forward(x, layers) returns {name: activation} for the requested layers and stops
    after the deepest one.
    """

    def __init__(self, last: str = "pool5", pooling: str = "avg", preprocess: str = "torch"):
        super().__init__()
        choice("pooling", pooling, POOLING)
        self.preprocess = choice("preprocess", preprocess, PREPROCESS)
        self.pooling = pooling
        self.names = LAYERS[: LAYERS.index(choice("layer", last, LAYERS)) + 1]
        self.layers = nn.ModuleDict()
        in_ch = 3
        for name in self.names:
            block = int(name[4])  # conv1_1, relu1_1, pool1: the digit after the prefix
            if name.startswith("conv"):
                out_ch = _CHANNELS[block]
                self.layers[name] = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                in_ch = out_ch
            elif name.startswith("relu"):
                self.layers[name] = nn.ReLU()
            else:
                # Departure (the paper's own choice, kept as an option): the paper replaces
                # VGG's max pooling by average pooling; --pooling max restores VGG.
                self.layers[name] = nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2)
        mean, std = (TORCH_MEAN, TORCH_STD) if preprocess == "torch" else (CAFFE_MEAN_BGR, (1.0,) * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def convs(self):
        return [(n, m) for n, m in self.layers.items() if isinstance(m, nn.Conv2d)]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the input the weights expect."""
        if self.preprocess == "caffe":
            x = x.flip(1) * 255.0
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
        wanted = set(layers)
        last = max(wanted, key=LAYERS.index)
        out: Dict[str, torch.Tensor] = {}
        x = self.prepare(x)
        prev = None
        for name, module in self.layers.items():
            if name.startswith("relu"):
                # In place (saves one activation per layer) unless the conv output was asked for.
                x = F.relu(x, inplace=prev not in wanted)
            else:
                x = module(x)
            if name in wanted:
                out[name] = x
            if name == last:
                break
            prev = name
        return out


def state_dict_from_torchvision(sd: Mapping[str, torch.Tensor], last: str = "pool5") -> Dict[str, torch.Tensor]:
    """Map torchvision's `features.{i}.weight` keys (or bare `{i}.weight`) to named layers."""
    out = {}
    for name in LAYERS[: LAYERS.index(last) + 1]:
        if not name.startswith("conv"):
            continue
        i = TORCHVISION_INDEX[name]
        for part in ("weight", "bias"):
            for key in (f"features.{i}.{part}", f"{i}.{part}", f"layers.{name}.{part}"):
                if key in sd:
                    out[f"layers.{name}.{part}"] = sd[key]
                    break
            else:
                raise WeightsError(f"weights file lacks '{f'features.{i}.{part}'}' ({name}); "
                                   "expected torchvision's VGG-19 layout")
    return out


def random_vgg(last: str = "pool5", pooling: str = "avg", preprocess: str = "torch", seed: int = 0) -> VGG19:
    """A VGG-19 with seeded random weights (He-normal, fan-in): for tests and benchmarks.

    It yields textures rather than art, but the mathematics and the cost are the same.
    """
    net = VGG19(last, pooling, preprocess)
    gen = torch.Generator().manual_seed(seed)
    for _, conv in net.convs():
        fan_in = conv.weight[0].numel()
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.01)
    return net


def load_vgg(state_dict: Mapping[str, torch.Tensor], last: str = "pool5", pooling: str = "avg",
             preprocess: str = "torch") -> VGG19:
    """A VGG19 truncated after `last` with weights from a torchvision-layout state dict."""
    net = VGG19(last, pooling, preprocess)
    mapped = state_dict_from_torchvision(state_dict, last)
    expected = net.state_dict()
    for key, value in mapped.items():  # name the layer and the shapes, not torch's summary
        layer, part = key.split(".")[1:]
        want = expected[key]
        if value.shape != want.shape:
            raise WeightsError(f"{layer} {part} has shape {_dims(value)}, but VGG-19 needs {_dims(want)}")
        if not value.is_floating_point():
            raise WeightsError(f"{layer} {part} holds {str(value.dtype).replace('torch.', '')} values, "
                               "not floating-point weights")
        if not torch.isfinite(value).all():
            raise WeightsError(f"{layer} {part} holds NaN or infinite values")
    net.load_state_dict(mapped, strict=True)
    return net


def _dims(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


@torch.no_grad()
def filter_means(net: VGG19, images: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Per-filter mean activation of every ReLU, averaged over `images` (each (1,3,H,W)).

    Each image counts equally whatever its size: the mean over its positions, then over images.
    """
    relus = [n for n in net.names if n.startswith("relu")]
    sums = {n: 0.0 for n in relus}
    for img in images:
        feats = net(img, relus)
        for n in relus:
            sums[n] = sums[n] + feats[n].float().mean(dim=(0, 2, 3))
    return {n: s / len(images) for n, s in sums.items()}


@torch.no_grad()
def normalize_vgg(net: VGG19, images: Sequence[torch.Tensor] = (), floor: float = 0.01,
                  means: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """The paper's normalised network, in place: every filter's mean activation becomes 1.

    Filter k of conv l is divided by its mean ReLU activation c_k (weights and bias; ReLU and
    pooling commute with positive scales) and the next conv's input weights are multiplied by
    c_k, so the function computed by the layers after is unchanged.

    The means come from `means` (a run uses `reference_means`: fixed per network) or are
    measured here on `images`. Measuring all layers in one pass equals the authors' layer-by-layer procedure,
    because each rescaling leaves the later layers' activations unchanged.
    Departure: a few images leave some filters (almost) silent, and dividing by a mean near 0
    would blow their responses up by factors of 1e4 and more, so each mean is floored at
    `floor` times the layer's average filter mean; a filter silent on these images (mean 0)
    keeps scale 1. ImageNet's millions of images make this moot in the paper.
    Returns the scales {relu_name: c}.
    """
    means = filter_means(net, images) if means is None else means
    convs = net.convs()
    scales = {}
    for j, (name, conv) in enumerate(convs):
        relu = "relu" + name[4:]
        if relu not in means:
            break
        c = means[relu].to(conv.weight.dtype)
        c = torch.where(c > 0, c.clamp_min(floor * float(c.mean())), torch.ones_like(c))
        scales[relu] = c
        conv.weight.div_(c.view(-1, 1, 1, 1))
        conv.bias.div_(c)
        if j + 1 < len(convs):
            convs[j + 1][1].weight.mul_(c.view(1, -1, 1, 1))
    return scales


# --- per-network statistics for the normalisation, fixed once per weights set ----------------
DATA = Path(__file__).with_name("data")
REFERENCE_SIDES = (256, 512)  # long sides at which the reference means are measured


def means_file(sha256: str) -> Path:
    """Where the shipped reference means of a weights set live (by the first 12 hex of its hash)."""
    return DATA / f"means-{sha256[:12]}.pt"


@torch.no_grad()
def reference_means(net: VGG19, sha256: str, pooling: str) -> Dict[str, torch.Tensor]:
    """Per-filter mean ReLU activations of `net`'s weights, fixed per weights set and pooling.

    Departure: the paper measured these means over ImageNet. Here they are measured once per
    network, not per run (so a batch or a video is normalised identically for every image):
    for the original weights they ship with the package (data/means-*.pt, measured by
    benchmarks/make_means.py on six photographs and paintings at 256 and 512 px); for any
    other weights they are measured on the two bundled demo images at the same sides.
    """
    key = (sha256, pooling, float(net.convs()[0][1].weight.double().sum()))  # the weights' identity
    cached = _MEASURED.get(key)
    if cached is not None and all("relu" + name[4:] in cached for name, _ in net.convs()):
        return cached
    path = means_file(sha256)
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        table = stored.get(pooling, {})
        if all("relu" + name[4:] in table for name, _ in net.convs()):
            return {k: v.float() for k, v in table.items()}
    from . import assets, images as _images  # images imports config only; no cycle at import time

    means = measure_means(net, [_images.load_image(p) for p in assets.demo_images()])
    _MEASURED[key] = means
    return means


# Means measured for weights without a shipped file, per (sha256, pooling, weights' checksum):
# measuring costs seconds, and batch runs, figures and tests build the same network many times.
_MEASURED: Dict[tuple, Dict[str, torch.Tensor]] = {}


@torch.no_grad()
def measure_means(net: VGG19, pil_images, sides: Sequence[int] = REFERENCE_SIDES) -> Dict[str, torch.Tensor]:
    """filter_means over `pil_images` (PIL), each resized to every long side in `sides`."""
    from . import images as _images

    dev = next(net.parameters()).device
    ts = [_images.to_tensor(_images.resize_long_side(im, s)).to(dev) for im in pil_images for s in sides]
    return {k: v.cpu() for k, v in filter_means(net, ts).items()}


# --- execution settings -------------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidOption("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidOption("--device mps: no MPS device is available")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 natively: AVX-512 BF16 or AMX (through oneDNN) on a CPU,
    Ampere or newer on CUDA (not the emulated bf16 of older GPUs)."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.4 has no emulation and no such argument
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():
            return False
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


@dataclass(frozen=True)
class Autocast:
    """A context factory (what feature_fn's `amp` takes): autocast to `dtype` on `device_type`."""

    device_type: str
    dtype: torch.dtype

    def __call__(self):
        return torch.autocast(self.device_type, dtype=self.dtype)


def autocast_for(precision: str, device: torch.device):
    """bf16 autocast for the convolutions (Grams and losses stay fp32: as_matrix casts up).

    "auto": bf16 where the device computes it natively, else fp32; "fp32": never; "bf16": always
    (on a CPU without native bf16 it is emulated: same results, slower).
    """
    native = native_bf16(device)
    use = precision == "bf16" or (precision == "auto" and native)
    if use and not native and device.type != "cpu":
        raise InvalidOption(f"--precision bf16 is not supported on {device.type}")
    return Autocast(device.type, torch.bfloat16) if use else contextlib.nullcontext



def feature_fn(net: VGG19, to_net=None, channels_last: bool = False, amp=contextlib.nullcontext,
               compile: bool = False):
    """features(x, layers) -> {layer: activation}: input adaptation, memory layout, precision.

    Under autocast (`amp` an Autocast) the convolutions use a copy of `net` whose weights are
    already in the low precision: autocast casts parameters that need no gradient again on
    every call. The copy is made on first use and again only when `net`'s weights change (the
    normalisation rescales them in place). `compile`: torch.compile the network for the passes
    that need gradients (the optimisation steps), one specialisation per image shape; the
    one-off passes without gradients (targets, final losses) stay eager and compile nothing.
    """
    low = getattr(amp, "dtype", None)
    cache: dict = {}

    def network() -> VGG19:
        if low is None:
            return net
        version = tuple(p._version for p in net.parameters())
        if cache.get("version") != version:
            shadow = copy.deepcopy(net)
            for _, conv in shadow.convs():
                conv.to(low)
            cache.update(version=version, net=shadow, compiled=None)
        return cache["net"]

    def features(x: torch.Tensor, layers) -> Dict[str, torch.Tensor]:
        x = to_net(x) if to_net else x
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n = network()
        if compile and torch.is_grad_enabled():
            if cache.get("compiled_for") is not n:
                cache.update(compiled=torch.compile(n, dynamic=False), compiled_for=n)
            n = cache["compiled"]
        with amp():
            return n(x, layers)

    return features
