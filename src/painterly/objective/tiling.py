"""Large images: the loss and its gradient evaluated tile by tile, exactly.

A 4096 x 4096 image does not fit through VGG-19 at once (conv1_1 alone holds 64 x 4096^2
floats = 4.3 GB, and the backward pass keeps a dozen such maps). Here the image is cut into
tiles; each tile is computed with a halo around it wide enough that the features of its
interior are exactly the features of the whole image (zero padding never reaches them), and
the interiors cover every position of every layer exactly once. Two passes per evaluation:

  pass 1 (no gradient): every tile's interior features are reduced to additive statistics
         (Gram loss: sum of (T F)(T F)^T and of T^2; mean-std and W2: weighted sums of F and
         of F^2 or F F^T, in float64: float32 on MPS), the statistics of all tiles are summed, and the loss of
         each layer and its gradient with respect to those statistics (N x N at most) follow;
  pass 2 (gradient): every tile is recomputed with autograd and the surrogate
         sum_l g_l <dE_l/dS_l, S_l(tile)> is backpropagated; since S_l is a sum over tiles, the
         tiles' pixel gradients (halos overlapping, added up) are exactly dL/dx.

The sliced loss sorts projections over all positions and has no additive statistics: for
it the interiors are assembled into the full feature map of each style layer (memory
proportional to the image, about 500 bytes per pixel for the paper's layers) and dE/dF is
taken there. Content losses are sums over positions and need nothing global.

Exactness needs (1) the halo to cover the receptive field of the deepest layer used, and
(2) tile corners on the grid of that layer's stride (16 px at conv5_x), so that the pooling
windows of a tile are the image's. `geometry` gives each layer's receptive field from the
network's structure; `Tiler` rounds the halo and the tile side up to the stride. The result
equals the untiled evaluation up to float rounding (summation order); `tests/test_tiling.py`
checks loss and gradient to 1e-4 relative, and that a halo one stride narrower is not exact.
Cost: each evaluation runs one extra forward pass (pass 1) and recomputes the halos.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from painterly.imaging import masks as _masks
from painterly.losses import as_matrix, content_loss
from painterly.net.device import wide_dtype
from painterly.net.geometry import geometry, halo_for, round_up
from painterly.objective.objective import Objective
from painterly.objective.terms import Term


# --- tiles ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One tile along one axis: computed on [A, B) (with halo), owning the interior [a, b)."""

    A: int
    B: int
    a: int
    b: int


