"""The page's settings (what a server allows: sizes, uploads, concurrency, queue) and their defaults."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from painterly.cli import verbs
from painterly.errors import InvalidOption
from painterly.options import SPECS, Options
from painterly.web.queue import JobQueue
from painterly.web.uploads import (
    check_upload,
)

DEFAULT_QUEUE_SIZE = verbs.FLAGS[
    "queue_size"
].default  # jobs that may wait for a free worker, beyond the running ones


POLL_SECONDS = 0.1  # how often a page's stream looks for news from its job


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def job_devices(device: str = "auto") -> List[str]:
    """The GPUs the page's jobs run on for --device `device`: every CUDA device this process sees
    (auto, cuda; "cuda" alone when there is one), cuda:N alone, Apple's GPU (auto, mps); none on
    the CPU."""
    import torch

    device = str(device)
    if device.startswith("cuda:"):
        return [device]
    if device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 0:
        n = torch.cuda.device_count()
        return ["cuda"] if n == 1 or not _indexed() else [f"cuda:{i}" for i in range(n)]
    mps = getattr(torch.backends, "mps", None)
    if device in ("auto", "mps") and mps is not None and mps.is_available():
        return ["mps"]
    return []


def _indexed() -> bool:
    """Whether --device takes cuda:N (else every job computes on the first GPU)."""
    try:
        SPECS["device"].check("device", "cuda:0")
        return True
    except InvalidOption:
        return False


def default_concurrency(device: str = "auto") -> int:
    """Jobs optimising at once by default: one per GPU (a GPU runs one job's passes at a time, and
    each job needs its memory), else one per CPU."""
    return len(job_devices(device)) or cpu_count()


@dataclass
class Settings:
    """Everything `build_app` was given; kept on the app as `app.painterly`."""

    concurrency: int
    queue_size: int
    weights: Optional[str]
    options: Options
    max_bytes: int
    max_pixels: int
    max_styles: int
    max_size: int
    max_iterations: int
    preview_every: int
    root: Path
    outputs: Path
    jobs: JobQueue
    page: dict  # what launch passes to Gradio for the page's look: theme, css

    def check(self, path, role: str):
        return check_upload(path, role, root=self.root, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
