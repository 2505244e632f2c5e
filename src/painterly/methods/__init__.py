"""Style methods, each one unit behind one interface (base.Method), and their one registry.

    base.py        the interface: targets, term, before_scale, check, memory, preset
    statistics.py  Gatys et al.: Gram (the paper), mean-std, W2 and sliced statistics
    neighbour.py   neural neighbours (NNST, Kolkin et al. 2022)

A method registers the --style-loss names it takes (and its preset); the option's choices,
its checks and the engine all ask this registry, so a new method is one new module and a
`register` call, and nothing outside this package names a method.
"""

from __future__ import annotations

from typing import Dict, List

from painterly.errors import choice
from painterly.methods.base import Method, StyleInputs
from painterly.methods.neighbour import Neighbour
from painterly.methods.statistics import Statistics
from painterly.options import STYLE_LOSSES, Options, register_preset
from painterly.options import validate as _validate_fields

_BY_NAME: Dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make `method` reachable by each of its names (--style-loss) and add its preset."""
    for name in method.names:
        _BY_NAME[name] = method
        if name not in STYLE_LOSSES:
            STYLE_LOSSES.append(name)
    if method.preset is not None:
        register_preset(method.preset)
    return method


def unregister(method: Method) -> None:
    """Remove `method`'s names and preset (tests register toy methods and take them away)."""
    from painterly.options import PRESETS

    for name in method.names:
        if _BY_NAME.get(name) is method:
            del _BY_NAME[name]
            STYLE_LOSSES.remove(name)
    if method.preset is not None and PRESETS.get(method.preset.name) is method.preset:
        del PRESETS[method.preset.name]


def get(name: str) -> Method:
    """The method that takes --style-loss `name` (InvalidOption, with a suggestion, if none)."""
    return _BY_NAME[choice("--style-loss value", name, tuple(_BY_NAME))]


def names() -> List[str]:
    return list(_BY_NAME)


def validate(o: Options, job: str = "transfer", n_styles: int = 1) -> Options:
    """The one validation of a run: every field (options.validate), then what its method refuses."""
    _validate_fields(o, job, n_styles)
    get(o.style_loss).check(o, job, n_styles)
    return o


register(Statistics())
register(Neighbour())

__all__ = ["Method", "StyleInputs", "get", "names", "register", "unregister", "validate"]
