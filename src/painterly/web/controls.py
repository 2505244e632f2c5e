"""The page's controls, derived from the option table `painterly.options.SPECS`.

Every option with `web=True` is one control: its label comes from its name, its info text
from its help, its choices and range from its Spec, its kind from its type (a choice is a
radio or a dropdown, a flag a checkbox, a list a text box of comma-separated values, a number
a number box). The page adds one control of its own, "ratio": the content/style balance as
log10(alpha / beta) on a slider. Values are turned back into Options here, and checked by
`methods.validate` (the one validation); its messages name the page's labels, not flags.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence

from painterly import methods
from painterly.errors import InvalidOption, choice
from painterly.options import DEFAULTS, INITS, LAYERS, PRESETS, SPECS, Options, auto_scales, flag, schedule

# --- the page's own settings -------------------------------------------------------------------
MAX_SIZE = 1024  # longest output side the page offers
MAX_ITERATIONS = 2000  # iterations per scale the page offers
RATIO_SPAN = 4  # the ratio slider covers the default's power of ten +- this many decades
RATIO_LABEL = "Content : style ratio, log10(α/β)  (← more style · more content →)"
# The controls shown above "More options", in this order; the others follow in SPECS' order.
MAIN = ("size", "iterations", "ratio", "preserve_color")
# Choices the page offers where the option itself takes more: the page never takes a path.
PAGE_CHOICES = {"init": INITS, "content_layers": LAYERS, "style_layers": LAYERS}
_EMPTY = {
    "scales": "empty: from the size (or auto)",
    "style_blend": "empty: equal weights",
}  # what empty means
_WORDS = {
    "tv": "TV",
    "lbfgs": "L-BFGS",
    "color": "colour",
    "init": "initial image",
}  # how a name reads as a label

WEB_OPTIONS = tuple(name for name, spec in SPECS.items() if spec.web)
# The controls, in the order the Start handler (and the API) takes them after the files.
CONTROLS = MAIN + tuple(name for name in WEB_OPTIONS if name not in MAIN)
assert set(CONTROLS) == set(WEB_OPTIONS) | {"ratio"}


def label(name: str) -> str:
    """The page's label of a control: its name in words ("tv_weight" -> "TV weight")."""
    if name == "ratio":
        return RATIO_LABEL
    words = [_WORDS.get(w, w) for w in name.split("_")]
    return " ".join(words)[0].upper() + " ".join(words)[1:]


def choices(name: str) -> Optional[Sequence[str]]:
    return PAGE_CHOICES.get(name) or SPECS[name].choices


def kind(name: str) -> str:
    """radio | dropdown | multiselect | checkbox | list | int | float | slider."""
    if name in ("ratio", "size"):
        return "slider"
    spec, default = SPECS[name], getattr(DEFAULTS, name)
    if choices(name) is not None:
        if spec.item is not None:
            return "multiselect"
        return "radio" if len(choices(name)) <= 4 else "dropdown"  # init: noise, content, palette, style
    if isinstance(default, bool):
        return "checkbox"
    if spec.item is not None:
        return "list"
    return "int" if isinstance(default, int) else "float"


def info(name: str) -> Optional[str]:
    """The control's info line: its option's help, in the page's words, with a useful range."""
    if name == "ratio":
        return None
    spec = SPECS[name]
    text = page_words(spec.help)
    if name in PAGE_CHOICES:  # the page offers the listed choices only: no paths, no typing
        text = re.sub(r"(?i)\s*\|\s*PATH\b|comma-separated ", "", text)
    text = text[0].upper() + text[1:]
    small = spec.high is not None and spec.high <= 1e6 or spec.high is None and spec.low is not None
    return f"{text} ({spec.range_text()})" if small and kind(name) in ("int", "float") else text


def ratio_of(o: Options) -> float:
    """The slider value for `o`: log10(alpha / beta)."""
    if o.content_weight <= 0 or o.style_weight <= 0:
        return 0.0
    return round(math.log10(o.content_weight / o.style_weight), 2)


