"""Would lagged deep-layer gradients halve a step? (issue 41's lever "every k-th step")

Every k-th L-BFGS step evaluates the whole network and records the deep layers' gradient at the
cut (relu3_1, dL_deep/dh); the steps between run the network only up to the cut (about a third
of its convolution work) and model the deep terms to first order, L_deep(h0) + <g, h - h0>, so
that the optimiser still sees a value and a gradient. Nothing in the package changes: the probe
patches VGG19.forward and engine.optimise for its own runs.

The default at 384 px (two scales) on the given pairs, beside the same with k = 2 at every
scale: the true loss (full evaluations only) per step, the scores, and where it ended (the
optimiser's overshoot guard raises when the modelled loss turns negative or the true one
exceeds 1000 x the best).

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_lagged_deep.py [--pairs cornell-bricks]

Writes benchmarks/results/lagged_deep.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

import torch
import torch.nn.functional as F

import painterly
import painterly.engine as engine
from bench_quality import score
from common import IMAGES, RESULTS, cli_options, machine, write_json
from painterly import imaging as images
from painterly import scores
from painterly.net import vgg
from painterly.net.vgg import LAYERS

ST = {"mode": None, "cut": "relu3_1", "g": None, "h": None, "k": 1}
orig = vgg.VGG19.forward


class Tap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        ST["g"] = g.detach().clone()
        return g


def forward(self, x, layers, half_after=None):
    mode = ST["mode"]
    if mode is None or not torch.is_grad_enabled():
        return orig(self, x, layers, half_after)
    cut = ST["cut"]
    ci = LAYERS.index(cut)
    wanted = set(layers)
    if mode == "stale":
        wanted = {l for l in wanted if LAYERS.index(l) <= ci}
    wanted.add(cut)
    last = max(wanted, key=LAYERS.index)
    out = {}
    x = self.prepare(x)
    prev = None
    for name, module in self.layers.items():
        x = F.relu(x, inplace=prev not in wanted) if name.startswith("relu") else module(x)
        if name in wanted:
            out[name] = x
        if name == cut:
            ST["h"] = x
            if mode == "refresh" and name != last:
                x = Tap.apply(x)
        if name == last:
            break
        prev = name
    return out


vgg.VGG19.forward = forward


class Lagged:
    def __init__(self, obj, k):
        self.obj, self.k, self.n = obj, k, 0
        ci = LAYERS.index(ST["cut"])
        self.deep = lambda l: LAYERS.index(l) > ci

    def __getattr__(self, a):
        return getattr(self.obj, a)

    def _deep_weighted(self, parts):
        d = 0.0
        for t in self.obj.terms:
            v = parts[t.name]
            if not isinstance(v, dict):
                continue
            sub = {l: e for l, e in v.items() if self.deep(l)}
            if sub:
                d = d + t.weight * t.reduce(sub)
        return d

    def parts(self, x):
        if not torch.is_grad_enabled():
            self.lag = None
            return self.obj.parts(x)
        refresh = self.n % self.k == 0
        self.n += 1
        if refresh:
            ST["mode"] = "refresh"
            p = self.obj.parts(x)
            ST["mode"] = None
            self.h0 = ST["h"].detach()
            self.D0 = self._deep_weighted(p).detach()
            self.lag = None
            return p
        g = ST["g"]
        saved = {}
        for t in self.obj.terms:
            if t.layers:
                saved[t.name] = (t.layers, getattr(t, "targets", None))
                t.layers = tuple(l for l in t.layers if not self.deep(l))
                if t.name == "content":
                    t.targets = {l: v for l, v in t.targets.items() if not self.deep(l)}
        ST["mode"] = "stale"
        try:
            p = self.obj.parts(x)
        finally:
            ST["mode"] = None
            for t in self.obj.terms:
                if t.name in saved:
                    t.layers, tg = saved[t.name]
                    if t.name == "content":
                        t.targets = tg
        h = ST["h"]
        self.lag = self.D0 + (g.float() * (h.float() - self.h0.float())).sum()
        return p

    def total(self, parts):
        tot = self.obj.total(parts)
        return tot + self.lag if self.lag is not None else tot


orig_opt = engine.optimise


class Traced(Lagged):
    """Lagged, with the true loss of each full evaluation and the modelled one of each lagged step."""

    trace: list = []

    def total(self, parts):
        t = super().total(parts)
        if torch.is_grad_enabled():
            Traced.trace.append(("lagged" if self.lag is not None else "full", float(t.detach())))
        return t


def traced_optimise(objective, x, o, n, on_step):
    return orig_opt(Traced(objective, ST["k"]), x, o, n, on_step)


engine.optimise = traced_optimise


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="cornell-bricks,tubingen-la_muse")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--size", type=int, default=384)
    a = ap.parse_args()
    rows, st, net = [], None, None
    for p in a.pairs.split(","):
        ph, pa = p.split("-", 1)
        c, s = IMAGES / f"{ph}.jpg", IMAGES / f"{pa}.jpg"
        scorer = scores.Scorer(
            images.resize_long_side(images.load_image(c), a.size), images.load_image(s), net=net
        )
        net = scorer.net
        for label, k in (("default", 1), (f"lagged k={a.k}", a.k)):
            ST["k"] = k
            Traced.trace = []
            o = cli_options(c, s, a.size, [])
            st = st or painterly.Stylizer(o)
            t0, row = time.perf_counter(), {"pair": p, "run": label}
            try:
                res = st.run(str(c), [str(s)], options=o)
                path = RESULTS / "quality" / f"lagged-{p}-{k}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                res.image.save(path)
                sc = score(scorer, str(path))
                row.update(ended="finished", S=sc["style"], K=sc["content"], P=sc["palette"])
            except Exception as e:  # the guard's _Overflow: the run diverged
                row.update(ended=f"diverged ({type(e).__name__})")
            row["s"] = round(time.perf_counter() - t0, 1)
            row["true_losses"] = [v for kind, v in Traced.trace if kind == "full"]
            row["modelled_losses"] = [v for kind, v in Traced.trace if kind == "lagged"]
            rows.append(row)
    print("| pair | run | ended | S | K | P | s | last 6 true losses |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        last = ", ".join(f"{v:.2f}" for v in r["true_losses"][-6:])
        sk = [f"{r[k]:.3f}" if k in r else "-" for k in ("S", "K", "P")]
        print(f"| {r['pair']} | {r['run']} | {r['ended']} | {' | '.join(sk)} | {r['s']} | {last} |")
    write_json(RESULTS / "lagged_deep.json", {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
