"""VGG-19 with named layers, truncated after the deepest layer a run needs.

The network takes RGB images in [0, 1], shape (B, 3, H, W), and applies the preprocessing
of its weight set itself ("torch": ImageNet mean/std; "caffe": BGR, 0-255, minus the mean
pixel), so the optimised variable is always the image as the user sees it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Dict, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from painterly.errors import WeightsError, choice
from painterly.options import LAYERS, POOLING, PREPROCESS, validate_layers

# Index of each named layer in torchvision's `vgg19().features` (the weight files' layout).
TORCHVISION_INDEX: Dict[str, int] = {name: i for i, name in enumerate(LAYERS)}
CONV_LAYERS = tuple(n for n in LAYERS if n.startswith("conv"))
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def conv_flop_per_pixel(last: str, half_after: Optional[str] = None) -> float:
    """Multiply-adds x 2 of the convolutions up to `last` per input pixel (forward only); with
    `half_after` the layers after it at half resolution (VGG19.forward)."""
    total, in_ch, share = 0.0, 3, 1.0
    for name in LAYERS[: LAYERS.index(last) + 1]:
        if name.startswith("conv"):
            out_ch = _CHANNELS[int(name[4])]
            total += 2 * in_ch * out_ch * 9 * share
            in_ch = out_ch
        elif name.startswith("pool"):
            share /= 4
        if name == half_after:
            share /= 4
    return total


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

    def forward(
        self, x: torch.Tensor, layers: Sequence[str], half_after: Optional[str] = None
    ) -> Dict[str, torch.Tensor]:
        """{name: activation} of `layers`. half_after: a layer after which the activations are
        halved in resolution (a 2x2 average, options --deep-split): the deeper layers then see
        a half-resolution copy of what the shallow ones see, for about half the work."""
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
            if name == half_after:
                # Departure from the paper (--deep-split): every layer after this one runs on a
                # 2x2 average of its activations. ceil_mode keeps an odd row or column.
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            prev = name
        return out


def state_dict_from_torchvision(
    sd: Mapping[str, torch.Tensor], last: str = "pool5"
) -> Dict[str, torch.Tensor]:
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
                raise WeightsError(
                    f"weights file lacks '{f'features.{i}.{part}'}' ({name}); "
                    "expected torchvision's VGG-19 layout"
                )
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


def load_vgg(
    state_dict: Mapping[str, torch.Tensor],
    last: str = "pool5",
    pooling: str = "avg",
    preprocess: str = "torch",
) -> VGG19:
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
            raise WeightsError(
                f"{layer} {part} holds {str(value.dtype).replace('torch.', '')} values, "
                "not floating-point weights"
            )
        if not torch.isfinite(value).all():
            raise WeightsError(f"{layer} {part} holds NaN or infinite values")
    net.load_state_dict(mapped, strict=True)
    return net


def _dims(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def feature_fn(
    net: VGG19, to_net=None, channels_last: bool = False, amp=contextlib.nullcontext, compile: bool = False
):
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

    def features(x: torch.Tensor, layers, half_after: Optional[str] = None) -> Dict[str, torch.Tensor]:
        x = to_net(x) if to_net else x
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        n = network()
        if compile and torch.is_grad_enabled():
            if cache.get("compiled_for") is not n:
                cache.update(compiled=torch.compile(n, dynamic=False), compiled_for=n)
            n = cache["compiled"]
        with amp():
            return n(x, layers, half_after) if half_after else n(x, layers)

    return features
