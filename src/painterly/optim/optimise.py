"""The optimisation of the pixels: L-BFGS (the paper's choice) or Adam, with a stop check.

`optimise` runs one scale; engine.Stylizer runs the schedule across scales (options.schedule).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import torch

from painterly.errors import Stop
from painterly.net.device import resize
from painterly.objective import Objective, host_floats
from painterly.options import Options

OVERSHOOT = 1e3  # a step whose loss is this many times the last good one is retaken (optimise)


def laplacian_pyramid(x: torch.Tensor, max_levels: int = 8) -> list:
    """[band_0 (finest), ..., band_{n-1}, residual]: x = collapse(laplacian_pyramid(x)) exactly.

    Each level halves the image (bilinear, as NNST's reference) while its short side stays at
    least 2 px, at most `max_levels` times; band_k = level_k - up(level_{k+1}). The resizes are
    net.device.resize's: on CUDA a bilinear whose backward is deterministic.
    """
    out, cur = [], x
    while len(out) < max_levels and min(cur.shape[-2:]) // 2 >= 2:
        h, w = cur.shape[-2:]
        small = resize(cur, (h // 2, w // 2), "bilinear", align_corners=False)
        out.append(cur - resize(small, (h, w), "bilinear", align_corners=False))
        cur = small
    return out + [cur]


def collapse(pyramid) -> torch.Tensor:
    """The image whose Laplacian pyramid is `pyramid` (the inverse of laplacian_pyramid)."""
    cur = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        cur = band + resize(cur, tuple(band.shape[-2:]), "bilinear", align_corners=False)
    return cur


class _Overflow(Exception):
    """The loss at the current point is not finite (see optimise)."""


def optimise(
    objective: Objective,
    x: torch.Tensor,
    o: Options,
    iterations: int,
    on_step: Callable[[Dict[str, float], torch.Tensor], None],
) -> tuple:
    """Run `iterations` steps of L-BFGS or Adam on the pixels x; returns (final x, stopped).

    on_step(losses, x) follows every step; raising Stop there ends the loop early. Stop raised
    inside a step (a tiled objective's on_tile, between tiles) abandons that step: the result
    is the last complete iterate.

    Pixels are not clamped inside the closure (the paper optimises unconstrained pixels);
    they are clipped to [0, 1] only when the image is rendered or saved.

    --parameterization pyramid (not in the paper; NNST's and STROTSS's): the optimiser moves the
    coefficients of x's Laplacian pyramid, and the image is their collapse. The function is
    the same; the steps differ: a step on a coarse coefficient moves a whole area, so coarse
    structure and colour move as fast as fine marks (pixel steps move the fine detail first).
    """
    pyramid = o.parameterization == "pyramid"
    params = [p.detach().clone().requires_grad_(True) for p in (laplacian_pyramid(x) if pyramid else [x])]

    def image() -> torch.Tensor:
        return collapse(params) if pyramid else params[0]

    def make():
        if o.optimizer != "lbfgs":
            return torch.optim.Adam(params, lr=o.learning_rate)
        # One L-BFGS iteration per step() (one objective evaluation without line search). The
        # line search needs its own evaluation budget: max_eval defaults to max_iter * 5 // 4 = 1,
        # which would leave it none (no step at all); 25 is torch's own max_ls.
        return torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=1,
            max_eval=1 + 25,
            history_size=o.lbfgs_history,
            tolerance_grad=-1.0,
            tolerance_change=-1.0,
            line_search_fn="strong_wolfe" if o.lbfgs_line_search else None,
        )

    opt = make()
    last: Dict[str, float] = {}
    # Safeguard for L-BFGS without line search: its unit step can overshoot to a point where the
    # loss overflows (seen on tiny images), after which every gradient is NaN, or explodes (1e23
    # from 2.7e6, seen from noise at 32 px), after which the history never recovers. Then the
    # step is retaken from the last good point with a fresh history (whose first step is a short
    # gradient step). Runs that never overshoot are unaffected.
    guard = o.optimizer == "lbfgs" and not o.lbfgs_line_search
    good: Optional[list] = None  # the last point whose loss was finite
    good_loss = [float("inf")]  # its loss

    # The losses stay on the device (objective.summary) until the step ends, and are read then in
    # one transfer (host_floats): a float() per loss, or a read of the loss before backward(),
    # would make the host wait for the device (a GPU's queue drained) several times a step.
    pending: list = [{}]  # the last evaluation's losses, tensors or floats

    def closure():
        opt.zero_grad(set_to_none=True)
        parts = objective.parts(image())
        total = objective.total(parts)
        total.backward()  # queued before the guard reads the loss (an overshoot's gradient is dropped)
        losses = objective.summary(parts, total)
        if guard:  # one read, which the step's report reuses
            losses = host_floats(losses)
            value = losses["total"] if "total" in losses else float(total.detach())
            if good is not None and _overshoots(value, good_loss[0]):
                raise _Overflow
            good_loss[0] = min(good_loss[0], value)
        pending[0] = losses
        return total

    def step():
        if o.optimizer == "lbfgs":
            opt.step(closure)
        else:
            closure()
            opt.step()

    # A line search moves x to trial points inside step(): keep the iterate to return to if a
    # Stop arrives mid-step. Without one, x changes only after the step's evaluation.
    keep = guard or o.lbfgs_line_search

    def finish(stopped: bool) -> tuple:
        # Without a line search the last step moves x blindly (its loss would be evaluated by
        # the next step, which does not come). Measured (flowers x sketch, 384 px, --pooling
        # max, 2 threads): the last step of the first scale took the loss from 0.81 to 20261,
        # and the next scale started from that noise (a picture of coloured facets). So the
        # end point is evaluated (one forward pass) and, if it overshoots as in the closure,
        # the last good point is returned instead.
        if guard and good is not None:
            with torch.no_grad():
                value = float(objective.total(objective.parts(image())))
            if _overshoots(value, good_loss[0]):
                _assign(params, good)
        return _done(image), stopped

    for _ in range(iterations):
        here = [p.detach().clone() for p in params] if keep else None
        try:
            try:
                step()
                good = here if guard else None
            except _Overflow:
                _assign(params, good)
                opt = make()
                step()
        except Stop:
            if here is not None:
                _assign(params, here)
            return _done(image), True
        last.update(host_floats(pending[0]))
        try:
            on_step(dict(last), params[0] if not pyramid else _done(image))
        except Stop:
            return finish(True)
    return finish(False)


def _overshoots(value: float, best: float) -> bool:
    """The guard's test (optimise): a loss that is not finite or over OVERSHOOT x the best one."""
    return not (math.isfinite(value) and value <= OVERSHOOT * best)


def _assign(params, values) -> None:
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def _done(image) -> torch.Tensor:
    with torch.no_grad():
        return image().detach()
