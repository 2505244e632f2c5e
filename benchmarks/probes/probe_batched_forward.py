"""Would batching several jobs into one forward/backward pass speed up `painterly batch`?

Times one forward+backward of the default objective's layers (relu1_1..relu5_1, relu4_2;
original VGG-19, the default bf16 autocast + channels_last) for a batch of one image and a
batch of two at the default schedule's two sizes, alternating, best of three rounds of five.
"per-image gain" = 2 x t(batch 1) / t(batch 2): what running two jobs' images through the
network together would save per image (issue 11 asks batch for 1.5x over separate runs).

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_batched_forward.py

Prints a table and writes benchmarks/results/batched_forward.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

from common import RESULTS, machine, write_json
from painterly import engine, options

SIZES = [(96, 128), (192, 256)]  # (H, W): the default schedule's scales at --size 256


def main() -> int:
    o = options.DEFAULTS.replace(device="cpu")
    st = engine.Stylizer(o)
    layers = list(o.content_layers) + list(o.style_layers)
    st.prepare()
    feats = st.features(False)

    def step(x):
        x = x.detach().requires_grad_(True)
        loss = sum((v.float() ** 2).mean() for v in feats(x, layers).values())
        loss.backward()

    rows = []
    for h, w in SIZES:
        best = {}
        for n in (1, 2) * 3:
            x = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(0))
            step(x)
            t = time.perf_counter()
            for _ in range(5):
                step(x)
            best[n] = min(best.get(n, float("inf")), (time.perf_counter() - t) / 5)
        rows.append(
            {
                "size": f"{w}x{h}",
                "batch1_s": round(best[1], 4),
                "batch2_s": round(best[2], 4),
                "per_image_gain": round(2 * best[1] / best[2], 3),
            }
        )
    print("| size | batch of 1, s | batch of 2, s | per-image gain |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['batch1_s']:.3f} | {r['batch2_s']:.3f} | {r['per_image_gain']:.2f}x |")
    write_json(
        RESULTS / "batched_forward.json", {"benchmark": "batched_forward", "machine": machine(), "rows": rows}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
