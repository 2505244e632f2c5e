"""The job queue (painterly.jobs): admission, order, sessions, cancellation and the one-line
errors of a failed job. No Gradio here: the queue is the page's, and any other surface's."""

import threading
import time

import pytest
from PIL import Image

from painterly import DEFAULTS
from painterly.web import queue as jobs


class HeldJob(jobs.Job):
    """A job whose run() waits for `release` instead of optimising."""

    def __init__(self, session=None):
        super().__init__(None, [], DEFAULTS, session=session)
        self.release = threading.Event()

    def run(self):
        self.release.wait(30)


@pytest.fixture
def picture(small):
    return Image.open(small["content"]).convert("RGB")


def tiny(**kw):
    return DEFAULTS.replace(**dict(dict(weights="random", size=32, device="cpu", precision="fp32"), **kw))


def test_queue_admits_concurrency_plus_queue_size_and_refuses_the_rest():
    q = jobs.JobQueue(concurrency=1, queue_size=2)
    held = [HeldJob() for _ in range(4)]
    assert [q.submit(j) for j in held[:3]] == [None, None, None]
    refusal = q.submit(held[3])
    assert refusal.startswith(jobs.QUEUE_FULL)
    assert [j.state for j in held[:3]] == ["running", "waiting", "waiting"]
    assert (q.position(held[1]), q.position(held[2]), q.counts()) == (1, 2, (1, 2))
    q.cancel(held[1])  # a waiting job leaves the queue at once
    assert held[1].done.is_set() and q.position(held[2]) == 1
    held[0].release.set()
    assert held[0].done.wait(10) and held[2].state in ("running", "done")
    held[2].release.set()
    assert held[2].done.wait(10)
    assert q.counts() == (0, 0)
    assert q.stats["refused"] == 1 and q.stats["finished"] == 2 and q.stats["cancelled"] == 1
    assert q.stats["peak_running"] == 1 and q.stats["peak_waiting"] == 2


def test_queue_runs_up_to_concurrency_jobs_at_once():
    q = jobs.JobQueue(concurrency=2, queue_size=1)
    held = [HeldJob() for _ in range(3)]
    assert [q.submit(j) for j in held] == [None, None, None]
    assert [j.state for j in held] == ["running", "running", "waiting"]
    q.cancel_all()
    for j in held:
        j.release.set()
        assert j.done.wait(10)
    assert q.counts() == (0, 0)


def test_queue_takes_one_job_per_session():
    q = jobs.JobQueue(concurrency=2, queue_size=2)
    a, b = HeldJob("s1"), HeldJob("s1")
    assert q.submit(a) is None
    assert "already has a job" in q.submit(b)
    assert q.cancel_session("s1") and not q.cancel_session("nobody")
    a.release.set()
    assert a.done.wait(10)
    assert q.submit(b) is None
    b.release.set()
    assert b.done.wait(10)


def test_bad_limits_are_refused():
    for concurrency, size in ((0, 1), (1, -1)):
        with pytest.raises(ValueError):
            jobs.JobQueue(concurrency, size)


def test_cancel_stops_within_one_iteration(picture):
    job = jobs.Job(picture, [picture], tiny(iterations=(50,)), preview_every=1)
    callback = job._callback

    def click_cancel_during_step_3(it):  # as if Cancel arrived while step 3 was computed
        if it.step == 3:
            job.cancel()
        callback(it)

    job._callback = click_cancel_during_step_3
    job.run()
    assert job.error is None and job.result.stopped and job.result.iterations == 3


def test_a_cancelled_job_returns_its_image_so_far(picture):
    q = jobs.JobQueue(1, 0)
    job = jobs.Job(picture, [picture], tiny(iterations=(2000,)), preview_every=1)
    assert q.submit(job) is None
    deadline = time.monotonic() + 120
    while job.snapshot().step < 2 and time.monotonic() < deadline and not job.done.is_set():
        time.sleep(0.01)
    q.cancel(job)
    assert job.done.wait(120)
    assert job.error is None and job.result.stopped and job.result.iterations < 2000
    assert job.result.image.size == (32, 26) and job.snapshot().preview is not None


def test_a_finished_job_reports_every_step_and_previews(picture):
    job = jobs.Job(picture, [picture], tiny(size=64, iterations=(4, 3)), preview_every=2)
    job.run()
    s = job.snapshot()
    assert job.error is None and not job.result.stopped
    assert (s.step, s.total, s.version) == (7, 7, 7) and job.result.iterations == 7
    assert s.preview_version == 5  # steps 1, 2, 4, 6 and the last, 7
    assert set(s.losses) >= {"content", "style", "total"}


def test_a_failing_job_is_one_line_without_a_traceback(picture, monkeypatch):
    job = jobs.Job(picture, [picture], tiny(size=8))  # below the option's range
    job.run()
    assert job.result is None and "--size must be within 16..8192, got 8" in job.error

    def broken(*args, **kwargs):
        raise KeyError("a bug\nwith a second line")

    monkeypatch.setattr("painterly.engine.run", broken)
    job = jobs.Job(picture, [picture], tiny())
    job.run()
    assert job.error.startswith("KeyError: ") and "\n" not in job.error and "Traceback" not in job.error


def test_jobs_share_one_prepared_network(picture, monkeypatch):
    """Jobs run through engine.run: the network is built once for many jobs with one network set-up."""
    import collections

    from painterly import engine

    built = []
    get_vgg = engine.get_vgg

    def counting(*args, **kwargs):
        built.append(kwargs.get("last"))
        return get_vgg(*args, **kwargs)

    monkeypatch.setattr(engine, "get_vgg", counting)
    monkeypatch.setattr(engine, "_PREPARED", collections.OrderedDict())
    q = jobs.JobQueue(1, 4)
    runs = [jobs.Job(picture, [picture], tiny(iterations=(n,), seed=n)) for n in (2, 3, 4)]
    assert [q.submit(j) for j in runs] == [None] * 3
    for j in runs:
        assert j.done.wait(120) and j.error is None and j.result.iterations == j.options.iterations[0]
    assert len(built) == 1 and len(engine._PREPARED) == 1


# --- GPUs --------------------------------------------------------------------------------------------
def test_the_default_concurrency_is_one_job_per_gpu(monkeypatch):
    """One job per GPU on a GPU machine (each needs the GPU's memory; on the CPU one per core), and
    with several GPUs each job starts on the one running the fewest."""
    import torch

    from painterly.web import settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert settings.default_concurrency("auto") == settings.cpu_count()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert settings.default_concurrency("auto") == 1 and settings.job_devices("cuda") == ["cuda"]
    assert settings.default_concurrency("cpu") == settings.cpu_count()
    monkeypatch.setattr(settings, "_indexed", lambda: True)  # --device takes cuda:N
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert settings.default_concurrency("auto") == 2 and settings.default_concurrency("cuda:1") == 1
    q = jobs.JobQueue(concurrency=3, queue_size=0, devices=settings.job_devices("auto"))
    held = [HeldJob() for _ in range(3)]
    assert [q.submit(j) for j in held] == [None, None, None]
    assert [j.options.device for j in held] == ["cuda:0", "cuda:1", "cuda:0"]
    q.cancel_all()
    for j in held:
        j.release.set()
    one = jobs.JobQueue(concurrency=1, queue_size=0, devices=["cuda"])  # one GPU: the options as given
    job = HeldJob()
    assert one.submit(job) is None and job.options.device == DEFAULTS.device
    job.release.set()
