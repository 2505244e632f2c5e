"""The checks of a run's options, with one-line errors, and Options from Python keywords
(no torch here).
"""

from __future__ import annotations

import os
from typing import Optional

from painterly.errors import InvalidOption, choice
from painterly.options.fields import Options
from painterly.options.layers import validate_layers
from painterly.options.presets import JOBS, PRESETS
from painterly.options.schedule import auto_scales, scale_sides
from painterly.options.specs import SPECS, check_type


def options_from(options: Optional[Options] = None, overrides: Optional[dict] = None) -> Options:
    """Options from Python keyword arguments, as the API and figures take them."""
    # Accept a bare int for iterations/scales and lists for tuple fields; scales="auto" as in
    # the CLI (halving from the output size); masks as paths, lists of paths or a
    # comma-separated string; preset="quality" | "paper" | "fast" | a method's own applies that
    # preset (presets.PRESETS) first (the other keywords override it).
    overrides = dict(overrides or {})

    preset = overrides.pop("preset", None)
    if preset is not None:
        options = (options or Options()).replace(
            **PRESETS[choice("preset", preset, tuple(PRESETS))].overrides
        )
    if overrides.get("scales") == "auto":
        overrides["scales"] = auto_scales(overrides.get("size", (options or Options()).size))
    if isinstance(overrides.get("content_mask"), (list, tuple)):
        overrides["content_mask"] = ",".join(str(p) for p in overrides["content_mask"])
    elif overrides.get("content_mask") is not None:
        overrides["content_mask"] = str(overrides["content_mask"])
    if isinstance(overrides.get("style_masks"), (str, os.PathLike)):
        overrides["style_masks"] = tuple(str(overrides["style_masks"]).split(","))
    elif overrides.get("style_masks") is not None:
        overrides["style_masks"] = tuple(str(p) for p in overrides["style_masks"])
    if overrides.get("tile") == "auto":
        overrides["tile"] = 0
    for key in (
        "iterations",
        "scales",
        "content_layers",
        "style_layers",
        "style_layer_weights",
        "style_blend",
        "style_masks",
        "region_weights",
    ):
        v = overrides.get(key)
        if isinstance(v, int):
            overrides[key] = (v,)
        elif isinstance(v, str) and key.endswith("layers"):
            overrides[key] = tuple(s for s in v.split(",") if s)
        elif isinstance(v, list):
            overrides[key] = tuple(v)
    return (options or Options()).replace(**overrides)


def validate(o: Options, job: str = "transfer", n_styles: int = 1) -> Options:
    """Check every field against its Spec, then the rules between fields; return `o`.

    The field checks of a run; painterly.methods.validate adds what the style method refuses,
    and the CLI, the Python API, the web page and batch all reach both through
    engine.Stylizer.run (the page also calls it early, before queueing a job). --init PATH is
    read by the engine, which fails on an unreadable file before any heavy work.
    """
    choice("job", job, JOBS)
    for name, spec in SPECS.items():
        check_type(name, getattr(o, name))
        spec.check(name, getattr(o, name))
    validate_layers(o.content_layers)
    validate_layers(o.style_layers)
    if job == "transfer" and not (o.content_layers or o.style_layers):
        raise InvalidOption("no content or style layers given")
    if job != "transfer" and not (o.content_layers if job == "content" else o.style_layers):
        raise InvalidOption(
            f"the {job} job needs at least one {'content' if job == 'content' else 'style'} layer"
        )
    if o.style_layer_weights is not None and len(o.style_layer_weights) != len(o.style_layers):
        raise InvalidOption(
            f"--style-layer-weights has {len(o.style_layer_weights)} values for "
            f"{len(o.style_layers)} style layers"
        )
    scales = scale_sides(o)
    SPECS["scales"].check("scales", scales)
    if not 1 <= len(o.iterations) <= len(scales):
        raise InvalidOption(
            f"--iterations needs 1 to {len(scales)} values (one per scale, the last for the "
            f"finest), got {','.join(map(str, o.iterations)) or 'none'}"
        )
    if o.style_blend is not None:
        if len(o.style_blend) != n_styles:
            raise InvalidOption(f"--style-blend has {len(o.style_blend)} weights for {n_styles} style images")
        if sum(o.style_blend) <= 0:
            raise InvalidOption("--style-blend weights must have a positive sum")
    return o
