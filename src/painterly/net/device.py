"""Where and in what precision a run computes: the device, native bf16, autocast."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from painterly.errors import InvalidOption


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
        checks = (
            getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        )
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
