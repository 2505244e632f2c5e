"""Presets (named sets of overrides) and the one job rule: what each job sets whatever its
options say (no torch here).

A style method adds its own preset when it registers (painterly.methods.register), so this
file holds only the presets that belong to no method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

from painterly.options.fields import ABSOLUTE_STYLE_WEIGHT, DEFAULTS, Options
from painterly.options.layers import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS

JOBS = ("transfer", "content", "texture")


@dataclass(frozen=True)
class Preset:
    """A named set of overrides of the defaults; `help` is what --help and the web page say."""

    name: str
    help: str
    overrides: Dict[str, object] = field(default_factory=dict)


#: Named sets of overrides. "paper" is the exact procedure of Gatys et al. (2016).
PRESETS: Dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Add a preset (a method's own, from painterly.methods.register); the last one of a name wins."""
    PRESETS[preset.name] = preset
    return preset


register_preset(Preset("fast", "the defaults"))
# Longer runs, converged further: a closer match to the painting for ~2x the time of "fast"
# (120+80 steps instead of 60+40). Max pooling fixed here so the preset stays if the default moves.
# --content-target is no longer part of it: the run's own K after the first scale disagreed
# with the score's (0.23 against 1.25 on brad_pitt x asheville, average pooling).
register_preset(
    Preset("quality", "120+80 steps, max pooling (~2x the time)", dict(iterations=(120, 80), pooling="max"))
)
register_preset(
    Preset(
        "paper",
        "the paper's procedure (500 steps from noise, fp32, absolute losses)",
        dict(
            pooling="avg",
            normalize=True,
            content_layers=PAPER_CONTENT_LAYERS,
            style_layers=PAPER_STYLE_LAYERS,
            style_layer_weights=None,
            content_weight=1.0,
            balance="absolute",
            style_weight=ABSOLUTE_STYLE_WEIGHT,
            tv_weight=0.0,
            range_weight=0.0,
            palette_weight=0.0,
            style_loss="gram",
            content_target=0.0,
            content_ceiling=0.0,
            optimizer="lbfgs",
            iterations=(500,),
            scales=(),
            deep_split="none",
            init="noise",
            precision="fp32",
            lbfgs_history=100,
            lbfgs_line_search=False,
        ),
    )
)


def preset_help() -> str:
    """Every preset with its help, as --help shows them."""
    return "; ".join(f"{p.name}: {p.help}" for p in PRESETS.values())


# --- the job rule ---------------------------------------------------------------------------------
# What a job sets whatever its options say (job_options); --help shows these defaults.
JOB_RULES: Dict[str, Dict[str, object]] = {
    "transfer": {},
    "content": {"style_layers": (), "style_weight": 0.0},
    # Without a content term, L-BFGS's unit steps stall on the pure Gram loss from noise
    # (measured on the original VGG-19: 0.5% lower after 40 steps; 98% lower with the
    # strong-Wolfe line search), so texture synthesis always searches the step length.
    "texture": {"content_layers": (), "content_weight": 0.0, "lbfgs_line_search": True},
}
# The reconstructions (paper Fig. 1) start from white noise: a texture has no content image, and
# a content reconstruction starting from its target would be no test.
FROM_PHOTO = ("content", "palette")  # the inits a reconstruction replaces by noise


def job_options(job: str, o: Options) -> Options:
    """The options `job` runs with: o with the job's rule applied."""
    o = o.replace(**JOB_RULES[job])
    if job != "transfer" and o.init in FROM_PHOTO:
        o = o.replace(init="noise")
    return o


def job_default(job: str, name: str):
    """The default of option `name` as job `job` runs it (a verb that is no job: the default)."""
    return getattr(job_options(job, DEFAULTS) if job in JOB_RULES else DEFAULTS, name)
