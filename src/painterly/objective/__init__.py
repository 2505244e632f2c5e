"""The objective: its terms (terms.py), their sum (objective.py) and its exact evaluation in
tiles for large images (tiling.py)."""

from painterly.objective.objective import Objective, host_floats
from painterly.objective.terms import (
    ContentTerm,
    PaletteTerm,
    PixelTerm,
    Region,
    StyleTerm,
    Term,
    Value,
    layer_weights,
)

__all__ = [
    "ContentTerm",
    "Objective",
    "PaletteTerm",
    "PixelTerm",
    "Region",
    "StyleTerm",
    "Term",
    "Value",
    "host_floats",
    "layer_weights",
]
