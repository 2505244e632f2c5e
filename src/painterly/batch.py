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
import csv
import dataclasses
import fnmatch
import glob
import hashlib
import json
import os
import queue as queue_mod
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from . import config
from .config import Options
from .errors import InvalidOption, OutputError, PainterlyError, choice, user_message

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
LOG_NAME = "batch.jsonl"
LOCK_NAME = ".painterly-batch.lock"
EXECUTORS = ("local", "ray")
# Options that change how a job is computed, not what it computes (up to float rounding): a
# recipe that differs only in these still matches, so a rerun with other --workers (threads)
# or on another device redoes nothing.
HOW_FIELDS = ("threads", "device", "compile", "channels_last")
MAX_ATTEMPTS = 2  # a job whose worker died is run once more on a fresh worker, then failed
# Test hook: a worker exits hard (as if killed) on the first attempt of each job whose content
# file has this name; tests use it to check the retry of a dead worker's job.
CRASH_HOOK = "PAINTERLY_BATCH_CRASH_ONCE"
STEP_EVERY_S = 0.5  # a worker reports its job's step at most this often


# --- jobs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One (content, style) pair. Paths are absolute; `options` are this job's own overrides."""

    index: int
    content: str
    style: str
    output: str
    options: Tuple[Tuple[str, Any], ...] = ()

    def task(self, attempt: int = 0) -> dict:
        return {"index": self.index, "content": self.content, "style": self.style, "output": self.output,
                "options": dict(self.options), "attempt": attempt}


@dataclass
class Outcome:
    """How one job ended, as `stylize_many` yields it and batch.jsonl records it.

    status: "ok" (written), "skipped" (an up-to-date output existed) or "failed" (`error` says why).
    """

    content: str
    style: str
    output: str
    status: str
    seconds: float = 0.0
    error: Optional[str] = None
    iterations: Optional[int] = None
    worker: Optional[int] = None
    attempts: int = 1
    peak_rss_mb: Optional[float] = None  # the worker process's peak resident memory so far
    peak_gpu_mb: Optional[float] = None  # its peak allocated GPU memory so far (CUDA only)
    index: int = field(default=-1, repr=False)

    def log_record(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "index" and v is not None}
        d["seconds"] = round(self.seconds, 3)
        return d


