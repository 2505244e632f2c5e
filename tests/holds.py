"""Stopping a subprocess at a known point (painterly.testhooks): the run writes its pid to a file
and waits there until the test deletes the file; the test signals it in between. The deadlines
below only keep a broken run from hanging the suite; nothing asserts how long anything took."""

from __future__ import annotations

import time
from pathlib import Path

from painterly import testhooks

DEADLINE_S = 300


def hold_env(point: str, marker: Path) -> dict:
    """Environment variables that make a child process hold at `point`."""
    return {testhooks.HOLD: point, testhooks.HOLD_FILE: str(marker)}


def wait_held(marker: Path, proc, drain=None) -> int:
    """The pid of the process held at the marker; fails if `proc` ends first. `drain()` is
    called while waiting (e.g. to read a pty that would otherwise fill up)."""
    deadline = time.monotonic() + DEADLINE_S
    while not marker.exists():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the run ended (code {proc.returncode}) before its hold point: {err}")
        assert time.monotonic() < deadline, "the run never reached its hold point"
        if drain is not None:
            drain()
        time.sleep(0.02)
    return int(marker.read_text())


def release(marker: Path) -> None:
    marker.unlink()


def wait_gone(pid: int) -> None:
    """Until process `pid` has exited (a zombie waiting for its reaper counts as gone)."""
    import psutil

    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)
