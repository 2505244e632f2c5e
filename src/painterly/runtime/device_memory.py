"""The memory of a run on a GPU (CUDA, Apple's MPS): what the device has free, and what the run's
tensors will take there.

On the CPU (memory.py) the estimate is a fit to the peak resident memory of measured runs, which
includes the interpreter, torch's libraries and the allocator's slack (0.67 GB before any
image). On a GPU only the tensors count, and they follow from the layers' shapes: the
activations one forward pass saves for its backward pass (every convolution's output, the
ReLUs in place, the poolings' outputs and max pooling's int64 indices) and the backward pass's
gradient maps of the widest layer, per pixel of the evaluated area (the image, or one tile with
its halo), in the precision's element size; the image, its gradient and the optimiser's
vectors (L-BFGS: 2 * pairs * pixels * channels * 4 bytes of history); the content features,
the palette and style targets; the network's weights. `free_bytes` is what the device can give
now, counting the memory this process's caching allocator holds but does not use.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from painterly.options import LAYERS, channels, floats_per_pixel

# cuDNN's workspace (torch.backends.cudnn.benchmark tries algorithms needing up to a few hundred MB),
# the CUDA context's share that mem_get_info does not see yet, the caching allocator's rounding.
BASE = 512 * 1024**2
SAFETY = 1.2  # fragmentation of the caching allocator (blocks split, not merged across segments)
GRADIENT_MAPS = 2  # gradient maps of the widest layer alive at once in the backward pass
# The palette term (13 directions): its target at the painting's size and resampled, float32; the
# permutation (int64) and difference (float32) kept for the backward pass; its sort's keys and
# indices (int64) while it runs.
PALETTE = 13 * (2 * 4.0 + 8 + 4 + 24)
VECTORS = 10  # image-sized vectors: x, its gradient, the optimiser's (L-BFGS: the flat gradient,
# the previous one, the direction, its work copy; Adam: two moments), the guard's copies, the pyramid


# Set by the batch for its workers (processes or Ray actors) that share one GPU: how many do.
SHARE_ENV = "PAINTERLY_GPU_SHARE"


def _share() -> int:
    try:
        return max(1, int(os.environ.get(SHARE_ENV, "1")))
    except ValueError:
        return 1


def free_bytes(device) -> Optional[int]:
    """Memory a new allocation can use on `device` now (a torch.device), or None where the host's
    memory is the measure (the CPU; MPS on a torch without its memory queries, whose GPU shares
    the host's memory). CUDA: the device's free memory plus what this process's caching allocator
    has reserved but not allocated (freed tensors it keeps for reuse); MPS: the recommended
    maximum working set less what this process has allocated. A process sharing the GPU with
    others (SHARE_ENV = k) has at most 1/k of it, less what it has allocated itself."""
    import torch

    share = _share()
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = int(torch.cuda.memory_allocated(device))
        out = int(free) + max(0, int(torch.cuda.memory_reserved(device)) - allocated)
        return out if share == 1 else max(0, min(out, int(total) // share - allocated))
    if device.type == "mps":
        mps = getattr(torch, "mps", None)
        most = getattr(mps, "recommended_max_memory", None)
        used = getattr(mps, "current_allocated_memory", None)
        if most is None or used is None:  # torch < 2.5
            return None
        return max(0, int(most()) // share - int(used()))
    return None


def _upto(layers: Sequence[str]) -> list:
    return list(LAYERS[: max(LAYERS.index(l) for l in layers) + 1]) if layers else []


def _pool_floats(names: Sequence[str]) -> float:
    """Values per input pixel of the poolings' outputs (pool b halves block b's maps)."""
    return sum(floats_per_pixel([f"conv{n[4]}_1"]) / 4 for n in names if n.startswith("pool"))


def activation_bytes(layers: Sequence[str], elem: int, max_pooling: bool) -> float:
    """Bytes per pixel of the evaluated area that one forward and backward pass through the
    network up to the deepest of `layers` holds at its peak, in a precision of `elem` bytes."""
    names = _upto(layers)
    if not names:
        return 0.0
    convs = [n for n in names if n.startswith("conv")]
    saved = floats_per_pixel(convs) + _pool_floats(names)  # the ReLUs run in place
    widest = max(floats_per_pixel([n]) for n in convs)
    out = elem * (saved + GRADIENT_MAPS * widest)
    if max_pooling:
        out += 8.0 * _pool_floats(names)  # the indices, int64
    # the features the losses read, as float32 matrices (a copy under bf16), and their gradients
    return out + 4.0 * floats_per_pixel(list(dict.fromkeys(layers))) * (2 if elem < 4 else 1)


def forward_bytes(layers: Sequence[str], elem: int) -> float:
    """Bytes per pixel of a pass without gradient (the style targets): two maps of the widest
    layer at once, and the outputs kept."""
    names = _upto(layers)
    if not names:
        return 0.0
    widest = max(floats_per_pixel([n]) for n in names if n.startswith("conv"))
    return elem * 2 * widest + 4.0 * floats_per_pixel(list(dict.fromkeys(layers)))


def weights_bytes(layers: Sequence[str], elem: int) -> float:
    """The network's weights up to the deepest layer (fp32, and a low-precision copy under bf16)."""
    n, previous = 0, 3
    for name in _upto(layers):
        if name.startswith("conv"):
            c = channels(name)
            n += 9 * previous * c + c
            previous = c
    return n * (4.0 + (elem if elem < 4 else 0))


def style_target_bytes(style_layers: Sequence[str], regions: int) -> float:
    """Gram-sized targets (N x N float32) of every style layer and region (other statistics hold less)."""
    return 4.0 * sum(channels(l) ** 2 for l in style_layers) * max(1, regions)


def moved(value, device):
    """`value` (a tensor, or dicts, lists and tuples of them) with every tensor on `device`."""
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, value)