def image_files(folder: Path) -> List[Path]:
    """The images directly inside `folder` (by extension), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: p.name)


def expand_inputs(items: Sequence, what: str = "input", exclude: Optional[Path] = None) -> List[Path]:
    """Files, folders (their images, sorted) and globs -> absolute paths, in order, without repeats.

    Folders and globs leave out anything inside `exclude` (the output folder), so a rerun with
    DIR among the inputs does not take the outputs for inputs. Raises InvalidOption for a name
    that is neither an existing file or folder nor a glob with matches.
    """
    found: List[Path] = []
    ex = Path(exclude).resolve() if exclude else None

    def keep(p: Path) -> bool:
        return ex is None or ex not in p.resolve().parents

    for item in items:
        p = Path(item)
        if p.is_dir():
            files = [f for f in image_files(p) if keep(f)]
            if not files:
                raise InvalidOption(f"{what} folder '{item}' has no images ({', '.join(IMAGE_SUFFIXES)})")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(str(item)):
            files = [Path(f) for f in sorted(glob.glob(str(item), recursive=True))
                     if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_SUFFIXES and keep(Path(f))]
            if not files:
                raise InvalidOption(f"{what} pattern '{item}' matches no image")
        else:
            raise InvalidOption(f"{what} '{item}' does not exist")
        found += [Path(os.path.abspath(f)) for f in files]
    return list(dict.fromkeys(found))


def output_name(content, style) -> str:
    """`{content stem}--{style stem}.png`."""
    return f"{Path(content).stem}--{Path(style).stem}.png"


def cross_jobs(contents: Sequence, styles: Sequence, out_dir) -> List[Job]:
    """Every content x style pair, grouped by style (one style's jobs together)."""
    out = Path(os.path.abspath(out_dir))
    jobs = [(str(c), str(s), str(out / output_name(c, s))) for s in styles for c in contents]
    return [Job(i, c, s, o) for i, (c, s, o) in enumerate(jobs)]


def _option_name(key: str, where: str) -> str:
    name = key.strip().lstrip("-").replace("-", "_")
    names = [f.name for f in dataclasses.fields(Options)]
    if name not in names:
        choice(f"option in {where}", name, names)
    if name in config.NETWORK_FIELDS:
        raise InvalidOption(f"{where}: option '{name}' fixes the network and cannot vary per job; give "
                            f"{config.flag(name)} on the command line for the whole batch")
    return name


def _parse_value(name: str, text: str):
    """A manifest cell (text) -> the option's Python value, as the CLI flag would parse it."""
    spec, default = config.SPECS[name], getattr(config.DEFAULTS, name)
    if spec.item is not None:
        if name == "scales" and text.strip() == "auto":
            return "auto"
        try:
            return tuple(spec.item(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise InvalidOption(f"{config.flag(name)}: expected comma-separated {spec.item.__name__} values, "
                                f"got '{text}'") from None
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise InvalidOption(f"{config.flag(name)}: expected true or false, got '{text}'")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise InvalidOption(f"{config.flag(name)}: expected {kind.__name__}, got '{text}'") from None
    return text


def job_options(raw: Dict[str, Any], base: Options, where: str, from_text: bool) -> Tuple[Tuple[str, Any], ...]:
    """Per-job option overrides, checked now (one line naming `where` for a bad one)."""
    given = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        name = _option_name(str(key), where)
        given[name] = _parse_value(name, value) if from_text and isinstance(value, str) else value
    if not given:
        return ()
    try:
        o = config.options_from(base, given)
        config.validate(o, "transfer", 1)
    except PainterlyError as e:
        raise InvalidOption(f"{where}: {user_message(e, '')[0]}") from None
    except (TypeError, ValueError) as e:
        raise InvalidOption(f"{where}: {e}") from None
    return tuple((k, getattr(o, k)) for k in sorted(given))


def read_manifest(path, out_dir, base: Options = config.DEFAULTS) -> List[Job]:
    """Jobs from a CSV (header: content,style[,output][,option...]) or JSON Lines file
    ({"content": ..., "style": ..., "output": ..., "options": {...}} or options as keys).

    Relative content and style paths are relative to the manifest's folder, outputs to
    `out_dir`; an output defaults to `{content stem}--{style stem}.png`. Option columns are
    Options fields or their flags (style_weight or --style-weight); network options
    (config.NETWORK_FIELDS) cannot vary per job. Raises InvalidOption naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidOption(f"manifest '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidOption(f"cannot read manifest '{path.name}': {e}") from None
    rows: List[Tuple[int, dict, bool]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InvalidOption(f"manifest {path.name} line {n}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InvalidOption(f"manifest {path.name} line {n}: expected a JSON object")
            opts = row.pop("options", None) or {}
            if not isinstance(opts, dict):
                raise InvalidOption(f"manifest {path.name} line {n}: 'options' must be an object")
            rows.append((n, {**row, **opts}, False))
    elif path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if not reader.fieldnames or not {"content", "style"} <= {f.strip() for f in reader.fieldnames}:
            raise InvalidOption(f"manifest {path.name}: the first line must name the columns, with content and "
                                "style among them")
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise InvalidOption(f"manifest {path.name} line {n}: more cells than columns")
            rows.append((n, {k.strip(): v for k, v in row.items() if k}, True))
    else:
        raise InvalidOption(f"manifest '{path.name}': expected a .csv or .jsonl file")
    here, out = path.resolve().parent, Path(os.path.abspath(out_dir))
    jobs = []
    for n, row, from_text in rows:
        where = f"manifest {path.name} line {n}"
        content, style, output = (row.pop(k, None) for k in ("content", "style", "output"))
        if not content or not style:
            raise InvalidOption(f"{where}: needs a content and a style")
        content, style = (Path(os.path.abspath(here / str(p).strip())) for p in (content, style))
        for p in (content, style):
            if not p.is_file():
                raise InvalidOption(f"{where}: '{p}' does not exist")
        output = str(out / (str(output).strip() if output and str(output).strip() else output_name(content, style)))
        if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InvalidOption(f"{where}: output '{output}' must end in {', '.join(OUTPUT_SUFFIXES)}")
        jobs.append(Job(len(jobs), str(content), str(style), os.path.abspath(output),
                        job_options(row, base, where, from_text)))
    if not jobs:
        raise InvalidOption(f"manifest '{path.name}' lists no jobs")
    return jobs


def check_jobs(jobs: Sequence[Job]) -> None:
    """No two jobs may write one output, and no output may be an input."""
    seen: Dict[str, Job] = {}
    inputs = {os.path.realpath(p) for j in jobs for p in (j.content, j.style)}
    for j in jobs:
        real = os.path.realpath(j.output)
        if real in seen:
            a = seen[real]
            raise InvalidOption(f"two jobs would write '{j.output}' ({Path(a.content).name} with "
                                f"{Path(a.style).name}, and {Path(j.content).name} with {Path(j.style).name}); "
                                "give the inputs different names or use --manifest with outputs")
        if real in inputs:
            raise InvalidOption(f"output '{j.output}' is one of the inputs")
        seen[real] = j


def jobs_from_pairs(pairs: Iterable, out_dir, base: Options) -> List[Job]:
    """The Python API's pairs: (content, style), (content, style, output) or dicts as manifest rows."""
    out, jobs = Path(os.path.abspath(out_dir)), []
    for n, pair in enumerate(pairs):
        where = f"pair {n}"
        opts: dict = {}
        if isinstance(pair, dict):
            pair = dict(pair)
            opts = dict(pair.pop("options", None) or {})
            content, style, output = (pair.pop(k, None) for k in ("content", "style", "output"))
            opts.update(pair)
        elif isinstance(pair, (tuple, list)) and len(pair) in (2, 3):
            content, style, output = (list(pair) + [None])[:3]
        else:
            raise InvalidOption(f"{where}: expected (content, style), (content, style, output) or a dict")
        if content is None or style is None:
            raise InvalidOption(f"{where}: needs a content and a style")
        if not isinstance(content, (str, os.PathLike)) or not isinstance(style, (str, os.PathLike)):
            raise InvalidOption(f"{where}: content and style must be paths (workers read the files)")
        content, style = os.path.abspath(content), os.path.abspath(style)
        output = os.path.abspath(out / (output if output is not None else output_name(content, style)))
        if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InvalidOption(f"{where}: output '{output}' must end in {', '.join(OUTPUT_SUFFIXES)}")
        jobs.append(Job(n, content, style, output, job_options(opts, base, where, False)))
    return jobs


# --- running one job (in a worker) ------------------------------------------------------------------
class _Hashes:
    """SHA-256 of an input's decoded pixels (as engine recipes record them), per file version."""

    def __init__(self):
        self.memo: Dict[tuple, str] = {}

    def __call__(self, path: str) -> str:
        from . import images

        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in self.memo:
            if len(self.memo) > 4096:
                self.memo.clear()
            self.memo[key] = hashlib.sha256(images.load_image(path).tobytes()).hexdigest()
        return self.memo[key]


def up_to_date(recipe: Optional[dict], task: dict, o: Options, weights_sha256: str, pixels_sha256) -> bool:
    """True when `recipe` (read from the job's output) is what this job would write: the same
    job, inputs (paths and decoded pixels), weights and options (but HOW_FIELDS)."""
    from .objective import layer_weights

    if not isinstance(recipe, dict) or recipe.get("job") != "transfer":
        return False
    if recipe.get("weights_sha256") != weights_sha256:
        return False
    have = recipe.get("options") or {}
    want = json.loads(json.dumps(o.to_dict()))
    want["style_layer_weights"] = json.loads(json.dumps(list(layer_weights(o))))
    for k, v in want.items():
        if k not in HOW_FIELDS and have.get(k) != v:
            return False
    content, styles = recipe.get("content") or {}, recipe.get("styles") or []
    if len(styles) != 1 or not (_same_input(content.get("path"), task["content"])
                                and _same_input(styles[0].get("path"), task["style"])):
        return False
    try:
        return (content.get("pixels_sha256") == pixels_sha256(task["content"])
                and styles[0].get("pixels_sha256") == pixels_sha256(task["style"]))
    except (OSError, PainterlyError):
        return False


def _same_input(recorded: Optional[str], path: str) -> bool:
    """A recipe names an input by its absolute path, or by its file name alone (the pixels'
    SHA-256, checked as well, is what tells the file)."""
    if not recorded:
        return False
    return recorded == path if os.path.isabs(recorded) else recorded == os.path.basename(path)


def _peaks() -> dict:
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


class Runner:
    """A prepared engine and the steps of one job: the check for an up-to-date output, the
    run, the atomic save. Lives in a worker process or Ray actor; returns plain dicts."""

    def __init__(self, options: dict):
        from .engine import Stylizer

        self.stylizer = Stylizer(Options.from_dict(options)).prepare()
        self.hashes = _Hashes()

    def run(self, task: dict, force: bool, on_step: Optional[Callable[[int, int], None]] = None) -> dict:
        from . import images
        from .errors import Stop

        start = time.perf_counter()
        st = self.stylizer
        out = {"index": task["index"], "status": "failed", "error": None, "iterations": None}
        try:
            o = config.options_from(st.options, task["options"]) if task["options"] else st.options
            exists = os.path.lexists(task["output"])
            if exists and not force:
                recipe = None
                try:
                    recipe = images.read_recipe(task["output"])
                except PainterlyError:
                    pass
                if recipe is None:
                    raise OutputError(f"'{task['output']}' exists and was not written by painterly; move it "
                                      "away or use --force")
                if up_to_date(recipe, task, o, st.sha256, self.hashes):
                    out.update(status="skipped")
                    return out
            hook = os.environ.get(CRASH_HOOK)
            if hook and task["attempt"] == 0 and Path(task["content"]).name == hook:
                os._exit(86)
            last = [0.0]

            def callback(it):
                now = time.monotonic()
                if on_step is not None and (now - last[0] >= STEP_EVERY_S or it.step == it.total):
                    last[0] = now
                    if on_step(it.step, it.total) is False:
                        raise Stop

            res = st.run(task["content"], [task["style"]], options=o, callback=callback)
            if res.stopped:  # never save an unfinished image: its recipe would match on a rerun
                out.update(error="interrupted")
                return out
            Path(task["output"]).parent.mkdir(parents=True, exist_ok=True)
            res.save(task["output"])
            out.update(status="ok", iterations=res.iterations)
        except Exception as e:  # one job's failure is its own: the worker goes on
            out["error"] = user_message(e, debug_hint="")[0]
        finally:
            out["seconds"] = time.perf_counter() - start
            out.update(_peaks())
        return out


# --- executors ------------------------------------------------------------------------------------
# An executor runs tasks on `n` workers: submit(w, task) gives worker w one task; poll(timeout)
# returns events ("step", w, index, step, total) | ("done", w, result dict) | ("died", w, why) |
# ("failed_start", w, line); restart(w) replaces a dead worker; close() ends them all.

def _set_parent_death_signal() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a `kill -9` of the batch leaves no
    worker behind to race a rerun)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _local_worker(wid: int, options: dict, force: bool, tasks, results, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    _set_parent_death_signal()
    if os.getppid() != parent:
        os._exit(0)
    try:
        runner = Runner(options)
    except BaseException as e:
        results.put(("failed_start", wid, user_message(e, debug_hint="")[0]))
        return
    results.put(("ready", wid))
    while True:
        try:
            task = tasks.get(timeout=2.0)
        except queue_mod.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return

        def on_step(step, total, index=task["index"]):
            if os.getppid() != parent:
                return False
            results.put(("step", wid, index, step, total))

        results.put(("done", wid, runner.run(task, force, on_step)))


class LocalExecutor:
    """`n` worker processes (spawned: no state shared with this one), one task queue each."""

    kind = "local"

    def __init__(self, options: Options, n: int, force: bool, gpus: Sequence[int] = ()):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.options, self.n, self.force, self.gpus = options.to_dict(), n, force, list(gpus)
        self.results = self.ctx.Queue()
        self.procs: List[Any] = [None] * n
        self.tasks: List[Any] = [None] * n
        self.gone: set = set()

    def start(self) -> None:
        for w in range(self.n):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        self.tasks[w] = self.ctx.Queue()
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self.gpus:  # one GPU per worker: the child sees only its own
            os.environ["CUDA_VISIBLE_DEVICES"] = str(self.gpus[w % len(self.gpus)])
        try:
            p = self.ctx.Process(target=_local_worker, name=f"painterly-batch-{w}", daemon=True,
                                 args=(w, self.options, self.force, self.tasks[w], self.results, os.getpid()))
            p.start()
        finally:
            if self.gpus:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        self.procs[w] = p
        self.gone.discard(w)

    def submit(self, w: int, task: dict) -> None:
        self.tasks[w].put(task)

    def poll(self, timeout: float) -> list:
        # Deaths first, then the queue: what a worker sent before it died is handled before its death.
        dead = [w for w, p in enumerate(self.procs) if p is not None and w not in self.gone and p.exitcode is not None]
        events = []
        try:
            events.append(self.results.get(timeout=0.01 if dead else timeout))
            while True:
                events.append(self.results.get_nowait())
        except queue_mod.Empty:
            pass
        for w in dead:
            self.gone.add(w)
            events.append(("died", w, f"worker process exited with code {self.procs[w].exitcode}"))
        return events

    def restart(self, w: int) -> None:
        self._stop(w)
        self._spawn(w)

    def _stop(self, w: int) -> None:
        p = self.procs[w]
        if p is not None and p.is_alive():
            p.terminate()
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)

    def close(self, now: bool = False) -> None:
        """End the workers: idle ones exit on their own; with `now` (an interruption) running
        jobs are abandoned at once (their outputs are never half-written)."""
        for w, p in enumerate(self.procs):
            if p is not None and p.is_alive():
                try:
                    self.tasks[w].put_nowait(None)
                except Exception:
                    pass
        deadline = time.monotonic() + (0.0 if now else 3.0)
        for p in self.procs:
            if p is not None:
                p.join(max(0.0, deadline - time.monotonic()))
        for w in range(self.n):
            self._stop(w)
        for q in [self.results] + [t for t in self.tasks if t is not None]:
            q.close()
            q.cancel_join_thread()


class _RayActor:
    """The Ray actor class (wrapped by ray.remote at run time): one prepared engine."""

    def __init__(self, options: dict, force: bool):
        self.force, self.error = force, None
        try:
            self.runner = Runner(options)
        except BaseException as e:
            self.runner, self.error = None, user_message(e, debug_hint="")[0]

    def run(self, task: dict) -> dict:
        if self.runner is None:
            return {"failed_start": self.error}
        return self.runner.run(task, self.force)


def ray_module():
    try:
        import ray
    except ImportError:
        raise PainterlyError("--executor ray needs Ray: pip install 'painterly[ray]'") from None
    return ray


def ray_connect(address: Optional[str]) -> bool:
    """Connect to the Ray cluster at `address`, or start a local one; True when this call
    started or connected it (and so should shut it down), False when one was already up."""
    ray = ray_module()
    if ray.is_initialized():
        return False
    import logging

    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kw)
    except Exception as e:
        raise PainterlyError(f"cannot {'connect to the Ray cluster at ' + address if address else 'start Ray'}: "
                             f"{' '.join(str(e).split())[:300]}") from None
    return True


def ray_default_workers() -> int:
    res = ray_module().cluster_resources()
    gpus = int(res.get("GPU", 0))
    return gpus if gpus else max(1, int(res.get("CPU", 1)) // 2)


class RayExecutor:
    """`n` Ray actors, each with a prepared engine (one GPU each where the cluster has GPUs)."""

    kind = "ray"

    def __init__(self, options: Options, n: int, force: bool):
        self.ray = ray_module()
        res = self.ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        cpus = max(1, int(res.get("CPU", 1)) // n) if not self.gpus else 1
        if not options.threads and not self.gpus:
            options = options.replace(threads=cpus)  # the actor's share of the cores
        self.options, self.n, self.force = options.to_dict(), n, force
        self.actor_cls = self.ray.remote(num_cpus=cpus, num_gpus=1 if self.gpus else 0,
                                         max_restarts=0)(_RayActor)
        self.actors: List[Any] = [None] * n
        self.refs: Dict[Any, int] = {}

    def start(self) -> None:
        for w in range(self.n):
            self.actors[w] = self.actor_cls.remote(self.options, self.force)

    def submit(self, w: int, task: dict) -> None:
        self.refs[self.actors[w].run.remote(task)] = w

    def poll(self, timeout: float) -> list:
        if not self.refs:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        events = []
        for ref in ready:
            w = self.refs.pop(ref)
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as e:
                events.append(("died", w, f"Ray worker died ({type(e).__name__})"))
                continue
            except self.ray.exceptions.RayError as e:
                events.append(("died", w, f"Ray task lost ({type(e).__name__})"))
                continue
            if "failed_start" in result:
                events.append(("failed_start", w, result["failed_start"]))
            else:
                events.append(("done", w, result))
        return events

    def restart(self, w: int) -> None:
        try:
            self.ray.kill(self.actors[w], no_restart=True)
        except Exception:
            pass
        self.actors[w] = self.actor_cls.remote(self.options, self.force)

    def close(self, now: bool = False) -> None:
        for a in self.actors:
            if a is not None:
                try:
                    self.ray.kill(a, no_restart=True)
                except Exception:
                    pass
        self.refs.clear()


# --- the log ----------------------------------------------------------------------------------------
class Log:
    """DIR/batch.jsonl, appended one line per job by this process only. A line cut short by a
    kill is removed when the log is opened again."""

    def __init__(self, path: Path):
        self.path = path
        try:
            if path.exists():
                data = path.read_bytes()
                if data and not data.endswith(b"\n"):
                    with open(path, "r+b") as f:
                        f.truncate(data.rfind(b"\n") + 1)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot write the log '{path}': {e.strerror or e}") from None

    def write(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self.fd)


def _lock(out_dir: Path):
    """An exclusive lock on DIR for this batch (released by the OS when the process ends)."""
    import fcntl

    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"another painterly batch is writing to '{out_dir}'; wait for it or use another "
                          "--out-dir") from None
    return fd


def _clean_stale_temps(jobs: Sequence[Job]) -> None:
    """Remove the hidden temp files a killed worker left next to this batch's outputs (each
    output is written to `.NAME.XXXX.tmp`, then renamed: see images._atomic_write)."""
    by_dir: Dict[str, set] = collections.defaultdict(set)
    for j in jobs:
        by_dir[os.path.dirname(j.output)].add(os.path.basename(j.output))
    for d, names in by_dir.items():
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") and e.name.endswith(".tmp"):
                stem = e.name[1:].rsplit(".", 2)[0]
                if stem in names:
                    try:
                        os.unlink(e.path)
                    except OSError:
                        pass


# --- the scheduler --------------------------------------------------------------------------------
class _Queue:
    """Jobs waiting, by style. A worker gets its last style's next job while there is one, else
    the first style no other worker is on, else the style with the most jobs left."""

    def __init__(self, jobs: Sequence[Job]):
        self.by_style: "collections.OrderedDict[str, collections.deque]" = collections.OrderedDict()
        for j in jobs:
            self.by_style.setdefault(j.style, collections.deque()).append((j, 0))
        self.worker_style: Dict[int, str] = {}

    def __len__(self):
        return sum(len(d) for d in self.by_style.values())

    def put_back(self, job: Job, attempt: int) -> None:
        self.by_style.setdefault(job.style, collections.deque()).appendleft((job, attempt))

    def take(self, w: int, busy: Iterable[int]):
        left = [s for s, d in self.by_style.items() if d]
        if not left:
            return None
        s = self.worker_style.get(w)
        if s not in left:
            others = {self.worker_style.get(b) for b in busy if b != w}
            free = [x for x in left if x not in others]
            s = free[0] if free else max(left, key=lambda x: len(self.by_style[x]))
        self.worker_style[w] = s
        return self.by_style[s].popleft()


def default_workers(options: Options) -> Tuple[int, List[int]]:
    """(workers, GPU ids): one per GPU when the run is on CUDA, else one per 2 cores."""
    if options.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            n = torch.cuda.device_count()
            return n, list(range(n))
    return max(1, (os.cpu_count() or 1) // 2), []


def run_jobs(jobs: Sequence[Job], out_dir, options: Options, *, workers: Optional[int] = None,
             executor: str = "local", ray_address: Optional[str] = None, force: bool = False,
             on_event: Optional[Callable[[tuple], None]] = None) -> Iterator[Outcome]:
    """Run `jobs`, yielding each Outcome as its job ends (and logging it to DIR/batch.jsonl).

    on_event gets ("started", n_workers), ("running", index, job) when a job goes to a worker and
    ("step", index, step, total) for its progress (local workers only). Closing the generator
    (or an exception in the consumer, e.g. KeyboardInterrupt) stops every worker.
    """
    choice("executor", executor, EXECUTORS)
    if workers is not None and workers < 1:
        raise InvalidOption(f"--workers must be >= 1, got {workers}")
    options = config.validate(options, "transfer", 1)
    check_jobs(jobs)
    out = Path(os.path.abspath(out_dir))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for d in {os.path.dirname(j.output) for j in jobs}:
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create '{e.filename}': {e.strerror}") from None
    lock = _lock(out)
    log = Log(out / LOG_NAME)
    event = on_event or (lambda e: None)
    ex = None
    started_ray = finished = False
    try:
        _clean_stale_temps(jobs)
        if not jobs:
            return
        if executor == "ray":
            started_ray = ray_connect(ray_address)
            n = min(workers or ray_default_workers(), len(jobs))
            ex = RayExecutor(options, n, force)
        else:
            n, gpus = (workers, []) if workers else default_workers(options)
            if workers and options.device in ("auto", "cuda"):
                gpus = default_workers(options)[1]
            n = min(n, len(jobs))
            if not options.threads and not gpus:  # share the cores: no oversubscription
                options = options.replace(threads=max(1, (os.cpu_count() or 1) // n))
            ex = LocalExecutor(options, n, force, gpus)
        ex.start()
        event(("started", n))
        waiting = _Queue(jobs)
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
                        o = Outcome(job.content, job.style, job.output, "failed", 0.0,
                                    f"the worker running it died {MAX_ATTEMPTS} times ({ev[2]}); not retried",
                                    worker=w, attempts=attempt + 1, index=job.index)
                        log.write(o.log_record())
                        yield o
                elif kind == "died":
                    ex.restart(w)
                elif kind == "done" and w in running and running[w][0].index == ev[2]["index"]:
                    job, attempt = running.pop(w)
                    r = ev[2]
                    o = Outcome(job.content, job.style, job.output, r["status"], r.get("seconds", 0.0),
                                r.get("error"), r.get("iterations"), w, attempt + 1, r.get("peak_rss_mb"),
                                r.get("peak_gpu_mb"), index=job.index)
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
        os.close(lock)


def stylize_many(pairs: Iterable, out_dir, *, workers: Optional[int] = None, executor: str = "local",
                 ray_address: Optional[str] = None, force: bool = False, options: Optional[Options] = None,
                 **overrides) -> Iterator[Outcome]:
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
    base = config.options_from(options, overrides)
    jobs = jobs_from_pairs(pairs, out_dir, base)
    yield from run_jobs(jobs, out_dir, base, workers=workers, executor=executor, ray_address=ray_address,
                        force=force)


# --- the command line -------------------------------------------------------------------------------
def add_parser(sub) -> None:
    """The `batch` verb: its own flags and every transfer option flag."""
    from . import terminal

    help_ = "stylise every INPUT with every --style (or a --manifest's pairs), resumably, on several workers"
    sp = sub.add_parser("batch", help=help_, description=help_ + ". Outputs: DIR/{content}--{style}.png; log: "
                        "DIR/batch.jsonl; a rerun skips the jobs already done.")
    sp.add_argument("inputs", nargs="*", metavar="INPUT", help="content images: files, folders (their images) or globs")
    sp.add_argument("--style", action="append", default=[], metavar="S",
                    help="a style image, folder or glob (repeatable); every INPUT is painted with every style")
    sp.add_argument("--manifest", metavar="FILE", help="a .csv or .jsonl of jobs (content, style, optional output and "
                    "per-job options) instead of INPUT x --style")
    sp.add_argument("--out-dir", required=True, metavar="DIR", help="where the outputs and batch.jsonl go")
    sp.add_argument("--workers", type=int, default=None, metavar="N",
                    help="worker processes (Ray actors with --executor ray); default: one per GPU, else one per 2 cores")
    sp.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local: worker processes on this machine; ray: Ray actors on a cluster (painterly[ray])")
    sp.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster, e.g. HEAD:6379 (default: start a "
                    "local Ray)")
    sp.add_argument("--force", action="store_true", help="redo every job, even those with an up-to-date output")
    sp.add_argument("--preset", choices=config.PRESETS, default="fast", help="as for transfer")
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
        from .terminal import _clock

        extra = ", ".join(f"{self.counts[k]} {k}" for k in ("skipped", "failed") if self.counts[k])
        now_running = "; ".join(f"{name} {int(100 * f)}%" for name, f in list(self.running.values())[:3])
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {ended}/{self.total} jobs" + (f" ({extra})" if extra else "")
                + f", {self.rate():.2f} images/min, {_clock(eta) if eta is not None else '?'} left"
                + (f" | {now_running}" if now_running else ""))
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args) -> int:
    """`painterly batch`: 0 when every job succeeded (or was already done), 1 when any failed."""
    from . import terminal

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
    code = 0
    try:
        for o in run_jobs(jobs, args.out_dir, base, workers=args.workers, executor=args.executor,
                          ray_address=args.ray_address, force=args.force, on_event=progress.event):
            progress.finished(o)
    except KeyboardInterrupt:
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    seconds = time.monotonic() - progress.start
    from .terminal import _clock

    log = Path(os.path.abspath(args.out_dir)) / LOG_NAME
    print(f"painterly batch: {counts['ok']} done, {counts['skipped']} skipped, {counts['failed']} failed of "
          f"{len(jobs)} jobs in {_clock(seconds)} ({progress.rate():.2f} images/min)"
          + ("; interrupted" if code == 130 else "") + f"; log: {log}", file=sys.stderr)
    if code:
        return code
    return 1 if counts["failed"] else 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