def ratio_range() -> tuple:
    r = ratio_of(DEFAULTS)
    return math.floor(r) - RATIO_SPAN, math.ceil(r) + RATIO_SPAN


def _shown(name: str, value):
    k = kind(name)
    if k == "list":
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if value else ""
    if k == "multiselect":
        return list(value)
    if name == "init" and value not in INITS:
        return INITS[0]  # a file the server was started with is not the page's to show
    return value


def control_values(o: Options) -> Dict[str, Any]:
    """The controls' values that represent `o` (the inverse of `options_from_controls`)."""
    return {name: ratio_of(o) if name == "ratio" else _shown(name, getattr(o, name)) for name in CONTROLS}


def preset_of(o: Options) -> str:
    """The preset the page's dropdown starts on: the one with the most overrides `o` holds."""
    held = [p for p in PRESETS if all(getattr(o, k) == v for k, v in PRESETS[p].overrides.items())]
    return max(held, key=lambda p: len(PRESETS[p].overrides)) if held else PRESETS[0]


def preset_options(name: str, base: Options) -> Options:
    """`base` with every field a preset sets taken from the defaults under preset `name`."""
    touched = {k for p in PRESETS for k in PRESETS[p].overrides}
    preset = DEFAULTS.replace(**PRESETS[choice("preset", name, PRESETS)].overrides)
    return base.replace(**{k: getattr(preset, k) for k in touched})


