"""The one home of every option (no torch here).

fields.py     Options: every setting of a run and its default; the choices of each string
specs.py      SPECS: each option's help, type, range, choices and surfaces (CLI, web, batch)
presets.py    the presets and the one job rule (what content and texture imply)
validate.py   the checks, each failing with one line; Options from Python keywords
layers.py     VGG-19's layer names; the paper's layer sets
schedule.py   the coarse-to-fine scales and their steps
"""

from painterly.options.fields import (
    ABSOLUTE_RANGE_WEIGHT,
    ABSOLUTE_STYLE_WEIGHT,
    BALANCES,
    BEFORE,
    COLOR_MATCH,
    DEEP_SPLITS,
    DEFAULT_STYLE_WEIGHT,
    DEFAULTS,
    DEVICE_INDEXED,
    DEVICES,
    INITS,
    MASK_MODES,
    MAX_INPUT_PIXELS,
    MAX_SIZE,
    NETWORK_FIELDS,
    OPTIMIZERS,
    PARAMETERIZATIONS,
    POOLING,
    PRECISIONS,
    PREPROCESS,
    PRESERVE_COLOR,
    RECIPE_PATHS,
    RECOLOR,
    Options,
)
from painterly.options.layers import (
    LAYERS,
    PAPER_CONTENT_LAYERS,
    PAPER_STYLE_LAYERS,
    channels,
    floats_per_pixel,
    validate_layers,
)
from painterly.options.presets import (
    JOB_RULES,
    JOBS,
    PRESETS,
    Preset,
    job_default,
    job_options,
    preset_help,
    register_preset,
)
from painterly.options.schedule import auto_scales, scale_sides, schedule
from painterly.options.specs import SPECS, STYLE_LOSSES, Spec, check_type, flag
from painterly.options.validate import options_from, validate

__all__ = [
    "ABSOLUTE_RANGE_WEIGHT",
    "ABSOLUTE_STYLE_WEIGHT",
    "BALANCES",
    "BEFORE",
    "COLOR_MATCH",
    "DEFAULT_STYLE_WEIGHT",
    "DEFAULTS",
    "DEVICE_INDEXED",
    "DEVICES",
    "INITS",
    "JOBS",
    "JOB_RULES",
    "LAYERS",
    "MASK_MODES",
    "MAX_INPUT_PIXELS",
    "MAX_SIZE",
    "NETWORK_FIELDS",
    "OPTIMIZERS",
    "Options",
    "PAPER_CONTENT_LAYERS",
    "PAPER_STYLE_LAYERS",
    "PARAMETERIZATIONS",
    "DEEP_SPLITS",
    "POOLING",
    "PRECISIONS",
    "PREPROCESS",
    "PRESERVE_COLOR",
    "PRESETS",
    "Preset",
    "RECIPE_PATHS",
    "RECOLOR",
    "SPECS",
    "STYLE_LOSSES",
    "Spec",
    "auto_scales",
    "check_type",
    "flag",
    "channels",
    "floats_per_pixel",
    "job_default",
    "job_options",
    "options_from",
    "preset_help",
    "register_preset",
    "scale_sides",
    "schedule",
    "validate",
    "validate_layers",
]
