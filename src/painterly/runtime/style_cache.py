"""The style targets a Stylizer remembers, by the style image's pixels (batch, video frames and the
web page run many times with one painting and compute its targets once)."""

from __future__ import annotations

import collections
import hashlib
import threading

import torch

from painterly.runtime.device_memory import moved

STYLE_CACHE = 32  # style targets kept per Stylizer (about 2.5 MB each for the paper's layers)


class StyleCache(collections.OrderedDict):
    """{(pixels' sha256, shape, *key_extra): targets}, the STYLE_CACHE most recently made. On a
    GPU the entries are kept in host memory (the memory plan counts a run's own targets, not the
    cache's) and the last one used also on the device, for the next run of that style."""

    def __init__(self, device: torch.device, lock: threading.Lock, size: int = STYLE_CACHE):
        super().__init__()
        self.device, self.lock, self.size = device, lock, size
        self.near: tuple = (None, None)  # (key, targets) of the last style used, on the device

    def reset(self) -> None:
        """Forget every entry (the network changed)."""
        self.clear()
        self.near = (None, None)

    def lookup(self, key_extra: tuple):
        """(style tensor, compute) -> its targets: remembered, or compute(style) and remembered."""

        def lookup(s: torch.Tensor, compute):
            key = (
                hashlib.sha256(s.detach().float().cpu().numpy().tobytes()).hexdigest(),
                tuple(s.shape),
            ) + key_extra
            on_host = self.device.type == "cpu"
            with self.lock:
                found, near = self.get(key), self.near
            if near[0] == key:
                return near[1]
            if found is None:
                found = compute(s)
                with self.lock:
                    self[key] = found if on_host else moved(found, "cpu")
                    while len(self) > self.size:
                        self.popitem(last=False)
            elif not on_host:
                found = moved(found, self.device)
            if not on_host:
                with self.lock:
                    self.near = (key, found)
                if self.device.type == "cuda" and near[0] is not None:
                    torch.cuda.empty_cache()  # the previous style's device copy, for other processes
            return found

        return lookup
