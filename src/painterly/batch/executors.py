"""Where batch jobs run: local worker processes (spawned, each with its own prepared Stylizer,
killed with their parent) or Ray actors on a cluster, and how many of them by default."""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import signal
import sys
import threading
import time
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

from painterly.batch.workers import Runner
from painterly.errors import PainterlyError, user_message
from painterly.options import Options
from painterly.runtime.allocator import keep_freed_memory
from painterly.runtime.device_memory import SHARE_ENV

_MAIN_SWAP = threading.Lock()


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

    def __init__(self, options: Options, n: int, force: bool, gpus: Sequence[str] = ()):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        if gpus:  # a worker sees one GPU, its own, as cuda (cuda:N names one of this process's)
            options = options.replace(device="cuda")
        self.options, self.n, self.force, self.gpus = options.to_dict(), n, force, [str(g) for g in gpus]
        self.mps = not gpus and _on_mps(options)  # every worker on the one Apple GPU: each has 1/n
        self.procs: List[Any] = [None] * n
        self.conns: List[Any] = [None] * n  # this end of each worker's pipe; None once closed
        self.gone: set = set()

    def start(self) -> None:
        for w in range(self.n):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        mine, theirs = self.ctx.Pipe()
        saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", SHARE_ENV)}
        if self.gpus:  # the child sees only its GPU (an entry of this process's list), and its share
            gpu, share = gpu_of(w, self.n, self.gpus)
            os.environ["CUDA_VISIBLE_DEVICES"], os.environ[SHARE_ENV] = gpu, str(share)
        elif self.mps:
            os.environ[SHARE_ENV] = str(self.n)
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
            if self.gpus or self.mps:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
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


def _wants_gpu(device: str, gpus: int) -> bool:
    """Whether a run on `device` computes on a GPU of a machine (or cluster) with `gpus` GPUs."""
    device = str(device)
    return device == "cuda" or device.startswith("cuda:") or (device == "auto" and gpus > 0)


def ray_default_workers(options: Options) -> int:
    """One actor per GPU of the cluster when the run is on CUDA, else one per 2 cores."""
    res = ray_module().cluster_resources()
    gpus = int(res.get("GPU", 0))
    return gpus if _wants_gpu(options.device, gpus) and gpus else max(1, int(res.get("CPU", 1)) // 2)


def ray_actor_options(options: Options, n: int, resources: dict) -> dict:
    """ray.remote's options for each of `n` actors running `options` on a cluster with
    `resources` (ray.cluster_resources()): a GPU each when the run's device is CUDA (--device
    auto: when the cluster has GPUs; a share of one, and of its memory, when there are more
    actors than GPUs), none with --device cpu, then the actor's share of the cores."""
    gpus = int(resources.get("GPU", 0))
    if not _wants_gpu(options.device, gpus):
        return {"num_cpus": max(1, int(resources.get("CPU", 1)) // n), "num_gpus": 0, "max_restarts": 0}
    if not gpus:
        raise PainterlyError(f"--device {options.device}: the Ray cluster has no GPU")
    share = -(-n // gpus)  # actors per GPU
    out = {"num_cpus": 1, "num_gpus": 1 if share == 1 else 1.0 / share, "max_restarts": 0}
    if share > 1:
        out["runtime_env"] = {"env_vars": {SHARE_ENV: str(share)}}
    return out


class RayExecutor:
    """`n` Ray actors, each with a prepared engine (a GPU each when the run is on CUDA)."""

    kind = "ray"

    def __init__(self, options: Options, n: int, force: bool):
        self.ray = ray_module()
        actor = ray_actor_options(options, n, self.ray.cluster_resources())
        self.gpus = actor["num_gpus"]
        if self.gpus:  # Ray gives the actor its GPU as its only one: cuda
            options = options.replace(device="cuda")
        elif not options.threads:
            options = options.replace(threads=actor["num_cpus"])  # the actor's share of the cores
        self.options, self.n, self.force = options.to_dict(), n, force
        self.actor_cls = self.ray.remote(**actor)(_RayActor)
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


def visible_gpus(options: Options) -> List[str]:
    """The GPUs a run of `options` computes on, as entries of this process's CUDA_VISIBLE_DEVICES
    (indices, UUIDs or MIG names, as a worker is to be given them; 0..n-1 when it is unset), or
    none (--device cpu or mps, no CUDA). --device cuda:N: that one."""
    if not _wants_gpu(options.device, 1):
        return []
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        return []
    n = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in listed.split(",") if e.strip()][:n] if listed is not None else []
    entries = entries if len(entries) == n else [str(i) for i in range(n)]
    device = str(options.device)
    return entries[int(device.split(":", 1)[1]) :][:1] if device.startswith("cuda:") else entries


def gpu_of(w: int, n: int, gpus: Sequence[str]) -> Tuple[str, int]:
    """(the GPU of worker w of n, round robin over `gpus`; how many workers share it)."""
    k = w % len(gpus)
    return gpus[k], len(range(k, n, len(gpus)))


def _on_mps(options: Options) -> bool:
    if str(options.device) not in ("auto", "mps"):
        return False
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available()) and not torch.cuda.is_available()


def default_workers(options: Options) -> Tuple[int, List[str]]:
    """(workers, GPUs): one per GPU when the run is on CUDA (one on Apple's GPU), else one per
    2 cores."""
    gpus = visible_gpus(options)
    if gpus:
        return len(gpus), gpus
    return (1 if _on_mps(options) else max(1, (os.cpu_count() or 1) // 2)), []