class Tiler:
    """Cuts images into tiles and evaluates `features` on them.

    features: features(x, layers) -> {layer: (1, N, h, w)} (net.vgg.feature_fn);
    names: the network's layer names in order (VGG19.names); layers: every layer the run uses;
    tile: the interior side in pixels (rounded up to the deepest layer's stride);
    halo: None for the exact halo (see `halo_for`); tests pass a smaller one.
    on_tile: called as on_tile(what, i, n) before tile i of n ("features", "style statistics",
    "forward", "backward"): a huge run reports progress, and may raise errors.Stop, between
    tiles rather than after a whole pass.
    """

    def __init__(
        self, features, names: Sequence[str], layers: Sequence[str], tile: int, halo: Optional[int] = None
    ):
        self.features = features
        self.geo = geometry(names)
        self.layers = list(dict.fromkeys(layers))
        exact, self.stride = halo_for(names, self.layers)
        self.halo = exact if halo is None else halo
        self.tile = round_up(max(int(tile), 1), self.stride)
        self.on_tile = None

    def spans(self, n: int) -> List[Span]:
        out, a = [], 0
        while a < n:
            b = min(n, a + self.tile)
            out.append(Span(max(0, a - self.halo), min(n, b + self.halo), a, b))
            a = b
        return out

    def tiles(self, h: int, w: int, what: Optional[str] = None) -> List[Tuple[Span, Span]]:
        """The tiles of an (h, w) image, row by row; with `what`, on_tile announces each."""
        tiles = [(sy, sx) for sy in self.spans(h) for sx in self.spans(w)]
        if what is None or self.on_tile is None:
            return tiles
        return self._announced(tiles, what)

    def _announced(self, tiles, what: str):
        for i, t in enumerate(tiles):
            self.on_tile(what, i + 1, len(tiles))
            yield t

    def window(self, layer: str, sy: Span, sx: Span):
        """(local slices, global slices) of the tile's interior on `layer`'s grid."""
        s = self.geo[layer][2]
        out_local, out_global = [], []
        for sp in (sy, sx):
            g0, g1 = sp.a // s, sp.b // s
            l0 = (sp.a - sp.A) // s
            out_local.append(slice(l0, l0 + g1 - g0))
            out_global.append(slice(g0, g1))
        return tuple(out_local), tuple(out_global)

    def run(self, x: torch.Tensor, sy: Span, sx: Span, layers) -> Dict[str, torch.Tensor]:
        return self.features(x[..., sy.A : sy.B, sx.A : sx.B], layers)

    @torch.no_grad()
    def assemble(self, x: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
        """{layer: (1, N, H_l, W_l) float32}: the whole image's features, computed tile-wise."""
        h, w = x.shape[-2:]
        out: Dict[str, torch.Tensor] = {}
        for sy, sx in self.tiles(h, w, "features"):
            feats = self.run(x, sy, sx, layers)
            for l in layers:
                f = feats[l]
                if l not in out:
                    s = self.geo[l][2]
                    out[l] = torch.zeros(
                        (1, f.shape[1], h // s, w // s), dtype=torch.float32, device=f.device
                    )
                loc, glob = self.window(l, sy, sx)
                out[l][(0, slice(None)) + glob] = f[(0, slice(None)) + loc].float()
        return out

    @torch.no_grad()
    def style_targets(
        self, s: torch.Tensor, layers: Sequence[str], region_masks: Sequence[dict], loss
    ) -> Dict[str, list]:
        """{layer: [target or None per entry of region_masks]} for one style image.

        region_masks: [{layer: (M_l,) mask}] (an empty dict: the whole image); a mask that
        selects nothing (masks.empty) gives None.
        """
        kind = kind_for(loss)
        h, w = s.shape[-2:]
        accs: Dict[tuple, list] = {}
        full = self.assemble(s, layers) if kind is None else None
        if kind is not None:
            for sy, sx in self.tiles(h, w, "style statistics"):
                feats = self.run(s, sy, sx, layers)
                for l in layers:
                    f = _interior(feats[l], self.window(l, sy, sx)[0])
                    for i, rm in enumerate(region_masks):
                        m = rm.get(l)
                        if _masks.empty(m):
                            continue
                        st = kind.stats(f, _crop_mask(m, self.window(l, sy, sx)[1], w // self.geo[l][2]))
                        accs[(l, i)] = _add(accs.get((l, i)), st)
        out = {}
        for l in layers:
            row = []
            for i, rm in enumerate(region_masks):
                m = rm.get(l)
                if _masks.empty(m):
                    row.append(None)
                elif kind is None:
                    row.append(loss.target(as_matrix(full[l]), m))
                else:
                    row.append(kind.target_of_stats(accs[(l, i)]))
            out[l] = row
        return out


def _interior(f: torch.Tensor, local) -> torch.Tensor:
    """(1, N, h, w) tile features -> (N, h_i, w_i) float32 interior."""
    return f[(0, slice(None)) + local].float()


def _crop_mask(m: Optional[torch.Tensor], glob, width: int) -> Optional[torch.Tensor]:
    """The (M_l,) mask's part under a tile interior (layer width `width`), flattened like it."""
    if m is None:
        return None
    return m.view(-1, width)[glob].reshape(-1)


def _add(acc: Optional[list], st: list) -> list:
    return st if acc is None else [a + b for a, b in zip(acc, st)]


# --- additive statistics of the style losses -------------------------------------------------
def kind_for(loss):
    """The loss itself when it has an additive-statistics form (losses/gram.py: stats,
    target_of_stats, value_of_stats), or None (the sliced loss: assemble the features)."""
    return loss if hasattr(loss, "stats") else None


# --- filter means for the normalised network ---------------------------------------------------
@torch.no_grad()
def filter_means(net, images: Sequence[torch.Tensor], tile: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """net.normalize.filter_means, streamed layer by layer (never all maps at once) and tiled.

    Per-filter mean of every ReLU of `net` over each image's positions, averaged over images;
    sums in float64 (float32 on MPS, which has none: net.device.wide_dtype). tile=None: each image
    in one piece.
    """
    relus = [n for n in net.names if n.startswith("relu")]
    if not relus:
        return {}
    geo = geometry(net.names)
    sums: Dict[str, torch.Tensor] = {n: 0.0 for n in relus}
    for img in images:
        h, w = img.shape[-2:]
        tiler = Tiler(None, net.names, relus, tile or max(h, w))
        acc: Dict[str, torch.Tensor] = {}
        for sy, sx in tiler.tiles(h, w):
            x = net.prepare(img[..., sy.A : sy.B, sx.A : sx.B])
            for name, module in net.layers.items():
                x = module(x)
                if name in geo and name.startswith("relu"):
                    loc, _ = tiler.window(name, sy, sx)
                    part = x[(slice(None), slice(None)) + loc].to(wide_dtype(x.device)).sum(dim=(0, 2, 3))
                    acc[name] = acc[name] + part if name in acc else part
                if name == relus[-1]:
                    break
        for n in relus:
            s = geo[n][2]
            sums[n] = sums[n] + acc[n] / ((h // s) * (w // s))
    return {n: (v / len(images)).float() for n, v in sums.items()}


# --- the tiled objective --------------------------------------------------------------------------
class _TiledLoss(torch.autograd.Function):
    """x -> per-layer losses; the backward runs pass 2 (tile recomputation)."""

    @staticmethod
    def forward(ctx, x, objective):
        values, state = objective.pass1(x, need_grad=True)
        ctx.objective, ctx.state = objective, state
        ctx.save_for_backward(x)
        return values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        (x,) = ctx.saved_tensors
        return ctx.objective.pass2(x, ctx.state, gout), None


class TiledObjective(Objective):
    """objective.Objective evaluated tile by tile; the same function of the image (see module
    doc). The content and style terms go through the tiles; terms on the pixels alone (tv,
    range, temporal) are evaluated on the whole image as usual."""

    def __init__(self, features, terms: Sequence[Term], tiler: Tiler):
        super().__init__(features, terms)
        self.tiler = tiler
        # What each term gives the tiles (Term.tiled): the content term its targets P per layer (a
        # sum over positions), the style term its statistic and per-layer (weight, mask, target).
        content, style = self.term("content"), self.term("style")
        others = [t.name for t in self.terms if t.layers and t not in (content, style)]
        if others:
            raise ValueError(f"terms {others} read features and cannot be evaluated in tiles")
        self.P = content.tiled() if content is not None else {}
        self.content_layers = list(self.P)
        self.style_loss, self.regions = style.tiled() if style is not None else (None, {})
        self.style_layers = list(self.regions)
        self.kind = kind_for(self.style_loss)

    def parts(self, x: torch.Tensor) -> dict:
        if torch.is_grad_enabled() and x.requires_grad:
            values = _TiledLoss.apply(x, self)
        else:
            with torch.no_grad():
                values, _ = self.pass1(x, need_grad=False)
        k = len(self.content_layers)
        tiled = {
            "content": {l: values[i] for i, l in enumerate(self.content_layers)},
            "style": {l: values[k + i] for i, l in enumerate(self.style_layers)},
        }
        return {
            t.name: tiled[t.name] if t.name in tiled else (t.value(x, {}) if t.weight else x.new_zeros(()))
            for t in self.terms
        }

    def _p(self, l: str, glob, h: int, w: int) -> torch.Tensor:
        s = self.tiler.geo[l][2]
        p = self.P[l]
        return p.view(p.shape[0], h // s, w // s)[(slice(None),) + glob]

    def pass1(self, x: torch.Tensor, need_grad: bool):
        """The per-layer losses [content layers..., style layers...] and dE_l/d(statistics)."""
        h, w = x.shape[-2:]
        tl, kind = self.tiler, self.kind
        content = {l: x.new_zeros((), dtype=torch.float32) for l in self.content_layers}
        accs: Dict[tuple, list] = {}
        full: Dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for sy, sx in tl.tiles(h, w, "forward"):
                feats = tl.run(x, sy, sx, self.layers)
                for l in self.content_layers:
                    loc, glob = tl.window(l, sy, sx)
                    content[l] += content_loss(_interior(feats[l], loc), self._p(l, glob, h, w))
                for l in self.style_layers:
                    if not self.regions[l]:
                        continue
                    loc, glob = tl.window(l, sy, sx)
                    f = _interior(feats[l], loc)
                    if kind is None:
                        if l not in full:
                            s = tl.geo[l][2]
                            full[l] = f.new_zeros((f.shape[0], h // s, w // s))
                        full[l][(slice(None),) + glob] = f
                        continue
                    for i, (_, m, _) in enumerate(self.regions[l]):
                        accs[(l, i)] = _add(
                            accs.get((l, i)), kind.stats(f, _crop_mask(m, glob, w // tl.geo[l][2]))
                        )
                del feats
        values = [content[l] for l in self.content_layers]
        state = {}
        with torch.enable_grad() if need_grad else contextlib.nullcontext():
            for l in self.style_layers:
                terms = self.regions[l]
                if not terms:
                    values.append(x.new_zeros((), dtype=torch.float32))
                    continue
                if kind is None:
                    leaf = full[l].requires_grad_(need_grad)
                    f = leaf.view(leaf.shape[0], -1)
                    e = sum(wt * self.style_loss(f, target, m) for wt, m, target in terms)
                    leaves = [leaf]
                else:
                    stats = [
                        [t.detach().requires_grad_(need_grad and t.is_floating_point()) for t in accs[(l, i)]]
                        for i in range(len(terms))
                    ]
                    e = sum(wt * kind.value_of_stats(st, target) for (wt, _, target), st in zip(terms, stats))
                    leaves = [t for st in stats for t in st]
                if need_grad and e.requires_grad:
                    grads = torch.autograd.grad(e, leaves, allow_unused=True)
                    state[l] = grads
                values.append(e.detach().float())
        return torch.stack(values) if values else x.new_zeros((0,)), state

    def pass2(self, x: torch.Tensor, state: dict, gout: torch.Tensor) -> torch.Tensor:
        """dL/dx = sum over tiles of the backward of the surrogate (see module doc)."""
        h, w = x.shape[-2:]
        tl, kind = self.tiler, self.kind
        k = len(self.content_layers)
        grad = torch.zeros_like(x)
        for sy, sx in tl.tiles(h, w, "backward"):
            xt = x[..., sy.A : sy.B, sx.A : sx.B].detach().requires_grad_(True)
            with torch.enable_grad():
                feats = tl.features(xt, self.layers)
                total = None
                for j, l in enumerate(self.content_layers):
                    loc, glob = tl.window(l, sy, sx)
                    term = content_loss(_interior(feats[l], loc), self._p(l, glob, h, w))
                    total = gout[j] * term if total is None else total + gout[j] * term
                for j, l in enumerate(self.style_layers):
                    if l not in state:
                        continue
                    loc, glob = tl.window(l, sy, sx)
                    f = _interior(feats[l], loc)
                    if kind is None:
                        term = (state[l][0][(slice(None),) + glob] * f).sum()
                    else:
                        grads, term, n = state[l], 0.0, 0
                        for _, m, _ in self.regions[l]:
                            st = kind.stats(f, _crop_mask(m, glob, w // tl.geo[l][2]))
                            for t in st:
                                g = grads[n]
                                n += 1
                                if g is not None and t.requires_grad:
                                    term = term + (g.to(t.dtype) * t).sum()
                    if isinstance(term, torch.Tensor):
                        term = gout[k + j] * term.float()
                        total = term if total is None else total + term
                if total is not None and total.requires_grad:
                    total.backward()
            if xt.grad is not None:
                grad[..., sy.A : sy.B, sx.A : sx.B] += xt.grad
            del feats, xt
        return grad
