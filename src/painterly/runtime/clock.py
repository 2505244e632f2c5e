"""The time left in a run, from its measured steps (what a progress bar shows)."""

from __future__ import annotations

from typing import Dict

from painterly.imaging import long_side_size

FINAL_STEPS = 3.0  # the final fp32 evaluation of the losses (targets, calibration, parts) in steps' time


class StepClock:
    """Seconds left in a run, from measured steps. A scale's first step is slow (the new size's
    first pass), so from its second step on the estimate uses that scale's later steps; at a
    scale's first step it uses what the earlier scales measured (the run's very first step has
    only itself). The steps left are this scale's, then each later scale's targets (about one
    step) and steps, and the final fp32 evaluation of the losses (about FINAL_STEPS steps).

    A step's time at another size: with one scale measured, proportional to the pixel count;
    with two, the line through the last two (a fixed cost per step plus a cost per pixel), since
    at 64 px a step is mostly fixed cost and pixels alone made a 4-scale run's first estimate
    several times too long (--preset neighbour: "46:08 more" for a run of a minute).

    work: each scale's cost per pixel relative to the others' (default 1): a --deep-split scale
    runs its deep layers on a quarter of the pixels, so it counts as fewer pixels (progress.work)."""

    def __init__(self, plan, shape_wh, work=None):
        self.plan, self.shape = plan, shape_wh
        self.work = list(work) if work else [1.0] * len(plan)
        self.k, self.warm = -1, None
        self.measured: Dict[int, float] = {}  # pixel count -> seconds per step (each scale's last estimate)

    def _pixels(self, k: int, work: bool = True) -> float:
        """Scale k's pixel count, times its relative work (`work`)."""
        w, h = long_side_size(self.shape, self.plan[k][0])
        return w * h * (self.work[k] if work else 1.0)

    def _step_at(self, pixels: int) -> float:
        """Seconds per step at `pixels`, from the measured scales (at least one)."""
        (p1, t1), *rest = sorted(self.measured.items(), key=lambda m: -m[0])[:2]  # the two largest
        if rest:
            p0, t0 = rest[0]
            per_pixel = (t1 - t0) / (p1 - p0)
            fixed = t1 - per_pixel * p1
            if per_pixel > 0 and fixed >= 0:
                return fixed + per_pixel * pixels
        return t1 * pixels / p1

    def left(self, k: int, done: int, now: float, began: float) -> float:
        """After `done` steps of scale k, at time `now`; `began`: when the scale's steps began."""
        if k != self.k:
            self.k, self.warm = k, None
        here = self._pixels(k)
        if done == 1:
            self.warm = now
            per_step = self._step_at(here) if self.measured else now - began
        else:
            per_step = (now - self.warm) / (done - 1)
            self.measured[here] = per_step

        def step_at(j: int) -> float:
            return self._step_at(self._pixels(j)) if self.measured else per_step * self._pixels(j) / here

        later = sum((n + 1) * step_at(j) for j, (_, n) in enumerate(self.plan) if j > k)
        last = self._pixels(len(self.plan) - 1, work=False)  # the final losses: the whole network
        final = self._step_at(last) if self.measured else per_step * last / here
        return per_step * (self.plan[k][1] - done) + later + FINAL_STEPS * final
