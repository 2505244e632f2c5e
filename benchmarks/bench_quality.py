"""Picture quality on the wide set: 33 (photo, painting) pairs, scored on the original VGG-19.

The set is ../shared/images: 10 photographs and 19 paintings and drawings (PHOTOS, PAINTINGS;
KIND sorts the paintings into drawings, flat geometric, strongly textured, and a photograph
used as a style). The pairs are photo[i % 10] x painting[i % 19] for i in 0..29 (distinct;
every photo and every painting appears) plus the three original pairs (tubingen x
starry_night, golden_gate x the_scream, hoovertowernight x starry_night), 33 in all.

For each pair, in one run on one machine, each of our runs in a fresh process:
  default   `painterly transfer C S -o out.png --size N`          (+ --extra ARGS)
  quality   the same with `--preset quality`
  paper     the same with `--preset paper` (only when asked: --runs default,quality,paper)
  neighbour the same with `--preset neighbour` (NNST; bench_neighbour.py runs it at 512 px)
  no-palette the same with `--palette-weight 0` (the default before the palette term)
  pastiche  (--pastiche, only for the three original pairs) `python -m pastiche` with its
            default settings, saving every step: "pastiche = default time" is the last image it
            saved within our default run's wall time, "pastiche N" its image after
            --pastiche-steps steps.
Wall times are from launching the process to its exit (ours) or to the image's write time
(pastiche), so both include start-up, loading the network and computing targets.

Scores (painterly.scores): S style, K content, P palette, newly clipped, CFSD (lower is
better), LP and LP coverage (higher is better). Targets (issue 18) for the default run, on every
pair: S <= 0.35, P <= 0.8, K <= 0.9, clipped <= 5%; medians S <= 0.2, P <= 0.6.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py                  # 33 pairs, 384 px
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --runs default --limit 10
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --pairs original --pastiche
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --runs default \\
        --extra "--content-target 0.8" --label ct08                         # an experiment
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --runs default \\
        --config "split=--deep-split relu3_1" --label split     # two runs side by side
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --commit 6d8ad0d --runs default
    PYTHONPATH=src .venv/bin/python benchmarks/bench_quality.py --montage-only   # from the JSON

Writes benchmarks/results/quality_wide[-LABEL].json (after every pair) and a montage
benchmarks/results/quality_wide[-LABEL]_montage.png (one row per pair: photo, painting, each
run's result); the outputs go to benchmarks/results/quality/ (ignored by git). Prints a
markdown table: each pair's scores, then per run the median and worst pair of each score,
the medians per kind of painting and the count of pairs meeting the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from common import machine  # noqa: E402
from painterly import imaging as images  # noqa: E402
from painterly import scores

IMAGES = ROOT.parent / "shared" / "images"
RESULTS = HERE / "results"
OUTPUTS = RESULTS / "quality"  # ignored by git

PHOTOS = (
    "blonde_girl",
    "brad_pitt",
    "cornell",
    "flowers",
    "golden_gate",
    "hoovertowernight",
    "modern",
    "newyork",
    "sailboat",
    "tubingen",
)
PAINTINGS = (
    "antimonocromatismo",
    "asheville",
    "bricks",
    "brushstrokes",
    "contrast_of_forms",
    "en_campo_gris",
    "flower_of_life",
    "goeritz",
    "impronte_d_artista",
    "la_muse",
    "mondrian_cropped",
    "picasso_self_portrait",
    "scene_de_rue",
    "sketch",
    "starry_night",
    "the_resevoir_at_poitiers",
    "the_scream",
    "trial",
    "woman_in_peasant_dress_cropped",
)
KINDS = {
    "drawing": ("sketch", "woman_in_peasant_dress_cropped", "scene_de_rue", "antimonocromatismo"),
    "flat geometric": (
        "mondrian_cropped",
        "en_campo_gris",
        "contrast_of_forms",
        "la_muse",
        "picasso_self_portrait",
        "trial",
        "impronte_d_artista",
    ),
    "strongly textured": (
        "starry_night",
        "the_scream",
        "brushstrokes",
        "asheville",
        "goeritz",
        "the_resevoir_at_poitiers",
        "flower_of_life",
    ),
    "photograph": ("bricks",),
}
KIND = {painting: kind for kind, names in KINDS.items() for painting in names}
assert sorted(KIND) == sorted(PAINTINGS)
ORIGINAL = (("tubingen", "starry_night"), ("golden_gate", "the_scream"), ("hoovertowernight", "starry_night"))


def pair_name(photo: str, painting: str) -> str:
    return f"{photo}-{painting}"


def all_pairs() -> dict:
    """{name: (photo, painting)}: the 30 cyclic pairs, then the original three."""
    pairs = [(PHOTOS[i % len(PHOTOS)], PAINTINGS[i % len(PAINTINGS)]) for i in range(30)]
    pairs += [p for p in ORIGINAL if p not in pairs]
    return {pair_name(*p): p for p in pairs}


PAIRS = all_pairs()
OURS = {
    "default": [],
    "quality": ["--preset", "quality"],
    "paper": ["--preset", "paper"],
    "neighbour": ["--preset", "neighbour"],
    "no-palette": ["--palette-weight", "0"],
}  # the default before the palette term (side by side)
SCORES = ("style", "content", "palette", "clipped", "cfsd", "lp", "lp_coverage")
HEAD = {
    "style": "S",
    "content": "K",
    "palette": "P",
    "clipped": "clipped",
    "cfsd": "CFSD",
    "lp": "LP",
    "lp_coverage": "LP cov",
}
HIGHER_IS_BETTER = {"lp", "lp_coverage"}
TARGETS = {"style": 0.35, "palette": 0.8, "content": 0.9, "clipped": 0.05}  # each pair, issue 18
MEDIAN_TARGETS = {"style": 0.2, "palette": 0.6}


def select_pairs(spec: str, limit: int = 0) -> dict:
    if spec in ("", "all"):
        chosen = dict(PAIRS)
    elif spec == "original":
        chosen = {pair_name(*p): p for p in ORIGINAL}
    else:
        unknown = [n for n in spec.split(",") if n not in PAIRS]
        if unknown:
            raise SystemExit(f"unknown pair(s) {', '.join(unknown)}; the pairs are: {', '.join(PAIRS)}")
        chosen = {n: PAIRS[n] for n in spec.split(",")}
    return dict(list(chosen.items())[:limit]) if limit else chosen


def timed(cmd, env=None) -> tuple:
    """Run `cmd`; return (wall seconds, peak RSS MiB of that process, its start time)."""
    start_wall = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(
            f"failed ({status}): {' '.join(map(str, cmd))}\n{proc.stderr.read().decode()[-2000:]}"
        )
    return seconds, usage.ru_maxrss / 1024, start_wall


def run_ours(
    name: str, content: Path, style: Path, size: int, extra: list, out: Path, src: Path = ROOT / "src"
) -> dict:
    """Run `name` (a key of OURS or a --config label, or NAME@REV: the same on the code `src` of an
    earlier commit)."""
    args = [*OURS[name.split("@")[0]], *extra]
    cmd = [
        sys.executable,
        "-m",
        "painterly.cli",
        "transfer",
        str(content),
        str(style),
        "-o",
        str(out),
        "--size",
        str(size),
        "--quiet",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(src)}
    seconds, rss, _ = timed(cmd, env)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss),
        "image": out,
        "command": " ".join(["painterly transfer C S -o out.png --size", str(size), *map(shlex.quote, args)]),
    }


def run_pastiche(content: Path, style: Path, size: int, steps: int, work: Path) -> tuple:
    """pastiche's default settings, every step saved; returns (seconds, [(seconds, path)], rss)."""
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.png"):
        old.unlink()
    cmd = [
        sys.executable,
        "-m",
        "pastiche",
        "--content",
        str(content),
        "--styles",
        str(style),
        "--output",
        str(work / "final.png"),
        "--size",
        str(size),
        "--num-steps",
        str(steps),
        "--device",
        "cpu",
        "--seed",
        "0",
        "--workspace",
        str(work),
        "--workspace-step",
        "1",
        "--no-verbose",
    ]
    seconds, rss, start = timed(cmd)
    saved = sorted((p.stat().st_mtime - start, p) for p in work.glob("[0-9]*.png"))
    return seconds, saved, rss


