"""Gatys et al.'s method: match statistics of the painting's features at the style layers.

The paper's statistic is the Gram matrix; mean-std, W2 and sliced are the others of
painterly.losses.STATISTICS, behind the same interface. Several styles blend their targets,
and with spatial control (1611.07865) each region of the output has its own targets.
"""

from __future__ import annotations

from typing import List, Sequence

from painterly.imaging import masks as _masks
from painterly.losses import STATISTICS, as_matrix, statistic
from painterly.methods.base import Method, StyleInputs
from painterly.objective import Region, StyleTerm, layer_weights
from painterly.options import Options, floats_per_pixel


class Statistics(Method):
    names = tuple(STATISTICS)

    def targets(self, o: Options, inputs: StyleInputs) -> List[Region]:
        """One Region per mask region (one for the whole image without masks), each with its
        blended targets at every style layer."""
        if not (inputs.styles and o.style_layers):
            return []
        loss = statistic(o.style_loss)
        if inputs.masks is None and inputs.tiler is None:

            def compute(s):
                f = inputs.features(s, o.style_layers)
                return {l: loss.target(as_matrix(f[l])) for l in o.style_layers}

            per_style = [inputs.cached(s, compute) for s in inputs.styles]
            targets = {l: loss.blend([t[l] for t in per_style], inputs.blend) for l in o.style_layers}
            return [Region(1.0, {}, targets)]
        return _region_targets(
            inputs.features, o, inputs.styles, inputs.blend, inputs.masks, inputs.tiler, loss
        )

    def term(self, o: Options, targets) -> StyleTerm:
        regions = targets or []
        layers = o.style_layers if regions else ()
        return StyleTerm(
            o.style_weight,
            regions,
            layers,
            layer_weights(o)[: len(layers)],
            statistic(o.style_loss, seed=o.seed),
        )

    def extra_bytes(
        self, o: Options, job: str, pixels: int, style_pixels: Sequence[int], tiled: bool
    ) -> float:
        if hasattr(statistic(o.style_loss), "stats"):  # additive statistics: nothing kept per pixel
            return 0.0
        # No additive statistics (the sliced loss): the styles' features are the targets, and
        # a tiled run assembles the output's features and their gradient.
        layers = o.style_layers if job != "content" else ()
        extra = 4.0 * sum(style_pixels) * floats_per_pixel(layers)
        return extra + (8.0 * pixels * floats_per_pixel(layers) if tiled else 0.0)

    def device_bytes(
        self, o: Options, job: str, pixels: int, style_pixels: Sequence[int], tiled: bool
    ) -> float:
        extra = self.extra_bytes(o, job, pixels, style_pixels, tiled)
        if hasattr(statistic(o.style_loss), "stats") or job == "content":
            return extra
        # The sliced loss sorts every layer's projections (K = N directions, N x M values): each
        # layer keeps its permutation (int64) and difference (float32) for the backward pass, and
        # the layer being sorted has its keys, their sort and the projections (about 40 bytes a
        # value) at once. Measured on the CPU's tensors (2027-01, 256 px): 265 MiB, where the
        # estimate without this term said 181.
        values = [floats_per_pixel([l]) for l in o.style_layers]
        return extra + pixels * (12.0 * sum(values) + 40.0 * max(values, default=0.0))


def _region_targets(net_features, o: Options, styles, blend, masks, tiler, loss) -> List[Region]:
    """One Region per mask region (or one for the whole image), each with its blended targets.

    Region r's target at layer l blends the targets of the styles that provide r there (a
    style without a mask provides every region), its blend weights renormalised over them.
    A region whose output mask or every providing style mask is empty at a layer gets no term
    there (masks.empty), and a style whose mask for r is empty at a layer drops out of the blend.
    """
    n_regions = masks.n_regions if masks else 1
    per_style = []  # per style: {layer: [target per region]} (one entry if the style has no mask)
    for i, s in enumerate(styles):
        sm = masks.styles[i] if masks else None
        region_masks = (
            [{}] if sm is None else [{l: sm[l][r] for l in o.style_layers} for r in range(n_regions)]
        )
        if tiler is not None:
            per_style.append(tiler.style_targets(s, o.style_layers, region_masks, loss))
        else:
            feats = net_features(s, o.style_layers)
            per_style.append(
                {
                    l: [
                        None if _masks.empty(rm.get(l)) else loss.target(as_matrix(feats[l]), rm.get(l))
                        for rm in region_masks
                    ]
                    for l in o.style_layers
                }
            )
    regions = []
    for r in range(n_regions):
        out_masks = {l: masks.output[l][r] for l in o.style_layers} if masks else {}
        targets = {}
        for l in o.style_layers:
            if _masks.empty(out_masks.get(l)):
                targets[l] = None
                continue
            parts = [(t[l][0 if len(t[l]) == 1 else r], b) for t, b in zip(per_style, blend)]
            parts = [(t, b) for t, b in parts if t is not None and b > 0]
            total = sum(b for _, b in parts)
            targets[l] = loss.blend([t for t, _ in parts], [b / total for _, b in parts]) if parts else None
        regions.append(Region(masks.weights[r] if masks else 1.0, out_masks, targets))
    return regions
