"""Would a soft highlight/shadow roll-off in the palette start cut the newly clipped pixels?

The default run starts from the photo recoloured to the painting's colour mean and covariance
(`--init palette`, engine._initial), clamped to [0, 1]. On some pairs that affine map puts a third
or more of the pixels outside [0, 1] (sailboat x impronte_d_artista 32%, golden_gate x
en_campo_gris 46% at 192 px), which the clamp flattens to 0 or 1. This probe runs the default at
384 px from that start written to a PNG (`--init FILE`), once clamped (KNEE 0, the default's
start) and once with each channel rolled off smoothly into [k, 1 - k] beyond the knee k
(y = 1 - k + k (1 - exp(-(x - 1 + k) / k)) above 1 - k, mirrored below k: slope 1 at the knee,
order and detail kept), and scores both (S, K, P, newly clipped; painterly/scores.py).

    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_palette_knee.py            # 6 pairs, k 0 and 0.1
    PYTHONPATH=src .venv/bin/python benchmarks/probes/probe_palette_knee.py --knees 0,0.05,0.1 --pairs sailboat:impronte_d_artista

Prints a table and writes benchmarks/results/palette_knee.json; the outputs go to
benchmarks/results/quality/palette_knee/ (ignored by git).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

from common import IMAGES, RESULTS, ROOT, machine, write_json
from painterly import imaging as images
from painterly import scores
from painterly.imaging import color

PAIRS = [
    "sailboat:impronte_d_artista",
    "blonde_girl:asheville",
    "golden_gate:en_campo_gris",
    "hoovertowernight:en_campo_gris",
    "brad_pitt:asheville",
    "tubingen:starry_night",
]


def roll_off(x: torch.Tensor, k: float) -> torch.Tensor:
    """Each channel clamped to [0, 1] (k = 0) or rolled off smoothly into (0, 1) beyond [k, 1 - k]."""
    if k <= 0:
        return x.clamp(0, 1)
    hi = 1 - k
    y = torch.where(x > hi, hi + k * (1 - torch.exp(-(x - hi) / k)), x)
    return torch.where(x < k, k * torch.exp(-(k - x) / k), y)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--knees", default="0,0.1")
    ap.add_argument("--pairs", default=",".join(PAIRS), help="photo:painting,...")
    args = ap.parse_args(argv)
    out_dir = RESULTS / "quality" / "palette_knee"
    out_dir.mkdir(parents=True, exist_ok=True)
    knees = [float(k) for k in args.knees.split(",")]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    rows = []
    for pair in args.pairs.split(","):
        photo, painting = pair.split(":")
        c_path, s_path = IMAGES / f"{photo}.jpg", IMAGES / f"{painting}.jpg"
        c = images.resize_long_side(images.load_image(c_path), args.size)
        s = images.load_image(s_path)
        start = color.match_histogram(
            images.to_tensor(c), images.to_tensor(images.resize_long_side(s, args.size))
        )
        scorer = scores.Scorer(c, s, extras=False)
        for k in knees:
            init = out_dir / f"{photo}-{painting}-start-k{k}.png"
            images.to_pil(roll_off(start, k)).save(init)
            out = out_dir / f"{photo}-{painting}-k{k}.png"
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "painterly.cli",
                    "transfer",
                    str(c_path),
                    str(s_path),
                    "-o",
                    str(out),
                    "--size",
                    str(args.size),
                    "--init",
                    str(init),
                    "--overwrite",
                    "--quiet",
                ],
                check=True,
                env=env,
            )
            row = {
                "pair": f"{photo} x {painting}",
                "knee": k,
                "seconds": round(time.perf_counter() - t, 1),
                "start_out_of_range": float(((start < 0) | (start > 1)).any(1).float().mean()),
            }
            row.update({n: round(v, 4) for n, v in scorer(images.load_image(out)).items()})
            rows.append(row)
            print(
                f"{row['pair']:36s} k {k:<5} S {row['style']:.3f} K {row['content']:.3f} P {row['palette']:.3f} "
                f"clipped {100 * row['clipped']:4.1f}%  (start out of range {100 * row['start_out_of_range']:.0f}%)",
                flush=True,
            )
    write_json(
        RESULTS / "palette_knee.json",
        {"benchmark": "palette_knee", "size": args.size, "machine": machine(), "rows": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
