"""The benchmarks' own arithmetic (their runs are measured by running them, not here)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_filed  # noqa: E402


def test_bench_filed_takes_the_median_time_of_its_rounds_and_the_first_rounds_scores():
    s = dict(style=0.1, content=0.5, palette=0.2, clipped=0.01)
    rows = [
        {"pair": "a", "code": "old", "round": 0, "seconds": 10.0, **s},
        {"pair": "a", "code": "today", "round": 0, "seconds": 30.0, **s, "style": 0.05},
        {"pair": "a", "code": "today", "round": 1, "seconds": 8.0},
        {"pair": "a", "code": "old", "round": 1, "seconds": 14.0},
        {"pair": "a", "code": "today", "round": 2, "seconds": 9.0},
        {"pair": "a", "code": "old", "round": 2, "seconds": 12.0},
    ]
    text = bench_filed.table(rows, "old")
    assert "| a | 12.0 / 9.0 (x0.75) | 0.100 / 0.050 |" in text
    assert "x0.75 at the median" in text
