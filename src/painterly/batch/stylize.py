"""Batch: many (content, style) pairs, resumable, on local worker processes or a Ray cluster.

    painterly batch photos/ --style starry.jpg --style scream.jpg --out-dir out/
    for r in painterly.stylize_many([("a.jpg", "starry.jpg")], "out/", size=256): ...

Every job writes `DIR/{content stem}--{style stem}.png` (recipe embedded, written atomically)
and, as it ends, one JSON line in `DIR/batch.jsonl`. A rerun of the same command skips each job
whose output exists with a recipe that matches (same inputs, pixels, weights and options), so
after a crash, Ctrl-C or `kill -9` only the unfinished jobs run; `force` redoes all.

Executors. Each worker (a local process, or a Ray actor) prepares ONE engine.Stylizer and runs
job after job on it: the network is loaded once per worker, and a style's targets are cached in
it. The scheduler hands a worker jobs of the style it last ran while there are any, so each
worker computes a style's targets once. A worker that dies (killed, out of memory) is replaced
and its job retried once on the new worker; the log gets one line per job, from this process only.

Nothing here prints: the CLI (`run`) draws the progress bar and the summary line.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

from painterly import methods
from painterly.batch.executors import (
    LocalExecutor,
    RayExecutor,
    default_workers,
    ray_connect,
    ray_default_workers,
    ray_module,
)
from painterly.batch.jobs import (
    LOG_NAME,
    Job,
    Log,
    Outcome,
    check_jobs,
    clean_stale_temps,
    cross_jobs,
    expand_inputs,
    jobs_from_pairs,
    read_manifest,
    release_lock,
    take_lock,
)
from painterly.batch.workers import MAX_ATTEMPTS, StyleQueue
from painterly.cli import verbs
from painterly.errors import InvalidOption, OutputError, PainterlyError, choice
from painterly.options import PRESETS, Options, options_from

EXECUTORS = ("local", "ray")


def run_jobs(
    jobs: Sequence[Job],
    out_dir,
    options: Options,
    *,
    workers: Optional[int] = None,
    executor: str = "local",
    ray_address: Optional[str] = None,
    force: bool = False,
    on_event: Optional[Callable[[tuple], None]] = None,
) -> Iterator[Outcome]:
    """Run `jobs`, yielding each Outcome as its job ends (and logging it to DIR/batch.jsonl).

    on_event gets ("started", n_workers), ("running", index, job) when a job goes to a worker and
    ("step", index, step, total) for its progress (local workers only). Closing the generator
    (or an exception in the consumer, e.g. KeyboardInterrupt) stops every worker.
    """
    choice("executor", executor, EXECUTORS)
    if workers is not None and workers < 1:
        raise InvalidOption(f"--workers must be >= 1, got {workers}")
    options = methods.validate(options, "transfer", 1)
    check_jobs(jobs)
    out = Path(os.path.abspath(out_dir))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for d in {os.path.dirname(j.output) for j in jobs}:
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create '{e.filename}': {e.strerror}") from None
    lock = take_lock(out)
    log = Log(out / LOG_NAME)
    event = on_event or (lambda e: None)
    ex = None
    started_ray = finished = False
    try:
        clean_stale_temps(jobs)
        if not jobs:
            return
        if executor == "ray":
            started_ray = ray_connect(ray_address)
            n = min(workers or ray_default_workers(options), len(jobs))
            ex = RayExecutor(options, n, force)
        else:
            n, gpus = default_workers(options)  # GPUs: this process's visible ones, round robin
            n = min(workers or n, len(jobs))
            if not options.threads and not gpus:  # share the cores: no oversubscription
                options = options.replace(threads=max(1, (os.cpu_count() or 1) // n))
            ex = LocalExecutor(options, n, force, gpus)
        ex.start()
        event(("started", n))
        waiting = StyleQueue(jobs)
        running: Dict[int, Tuple[Job, int]] = {}  # worker -> (job, attempt)
        while len(waiting) or running:
            for w in range(n):
                if w not in running:
                    got = waiting.take(w, running)
                    if got is None:
                        break
                    running[w] = got
                    ex.submit(w, got[0].task(got[1]))
                    event(("running", got[0].index, got[0]))
            for ev in ex.poll(0.5):
                kind, w = ev[0], ev[1]
                if kind == "step":
                    if w in running and running[w][0].index == ev[2]:
                        event(("step", ev[2], ev[3], ev[4]))
                elif kind == "failed_start":
                    raise PainterlyError(f"a worker could not prepare the engine: {ev[2]}")
                elif kind == "died" and w in running:
                    job, attempt = running.pop(w)
                    ex.restart(w)
                    if attempt + 1 < MAX_ATTEMPTS:
                        waiting.put_back(job, attempt + 1)
                    else:
                        o = Outcome(
                            job.content,
                            job.style,
                            job.output,
                            "failed",
                            0.0,
                            f"the worker running it died {MAX_ATTEMPTS} times ({ev[2]}); not retried",
                            worker=w,
                            attempts=attempt + 1,
                            index=job.index,
                        )
                        log.write(o.log_record())
                        yield o
                elif kind == "died":
                    ex.restart(w)
                elif kind == "done" and w in running and running[w][0].index == ev[2]["index"]:
                    job, attempt = running.pop(w)
                    r = ev[2]
                    o = Outcome(
                        job.content,
                        job.style,
                        job.output,
                        r["status"],
                        r.get("seconds", 0.0),
                        r.get("error"),
                        r.get("iterations"),
                        w,
                        attempt + 1,
                        r.get("peak_rss_mb"),
                        r.get("peak_gpu_mb"),
                        index=job.index,
                    )
                    log.write(o.log_record())
                    yield o
        finished = True
    finally:
        if ex is not None:
            ex.close(now=not finished)
        if started_ray:
            try:
                ray_module().shutdown()
            except Exception:
                pass
        log.close()
        release_lock(out, lock)


def stylize_many(
    pairs: Iterable,
    out_dir,
    *,
    workers: Optional[int] = None,
    executor: str = "local",
    ray_address: Optional[str] = None,
    force: bool = False,
    options: Optional[Options] = None,
    **overrides,
) -> Iterator[Outcome]:
    """Stylise many (content, style) pairs into `out_dir`, yielding an Outcome as each job ends.

    pairs: (content, style), (content, style, output) or dicts {"content", "style", "output",
    "options": {...}} (paths; an output is relative to out_dir, by default
    `{content stem}--{style stem}.png`). Keyword arguments are Options fields for every job
    (as painterly.stylize takes them); a dict's options vary per job (not the network fields).
    workers: processes (default: one per GPU, else one per 2 cores) or Ray actors;
    executor: "local" or "ray" (ray_address: a running cluster; default: start a local Ray).
    Jobs whose output exists with a matching recipe are skipped (status "skipped") unless
    force=True. Each outcome is also a line of out_dir/batch.jsonl.
    """
    base = options_from(options, overrides)
    jobs = jobs_from_pairs(pairs, out_dir, base)
    yield from run_jobs(
        jobs, out_dir, base, workers=workers, executor=executor, ray_address=ray_address, force=force
    )


# --- the command line -------------------------------------------------------------------------------
def add_parser(sub) -> None:
    """The `batch` verb: its own flags and every transfer option flag."""
    from painterly.cli import terminal

    help_ = "stylise every INPUT with every --style (or a --manifest's pairs), resumably, on several workers"
    sp = sub.add_parser(
        "batch",
        help=help_,
        description=help_ + ". Outputs: DIR/{content}--{style}.png; log: "
        "DIR/batch.jsonl; a rerun skips the jobs already done.",
    )
    sp.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="content images: files, folders (their images) or globs"
    )
    sp.add_argument(
        "--style",
        action="append",
        default=[],
        metavar="S",
        help="a style image, folder or glob (repeatable); every INPUT is painted with every style",
    )
    sp.add_argument(
        "--manifest",
        metavar="FILE",
        help="a .csv or .jsonl of jobs (content, style, optional output and "
        "per-job options) instead of INPUT x --style",
    )
    sp.add_argument("--out-dir", required=True, metavar="DIR", help="where the outputs and batch.jsonl go")
    sp.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (Ray actors with --executor ray); default: one per GPU, else one per 2 cores",
    )
    sp.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: worker processes on this machine; ray: Ray actors on a cluster (painterly[ray]) "
        "(default: local)",
    )
    sp.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="a running Ray cluster, e.g. HEAD:6379 (default: start a local Ray)",
    )
    sp.add_argument(
        "--force", action="store_true", help="redo every job, even those with an up-to-date output"
    )
    sp.add_argument("--preset", choices=PRESETS, default="fast", help=verbs.flag_help("preset"))
    sp.add_argument("--quiet", action="store_true", help="no progress bar (the summary line remains)")
    terminal.add_option_flags(sp, "transfer")


class BatchProgress:
    """One bar over jobs on stderr: done/total, images per minute, time left, and the running
    jobs' steps folded in (a job half done counts half)."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.counts = collections.Counter()
        self.running: Dict[int, Tuple[str, float]] = {}  # index -> (name, fraction)
        self.last = 0.0

    def event(self, ev: tuple) -> None:
        if ev[0] == "running":
            self.running[ev[1]] = (Path(ev[2].output).stem, 0.0)
        elif ev[0] == "step" and ev[1] in self.running:
            self.running[ev[1]] = (self.running[ev[1]][0], ev[2] / max(ev[3], 1))
        self.draw()

    def finished(self, o: Outcome) -> None:
        self.counts[o.status] += 1
        self.running.pop(o.index, None)
        self.draw(force=True)

    def rate(self) -> float:
        minutes = (time.monotonic() - self.start) / 60
        return self.counts["ok"] / minutes if minutes > 0 else 0.0

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        ended = sum(self.counts.values())
        partial = sum(f for _, f in self.running.values())
        width = 24
        fill = int(width * (ended + partial) / max(self.total, 1))
        elapsed = now - self.start
        worked = self.counts["ok"] + self.counts["failed"] + partial
        left_jobs = self.total - ended - partial
        eta = elapsed / worked * left_jobs if worked > 0 else None
        from painterly.cli.terminal import clock

        extra = ", ".join(f"{self.counts[k]} {k}" for k in ("skipped", "failed") if self.counts[k])
        now_running = "; ".join(f"{name} {int(100 * f)}%" for name, f in list(self.running.values())[:3])
        line = (
            f"[{'#' * fill}{'.' * (width - fill)}] {ended}/{self.total} jobs"
            + (f" ({extra})" if extra else "")
            + f", {self.rate():.2f} images/min, {clock(eta) if eta is not None else '?'} left"
            + (f" | {now_running}" if now_running else "")
        )
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args) -> int:
    """`painterly batch`: 0 when every job succeeded (or was already done), 1 when any failed."""
    from painterly.cli import terminal

    base = terminal.options_from_args(args)
    if args.manifest:
        if args.inputs or args.style:
            raise InvalidOption("give either --manifest or INPUT... with --style, not both")
        jobs = read_manifest(args.manifest, args.out_dir, base)
    else:
        if not args.inputs or not args.style:
            raise InvalidOption("batch needs INPUT... and at least one --style (or a --manifest)")
        contents = expand_inputs(args.inputs, "input", exclude=Path(args.out_dir))
        styles = expand_inputs(args.style, "style", exclude=Path(args.out_dir))
        jobs = cross_jobs(contents, styles, args.out_dir)
    if args.executor != "ray" and args.ray_address:
        raise InvalidOption("--ray-address needs --executor ray")
    progress = BatchProgress(len(jobs), not args.quiet)
    counts = progress.counts
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C raises KeyboardInterrupt even when the shell started us with SIGINT ignored (a
    # background job of a script), as for the other verbs (terminal.Interrupt).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        for o in run_jobs(
            jobs,
            args.out_dir,
            base,
            workers=args.workers,
            executor=args.executor,
            ray_address=args.ray_address,
            force=args.force,
            on_event=progress.event,
        ):
            progress.finished(o)
    except KeyboardInterrupt:
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        progress.close()
    seconds = time.monotonic() - progress.start
    from painterly.cli.terminal import clock

    log = Path(os.path.abspath(args.out_dir)) / LOG_NAME
    print(
        f"painterly batch: {counts['ok']} done, {counts['skipped']} skipped, {counts['failed']} failed of "
        f"{len(jobs)} jobs in {clock(seconds)} ({progress.rate():.2f} images/min)"
        + ("; interrupted" if code == 130 else "")
        + f"; log: {log}",
        file=sys.stderr,
    )
    if code:
        return code
    return 1 if counts["failed"] else 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
