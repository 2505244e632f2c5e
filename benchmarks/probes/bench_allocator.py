"""What keeping freed memory (painterly.runtime.allocator.keep_freed_memory, on in the CLI) buys: the same
`painterly transfer` commands with it (the CLI's default) and without (PAINTERLY_RETURN_MEMORY=1,
glibc's default), alternated in one run so that both see the same machine.

Per run: wall seconds from launch to exit, CPU seconds in the kernel and in user code, minor
page faults and the peak RSS of that process (os.wait4's own rusage, not the children's
maximum), and whether the output's bytes equal the other setting's.

    PYTHONPATH=src .venv/bin/python benchmarks/probes/bench_allocator.py
    PYTHONPATH=src .venv/bin/python benchmarks/probes/bench_allocator.py --size 256 --repeats 1 --cases neighbour

Prints a table and writes benchmarks/results/allocator.json.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_quality

from common import IMAGES, RESULTS, machine, write_json  # noqa: E402

CASES = {  # name: (photo, painting, extra CLI arguments)
    "neighbour": ("modern", "the_scream", ["--preset", "neighbour"]),
    "default": ("modern", "the_scream", []),
}
SETTINGS = {"kept": {}, "returned": {"PAINTERLY_RETURN_MEMORY": "1"}}


def run_once(case: str, setting: str, size: int, out: Path) -> dict:
    photo, painting, extra = CASES[case]
    cmd = [
        sys.executable,
        "-m",
        "painterly.cli",
        "transfer",
        str(IMAGES / f"{photo}.jpg"),
        str(IMAGES / f"{painting}.jpg"),
        "-o",
        str(out),
        "--size",
        str(size),
        "--quiet",
        "--overwrite",
    ] + extra
    env = {k: v for k, v in os.environ.items() if k != "PAINTERLY_RETURN_MEMORY"}
    env.update(SETTINGS[setting])
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if proc.returncode:
        raise SystemExit(f"{case} {setting}: exit {proc.returncode}: {proc.stderr.read().decode()[-300:]}")
    return {
        "case": case,
        "setting": setting,
        "seconds": round(seconds, 2),
        "user_s": round(usage.ru_utime, 2),
        "system_s": round(usage.ru_stime, 2),
        "minor_faults": usage.ru_minflt,
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "command": " ".join(["painterly"] + cmd[3:]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--repeats", type=int, default=1, help="runs of each case and setting (alternated)")
    ap.add_argument("--out", type=Path, default=RESULTS / "allocator.json")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for case in args.cases.split(","):
            outs = {}
            for r in range(args.repeats):
                order = ("returned", "kept") if r % 2 == 0 else ("kept", "returned")
                for setting in order:
                    out = Path(d) / f"{case}-{setting}-{r}.png"
                    rows.append(run_once(case, setting, args.size, out))
                    outs.setdefault(setting, out)
                    print(f"{case} {setting}: {rows[-1]['seconds']} s", file=sys.stderr)
            same = filecmp.cmp(outs["kept"], outs["returned"], shallow=False)
            for row in rows:
                if row["case"] == case:
                    row["same_bytes"] = same
    print("| case | setting | seconds | user s | system s | minor faults | peak MiB | same bytes |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    summary = {}
    for case in args.cases.split(","):
        med = {}
        for setting in SETTINGS:
            these = [r for r in rows if r["case"] == case and r["setting"] == setting]
            med[setting] = {
                k: statistics.median(r[k] for r in these)
                for k in ("seconds", "user_s", "system_s", "minor_faults", "peak_rss_mib")
            }
            m = med[setting]
            print(
                f"| {case} | {setting} | {m['seconds']:.1f} | {m['user_s']:.1f} | {m['system_s']:.1f} | "
                f"{m['minor_faults']:.0f} | {m['peak_rss_mib']:.0f} | {these[0]['same_bytes']} |"
            )
        summary[case] = {
            "kept_over_returned_seconds": round(med["kept"]["seconds"] / med["returned"]["seconds"], 3),
            "kept_over_returned_peak": round(
                med["kept"]["peak_rss_mib"] / med["returned"]["peak_rss_mib"], 3
            ),
            "medians": med,
        }
        print(
            f"{case}: kept/returned time {summary[case]['kept_over_returned_seconds']}x, "
            f"peak {summary[case]['kept_over_returned_peak']}x"
        )
    write_json(
        args.out,
        {
            "benchmark": "allocator",
            "size": args.size,
            "repeats": args.repeats,
            "machine": machine(),
            "rows": rows,
            "summary": summary,
        },
    )
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
