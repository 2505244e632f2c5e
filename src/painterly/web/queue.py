"""Jobs and the queue that runs them: independent of any page or server.

    queue = JobQueue(concurrency=2, queue_size=8)
    job = Job(content, [style], options, session="browser-1")
    refusal = queue.submit(job)      # None: accepted (running or waiting); else why not
    job.snapshot()                   # step, total, losses, eta, the latest preview
    queue.cancel(job)                # stops within one iteration; the image so far is kept
    job.done.wait(); job.result      # an engine.Result, or job.error (one line)

At most `concurrency` jobs run at once, each in its own thread (on a machine with several GPUs,
each on the GPU running the fewest: `devices`); up to `queue_size` more wait
their turn (FIFO) and can ask for their place. A job submitted when both are full is refused at
once with a message starting `QUEUE_FULL`: nothing is accepted that will not run. A session
(a browser page, a client) has at most one job at a time.

Cancel sets the job's threading.Event, which the engine callback checks after every
iteration and answers with `painterly.errors.Stop`, so a run stops within one iteration and
its result so far is returned. Every job runs through `engine.run`, which keeps one prepared
Stylizer per network configuration: the network is loaded once across jobs.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from painterly.errors import Stop, user_message
from painterly.options import Options

log = logging.getLogger(__name__)

QUEUE_FULL = "The queue is full"  # every refusal for lack of room starts with this
PREVIEW_EVERY = 5  # iterations between preview images


@dataclass
class Snapshot:
    """What a surface shows of its job: progress (every iteration), preview (every few)."""

    step: int = 0
    total: int = 0
    losses: Dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    eta: float = 0.0
    version: int = 0  # +1 per iteration
    preview: Optional[object] = None  # a PIL image
    preview_version: int = 0  # +1 per preview image


class Job:
    """One run (`kind`: transfer, content or texture) in its own thread, cancellable within
    one iteration. `names` are the inputs' names as the user gave them (for messages and
    command lines); the images themselves are already decoded."""

    def __init__(
        self,
        content,
        styles: List,
        options: Options,
        names: Tuple[str, List[str]] = ("content.png", ["style.png"]),
        session: Optional[str] = None,
        preview_every: int = PREVIEW_EVERY,
        kind: str = "transfer",
    ):
        self.id = uuid.uuid4().hex
        self.content, self.styles, self.options, self.kind = content, styles, options, kind
        self.names, self.session = names, session
        self.preview_every = max(1, int(preview_every))
        self.state = "new"  # new -> waiting -> running -> done
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.result = None  # engine.Result
        self.error: Optional[str] = None  # one line, worded by errors.user_message
        self.submitted = time.monotonic()
        self._lock = threading.Lock()
        self._snap = Snapshot()

    def cancel(self) -> None:
        self.cancelled.set()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(**vars(self._snap))

    def _callback(self, it) -> None:
        if self.cancelled.is_set():
            raise Stop
        image = None
        if it.step == 1 or it.step % self.preview_every == 0 or it.step >= it.total:
            image = it.image()
        with self._lock:
            s = self._snap
            s.step, s.total, s.losses, s.elapsed, s.eta = (
                it.step,
                it.total,
                dict(it.losses),
                it.elapsed,
                it.eta,
            )
            s.version += 1
            if image is not None:
                s.preview, s.preview_version = image, s.preview_version + 1
        if self.cancelled.is_set():
            raise Stop

    def run(self) -> None:
        """The job's thread: run it on the shared prepared engine; a failure becomes `error`."""
        from painterly.engine import run

        try:
            if self.cancelled.is_set():
                return
            self.result = run(self.kind, self.content, self.styles, self.options, callback=self._callback)
        except Exception as e:  # noqa: BLE001 -- every failure is one line for the user
            text, code = user_message(e, debug_hint="")
            if code == 1 and not isinstance(e, MemoryError):
                log.exception("job %s failed", self.id)  # a bug: the server's log has the traceback
            self.error = text


class JobQueue:
    """A bounded queue: `concurrency` jobs run, at most `queue_size` more wait (FIFO)."""

    def __init__(self, concurrency: int, queue_size: int, devices: Sequence[str] = ()):
        if concurrency < 1 or queue_size < 0:
            raise ValueError("concurrency must be >= 1 and queue_size >= 0")
        self.concurrency, self.queue_size = int(concurrency), int(queue_size)
        # Several GPUs: each job starts on the one running the fewest (its options' --device).
        self.devices = list(devices) if len(devices) > 1 else []
        self._lock = threading.Lock()
        self._waiting: collections.deque = collections.deque()
        self._running: set = set()
        self._sessions: Dict[str, Job] = {}
        self.stats = {
            "submitted": 0,
            "refused": 0,
            "finished": 0,
            "cancelled": 0,
            "peak_running": 0,
            "peak_waiting": 0,
        }

    def submit(self, job: Job) -> Optional[str]:
        """Start or enqueue `job`; None when accepted, else the message refusing it."""
        with self._lock:
            other = self._sessions.get(job.session) if job.session else None
            if other is not None and not other.done.is_set():
                return "This page already has a job in progress: cancel it or wait for it to finish."
            if len(self._running) + len(self._waiting) >= self.concurrency + self.queue_size:
                self.stats["refused"] += 1
                return (
                    f"{QUEUE_FULL}: {len(self._running)} job(s) running and {len(self._waiting)} waiting, "
                    "the most this server accepts. Please try again in a minute."
                )
            self.stats["submitted"] += 1
            if job.session:
                self._sessions[job.session] = job
            if len(self._running) < self.concurrency:
                self._start(job)
            else:
                job.state = "waiting"
                self._waiting.append(job)
            self.stats["peak_running"] = max(self.stats["peak_running"], len(self._running))
            self.stats["peak_waiting"] = max(self.stats["peak_waiting"], len(self._waiting))
            return None

    def _start(self, job: Job) -> None:  # with the lock held
        if self.devices:
            busy = collections.Counter(j.options.device for j in self._running)
            job.options = job.options.replace(device=min(self.devices, key=lambda d: busy[d]))
        job.state = "running"
        self._running.add(job)
        threading.Thread(
            target=self._work, args=(job,), name=f"painterly-job-{job.id[:8]}", daemon=True
        ).start()

    def _work(self, job: Job) -> None:
        try:
            job.run()
        finally:
            with self._lock:
                self._running.discard(job)
                self._finish(job)
                while self._waiting and len(self._running) < self.concurrency:
                    self._start(self._waiting.popleft())
                self.stats["peak_running"] = max(self.stats["peak_running"], len(self._running))

    def _finish(self, job: Job) -> None:  # with the lock held
        job.state = "done"
        self.stats["cancelled" if job.cancelled.is_set() else "finished"] += 1
        if job.session and self._sessions.get(job.session) is job:
            del self._sessions[job.session]
        job.done.set()

    def cancel(self, job: Job) -> None:
        job.cancel()
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish(job)

    def cancel_session(self, session: Optional[str]) -> bool:
        """Cancel the session's job; whether it had one."""
        with self._lock:
            job = self._sessions.get(session) if session else None
        if job is None:
            return False
        self.cancel(job)
        return True

    def position(self, job: Job) -> Optional[int]:
        """1-based place of a waiting job in the queue; None once it runs."""
        with self._lock:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def counts(self) -> Tuple[int, int]:
        """(running, waiting)."""
        with self._lock:
            return len(self._running), len(self._waiting)

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._running) + list(self._waiting)
        for job in jobs:
            self.cancel(job)
