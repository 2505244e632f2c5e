"""Batch workers: the steps of one job in a worker (up-to-date check, run, atomic save), the
executors (local processes, Ray actors), the log, the lock and the by-style queue (see batch.py)."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.machinery
import json
import os
import signal
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from painterly import testhooks
from painterly.batch.jobs import Job
from painterly.errors import OutputError, PainterlyError, user_message
from painterly.imaging import load_image, read_recipe
from painterly.options import Options, options_from
from painterly.runtime.allocator import keep_freed_memory

# Options that change how a job is computed, not what it computes (up to float rounding): a
# recipe that differs only in these still matches, so a rerun with other --workers (threads)
# or on another device redoes nothing.
HOW_FIELDS = ("threads", "device", "compile", "channels_last")
MAX_ATTEMPTS = 2  # a job whose worker died is run once more on a fresh worker, then failed
# Test hook: a worker exits hard (as if killed) on the first attempt of each job whose content
# file has this name; tests use it to check the retry of a dead worker's job.
CRASH_HOOK = "PAINTERLY_BATCH_CRASH_ONCE"
STEP_EVERY_S = 0.5  # a worker reports its job's step at most this often


# --- running one job (in a worker) ------------------------------------------------------------------
class _Hashes:
    """SHA-256 of an input's decoded pixels (as engine recipes record them), per file version."""

    def __init__(self):
        self.memo: Dict[tuple, str] = {}

    def __call__(self, path: str) -> str:

        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in self.memo:
            if len(self.memo) > 4096:
                self.memo.clear()
            self.memo[key] = hashlib.sha256(load_image(path).tobytes()).hexdigest()
        return self.memo[key]


def up_to_date(recipe: Optional[dict], task: dict, o: Options, weights_sha256: str, pixels_sha256) -> bool:
    """True when `recipe` (read from the job's output) is what this job would write: the same
    job, inputs (paths and decoded pixels), weights and options (but HOW_FIELDS)."""
    from painterly.objective import layer_weights

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
    if len(styles) != 1 or not (
        _same_input(content.get("path"), task["content"])
        and _same_input(styles[0].get("path"), task["style"])
    ):
        return False
    try:
        return content.get("pixels_sha256") == pixels_sha256(task["content"]) and styles[0].get(
            "pixels_sha256"
        ) == pixels_sha256(task["style"])
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
        from painterly.engine import Stylizer

        self.stylizer = Stylizer(Options.from_dict(options)).prepare()
        self.hashes = _Hashes()

    def run(self, task: dict, force: bool, on_step: Optional[Callable[[int, int], None]] = None) -> dict:
        from painterly.errors import Stop

        start = time.perf_counter()
        st = self.stylizer
        out = {"index": task["index"], "status": "failed", "error": None, "iterations": None}
        try:
            o = options_from(st.options, task["options"]) if task["options"] else st.options
            exists = os.path.lexists(task["output"])
            if exists and not force:
                recipe = None
                try:
                    recipe = read_recipe(task["output"])
                except PainterlyError:
                    pass
                if recipe is None:
                    raise OutputError(
                        f"'{task['output']}' exists and was not written by painterly; move it "
                        "away or use --force"
                    )
                if up_to_date(recipe, task, o, st.sha256, self.hashes):
                    out.update(status="skipped")
                    return out
            testhooks.hold(f"batch job {Path(task['output']).name}")
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


def _send(conn, message) -> bool:
    """Send to the batch; False when it is gone (its end of the pipe is closed)."""
    try:
        conn.send(message)
        return True
    except OSError:
        return False


