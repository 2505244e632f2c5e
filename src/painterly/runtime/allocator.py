"""glibc's allocator: keep the memory a run frees for its next step (keep_freed_memory), and
stand aside for runs near the memory's limit (fit_allocator)."""

from __future__ import annotations

import functools
import os

# With keep_freed_memory the heap fragments: peaks measured against glibc's default, same runs:
# neighbour 1.09x at 256 px, 1.24x at 512, 1.28x at 768, 1.42x with --rotations, 1.47x at 1024;
# the Gatys default 1.04x at 512, 1.24x at 1024, 1.25x at 2048 tiled (512 px tiles).
KEPT_FACTOR = 1.5
KEEP_SHARE = 0.4  # keep_freed_memory stands aside for a run estimated above this share of the free memory
_keep = {"asked": False, "on": False}


@functools.lru_cache(maxsize=None)
def _glibc_mallopt():
    """glibc's mallopt, or None (another C library, whose mallopt numbers differ, or none)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc's own
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def _mallopt(keep: bool) -> bool:
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    if keep:
        return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))
    # glibc's defaults (its trim threshold then stays at 128 KiB instead of adapting)
    return bool(mallopt(m_mmap_max, 65536)) and bool(mallopt(m_trim_threshold, 128 * 1024))


def keep_freed_memory() -> bool:
    """Keep the memory a run frees for its next step, instead of handing it back to the kernel.

    glibc's malloc serves every block above 32 MiB (most of a 512 px run's activations) with its
    own mmap and unmaps it on free, so each step's tensors arrive as fresh pages that the kernel
    faults in and zeroes again: 20 million page faults and a quarter of the CPU time in the
    kernel for a 512 x 512 neighbour run. With mmap off and trimming raised, freed blocks stay
    in the heap for reuse. Measured side by side (2026-12-03, 2 cores, modern x the_scream at
    512 px, benchmarks/probes/bench_allocator.py): `--preset neighbour` 111.1 s -> 80.0 s, the Gatys
    default 106.1 s -> 106.7 s (no gain there), the same bytes out. The price is fragmentation
    (glibc 2.36's aligned allocations leave holes a block of the same size just misses): the
    peak RSS of a neighbour run is 24% higher at 512 x 512, 28% at 768 px, 47% at 1024 px (8.1
    GiB), a tiled 2048 px default run 25% (KEPT_FACTOR covers these). So `plan` turns it off
    again (glibc's default) for a run whose kept estimate is above KEEP_SHARE of the free
    memory, where a page fault costs little beside the run and the extra peak could matter.

    Process-wide, so only painterly's own processes call it (the CLI and its verbs, batch
    workers, Ray actors); a Python program may call it too. A no-op returning False off glibc
    or with PAINTERLY_RETURN_MEMORY=1 set.
    """
    if os.environ.get("PAINTERLY_RETURN_MEMORY"):
        return False
    _keep["asked"] = _keep["on"] = _mallopt(True)
    return _keep["on"]


def fit_allocator(need: int, avail: int) -> None:
    """keep_freed_memory for a run estimated at `need` bytes (glibc's default allocator) of
    `avail` (see its doc)."""
    if _keep["asked"]:
        keep = KEPT_FACTOR * need <= KEEP_SHARE * avail
        if keep != _keep["on"] and _mallopt(keep):
            _keep["on"] = keep