# --- values -> Options ----------------------------------------------------------------------------
def _number(value, name: str, integer: bool):
    what = label(name)
    if integer and isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidOption(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InvalidOption(f"{what}: expected a finite number, got {value!r}")
    if integer:
        if v != int(v):
            raise InvalidOption(f"{what}: expected a whole number, got {value!r}")
        return int(v)
    return v


def _items(value, name: str, integer: bool) -> tuple:
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [t for t in re.split(r"[,\s]+", str(value or "").strip()) if t]
    return tuple(_number(t, name, integer) for t in items)


def _value(name: str, value):
    """One control's value as the Options field takes it (types only; ranges: methods.validate)."""
    k, default = kind(name), getattr(DEFAULTS, name)
    if k in ("radio", "dropdown"):
        return choice(label(name), value, choices(name))
    if k == "multiselect":
        chosen = [value] if isinstance(value, str) else list(value or [])
        for item in chosen:
            choice(label(name).lower().rstrip("s"), item, choices(name))
        return tuple(c for c in choices(name) if c in chosen)  # network order
    if k == "checkbox":
        return bool(value)
    if k == "list":
        items = _items(value, name, SPECS[name].item is int)
        return None if not items and default is None else items
    return _number(value, name, isinstance(default, int))


def options_from_controls(
    values: Dict[str, Any],
    base: Options,
    n_styles: int = 1,
    max_size: int = MAX_SIZE,
    max_iterations: int = MAX_ITERATIONS,
) -> Options:
    """The Options for the controls' `values`, on top of `base` (the server's settings),
    checked by methods.validate and against the page's limits.

    Raises InvalidOption, worded with the page's labels, for a value no control could produce
    (API callers), one the options do not allow, or one beyond the server's limits.
    """
    try:
        auto = isinstance(values["scales"], str) and values["scales"].strip().lower() == "auto"
        fields = {name: _value(name, values[name]) for name in WEB_OPTIONS if not (auto and name == "scales")}
        if auto:
            fields["scales"] = auto_scales(fields["size"])
        ratio = _number(values["ratio"], "ratio", False)
        if not -12 <= ratio <= 12:
            raise InvalidOption(f"{label('ratio')} {ratio:g} is outside -12..12")
        for name, top in (("size", max_size), ("scales", max_size), ("iterations", max_iterations)):
            for v in fields[name] if isinstance(fields[name], tuple) else (fields[name],):
                if v > top:
                    raise InvalidOption(f"{label(name)} {v} is more than this page allows ({top})")
        alpha = base.content_weight if base.content_weight > 0 else 1.0
        # An untouched slider keeps the base beta exactly (the slider shows log10 rounded to 0.01).
        beta = base.style_weight if ratio == ratio_of(base) else alpha / 10.0**ratio
        options = base.replace(content_weight=alpha, style_weight=beta, **fields)
        return methods.validate(options, "transfer", n_styles)
    except InvalidOption as e:
        raise InvalidOption(page_words(str(e))) from None


def page_words(text: str) -> str:
    """A message about options as the page words it: each flag of a control becomes its label."""
    names = {flag(n): label(n) for n in WEB_OPTIONS}
    names.update({flag("content_weight"): label("ratio"), flag("style_weight"): label("ratio")})
    return re.sub(r"--[a-z][a-z0-9-]*", lambda m: names.get(m.group(0), m.group(0)), text)


def schedule_text(
    values: Dict[str, Any], base: Options, max_size: int = MAX_SIZE, max_iterations: int = MAX_ITERATIONS
) -> str:
    """What the size, iterations and scales controls will run, in words (or why they cannot)."""
    try:
        o = options_from_controls(values, base, 1, max_size, max_iterations)
    except InvalidOption as e:
        return str(e)
    plan = schedule(o)
    parts = [f"{n} steps at {side} px" for side, n in plan]
    text = parts[0] if len(parts) == 1 else ", then ".join(parts)
    total = sum(n for _, n in plan)
    return f"Runs {text}" + (f": {total} steps in all." if len(plan) > 1 else ".")


def make(gr, name: str, value, settings) -> Any:
    """The Gradio component of control `name`, showing `value`, within the server's limits."""
    common = {"label": label(name), "elem_id": name.replace("_", "-")}
    if info(name):
        common["info"] = info(name)
    k = kind(name)
    if name == "ratio":
        lo, hi = ratio_range()
        return _slider(gr)(lo, hi, value=value, step=0.1, elem_classes=["painterly-lenient"], **common)
    if name == "size":
        return _slider(gr)(
            SPECS["size"].low,
            settings.max_size,
            value=value,
            step=16,
            elem_classes=["painterly-lenient"],
            **common,
        )
    if k in ("radio", "dropdown"):
        make_ = gr.Radio if k == "radio" else gr.Dropdown
        return make_(list(choices(name)), value=value, **common)
    if k == "multiselect":
        return gr.Dropdown(list(choices(name)), value=value, multiselect=True, **common)
    if k == "checkbox":
        return gr.Checkbox(value, **common)
    if k == "list":
        return gr.Textbox(value, placeholder=_EMPTY.get(name), **common)
    return gr.Number(value, precision=0 if k == "int" else None, **common)


def _slider(gr):
    """gr.Slider, whose instances marked "painterly-lenient" pass their value to the handlers
    unchecked: Gradio's own range check raises (a traceback in the server's log for a value
    typed past the range); the page says it in words instead (the Size note,
    options_from_controls). Patched on the class, not subclassed: Gradio writes a .pyi file next
    to the module of any component class it sees defined."""
    if not getattr(gr.Slider, "_painterly_lenient", False):
        checked = gr.Slider.preprocess

        def preprocess(self, payload):
            return payload if "painterly-lenient" in (self.elem_classes or []) else checked(self, payload)

        gr.Slider.preprocess, gr.Slider._painterly_lenient = preprocess, True
    return gr.Slider


def layout(names: List[str]) -> List[List[str]]:
    """The rows of "More options": controls grouped by kind (choices, numbers, lists, flags,
    layers), in SPECS' order within a group, a few to a row."""
    groups = (("radio", "dropdown"), ("int", "float"), ("list",), ("checkbox",), ("multiselect",))
    per_row = (3, 3, 2, 3, 1)
    rows = []
    for kinds, n in zip(groups, per_row):
        group = [name for name in names if kind(name) in kinds]
        rows += [group[i : i + n] for i in range(0, len(group), n)]
    return rows
