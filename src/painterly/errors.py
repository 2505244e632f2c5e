"""The exception types the library raises; the CLI turns each into one line and an exit code."""
from __future__ import annotations

import difflib
from typing import Iterable


class PainterlyError(Exception):
    """Base class: a problem the user can fix. Its message is one line."""

    exit_code = 2


class InvalidOption(PainterlyError, ValueError):
    """An option value outside its allowed set or range."""


class ImageError(PainterlyError):
    """An input image that is missing, empty, truncated, too large or not an image."""


class OutputError(PainterlyError):
    """An output that cannot be written (directory missing or not writable, bad extension)."""


class WeightsError(PainterlyError):
    """Weights that cannot be downloaded, fail their hash check, or do not load."""


class ResourceError(PainterlyError):
    """A run that would not fit in memory."""


class Stop(Exception):
    """Raise from a callback to end a run early; the library returns the current iterate."""


def choice(kind: str, value: str, allowed: Iterable[str]) -> str:
    """Return `value` if it is in `allowed`, else raise InvalidOption naming the choices."""
    allowed = tuple(allowed)
    if value in allowed:
        return value
    hint = difflib.get_close_matches(str(value), allowed, n=1)
    did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
    raise InvalidOption(f"unknown {kind} '{value}'{did_you_mean} (valid: {', '.join(allowed)})")


NeuralStyleError = PainterlyError  # the name before the rename to painterly (kept for old code)
