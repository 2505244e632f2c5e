"""Where and in what precision a run computes: the device, native bf16, autocast; the settings
that make a CUDA run give the same bytes every time; and the few things a device lacks (Apple's
MPS: float64, eigh, bicubic resizing on older torch) done on the host, the CPU.

Nothing here changes the CPU's numbers: on the CPU every helper is the plain torch call.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from painterly.errors import InvalidOption
from painterly.options import DEVICE_INDEXED

HOST = torch.device("cpu")
# Device types without float64 (Metal has none) and without linalg.eigh/eigvalsh, Cholesky and
# (before torch 2.3 or so) bicubic resizing: their float64 work and those ops run on the host.
# tests/test_devices.py adds "meta" here to pretend a run is on MPS.
NO_FLOAT64 = {"mps"}


# --- the device ---------------------------------------------------------------------------------------
def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(name: str) -> torch.device:
    """The torch device of --device: auto (CUDA, else MPS, else the CPU), cpu, cuda (the current
    CUDA device), cuda:N or mps; InvalidOption (one line) when it is not there. A CUDA device
    comes back with its index (cuda:0), as the tensors on it report it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" or re.fullmatch(DEVICE_INDEXED, name):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "none is visible"
            raise InvalidOption(f"--device {name}: no CUDA device is available ({why}); use --device cpu")
        n = torch.cuda.device_count()
        index = torch.cuda.current_device() if name == "cuda" else int(name.split(":")[1])
        if index >= n:
            raise InvalidOption(
                f"--device {name}: this machine has {n} CUDA device{'s' if n != 1 else ''} "
                f"(cuda:0{f' to cuda:{n - 1}' if n > 1 else ''})"
            )
        return torch.device("cuda", index)
    if name == "mps" and not _mps_available():
        raise InvalidOption(
            "--device mps: no MPS device is available (Apple Silicon, macOS 12.3+); use --device cpu"
        )
    return torch.device(name)


def configure(device: torch.device, deterministic: bool = True) -> None:
    """The process-wide settings a run on `device` needs (nothing on the CPU or MPS).

    On CUDA, deterministic (the default, --deterministic): deterministic algorithms, cuDNN's
    deterministic kernels and no benchmarking (which picks kernels by timing, so by chance), and
    cuBLAS's fixed workspace (CUBLAS_WORKSPACE_CONFIG, read by cuBLAS when it starts: it must
    be set before the process's first matrix product on the GPU; an existing value is kept).
    warn_only: an op torch has no deterministic CUDA kernel for warns instead of failing the
    run (the ones this package uses have a deterministic form: see `resize`).
    --no-deterministic: cuDNN benchmarks and picks the fastest kernels (faster, not repeatable).
    TF32 is off either way: --precision fp32 means IEEE fp32 (TF32 keeps 10 bits of mantissa),
    and the parts of a bf16 run kept in fp32 (Grams, losses, the final losses) stay fp32 too.
    These are process-wide torch settings (the last Stylizer to run sets them), applied when a
    Stylizer is made and before each of its runs.
    """
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# --- precision ---------------------------------------------------------------------------------------
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


def precision_of(amp) -> str:
    """The precision a run's convolutions use ("bf16" or "fp32"), from autocast_for's answer."""
    return "bf16" if getattr(amp, "dtype", None) == torch.bfloat16 else "fp32"


# --- what a device lacks, done on the host ---------------------------------------------------------------
def has_float64(device) -> bool:
    return torch.device(device).type not in NO_FLOAT64


def wide_dtype(device) -> torch.dtype:
    """The dtype of sums over many positions: float64, or float32 on a device without it (MPS).
    Departure on MPS only: such sums stay on the device in float32, where moving the features to
    the host would cost more than the digits are worth."""
    return torch.float64 if has_float64(device) else torch.float32


def wide(t: torch.Tensor) -> torch.Tensor:
    """t in float64 for small algebra (N x N matrices, eigenvalues): on its own device, or on the
    host for a device without float64 (MPS), whose result the caller moves back (`.to(x)`).
    Differentiable: autograd carries the gradient back across the copy."""
    return t.double() if has_float64(t.device) else t.to(HOST).double()


def on_host_if_unsupported(fn, *args, **kwargs):
    """fn(*args, **kwargs); where a tensor argument lives on a device without float64 (MPS), fn
    runs on the host with every tensor argument copied there, and its tensor results come back
    to that device (float64 ones as float32). The colour steps run so: float64 and eigh, as on
    the CPU, for images small enough that the copies cost little."""
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
    if device is None or has_float64(device):
        return fn(*args, **kwargs)
    out = fn(*[a.to(HOST) if isinstance(a, torch.Tensor) else a for a in args], **kwargs)
    return _back(out, device)


def _back(out, device):
    if isinstance(out, torch.Tensor):
        return (out.float() if out.dtype == torch.float64 else out).to(device)
    if isinstance(out, (tuple, list)):
        return type(out)(_back(o, device) for o in out)
    return out


def resize(x: torch.Tensor, size, mode: str, align_corners=None) -> torch.Tensor:
    """F.interpolate(x, size, mode, align_corners) (x: (B, C, H, W), size: (h, w)), except where
    the device lacks the kernel or its determinism:

    - bicubic on a device without float64 (MPS, whose bicubic kernel older torch lacks): on the host;
    - bilinear on CUDA under deterministic algorithms (`configure`): as two matrix products
      (`_bilinear_matrices`), because the backward of CUDA's bilinear kernel adds with atomics in
      no fixed order (torch has no deterministic one). Departure on CUDA only: the same weights
      as the kernel's, summed in another order (a rounding's difference); the CPU keeps the kernel.
    """
    if mode == "bicubic" and not has_float64(x.device):
        return on_host_if_unsupported(F.interpolate, x, size=size, mode=mode, align_corners=align_corners)
    if mode == "bilinear" and x.device.type == "cuda" and torch.are_deterministic_algorithms_enabled():
        ry = _bilinear_matrix(x.shape[-2], size[0], bool(align_corners), x)
        rx = _bilinear_matrix(x.shape[-1], size[1], bool(align_corners), x)
        return ry @ x @ rx.t()
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def _bilinear_matrix(n_in: int, n_out: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in): 1-D linear interpolation as torch's bilinear kernel does it (no antialias):
    output i reads input (i + 1/2) n_in / n_out - 1/2 (clamped at 0), or i (n_in - 1) / (n_out - 1)
    with aligned corners, between its two neighbours."""
    i = torch.arange(n_out, device=like.device, dtype=torch.float32)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(i)
    else:
        src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    lo = src.floor().clamp_max(n_in - 1)
    hi = (lo + 1).clamp_max(n_in - 1)
    t = (src - lo)[:, None]
    j = torch.arange(n_in, device=like.device, dtype=torch.float32)[None]
    m = (1 - t) * (j == lo[:, None]) + t * (j == hi[:, None])  # both on one input at the edge: 1
    return m.to(like.dtype)
