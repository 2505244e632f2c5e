"""A run's progress: the stage it is at (for on_stage) and its steps, counted over every scale
and polish and reported to the callback as Iterates with the time left."""

from __future__ import annotations

import time
from typing import List

import torch

from painterly.assemble import splits
from painterly.imaging import long_side_size
from painterly.net.vgg import conv_flop_per_pixel, deepest
from painterly.objective import Objective
from painterly.optim.optimise import optimise
from painterly.options import Options
from painterly.result import Iterate, render
from painterly.runtime.clock import StepClock


class Stage:
    """The stage a run is at, for on_stage ("scale 1/2 (512x384): targets", "step 3/100")."""

    def __init__(self, on_stage):
        self.on_stage, self.text = on_stage, "preparing"

    def now(self, text: str) -> None:
        self.text = text

    def say(self, what: str = "", i: int = 0, n: int = 0) -> None:
        if self.on_stage is not None:
            self.on_stage(f"{self.text}: {what}" if what else self.text, i, n)

    def scale(self, k: int, plan, size) -> None:
        self.text = f"scale {k + 1}/{len(plan)} ({size[0]}x{size[1]})"
        self.say("targets")


# The share of an unsplit step's time that shrinks with a --deep-split scale's convolution work:
# the rest (the optimiser, the shallow layers' pointwise ops and their backward, the losses) does
# not shrink with it. Fitted to bench_profile (golden_gate x the_scream, fp32, 2026-12-07): a
# relu3_1-split finest step took 0.624/0.998 s at 512 px and 3.90/5.44 s at 1024 (0.63 and 0.72 of
# an unsplit one) where its convolutions' FLOPs are 0.48; the FLOP ratio alone put the estimate at
# a split scale's first step 18-65% short (bench_eta --deep-split relu3_1).
SPLIT_SCALING = 0.6


def work(plan, r) -> list:
    """Each scale's cost per pixel relative to an unsplit scale's (runtime.clock.StepClock): for a
    --deep-split scale, SPLIT_SCALING of a step scales with its convolutions' FLOPs per pixel and
    the rest is as an unsplit step's."""
    if not any(splits(r, k, plan) for k in range(len(plan))):
        return [1.0] * len(plan)
    last = deepest(r.layers)
    full = conv_flop_per_pixel(last)
    ratio = conv_flop_per_pixel(last, r.o.deep_split) / full
    split = 1.0 - SPLIT_SCALING * (1.0 - ratio)
    return [split if splits(r, k, plan) else 1.0 for k in range(len(plan))]


class Steps:
    """The steps of a run: counted over every scale and polish, each reported to the callback
    as an Iterate with the time left (runtime.clock.StepClock); the betas of the scales run."""

    def __init__(self, plan, r, callback, stage: "Stage", started: float):
        self.plan, self.r, self.callback, self.stage, self.started = plan, r, callback, stage, started
        self.step, self.total = 0, sum(n for _, n in plan)
        self.clock = StepClock(plan, r.shape_src.size, work(plan, r))  # the time left, from measured steps
        self.last: dict = {}  # the last step's losses
        self.betas: List[float] = []  # beta per scale run (--content-target, --content-ceiling change it)

    def size(self, k: int):
        return long_side_size(self.r.shape_src.size, self.plan[k][0])

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def begin(self, k: int) -> None:
        """Scale k's steps begin (its targets are made)."""
        self.k, self.first, self.planned, self.began = k, self.step, self.plan[k][1], time.perf_counter()
        self.stage.now(f"step {self.step + 1}/{self.total}")
        self.stage.say()

    def more(self, objective: Objective, x: torch.Tensor, o: Options, n: int):
        """n more steps of this scale (a polish), counted as this scale's."""
        self.total, self.planned = self.total + n, self.planned + n
        return optimise(objective, x, o, n, self.on_step)

    def on_step(self, losses, live) -> None:
        self.step += 1
        self.stage.now(f"step {self.step + 1}/{self.total}")
        self.last = dict(losses)
        if self.callback is None:
            return
        # image() renders the live iterate: call it inside the callback
        now, size, r = time.perf_counter(), self.size(self.k), self.r
        left = self.clock.left(self.k, self.step - self.first, now, self.began)
        self.callback(
            Iterate(
                self.step,
                self.total,
                losses,
                now - self.started,
                size,
                lambda: render(live, r.content_img, r.luminance, size),
                (self.k + 1, len(self.plan)),
                (self.step - self.first, self.planned),
                left,
            )
        )
