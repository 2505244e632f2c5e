"""The function the optimiser minimises: a list of weighted terms over named layers, evaluated
in one pass through the network (tiling.TiledObjective: the same function, tile by tile)."""

from __future__ import annotations

import functools
from typing import Dict, Optional, Sequence

import torch

from painterly.objective.terms import Term


class Objective:
    """sum of weight * term: the function the optimiser sees."""

    def __init__(self, features, terms: Sequence[Term]):
        self.terms = list(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"two objective terms share a name: {names}")
        self.layers = list(dict.fromkeys(l for t in self.terms for l in t.layers))
        self.features = lambda x: features(x, self.layers) if self.layers else {}

    def term(self, name: str) -> Optional[Term]:
        return next((t for t in self.terms if t.name == name), None)

    def reweight(self, name: str, weight: float) -> None:
        """Set term `name`'s weight (the schedule's policy changes beta between scales and in a polish)."""
        self.term(name).weight = weight

    def calibrate(self, photo: torch.Tensor) -> None:
        """--balance photo: every term rescaled by its value at the photo (see Term.calibrate)."""
        with torch.no_grad():
            parts = self.parts(photo)
        for t in self.terms:
            t.calibrate(parts[t.name])

    def parts(self, x: torch.Tensor) -> dict:
        """Unweighted values of every term, by name. A term at weight 0 that needs no features is
        not evaluated (0.0): its value would not change the loss."""
        feats = self.features(x)
        return {t.name: (t.value(x, feats) if t.weight or t.layers else x.new_zeros(())) for t in self.terms}

    def weighted(self, parts: dict) -> Dict[str, torch.Tensor]:
        return {t.name: t.weight * t.reduce(parts[t.name]) for t in self.terms}

    def total(self, parts: dict) -> torch.Tensor:
        return sum(self.weighted(parts).values())

    def summary(self, parts: dict, total: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Weighted loss terms and the total, detached, still on the device: the optimiser reads
        them once a step (host_floats), for progress display, instead of once per value."""
        with torch.no_grad():
            return {**{k: _detached(v) for k, v in self.weighted(parts).items()}, "total": _detached(total)}


def _detached(v):
    return v.detach() if isinstance(v, torch.Tensor) else v


def host_floats(values: Dict[str, object]) -> Dict[str, float]:
    """{name: float} from {name: 0-dim tensor or number}: the tensors of each device read in one
    transfer (a float() of each would wait for the device once per value). The same numbers as
    float() of each: they are gathered in their common dtype, which widens exactly."""
    out = {k: v for k, v in values.items() if not isinstance(v, torch.Tensor)}
    by_device: Dict[torch.device, list] = {}
    for k, v in values.items():
        if isinstance(v, torch.Tensor):
            by_device.setdefault(v.device, []).append(k)
    for keys in by_device.values():
        ts = [values[k].detach().reshape(()) for k in keys]
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in ts))
        out.update(zip(keys, torch.stack([t.to(dtype) for t in ts]).cpu().tolist()))
    return {k: float(out[k]) for k in values}
