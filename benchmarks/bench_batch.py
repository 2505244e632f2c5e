"""Batch throughput: images per minute for one set of jobs, run four ways, side by side.

    python benchmarks/bench_batch.py                       # 3 photos x 3 styles, 256 px, default schedule
    python benchmarks/bench_batch.py --photos 6 --styles 4 # the issue's 24 jobs, where the images exist

  separate   one `painterly transfer` process per job (the network loaded, the style's
             targets computed, every time)
  workers1   `painterly batch --workers 1`
  default    `painterly batch` (workers: one per GPU, else one per 2 cores)
  workers2   `painterly batch --workers 2` (on a 2-core machine: two workers of one thread each)
  ray        `painterly batch --executor ray` (a local Ray started by the command)

Each way is one wall-clock measurement of the whole command(s), from a fresh output folder, so
process start, imports, network loading and Ray's start are all counted. Peak memory per
worker: the largest ru_maxrss of a `transfer` process (separate), or the largest peak_rss_mb
a batch worker logged. Then `--big-size` (512) per-image seconds, from `batch --workers 1` on
`--big-jobs` jobs of one style, for the written estimate of 100,000 images on N workers.
Writes a table and benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGES = ROOT.parent / "shared" / "images"
RESULTS = HERE / "results"
PHOTOS = ["tubingen.jpg", "golden_gate.jpg", "hoovertowernight.jpg"]
PAINTINGS = ["starry_night.jpg", "the_scream.jpg", "bricks.jpg"]  # bricks: a texture, the only other style
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_USAGE_STATS_ENABLED": "0"}
CLI = [sys.executable, "-m", "painterly.cli"]


def machine() -> dict:
    model = platform.processor() or ""
    try:
        model = next(
            l.split(":", 1)[1].strip()
            for l in Path("/proc/cpuinfo").read_text().splitlines()
            if l.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()),
    }


def log_lines(out: Path) -> list:
    return [json.loads(l) for l in (out / "batch.jsonl").read_text().splitlines()]


def run_batch(name, contents, styles, out: Path, flags, extra) -> dict:
    cmd = (
        CLI
        + ["batch", *map(str, contents)]
        + sum((["--style", str(s)] for s in styles), [])
        + ["--out-dir", str(out), "--quiet", *flags, *extra]
    )
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    lines = log_lines(out)
    ok = [l for l in lines if l["status"] == "ok"]
    workers = sorted({l["worker"] for l in lines})
    return {
        "way": name,
        "command": " ".join(cmd[2:]),
        "jobs": len(lines),
        "ok": len(ok),
        "wall_s": round(wall, 1),
        "images_per_min": round(len(ok) / wall * 60, 3),
        "workers": len(workers),
        "mean_job_s": round(sum(l["seconds"] for l in ok) / max(len(ok), 1), 2),
        "peak_rss_mb_per_worker": max(l.get("peak_rss_mb", 0) for l in lines),
        "summary": proc.stderr.strip().splitlines()[-1],
    }


def run_separate(contents, styles, out: Path, extra) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n, t = 0, time.perf_counter()
    times = []
    for s in styles:
        for c in contents:
            cmd = CLI + [
                "transfer",
                str(c),
                str(s),
                "-o",
                str(out / f"{c.stem}--{s.stem}.png"),
                "--quiet",
                *extra,
            ]
            t1 = time.perf_counter()
            proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
            times.append(time.perf_counter() - t1)
            if proc.returncode != 0:
                raise SystemExit(f"separate: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
            n += 1
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return {
        "way": "separate",
        "command": f"{n} x painterly transfer C S -o OUT --quiet " + " ".join(extra),
        "jobs": n,
        "ok": n,
        "wall_s": round(wall, 1),
        "images_per_min": round(n / wall * 60, 3),
        "workers": 1,
        "mean_job_s": round(sum(times) / n, 2),
        "peak_rss_mb_per_worker": round(peak, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=len(PHOTOS), help="content images (from ../shared/images)")
    p.add_argument("--styles", type=int, default=len(PAINTINGS), help="style images")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--weights", default="original")
    p.add_argument("--ways", default="separate,workers1,default,workers2,ray")
    p.add_argument(
        "--big-size", type=int, default=512, help="size of the per-image measurement for the estimate"
    )
    p.add_argument("--big-jobs", type=int, default=2, help="jobs at --big-size (0: skip)")
    p.add_argument("--json", default=str(RESULTS / "batch.json"))
    a = p.parse_args(argv)
    all_images = sorted(IMAGES.glob("*.jpg"))
    photos = [IMAGES / n for n in PHOTOS] + [i for i in all_images if i.name not in PHOTOS + PAINTINGS]
    paintings = [IMAGES / n for n in PAINTINGS]
    if a.photos > len(photos) or a.styles > len(paintings):
        raise SystemExit(f"only {len(photos)} photos and {len(paintings)} styles in {IMAGES}")
    contents, styles = photos[: a.photos], paintings[: a.styles]
    extra = ["--size", str(a.size), "--weights", a.weights]
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    rows = []
    try:
        for way in a.ways.split(","):
            if way == "separate":
                rows.append(run_separate(contents, styles, tmp / way, extra))
            else:
                flags = {
                    "workers1": ["--workers", "1"],
                    "default": [],
                    "workers2": ["--workers", "2"],
                    "ray": ["--executor", "ray"],
                }[way]
                rows.append(run_batch(way, contents, styles, tmp / way, flags, extra))
            r = rows[-1]
            print(
                f"{r['way']:9} {r['jobs']} jobs {r['wall_s']:8.1f} s {r['images_per_min']:7.3f} images/min "
                f"(mean job {r['mean_job_s']} s, {r['workers']} worker(s), peak {r['peak_rss_mb_per_worker']} MB)",
                flush=True,
            )
        big = None
        if a.big_jobs:
            r = run_batch(
                "big",
                contents[: a.big_jobs],
                styles[:1],
                tmp / "big",
                ["--workers", "1"],
                ["--size", str(a.big_size), "--weights", a.weights],
            )
            lines = log_lines(tmp / "big")
            big = {
                "size": a.big_size,
                "jobs": r["jobs"],
                "wall_s": r["wall_s"],
                "job_s": [l["seconds"] for l in lines],
                "mean_job_s": r["mean_job_s"],
                "peak_rss_mb": r["peak_rss_mb_per_worker"],
                "command": r["command"],
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    by = {r["way"]: r for r in rows}
    base = by.get("separate")
    for r in rows:
        r["vs_separate"] = round(r["images_per_min"] / base["images_per_min"], 2) if base else None
    print("\n| way | jobs | workers | wall s | images/min | vs separate | mean s/job | peak MB/worker |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['way']} | {r['jobs']} | {r['workers']} | {r['wall_s']} | {r['images_per_min']} | "
            f"{r['vs_separate']}x | {r['mean_job_s']} | {r['peak_rss_mb_per_worker']} |"
        )
    result = {
        "machine": machine(),
        "weights": a.weights,
        "size": a.size,
        "schedule": "default (60 steps at half size, then 40 at full size)",
        "contents": [c.name for c in contents],
        "styles": [s.name for s in styles],
        "rows": rows,
        "big": big,
        "note": f"{len(contents)} x {len(styles)} = {len(contents) * len(styles)} jobs (the contents and "
        "styles above), to keep the run to minutes on a shared 2-core machine. `batch` default "
        f"= {by['default']['workers'] if 'default' in by else '?'} worker(s) here (one per 2 cores); "
        "workers2 is `--workers 2` (one thread each).",
    }
    if "ray" in by and "default" in by:
        result["ray_vs_local_default"] = round(
            by["ray"]["images_per_min"] / by["default"]["images_per_min"], 3
        )
    if big:
        t = big["mean_job_s"]
        result["estimate_100k"] = {
            "per_image_s": t,
            "size": big["size"],
            "rule": "hours = 100000 x per_image_s / N / 3600 (each worker runs one job at a time; the network "
            "and a style's targets are prepared once per worker, which 100,000 jobs amortise)",
            "cpu_workers": {str(n): round(100000 * t / n / 3600, 1) for n in (1, 8, 64, 512)},
        }
        print(
            f"\n{big['size']} px: {t} s per image on one worker of this machine -> 100,000 images = "
            f"100000 x {t} / N s = {100000 * t / 3600:.0f} h / N"
        )
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
