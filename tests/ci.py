"""Skips that are failures under CI (CI=true, 1 or yes).

A test that cannot run here for want of an optional package or program skips locally with the
reason; in CI, where the test extras and programs are installed, the same condition is a failure,
so a regression (or a broken CI image) can never pass as a skip. The only skips CI allows are the
documented platform ones (`skipif(sys.platform == ...)`, root, ...), written as plain skipif.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`; under CI fail with it instead. Works at module level too."""
    if in_ci():
        pytest.fail(f"cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, reason: str):
    """import `module`, or skip_or_fail(reason) when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_or_fail(f"{reason} ({e})")


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def shared_images() -> Path:
    """The folder of full-size photographs and paintings next to the checkout (../shared/images),
    or skip_or_fail: CI provides it, so its absence there is a failure."""
    if not SHARED.is_dir():
        skip_or_fail(f"the shared images are absent ({SHARED})")
    return SHARED