def score(scorer, path: Path) -> dict:
    return {k: round(v, 4) for k, v in scorer(images.load_image(path)).items()}


def default_paths(label: str) -> tuple:
    stem = "quality_wide" + (f"-{label}" if label else "")
    return RESULTS / f"{stem}.json", RESULTS / f"{stem}_montage.png"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument(
        "--pairs",
        default="all",
        help="'all', 'original' (the three original pairs) or comma-separated names PHOTO-PAINTING",
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N of the selected pairs")
    ap.add_argument("--runs", default="default,quality", help="comma-separated, from: " + ", ".join(OURS))
    ap.add_argument(
        "--extra", default="", help='CLI arguments appended to each of our runs, e.g. "--tv-weight 1"'
    )
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="LABEL=CLI options: one more run, named LABEL (repeatable; after --runs, side by side)",
    )
    ap.add_argument(
        "--commit",
        default="",
        help="also each run on this earlier commit (a git worktree), as RUN@COMMIT, side by side: "
        "the two alternate which goes first from pair to pair, and the table compares against it",
    )
    ap.add_argument(
        "--label", default="", help="names the run set: the JSON, the montage and the outputs' folder"
    )
    ap.add_argument(
        "--pastiche", action="store_true", help="also pastiche 1.6.0 at equal time (original pairs only)"
    )
    ap.add_argument("--pastiche-steps", type=int, default=1000)
    ap.add_argument(
        "--resume", action="store_true", help="keep the pairs already in the JSON (same settings)"
    )
    ap.add_argument("--out", help="JSON path (default benchmarks/results/quality_wide[-LABEL].json)")
    ap.add_argument(
        "--montage",
        help="montage PNG (default benchmarks/results/quality_wide[-LABEL]_montage.png; "
        "a .jpg path writes JPEG)",
    )
    ap.add_argument(
        "--montage-only", action="store_true", help="rebuild the montage (and table) from the JSON"
    )
    args = ap.parse_args(argv)
    out_json, out_png = default_paths(args.label)
    out_json = Path(args.out) if args.out else out_json
    out_png = Path(args.montage) if args.montage else out_png
    if args.montage_only:
        data = json.loads(out_json.read_text())
        print(table(data))
        print(f"\nmontage: {montage(data, out_png)}", file=sys.stderr)
        return 0

    for label, options in (c.split("=", 1) for c in args.config):
        OURS[label] = shlex.split(options)
    runs = [r for r in args.runs.split(",") if r] + [c.split("=", 1)[0] for c in args.config]
    bad = [r for r in runs if r not in OURS]
    if bad or not runs:
        raise SystemExit(f"unknown run(s) {', '.join(bad) or '(none)'}; from: {', '.join(OURS)}")
    extra = shlex.split(args.extra)
    pairs = select_pairs(args.pairs, args.limit)
    with earlier_tree(args.commit) as old_src:
        if args.commit:
            runs = [r for name in runs for r in (f"{name}@{args.commit}", name)]
        return _run(args, runs, extra, pairs, out_json, out_png, old_src)


