"""Batch workers: the steps of one job in a worker (up-to-date check, run, atomic save) and the
by-style queue; batch/executors.py runs them in processes or on Ray (see batch/stylize.py)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence

from painterly import testhooks
from painterly.batch.jobs import Job
from painterly.errors import OutputError, PainterlyError, user_message
from painterly.imaging import load_image, read_recipe
from painterly.options import Options, options_from

# Options that change how a job is computed, not what it computes (up to float rounding): a
# recipe that differs only in these still matches, so a rerun with other --workers (threads)
# or on another device redoes nothing.
HOW_FIELDS = ("threads", "device", "compile", "channels_last", "deterministic")
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
