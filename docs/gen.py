"""Regenerate the generated regions of the documentation from the code and the committed JSON.

A generated region sits between two markers in a page:

    <!-- BEGIN generated: NAME -->
    ...
    <!-- END generated -->

and NAME says what renders it (REGIONS below): the option reference from the option table
(SPECS), the command-line reference from each verb's --help, and the benchmark tables from
benchmarks/results/*.json. Nothing between the markers is edited by hand.

    python docs/gen.py            # rewrite every region in place (make docs-gen)
    python docs/gen.py --check    # exit 1 and name the pages that differ; writes nothing

tests/test_docs.py re-renders every region and fails when a committed page differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

# The one place this script reads the option table from.
import painterly.methods  # noqa: F401  (each method registers its preset and statistics)
from painterly.options import DEFAULTS, JOBS, PRESETS, SPECS, Options, flag, job_default, job_options

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ("options.md", "cli-reference.md", "benchmarks.md")
BEGIN = re.compile(r"<!-- BEGIN generated: ([a-z0-9-]+) -->\n")
END = "<!-- END generated -->"
HELP_COLUMNS = "100"  # --help is wrapped at this width, whatever the terminal


# --- helpers ----------------------------------------------------------------------------------
def _cell(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, tuple):
        return ",".join(map(str, v)) if v else "()"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _setting(name: str, v) -> str:
    """An option set to a value, as the command line spells it."""
    if isinstance(v, bool):
        return f"`{flag(name)}`" if v else f"`--no-{flag(name)[2:]}`"
    if v == ():
        return f"`{flag(name)}` empty"
    return f"`{flag(name)} {_value(v)}`"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _provenance(name: str, data: dict, command: str) -> str:
    """The line under every benchmark table: the command, the file, its date, commit and CPU."""
    m = data.get("machine") or {}
    date = str(m.get("date", "not recorded"))[:10]
    commit = data.get("code_commit") or m.get("commit") or "not recorded"
    cpu = m.get("cpu", "not recorded")
    if m.get("cores"):
        cpu += f", {m['cores']} cores"
    if m.get("torch"):
        cpu += f", torch {m['torch']}"
    return f"*`{command}` · `benchmarks/results/{name}` · date {date} · commit {commit} · CPU {cpu}*"


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


SCORES = (
    ("style", "S", "{:.3f}", False),
    ("content", "K", "{:.3f}", False),
    ("palette", "P", "{:.3f}", False),
    ("clipped", "clipped", "{:.1%}", False),
    ("cfsd", "CFSD", "{:.3f}", False),
    ("lp", "LP", "{:.3f}", True),
    ("lp_coverage", "LP cov", "{:.3f}", True),
)


def _runs(data: dict, run: str):
    """(pair name, kind, the run's row) for every pair that has the run."""
    return [(k, e["kind"], e["runs"][run]) for k, e in data["pairs"].items() if run in e["runs"]]


def _score_rows(label: str, rows, with_worst: bool = True, seconds: bool = True, peak: bool = False) -> list:
    """A median row and (optionally) a worst row (highest; for LP and LP coverage the lowest)."""
    med = [label, "median"]
    worst = ["", "worst"]
    if seconds:
        s = [r["seconds"] for _, _, r in rows]
        med.append(f"{_median(s):.1f}")
        worst.append(f"{max(s):.1f}")
    if peak:
        p = [r["peak_rss_mib"] for _, _, r in rows]
        med.append(f"{_median(p):.0f}")
        worst.append(f"{max(p):.0f}")
    for key, _, fmt, higher_better in SCORES:
        vals = [(r[key], name) for name, _, r in rows]
        med.append(fmt.format(_median([v for v, _ in vals])))
        v, name = (min if higher_better else max)(vals)
        worst.append(f"{fmt.format(v)} {name.replace('-', ' x ')}")
    out = ["| " + " | ".join(med) + " |"]
    if with_worst:
        out.append("| " + " | ".join(worst) + " |")
    return out


def _score_header(seconds: bool = True, peak: bool = False) -> list:
    cols = (
        ["run", ""]
        + (["seconds"] if seconds else [])
        + (["peak MiB"] if peak else [])
        + [s[1] for s in SCORES]
    )
    return ["| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]


# --- the option reference ------------------------------------------------------------------------
def _accepts(name: str) -> str:
    spec = SPECS[name]
    kind = Options.__dataclass_fields__[name].type
    if spec.choices:
        text = " | ".join(spec.forms)
    elif "bool" in str(kind):
        text = "on/off (`--no-...` turns it off)"
    elif spec.low is not None or spec.high is not None:
        text = spec.range_text()
    else:
        text = {"Optional[str]": "a name or a path", "str": "text or a path"}.get(str(kind), str(kind))
    if spec.item is not None:
        text = f"comma-separated list; each {text}" if spec.low is not None else "comma-separated list"
    return text


def _surfaces(name: str) -> str:
    spec = SPECS[name]
    where = ["CLI", "Python"]
    if spec.web:
        where.append("web")
    if "transfer" in spec.jobs:
        where += ["batch", "video"]
    return ", ".join(where)


def _preset_changes(name: str) -> str:
    out = []
    for preset in PRESETS:
        over = PRESETS[preset].overrides
        if name in over and over[name] != getattr(DEFAULTS, name):
            out.append(f"{preset}: {_value(over[name])}")
    return "; ".join(out) or "-"


def render_options() -> str:
    lines = [
        "| flag (Python keyword) | default | accepts | jobs | surfaces | presets change it to "
        "| what it does |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in Options.__dataclass_fields__:
        spec = SPECS[name]
        default = _value(getattr(DEFAULTS, name))
        for job in spec.jobs:
            if job_default(job, name) != getattr(DEFAULTS, name):
                default += f" ({job}: {_value(job_default(job, name))})"
        lines.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    f"`{flag(name)}` (`{name}=`)",
                    default,
                    _accepts(name),
                    ", ".join(spec.jobs),
                    _surfaces(name),
                    _preset_changes(name),
                    spec.help,
                )
            )
            + " |"
        )
    lines += [
        "",
        "What each preset changes (against the defaults; every other option keeps its default):",
        "",
    ]
    lines += ["| preset | changes |", "|---|---|"]
    for preset in PRESETS:
        over = PRESETS[preset].overrides
        changed = [_setting(k, v) for k, v in over.items() if v != getattr(DEFAULTS, k)]
        lines.append(f"| `{preset}` | {_cell(', '.join(changed) or 'nothing: the defaults')} |")
    lines += ["", "What a job sets whatever its options say:", "", "| job | sets |", "|---|---|"]
    for job in JOBS:
        ran = job_options(job, DEFAULTS)
        sets = {
            k: getattr(ran, k)
            for k in Options.__dataclass_fields__
            if getattr(ran, k) != getattr(DEFAULTS, k)
        }
        if sets:
            lines.append(f"| `{job}` | " + ", ".join(_setting(k, v) for k, v in sets.items()) + " |")
    return "\n".join(lines)