@contextlib.contextmanager
def earlier_tree(commit: str):
    """The src folder of a temporary worktree of `commit` (None when no commit is given)."""
    if not commit:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        try:
            yield tree / "src"
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True
            )


def _run(args, runs, extra, pairs, out_json, out_png, old_src) -> int:
    outdir = OUTPUTS / "wide" / (args.label or "base")
    outdir.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": "quality_wide",
        "label": args.label,
        "size": args.size,
        "runs": runs,
        "extra": extra,
        "configs": args.config,
        "commit": args.commit,
        "machine": machine(),
        "pastiche_steps": args.pastiche_steps if args.pastiche else None,
        "pairs": {},
    }
    if args.resume and out_json.exists():
        old = json.loads(out_json.read_text())
        if all(old.get(k) == data[k] for k in ("size", "runs", "extra", "configs", "pastiche_steps")):
            data["pairs"] = {n: r for n, r in old["pairs"].items() if n in pairs}
            print(f"resuming: {len(data['pairs'])} pair(s) kept from {out_json}", file=sys.stderr)
        else:
            raise SystemExit(
                f"--resume: {out_json} was made with other settings (size, runs, extra or pastiche)"
            )
    net = None
    for pair, (c_name, s_name) in pairs.items():
        if pair in data["pairs"]:
            continue
        content, style = IMAGES / f"{c_name}.jpg", IMAGES / f"{s_name}.jpg"
        scorer = scores.Scorer(
            images.resize_long_side(images.load_image(content), args.size), images.load_image(style), net=net
        )
        net = scorer.net  # one network for every pair
        rows = {}
        order = runs if len(data["pairs"]) % 2 == 0 else runs[::-1]  # which goes first alternates
        for name in order:
            src = old_src if "@" in name else ROOT / "src"
            out = outdir / f"{pair}-{args.size}-{name}.png"
            r = run_ours(name, content, style, args.size, extra, out, src)
            r.update(score(scorer, r["image"]))
            r["image"] = str(Path(r["image"]).relative_to(HERE))
            rows[name] = r
        rows = {name: rows[name] for name in runs}
        for name, r in rows.items():
            print(pair, name, r, file=sys.stderr, flush=True)
        if args.pastiche and (c_name, s_name) in ORIGINAL:
            seconds, saved, rss = run_pastiche(
                content, style, args.size, args.pastiche_steps, OUTPUTS / f"pastiche-{pair}-{args.size}"
            )
            for run in ("default", "quality"):
                if run not in rows:
                    continue
                within = [(t, p) for t, p in saved if t <= rows[run]["seconds"]]
                t, p = within[-1] if within else saved[0]
                rows[f"pastiche = {run} time"] = {
                    "seconds": round(t, 2),
                    "steps": int(p.stem),
                    "image": str(p.relative_to(HERE)),
                    **score(scorer, p),
                }
            t, p = saved[-1]
            rows[f"pastiche {args.pastiche_steps}"] = {
                "seconds": round(t, 2),
                "steps": int(p.stem),
                "image": str(p.relative_to(HERE)),
                "peak_rss_mib": round(rss),
                **score(scorer, p),
            }
            print(pair, "pastiche", round(seconds, 1), file=sys.stderr, flush=True)
        data["pairs"][pair] = {
            "photo": c_name,
            "painting": s_name,
            "kind": KIND[s_name],
            "runs": rows,
            "load_average_after": list(os.getloadavg()),
        }  # other work on the machine shows here
        data["pairs"] = {
            n: data["pairs"][n] for n in pairs if n in data["pairs"]
        }  # --resume: the list's order
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(data, indent=1))
    print(table(data))
    print(f"\nJSON: {out_json}\nmontage: {montage(data, out_png)}", file=sys.stderr)
    return 0


