"""A pause point for the test suite; nothing a user run ever reaches.

hold(point) returns at once unless both PAINTERLY_TEST_HOLD=<point> and
PAINTERLY_TEST_HOLD_FILE=<path> are set in the environment. Then, the first time this process
reaches that point, it writes its pid to <path> and waits until the file is deleted. A test uses
it to signal or kill a batch, video or CLI run at a known point (a given job, frame or tile)
instead of racing the machine's speed: a slow and a fast machine give the same verdict. The
points are the literal strings passed to hold() in batch/workers.py, video/verb.py and cli/main.py.
"""

from __future__ import annotations

import os
import time

HOLD = "PAINTERLY_TEST_HOLD"
HOLD_FILE = "PAINTERLY_TEST_HOLD_FILE"


def hold(point: str) -> None:
    if os.environ.get(HOLD) != point or not os.environ.get(HOLD_FILE):
        return
    path = os.environ.pop(HOLD_FILE)  # once per process
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)  # the test never reads a half-written pid
    while os.path.exists(path):  # signal handlers run during the sleep (PEP 475)
        time.sleep(0.01)
