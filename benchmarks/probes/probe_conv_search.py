"""Would the neighbour search run faster as a 1x1 convolution? (issue 41, --preset neighbour)

The search (methods/neighbour.py nearest_neighbours) takes, for each of m output hypercolumns,
the most similar of n painting hypercolumns (D = 2688 values each): chunks of (n x D) @ (D x 2048)
matrix products and an argmax. On the CPU torch's matrix product is MKL's, which ran at about 190
GFLOP/s on a 2-core AMD EPYC where oneDNN's convolutions reach 500; a 1x1 convolution with the n
painting columns as filters computes the same dot products through oneDNN. This times both on
random unit columns of the finest search's shapes at 512 px (m = 12288, n = 12800) and counts
the choices on which they differ (float rounding: near-ties).

Whole runs were measured with the option built (commit f9febd9, `--conv-search`; bench_profile,
results/conv_search_512.json and conv_search_1024.json): 0.96x the time at 512 px over two
alternated rounds, 0.99x at 1024 px in one round. It was not kept (docs/history.md, Speed).

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_conv_search.py

Writes benchmarks/results/conv_search_micro.json and prints a table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common

import torch
import torch.nn.functional as F

from common import RESULTS, machine, write_json

D, N, M, CHUNK = 2688, 12800, 12288, 2048


def best(f, repeats=2):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        y = f()
        times.append(time.perf_counter() - t)
    return min(times), y


def main() -> int:
    g = torch.Generator().manual_seed(0)
    r = F.normalize(torch.randn(N, D, generator=g), dim=1)  # painting columns, as rows
    s = F.normalize(torch.randn(D, M, generator=g), dim=0)  # output columns
    w = r.reshape(N, D, 1, 1).contiguous(memory_format=torch.channels_last)

    def matmul():
        return torch.cat([(r @ s[:, i : i + CHUNK]).argmax(0) for i in range(0, M, CHUNK)])

    def conv():
        out = []
        for i in range(0, M, CHUNK):
            x = s[:, i : i + CHUNK].reshape(1, D, 1, -1).contiguous(memory_format=torch.channels_last)
            out.append(F.conv2d(x, w)[0, :, 0].argmax(0))
        return torch.cat(out)

    gflop = 2.0 * D * N * M / 1e9
    rows = []
    t_mm, base = best(matmul)
    t_conv, got = best(conv)
    for name, t, y in (("matrix product (MKL)", t_mm, base), ("1x1 convolution (oneDNN)", t_conv, got)):
        rows.append(
            {
                "way": name,
                "seconds": round(t, 3),
                "gflops": round(gflop / t),
                "differ": int((y != base).sum()),
            }
        )
    print(f"search {D} x {N} by {D} x {M} ({gflop:.0f} GFLOP), fp32, {torch.get_num_threads()} threads")
    print("| way | s | GFLOP/s | choices unlike the matrix product's |\n|---|---:|---:|---:|")
    for x in rows:
        print(f"| {x['way']} | {x['seconds']:.2f} | {x['gflops']} | {x['differ']} |")
    out = RESULTS / "conv_search_micro.json"
    write_json(
        out, {"benchmark": "conv_search", "machine": machine(), "shape": [D, N, M, CHUNK], "rows": rows}
    )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