# --- the table -------------------------------------------------------------------------------
def _fmt(key: str, v) -> str:
    if v is None:
        return ""
    return f"{100 * v:.1f}%" if key == "clipped" else f"{v:.3f}"


def _worst(values: dict, key: str) -> tuple:
    """(pair, value) of the worst pair: max for lower-is-better scores, min for LP."""
    pick = min if key in HIGHER_IS_BETTER else max
    pair = pick(values, key=lambda p: values[p])
    return pair, values[pair]


def _peak(rows, pick) -> str:
    """`pick` (median or max) of the rows' peak RSS in MiB; blank where none has one (pastiche at
    equal time is a point of a longer run)."""
    have = [r["peak_rss_mib"] for r in rows if "peak_rss_mib" in r]
    return f"{pick(have):.0f}" if have else ""


def _head_to_head(pairs: dict, runs: list) -> list:
    """Each run against the first, on the pairs that have both: the time ratio (median and range)
    and on how many pairs each score is better (ties count for neither)."""
    lines = []
    for run in runs[1:]:
        both = [
            (e["runs"][runs[0]], e["runs"][run])
            for e in pairs.values()
            if runs[0] in e["runs"] and run in e["runs"]
        ]
        if not both:
            continue
        ratios = [b["seconds"] / a["seconds"] for a, b in both]
        better = ", ".join(
            f"{HEAD[k]} {sum((b[k] > a[k]) if k in HIGHER_IS_BETTER else (b[k] < a[k]) for a, b in both)}"
            for k in SCORES
        )
        if not lines:
            lines += ["", f"Against {runs[0]}, pair by pair (the same run of this script):", ""]
        lines.append(
            f"- {run}: time x{statistics.median(ratios):.2f} at the median ({min(ratios):.2f}-"
            f"{max(ratios):.2f}); better on {better} of {len(both)} pairs"
        )
    return lines