def _local_worker(wid: int, options: dict, force: bool, conn, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    _set_parent_death_signal()
    if os.getppid() != parent:
        os._exit(0)
    keep_freed_memory()
    try:
        runner = Runner(options)
    except BaseException as e:
        _send(conn, ("failed_start", wid, user_message(e, debug_hint="")[0]))
        return
    if not _send(conn, ("ready", wid)):
        return
    while True:
        try:
            if not conn.poll(2.0):
                if os.getppid() != parent:
                    return
                continue
            task = conn.recv()
        except (EOFError, OSError):  # the batch is gone
            return
        if task is None:
            return

        def on_step(step, total, index=task["index"]):
            if os.getppid() != parent or not _send(conn, ("step", wid, index, step, total)):
                return False

        if not _send(conn, ("done", wid, runner.run(task, force, on_step))):
            return


_MAIN_SWAP = threading.Lock()


@contextlib.contextmanager
def _children_skip_main():
    """While a worker is spawned, `__main__` looks like a package's `__main__.py` to
    multiprocessing, which then leaves the child's main module alone. Otherwise a spawned child
    re-runs the caller's script (its `__main__`) before it unpickles its target: a script
    calling stylize_many at its top level, without an `if __name__ == "__main__":` guard, would
    run again in every worker. The workers need nothing from the caller's `__main__` (their
    target and arguments are painterly's own functions and plain dicts)."""
    stub = types.ModuleType("__main__")
    stub.__spec__ = importlib.machinery.ModuleSpec("painterly.__main__", None)
    with _MAIN_SWAP:
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = stub
        try:
            yield
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved


class LocalExecutor:
    """`n` worker processes (spawned: no state shared with this one; the caller's script is
    not re-run in them), one pipe each. Pipes, not multiprocessing queues: a queue's locks are
    named semaphores with a feeder thread, and one freed by that thread as the batch exits
    after Ctrl-C leaves the resource tracker a name to warn about after the summary line."""

    kind = "local"

    def __init__(self, options: Options, n: int, force: bool, gpus: Sequence[int] = ()):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.options, self.n, self.force, self.gpus = options.to_dict(), n, force, list(gpus)
        self.procs: List[Any] = [None] * n
        self.conns: List[Any] = [None] * n  # this end of each worker's pipe; None once closed
        self.gone: set = set()

    def start(self) -> None:
        for w in range(self.n):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        mine, theirs = self.ctx.Pipe()
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self.gpus:  # one GPU per worker: the child sees only its own
            os.environ["CUDA_VISIBLE_DEVICES"] = str(self.gpus[w % len(self.gpus)])
        try:
            p = self.ctx.Process(
                target=_local_worker,
                name=f"painterly-batch-{w}",
                daemon=True,
                args=(w, self.options, self.force, theirs, os.getpid()),
            )
            with _children_skip_main():
                p.start()
        finally:
            theirs.close()  # the child has its own copy: EOF here once it exits
            if self.gpus:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        self.procs[w], self.conns[w] = p, mine
        self.gone.discard(w)

    def submit(self, w: int, task: dict) -> None:
        if self.conns[w] is not None:  # else the worker is gone: poll reports it, its job is retried
            _send(self.conns[w], task)

    def poll(self, timeout: float) -> list:
        # Deaths first, then the pipes: what a worker sent before it died is handled before its death.
        dead = [
            w
            for w, p in enumerate(self.procs)
            if p is not None and w not in self.gone and p.exitcode is not None
        ]
        live = {c: w for w, c in enumerate(self.conns) if c is not None}
        events = []
        for c in _wait_readable(list(live), 0.01 if dead else timeout):
            try:
                while c.poll():
                    events.append(c.recv())
            except (EOFError, OSError):  # the worker exited: its exit code says so below or next time
                c.close()
                self.conns[live[c]] = None
        for w in dead:
            self.gone.add(w)
            events.append(("died", w, f"worker process exited with code {self.procs[w].exitcode}"))
        if not live and not dead:
            time.sleep(timeout)
        return events

    def restart(self, w: int) -> None:
        self._stop(w)
        self._spawn(w)

    def _stop(self, w: int) -> None:
        p, c = self.procs[w], self.conns[w]
        if p is not None and p.is_alive():
            p.terminate()
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        if c is not None:
            c.close()
            self.conns[w] = None

    def close(self, now: bool = False) -> None:
        """End the workers: idle ones exit on their own; with `now` (an interruption) running
        jobs are abandoned at once (their outputs are never half-written)."""
        for w, p in enumerate(self.procs):
            if p is not None and p.is_alive() and self.conns[w] is not None:
                _send(self.conns[w], None)
        deadline = time.monotonic() + (0.0 if now else 3.0)
        for p in self.procs:
            if p is not None:
                p.join(max(0.0, deadline - time.monotonic()))
        for w in range(self.n):
            self._stop(w)


def _wait_readable(conns: list, timeout: float) -> list:
    from multiprocessing.connection import wait

    return wait(conns, timeout) if conns else []


class _RayActor:
    """The Ray actor class (wrapped by ray.remote at run time): one prepared engine."""

    def __init__(self, options: dict, force: bool):
        self.force, self.error = force, None
        keep_freed_memory()
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
        raise PainterlyError(
            f"cannot {'connect to the Ray cluster at ' + address if address else 'start Ray'}: "
            f"{' '.join(str(e).split())[:300]}"
        ) from None
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
        self.actor_cls = self.ray.remote(num_cpus=cpus, num_gpus=1 if self.gpus else 0, max_restarts=0)(
            _RayActor
        )
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


# --- the scheduler --------------------------------------------------------------------------------
class StyleQueue:
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
