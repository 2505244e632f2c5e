"""The neural-neighbour mode (--preset neighbour, NNST) beside our Gatys default and --preset
quality, on the wide set, in one run: time, peak memory, the quality scores and a montage
(photo, painting, default, quality, neighbour).

A thin shell around bench_quality.py (the same pairs, scores, table, JSON and montage) with
its own defaults: 512 px, runs default,quality,neighbour, label "neighbour". Any of
bench_quality.py's flags may be given and override these.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_neighbour.py                 # 33 pairs, 512 px
    PYTHONPATH=src .venv/bin/python benchmarks/bench_neighbour.py --size 256 --limit 6

Writes benchmarks/results/quality_wide-neighbour.json and ..._montage.png.
"""

from __future__ import annotations

import sys

import bench_quality

DEFAULTS = ["--size", "512", "--runs", "default,quality,neighbour", "--label", "neighbour"]


if __name__ == "__main__":
    sys.exit(bench_quality.main(DEFAULTS + sys.argv[1:]))