# --- the command-line reference -----------------------------------------------------------------
def render_cli() -> str:
    from painterly.cli.main import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["## painterly", "", "```text", parser.format_help().rstrip(), "```"]
        for verb, sp in sub.choices.items():
            parts += ["", f"## painterly {verb}", "", "```text", sp.format_help().rstrip(), "```"]
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


# --- the benchmark tables ------------------------------------------------------------------------
def render_bench_quality() -> str:
    b, q = _load("quality_wide-1206b.json"), _load("quality_wide-1206q.json")
    lines = _score_header()
    lines += _score_rows("default", _runs(b, "default"))
    lines += _score_rows("`--preset quality`", _runs(q, "quality"))
    lines += [
        "",
        _provenance("quality_wide-1206b.json", b, "bench_quality.py --runs default --label 1206b"),
        "",
        _provenance("quality_wide-1206q.json", q, "bench_quality.py --runs quality --label 1206q"),
        "",
        "Medians per kind of painting, the default run:",
        "",
        "| kind | pairs | S | K | P | clipped |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = _runs(b, "default")
    kinds = ["drawing", "flat geometric", "strongly textured", "photograph"]
    for kind in sorted(
        dict.fromkeys(k for _, k, _ in rows), key=lambda k: kinds.index(k) if k in kinds else 9
    ):
        sel = [r for _, k, r in rows if k == kind]
        lines.append(
            f"| {kind} | {len(sel)} | "
            + " | ".join(fmt.format(_median([r[key] for r in sel])) for key, _, fmt, _ in SCORES[:4])
            + " |"
        )
    return "\n".join(lines)


def render_bench_filed() -> str:
    d = _load("filed-3.json")
    old = d["commit"]
    pairs = {}
    for r in d["rows"]:
        pairs.setdefault(r["pair"], {}).setdefault(r["code"], []).append(r)
    lines = [f"| pair | seconds, {old} / today | S | K | P | clipped |", "|---|---|---|---|---|---|"]
    ratios = []
    for pair, codes in pairs.items():
        t_old = _median([r["seconds"] for r in codes[old]])
        t_new = _median([r["seconds"] for r in codes["today"]])
        ratios.append(t_new / t_old)
        first = {c: min(rs, key=lambda r: r["round"]) for c, rs in codes.items()}
        cells = [f"{t_old:.1f} / {t_new:.1f} (x{t_new / t_old:.2f})"]
        for key, _, fmt, _ in SCORES[:4]:
            cells.append(f"{fmt.format(first[old][key])} / {fmt.format(first['today'][key])}")
        lines.append(f"| {pair.replace('-', ' x ')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"x{_median(ratios):.2f} the time at the median of the {len(ratios)} pairs "
        f"(the median of {d['repeat']} rounds a pair, the two codes alternating).",
        "",
        _provenance("filed-3.json", d, f"bench_filed.py --repeat {d['repeat']}"),
    ]
    return "\n".join(lines)


def render_bench_pastiche() -> str:
    d = _load("quality_wide-pastiche1206.json")
    lines = [
        "| pair | run | seconds | S | K | P | clipped | CFSD | LP |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in d["pairs"].items():
        first = True
        for run, r in entry["runs"].items():
            label = run + (f" ({r['steps']} steps)" if "time" in run else " steps" if "steps" in r else "")
            cells = [name.replace("-", " x ") if first else "", label, f"{r['seconds']:.1f}"]
            cells += [fmt.format(r[key]) for key, _, fmt, _ in SCORES[:6]]
            lines.append("| " + " | ".join(cells) + " |")
            first = False
    lines += [
        "",
        _provenance(
            "quality_wide-pastiche1206.json",
            d,
            "bench_quality.py --pairs original --runs default,quality --pastiche "
            "--pastiche-steps 100 --label pastiche1206",
        ),
    ]
    return "\n".join(lines)


def render_bench_neighbour() -> str:
    d = _load("quality_wide-neighbour1206.json")
    lines = _score_header(peak=True)
    lines += _score_rows("Gatys default", _runs(d, "default"), peak=True)
    lines += _score_rows("`--preset neighbour`", _runs(d, "neighbour"), peak=True)
    lines += [
        "",
        _provenance(
            "quality_wide-neighbour1206.json",
            d,
            "bench_neighbour.py --runs default,neighbour --label neighbour1206",
        ),
    ]
    r = _load("recolor-neighbour.json")
    lines += [
        "",
        f"The colour step three ways on the pictures of an earlier neighbour run (`{r['from']}`; medians):",
        "",
        "| `--recolor` | " + " | ".join(s[1] for s in SCORES) + " |",
        "|---|" + "---:|" * len(SCORES),
    ]
    for run in r["runs"]:
        rows = _runs(r, run)
        lines.append(
            f"| {run} | "
            + " | ".join(fmt.format(_median([x[key] for _, _, x in rows])) for key, _, fmt, _ in SCORES)
            + " |"
        )
    lines += ["", _provenance("recolor-neighbour.json", r, "bench_recolor.py")]
    return "\n".join(lines)


def render_bench_speed() -> str:
    """speed.json (fp32 against the default, per size) and speed_compiled.json (the default with
    and without --compile, side by side in their own run)."""
    modes = {"fp32": "fp32, contiguous", "bf16_cl": "bf16 autocast + channels_last (the default)"}

    def ceiling(d) -> str:
        c = d["ceilings"]
        return (
            f" · 3x3-convolution ceiling in that run: {c['fp32']['gflops']:.0f} GFLOP/s fp32,"
            f" {c['bf16']['gflops']:.0f} bf16"
        )

    d = _load("speed.json")
    rows = {(r["size"], r["mode"]): r for r in d["rows"] if r["mode"] in modes}
    lines = ["| size | mode | s / iteration | GFLOP/s | vs fp32 |", "|---:|---|---:|---:|---:|"]
    for (size, mode), r in sorted(rows.items(), key=lambda kv: (kv[0][0], list(modes).index(kv[0][1]))):
        fp32 = rows.get((size, "fp32"))
        vs = f"{fp32['s_per_iter'] / r['s_per_iter']:.2f}x" if fp32 else "-"
        lines.append(f"| {size} | {modes[mode]} | {r['s_per_iter']:.3f} | {r['gflops']:.0f} | {vs} |")
    cmd = d.get("command", "bench_speed.py --sizes 256,512,1024,2048 --modes fp32,bf16_cl")
    lines += ["", _provenance("speed.json", d, cmd) + ceiling(d), ""]
    c = _load("speed_compiled.json")
    by = {(r["size"], r["mode"]): r for r in c["rows"]}
    lines += [
        "| size | the default: s / iteration | with `--compile` | time with / without "
        "| `--compile`'s first call s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in sorted({k[0] for k in by}):
        base, comp = by.get((size, "bf16_cl")), by.get((size, "bf16_cl_compiled"))
        if not comp:
            continue
        b = f"{base['s_per_iter']:.3f}" if base else "-"
        ratio = f"{comp['s_per_iter'] / base['s_per_iter']:.2f}x" if base else "-"
        lines.append(f"| {size} | {b} | {comp['s_per_iter']:.3f} | {ratio} | {comp['first_call_s']:.1f} |")
    cmd = c.get("command", "bench_speed.py --sizes 256,512,1024 --modes bf16_cl_compiled")
    lines += ["", _provenance("speed_compiled.json", c, cmd) + ceiling(c)]
    return "\n".join(lines)


def render_bench_allocator() -> str:
    d = _load("allocator.json")
    names = {"kept": "kept (the CLI's default)", "returned": "returned (`PAINTERLY_RETURN_MEMORY=1`)"}
    cases = {"neighbour": "`--preset neighbour`", "default": "the Gatys default"}
    lines = [
        "| command | freed memory | seconds | user s | kernel s | minor faults | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for case, label in cases.items():
        for i, setting in enumerate(("kept", "returned")):
            m = d["summary"][case]["medians"][setting]
            lines.append(
                f"| {label if i == 0 else ''} | {names[setting]} | {m['seconds']:.1f} | {m['user_s']:.1f} | "
                f"{m['system_s']:.1f} | {m['minor_faults'] / 1e6:.2f} M | {m['peak_rss_mib']} |"
            )
    lines += [
        "",
        _provenance("allocator.json", d, f"probes/bench_allocator.py (modern x the_scream, {d['size']} px)"),
    ]
    return "\n".join(lines)


def render_bench_batch() -> str:
    d = _load("batch.json")
    ways = {
        "separate": "separate `painterly transfer` processes",
        "workers1": "`painterly batch --workers 1`",
        "default": "`painterly batch` (its default worker count)",
        "workers2": "`painterly batch --workers 2`",
        "ray": "`painterly batch --executor ray` (local Ray)",
    }
    lines = [
        "| way | jobs | images/min | vs separate | s per job | peak MB per worker |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {ways.get(r['way'], r['way'])} | {r['jobs']} | {r['images_per_min']:.2f} | "
            f"{r['vs_separate']:.2f}x | {r['mean_job_s']:.1f} | {r['peak_rss_mb_per_worker']:.0f} |"
        )
    big = d["big"]
    lines += [
        "",
        f"At {big['size']} px: {big['mean_job_s']:.1f} s a job on one worker ({big['jobs']} jobs); "
        f"{d['size']} px above, {len(d['contents'])} photos x {len(d['styles'])} styles, "
        f"the {d['schedule']}.",
        "",
        _provenance("batch.json", d, "bench_batch.py"),
    ]
    return "\n".join(lines)


def render_bench_video() -> str:
    d = _load("video.json")
    s = d["settings"]
    lines = [
        "| clip | frames | mode | warp error x1e3 | S | K | s / frame |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for clip, c in d["clips"].items():
        for mode, m in c["modes"].items():
            ratio = (
                f" ({m['warp_error_x1e3'] / c['modes']['per-frame']['warp_error_x1e3']:.2f}x)"
                if mode != "per-frame"
                else ""
            )
            lines.append(
                f"| {clip} ({c['style']}) | {c['frames']} | "
                f"{'`--per-frame`' if mode == 'per-frame' else 'default'} | "
                f"{m['warp_error_x1e3']:.2f}{ratio} | {m['style']:.3f} | {m['content']:.3f} | "
                f"{m['seconds_per_frame']:.1f} |"
            )
    floor = ", ".join(f"{clip} {c['input_warp_error_x1e3']:.2f}" for clip, c in d["clips"].items())
    lines += [
        "",
        f"{s['size'][0]}x{s['size'][1]} px, {s['weights']} weights, `--iterations "
        f"{','.join(map(str, s['iterations']))} --frame-iterations {s['frame_iterations']}`, temporal "
        f"weight {s['temporal_weight']:g}. The input frames' own warp error (the resampling floor): {floor}.",
        "",
        _provenance("video.json", d, d["command"]),
    ]
    return "\n".join(lines)


def render_bench_profile() -> str:
    """Every results/profile*.json (one per picture size): where a picture's time goes."""
    lines = []
    for path in sorted(RESULTS.glob("profile*.json"), key=lambda p: json.loads(p.read_text())["size"]):
        d = json.loads(path.read_text())
        lines += [
            f"**{d['pair'].replace('-', ' x ')}, {d['size']} px**; the convolutions' throughput measured "
            f"in the same run: {d['conv_gflops']} GFLOP/s (fp32).",
            "",
            "| configuration | wall s | per scale (size: steps, s, s/step, evaluations/step) "
            "| final losses s | conv share | conv GFLOP | floor s | wall / floor |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in d["rows"]:
            scales = "; ".join(
                f"{sc['size']}: {sc['steps']}, {sc['seconds']:.1f}, {sc['s_per_step']:.3f}, "
                f"{sc['evals_per_step']:g}"
                for sc in r["scales"]
            )
            args = r.get("args") or d.get("configs", {}).get(r["label"], "")
            args = " ".join(args) if isinstance(args, list) else args
            label = f"{r['label']} (`{args}`)" if args else r["label"]
            lines.append(
                f"| {label} | {r['wall_s']:.1f} | {scales} | {r['final_s']:.1f} | {r['conv_share']:.2f} | "
                f"{r['conv_gflop']:.0f} | {r['floor_s']:.1f} | {r['wall_s'] / r['floor_s']:.2f} |"
            )
        lines += ["", _provenance(path.name, d, d.get("command", "bench_profile.py")), ""]
    return "\n".join(lines)


def render_bench_eta() -> str:
    """Every results/eta*.json: the time-left estimate against the real time left."""
    lines = [
        "| runs | pairs | median run s | median error: step 2 | finest step 1 | finest step 2 | worst after "
        "| within 20% at the finest step 2 | of the runs not polished | worst pair there |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    files = sorted(RESULTS.glob("eta*.json"))
    for path in files:
        d = json.loads(path.read_text())
        rows = d["rows"]
        med = {
            c: _median([abs(r[c]) for r in rows]) for c in ("second_step", "finest_first", "finest_second")
        }
        worst = max(rows, key=lambda r: abs(r["finest_second"]))
        within = sum(abs(r["finest_second"]) <= 0.2 for r in rows)
        plain = [r for r in rows if not r.get("polished", True)]  # files before "polished": "-"
        within_plain = f"{sum(abs(r['finest_second']) <= 0.2 for r in plain)}/{len(plain)}" if plain else "-"
        extra = " ".join(d.get("extra", []))
        lines.append(
            f"| {d['size']} px{f' `{extra}`' if extra else ''} | {len(rows)} | "
            f"{_median([r['seconds'] for r in rows]):.1f} | {med['second_step']:.2f} | "
            f"{med['finest_first']:.2f} | {med['finest_second']:.2f} | "
            f"{max(r['worst_after'] for r in rows):.2f} | {within}/{len(rows)} | {within_plain} | "
            f"{worst['pair']} {worst['finest_second']:+.2f} |"
        )
    lines.append("")
    for p in files:
        lines += [_provenance(p.name, json.loads(p.read_text()), "bench_eta.py"), ""]
    return "\n".join(lines).rstrip()


REGIONS = {
    "options": render_options,
    "cli": render_cli,
    "bench-quality": render_bench_quality,
    "bench-filed": render_bench_filed,
    "bench-pastiche": render_bench_pastiche,
    "bench-neighbour": render_bench_neighbour,
    "bench-speed": render_bench_speed,
    "bench-allocator": render_bench_allocator,
    "bench-batch": render_bench_batch,
    "bench-video": render_bench_video,
    "bench-profile": render_bench_profile,
    "bench-eta": render_bench_eta,
}


# --- rewriting pages -----------------------------------------------------------------------------
def regenerate(text: str, where: str = "page") -> str:
    """`text` with every generated region re-rendered."""
    out, pos = [], 0
    for m in BEGIN.finditer(text):
        if m.start() < pos:
            continue
        name = m.group(1)
        if name not in REGIONS:
            raise SystemExit(f"{where}: unknown generated region {name!r} (known: {', '.join(REGIONS)})")
        end = text.find(END, m.end())
        if end < 0:
            raise SystemExit(f"{where}: region {name!r} has no {END}")
        out += [text[pos : m.end()], REGIONS[name]().rstrip() + "\n"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def stale_pages() -> list:
    """The pages whose generated regions differ from what the code and the JSON give now."""
    return [p for p in PAGES if regenerate((DOCS / p).read_text(), p) != (DOCS / p).read_text()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for p in stale:
            print(f"docs/{p} is stale: run make docs-gen", file=sys.stderr)
        return 1 if stale else 0
    for p in PAGES:
        path = DOCS / p
        text = path.read_text()
        new = regenerate(text, p)
        if new != text:
            path.write_text(new)
            print(f"rewrote docs/{p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
