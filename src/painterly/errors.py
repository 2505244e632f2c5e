"""The exception types the library raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

import difflib
import os
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


def user_message(e: BaseException, debug_hint: str = "PAINTERLY_DEBUG=1 shows the traceback") -> tuple:
    """(one line for the user, exit status) for any exception: the one place that words them.

    The CLI prints the line after "painterly: error: "; the web page and batch log show it.
    A PainterlyError is the user's to fix (its own message and exit code); out-of-memory and
    interruption get advice; anything else is a bug, named by its type and first line.
    """
    if isinstance(e, PainterlyError):
        return " ".join(str(e).split()), e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", 130
    text = " ".join(str(e).split())
    if isinstance(e, MemoryError) or "out of memory" in text.lower() or "DefaultCPUAllocator" in text:
        return "out of memory; try a smaller --size (or --tile)", 1
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first[:300]}" + (f" ({debug_hint})" if debug_hint else ""), 1


NeuralStyleError = PainterlyError  # the name before the rename to painterly (kept for old code)


def shown_path(path) -> str:
    """A path as one printable line (control characters escaped)."""
    s = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return s if s.isprintable() else ascii(s)[1:-1]


def reason(e: BaseException) -> str:
    """An exception as a short, single-line reason."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    text = " ".join(text.split())
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
