"""The page's settings (what a server allows: sizes, uploads, concurrency, queue) and their defaults."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from painterly.cli import verbs
from painterly.options import Options
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