def table(data: dict) -> str:
    pairs = data["pairs"]
    extra = " ".join(data.get("extra") or []) or "none"
    lines = [
        f"{data['size']} px, label {data.get('label') or '-'}, extra args: {extra}; {len(pairs)} pairs. "
        "S style, K content, P palette, clipped = newly clipped pixels, CFSD: lower is better; "
        "LP, LP cov (coverage): higher is better",
        "",
        "| pair | kind | run | seconds | " + " | ".join(HEAD[k] for k in SCORES) + " |",
        "|---|---|---|---:|" + "---:|" * len(SCORES),
    ]
    for pair, entry in pairs.items():
        for run, r in entry["runs"].items():
            steps = f" ({r['steps']} steps)" if "steps" in r else ""
            lines.append(
                f"| {pair} | {entry['kind']} | {run}{steps} | {r['seconds']:.1f} | "
                + " | ".join(_fmt(k, r.get(k)) for k in SCORES)
                + " |"
            )
    runs = data["runs"]
    lines += [
        "",
        "Median and worst pair (worst = highest, for LP and LP cov the lowest):",
        "",
        "| run | | seconds | peak MiB | " + " | ".join(HEAD[k] for k in SCORES) + " |",
        "|---|---|---:|---:|" + "---:|" * len(SCORES),
    ]
    for run in runs:
        have = {p: e["runs"][run] for p, e in pairs.items() if run in e["runs"]}
        if not have:
            continue
        med = [_fmt(k, statistics.median(r[k] for r in have.values())) for k in SCORES]
        secs = statistics.median(r["seconds"] for r in have.values())
        lines.append(
            f"| {run} | median | {secs:.1f} | {_peak(have.values(), statistics.median)} | "
            + " | ".join(med)
            + " |"
        )
        worst = []
        for k in SCORES:
            pair, v = _worst({p: r[k] for p, r in have.items()}, k)
            worst.append(f"{_fmt(k, v)} {pair}")
        lines.append(
            f"| {run} | worst | {max(r['seconds'] for r in have.values()):.1f} | {_peak(have.values(), max)} | "
            + " | ".join(worst)
            + " |"
        )
    lines += [
        "",
        "Medians per kind of painting:",
        "",
        "| run | kind | pairs | seconds | peak MiB | " + " | ".join(HEAD[k] for k in SCORES) + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(SCORES),
    ]
    for run in runs:
        for kind in KINDS:
            have = [e["runs"][run] for e in pairs.values() if e["kind"] == kind and run in e["runs"]]
            if have:
                lines.append(
                    f"| {run} | {kind} | {len(have)} | {statistics.median(r['seconds'] for r in have):.1f} | "
                    f"{_peak(have, statistics.median)} | "
                    + " | ".join(_fmt(k, statistics.median(r[k] for r in have)) for k in SCORES)
                    + " |"
                )
    lines += _head_to_head(pairs, runs)
    each_pair = ", ".join(f"{HEAD[k]} <= {_fmt(k, v)}" for k, v in TARGETS.items())
    medians = ", ".join(f"{HEAD[k]} <= {v}" for k, v in MEDIAN_TARGETS.items())
    lines += ["", f"Targets (issue 18, for the default run), each pair: {each_pair}; medians: {medians}", ""]
    for run in runs:
        have = [e["runs"][run] for e in pairs.values() if run in e["runs"]]
        if not have:
            continue
        every = sum(all(r[k] <= v for k, v in TARGETS.items()) for r in have)
        each = ", ".join(f"{HEAD[k]} {sum(r[k] <= v for r in have)}" for k, v in TARGETS.items())
        meds = ", ".join(
            f"median {HEAD[k]} {statistics.median(r[k] for r in have):.3f} "
            f"{'met' if statistics.median(r[k] for r in have) <= v else 'missed'}"
            for k, v in MEDIAN_TARGETS.items()
        )
        lines.append(f"- {run}: {every}/{len(have)} pairs meet every target (per score: {each}); {meds}")
    return "\n".join(lines)


