"""What every terminal surface shares (cli, batch, video): option flags derived from
SPECS, a one-line-error parser, the progress bar and the stop-on-signal context.

Nothing here imports a surface, so a surface may import it without an import circle.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import shlex
import signal
import sys
import time
from typing import Sequence

from painterly.options import DEFAULTS, PRESETS, SPECS, Options, auto_scales, flag, job_default, schedule


# --- the command that reproduces a run ------------------------------------------------------
def command_line(content, styles: Sequence, output, options: Options, job: str = "transfer") -> str:
    """The `painterly` command that reproduces `options` (only non-default flags)."""
    words = ["painterly", job] + ([str(content)] if content is not None else []) + [str(s) for s in styles]
    words += ["-o", str(output)]
    for f in dataclasses.fields(Options):
        v, d = getattr(options, f.name), getattr(DEFAULTS, f.name)
        if v == d or job not in SPECS[f.name].jobs:
            continue
        if isinstance(v, bool):
            words.append(flag(f.name) if v else "--no-" + f.name.replace("_", "-"))
        elif v is not None:
            words += [flag(f.name), ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return " ".join(shlex.quote(w) for w in words)


# --- options derived from SPECS ----------------------------------------------------
def split_list(kind: type, field: str):
    def parse(text: str):
        if field == "scales" and text == "auto":
            return "auto"
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")

    return parse


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_option_flags(p: argparse.ArgumentParser, verb: str) -> None:
    """One flag per Options field the verb takes, its help, choices and default from SPECS."""
    for f in dataclasses.fields(Options):
        spec = SPECS[f.name]
        if verb not in spec.jobs:
            continue
        default = job_default(verb, f.name)  # as the verb runs it (content and texture start from noise)
        help_ = spec.help + (f" (default: {_show(default)})" if default not in (None, "", ()) else "")
        if f.type in ("bool", bool):
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif spec.item is not None:
            p.add_argument(flag(f.name), type=split_list(spec.item, f.name), default=None, help=help_)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            # A family of values (--device cuda:N) is no argparse choice: Spec.check words the error.
            choices = None if spec.pattern else spec.choices
            shown = dict(metavar="{" + ",".join(spec.forms) + "}") if spec.pattern else {}
            p.add_argument(flag(f.name), type=kind, default=None, choices=choices, help=help_, **shown)


def options_from_args(args: argparse.Namespace) -> Options:
    o = DEFAULTS.replace(**PRESETS[getattr(args, "preset", "fast") or "fast"].overrides)
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Options)
        if getattr(args, f.name, None) is not None
    }
    if given.get("scales") == "auto":
        given["scales"] = auto_scales(given.get("size", o.size))
    return o.replace(**given)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) that suggests the nearest spelling.

    Python 3.11's argparse has no suggestions (3.14's suggest_on_error); a mistyped verb,
    choice or flag gets "did you mean ...?" here.
    """

    def error(self, message):
        line = "".join(
            c if c.isprintable() else ascii(c)[1:-1] for c in message
        )  # a stray newline: still one line
        self.exit(2, f"painterly: error: {line}{self._suggestion(message)} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag is reported by the verb's own parser, so the
        suggestion and the help pointer are the verb's (argparse reports it at the root)."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            verbs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            verb = getattr(ns, verbs[0].dest, None) if verbs else None
            owner = verbs[0].choices.get(verb, self) if verb else self
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns

    def _suggestion(self, message: str) -> str:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            wrong, allowed = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
        else:
            unknown = re.search(r"unrecognized arguments: (\S+)", message)
            if not unknown or not unknown.group(1).startswith("-"):
                return ""
            wrong = unknown.group(1).split("=")[0]
            allowed = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        hint = difflib.get_close_matches(wrong, allowed, n=1, cutoff=0.6)
        return f"; did you mean '{hint[0]}'?" if hint else ""


# --- progress ----------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr: step, losses, time left."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled, self.stream = enabled, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_line = 0.0
        self.began = time.monotonic()
        self.width = 0  # of the last line drawn over with "\r" (a shorter one must blank it)

    def __call__(self, it) -> None:
        """One step's line. With several scales it names the scale and the step within it: the
        losses of a new scale are against that scale's targets (a jump there is no blow-up)."""
        done = it.step == it.total
        k, n = getattr(it, "scale", (1, 1))
        new_scale = n > 1 and getattr(it, "scale_step", (0, 0))[0] == 1
        if not self._due(done or new_scale):
            return
        width = 24
        fill = int(width * it.step / max(it.total, 1))
        l = it.losses
        where = f" scale {k}/{n} step {it.scale_step[0]}/{it.scale_step[1]}" if n > 1 else ""
        self._draw(
            f"[{'#' * fill}{'.' * (width - fill)}] {it.step}/{it.total}{where} {it.size[0]}x{it.size[1]} "
            f"content {l.get('content', 0):.3g} style {l.get('style', 0):.3g} total {l.get('total', 0):.4g} "
            f"{clock(it.elapsed)} elapsed, {clock(it.eta)} left",
            done,
        )

    def stage(self, what: str, i: int = 0, n: int = 0) -> None:
        """What the run is doing between steps (targets, tiles), from its first second: a new
        stage (one without parts: preparing, a scale's targets, the final losses) at once, a
        tile's line as often as the step lines."""
        if self._due(final=not n):
            tile = f", tile {i}/{n}" if n else ""
            self._draw(f"{what}{tile} ({clock(time.monotonic() - self.began)} elapsed)")

    def _due(self, final: bool = False) -> bool:
        """Whether to draw a line now: at most every 0.2 s on a terminal, 5 s in a log; always
        a final (or new) one."""
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last_line < (0.2 if self.tty else 5.0)):
            return False
        self.last_line = now
        return True

    def _draw(self, line: str, final: bool = False) -> None:
        """One line: redrawn in place on a terminal (blanking a longer one), appended in a log."""
        self.stream.write(
            ("\r" + line.ljust(self.width) + ("\n" if final else "")) if self.tty else line + "\n"
        )
        self.width = 0 if final else len(line)
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (shown with --quiet too), above the bar, which goes on below it."""
        self.stream.write(("\r" + text.ljust(self.width) + "\n") if self.tty and self.width else text + "\n")
        self.width = 0
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")


LONG_RUN_S = 600  # a run whose first measured estimate is longer gets a note
LARGE_RUN_BYTES = 8 * 1024**3  # a run whose memory estimate is larger (or over half what is free) gets a note


def time_note(it) -> str:
    """A note for a long run ("" when it is not long, or not yet known): at the second step (the
    first that measures a warmed-up pass) of the first of the schedule's last two scales. An
    earlier, smaller scale's steps are mostly fixed cost, and their rate scaled up by pixel count
    overstates the run: --preset neighbour's 64 px first scale read "about 46:08 more" for a run of
    a few minutes (512 px, 2026-12-06)."""
    k, n = it.scale
    if it.scale_step[0] != 2 or k < n - 1 or it.eta <= LONG_RUN_S:
        return ""
    return (
        f"painterly: note: this run will take about {clock(it.eta)} more (measured on its first steps); "
        "a smaller --size or fewer --iterations is faster"
    )


def memory_note(o: Options, job: str, content, styles) -> str:
    """A note, before a run starts, when it will need much memory ("" otherwise, or when the
    inputs cannot be sized: the run itself then says what is wrong). The memory is the one of
    the device the run will compute on (--device auto: a GPU when there is one), from the same
    check the run makes (memory.assess)."""
    from PIL import Image

    from painterly.errors import PainterlyError
    from painterly.net.device import pick_device
    from painterly.runtime import memory

    try:
        with Image.open(content if job != "texture" else styles[0]) as im:
            wh = im.size
        style_whs = []
        for s in styles:
            with Image.open(s) as im:
                style_whs.append(im.size)
        plan = memory.assess(o, job, wh, style_whs, device=pick_device(o.device))
    except (OSError, ValueError, PainterlyError):
        return ""
    if plan.need <= LARGE_RUN_BYTES and plan.need <= plan.available / 2:
        return ""
    (w, h), gpu = plan.size, not plan.device.startswith("cpu")
    return (
        f"painterly: note: a {w}x{h} run needs about {plan.need / 1024**3:.1f} GiB of "
        f"{'GPU memory (' + plan.device + ')' if gpu else 'memory'} "
        f"({plan.available / 1024**3:.1f} GiB available"
        f"{f'; evaluated in tiles of {plan.tile} px' if plan.tile else ''}) "
        "and takes long; a smaller --size needs less"
    )


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# --- signals ---------------------------------------------------------------------------------
class Interrupt:
    """SIGINT/SIGTERM during a run: stop after the current iteration (the CLI owns signals)."""

    def __init__(self):
        self.hit = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.hit:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def input_notes(o: Options, job: str, content, styles) -> list:
    """Notes on inputs a run will not use as they are: an image enlarged 2x or more (its detail
    is blurred, not invented) and a style image that is mostly transparent (painted as white).
    Shown on stderr and kept in the report; none for an input that cannot be read (the run says)."""
    import os

    from PIL import Image, ImageStat

    side = schedule(o)[-1][0]
    roles = ([("content image", content, side)] if job != "texture" and content is not None else []) + [
        ("style image", s, max(16, round(side * o.style_scale))) for s in (styles if job != "content" else [])
    ]
    notes = []
    for role, path, want in roles:
        try:
            with Image.open(path) as im:
                w, h = im.size
                alpha = (
                    ImageStat.Stat(im.convert("RGBA").getchannel("A")).mean[0] / 255
                    if "A" in im.getbands() or "transparency" in im.info
                    else 1.0
                )
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if want >= 2 * max(w, h):
            how = "--size" if role == "content image" else "--size x --style-scale"
            notes.append(
                f"{role} '{os.path.basename(str(path))}' is {w}x{h} px and is enlarged "
                f"{want / max(w, h):.0f}x to {want} px "
                f"({how}): its detail is blurred, not invented"
            )
        if role == "style image" and alpha < 0.5:
            notes.append(
                f"style image '{os.path.basename(str(path))}' is {100 * (1 - alpha):.0f}% "
                f"transparent; transparent parts are "
                "painted as white"
            )
    return notes