# --- the montage -----------------------------------------------------------------------------
CELL_W, CELL_H, TEXT_H, HEADER_H = 256, 192, 28, 20


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _thumb(path: Path):
    """The image scaled (up or down) to fit a CELL_W x CELL_H cell, aspect kept."""
    from PIL import Image

    img = images.load_image(path)
    scale = min(CELL_W / img.width, CELL_H / img.height)
    return img.resize(
        (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS
    )


def montage(data: dict, path: Path) -> Path:
    """One row per pair: photo, painting, then each run's result (about 192 px tall), labelled."""
    from PIL import Image, ImageDraw

    columns = list(data["runs"])
    for e in data["pairs"].values():  # pastiche's columns, in the order they were made
        columns += [r for r in e["runs"] if r not in columns]
    font, small = _font(13), _font(11)
    n_cols = 2 + len(columns)
    row_h = CELL_H + TEXT_H
    sheet = Image.new("RGB", (n_cols * CELL_W, HEADER_H + len(data["pairs"]) * row_h), "white")
    draw = ImageDraw.Draw(sheet)
    label = data.get("label") or ""
    for i, name in enumerate(["photo", "painting"] + columns):
        title = name if i < 2 or not label else f"{name} [{label}]"
        draw.text((i * CELL_W + 4, 3), title if i else f"photo ({data['size']} px)", fill="black", font=font)
    for row, (pair, entry) in enumerate(data["pairs"].items()):
        y = HEADER_H + row * row_h
        cells = [
            (IMAGES / f"{entry['photo']}.jpg", entry["photo"]),
            (IMAGES / f"{entry['painting']}.jpg", f"{entry['painting']} ({entry['kind']})"),
        ]
        for run in columns:
            r = entry["runs"].get(run)
            cells.append(
                (HERE / r["image"], f"S {r['style']:.2f} K {r['content']:.2f} P {r['palette']:.2f}")
                if r
                else (None, "")
            )
        for col, (img_path, text) in enumerate(cells):
            x = col * CELL_W
            if img_path is not None and img_path.exists():
                t = _thumb(img_path)
                sheet.paste(t, (x + (CELL_W - t.width) // 2, y + (CELL_H - t.height) // 2))
            draw.text((x + 4, y + CELL_H + 1), text, fill="black", font=small)
        draw.text((4, y + CELL_H + 14), pair, fill=(120, 0, 0), font=small)
        draw.line([(0, y + row_h - 1), (sheet.width, y + row_h - 1)], fill=(200, 200, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):  # --montage X.jpg: a tenth of the PNG's bytes
        sheet.save(path, quality=90, optimize=True)
    else:
        sheet.save(path, optimize=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
