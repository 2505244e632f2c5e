"""Batch mode: job lists (cross product, folders, globs, manifests), the log, resumability after
a SIGKILL, --force, a failing image among good ones, a dead worker's job retried, and the Ray
executor (slow). Random weights and tiny sizes throughout."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ci import require
from holds import hold_env, wait_gone, wait_held
from painterly import imaging as images
from painterly import options
from painterly.batch import executors, workers
from painterly.batch import jobs as batch_jobs
from painterly.cli import main as cli
from painterly.errors import InvalidOption, PainterlyError

FAST = ["--weights", "random", "--size", "32", "--iterations", "3", "--device", "cpu"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _img(path: Path, seed: int, size=(40, 32)) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    base = np.stack([x / size[0], y / size[1], 0.5 + 0.5 * np.sin(x / (3 + seed))], -1)
    rgb = (base * 200 + rng.integers(0, 55, base.shape)).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    """Three photos in a folder and two paintings."""
    photos = [_img(tmp_path / "photos" / f"p{i}.png", i) for i in range(3)]
    paintings = [
        _img(tmp_path / "art" / name, 10 + i, (36, 36)) for i, name in enumerate(["ink.png", "oil.jpg"])
    ]
    return {"photos": photos, "paintings": paintings, "dir": tmp_path, "out": tmp_path / "out"}


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_log(out: Path) -> list:
    return [json.loads(line) for line in (out / batch_jobs.LOG_NAME).read_text().splitlines()]


def test_cross_product_names_log_and_summary(inputs, capsys, monkeypatch):
    from multiprocessing import resource_tracker

    registered = []  # named semaphores (multiprocessing queues and locks) the batch made here
    monkeypatch.setattr(resource_tracker, "register", lambda name, rtype: registered.append(rtype))
    out = inputs["out"]
    code, stdout, err = run_cli(
        [
            "batch",
            inputs["dir"] / "photos",
            "--style",
            inputs["paintings"][0],
            "--style",
            inputs["dir"] / "art" / "*.jpg",
            "--out-dir",
            out,
            "--workers",
            "1",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    # None: a Ctrl-C'd batch once left the resource tracker one to warn about after the summary.
    assert registered == []
    assert stdout == ""
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(f"p{i}--{s}.png" for i in range(3) for s in ("ink", "oil"))
    lines = read_log(out)
    assert len(lines) == 6 and {l["status"] for l in lines} == {"ok"}
    for l in lines:
        assert Path(l["output"]).name == f"{Path(l['content']).stem}--{Path(l['style']).stem}.png"
        assert l["seconds"] > 0 and l["iterations"] == 3 and l["attempts"] == 1 and l["peak_rss_mb"] > 0
        recipe = images.read_recipe(l["output"])  # each output carries its own recipe
        assert recipe["content"]["path"] in (l["content"], Path(l["content"]).name)  # full path or name
        assert recipe["styles"][0]["path"] in (l["style"], Path(l["style"]).name)
        assert recipe["options"]["size"] == 32 and recipe["options"]["iterations"] == [3]
    # Grouped by style: the one worker ran all of one style's jobs before the other's.
    styles = [l["style"] for l in lines]
    assert styles == sorted(styles, key=styles.index) and len(set(styles[:3])) == 1
    summary = err.strip().splitlines()[-1]
    assert (
        summary.startswith("painterly batch: 6 done, 0 skipped, 0 failed of 6 jobs")
        and "images/min" in summary
    )


def test_expand_inputs_folders_globs_and_bad_names(inputs):
    photos = inputs["dir"] / "photos"
    (photos / "notes.txt").write_text("not an image")
    found = batch_jobs.expand_inputs([photos, str(photos / "p1.png"), str(inputs["dir"] / "art" / "*.png")])
    assert [p.name for p in found] == ["p0.png", "p1.png", "p2.png", "ink.png"]  # sorted, no repeats
    with pytest.raises(InvalidOption, match="does not exist"):
        batch_jobs.expand_inputs([inputs["dir"] / "nope.png"])
    with pytest.raises(InvalidOption, match="matches no image"):
        batch_jobs.expand_inputs([str(inputs["dir"] / "*.gif")])
    # The output folder's images are never taken for inputs (a rerun with DIR among them).
    _img(photos / "out" / "p0--ink.png", 3)
    assert [
        p.name for p in batch_jobs.expand_inputs([str(photos / "**" / "*.png")], exclude=photos / "out")
    ] == [
        "p0.png",
        "p1.png",
        "p2.png",
    ]  # ** is recursive
    with pytest.raises(InvalidOption, match="matches no image"):
        batch_jobs.expand_inputs([str(photos / "out" / "*.png")], exclude=photos / "out")
    assert batch_jobs.expand_inputs([str(photos / "*" / "*.png")], exclude=None)[0].name == "p0--ink.png"


def test_two_jobs_writing_one_output_is_one_line(inputs, capsys):
    twin = _img(inputs["dir"] / "other" / "p0.png", 7)
    code, _, err = run_cli(
        [
            "batch",
            inputs["photos"][0],
            twin,
            "--style",
            inputs["paintings"][0],
            "--out-dir",
            inputs["out"],
            *FAST,
        ],
        capsys,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "two jobs would write" in err and "p0--ink.png" in err
    assert not (inputs["out"] / batch_jobs.LOG_NAME).exists()


def test_manifest_csv_with_outputs_and_per_job_options(inputs, capsys):
    m = inputs["dir"] / "jobs.csv"
    with open(m, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["content", "style", "output", "style_weight", "--iterations"])
        w.writerow(["photos/p0.png", "art/ink.png", "sub/first.png", "100", "2"])
        w.writerow(["photos/p1.png", "art/oil.jpg", "", "", ""])
    code, _, err = run_cli(
        ["batch", "--manifest", m, "--out-dir", inputs["out"], "--workers", "1", *FAST], capsys
    )
    assert code == 0, err
    first = images.read_recipe(inputs["out"] / "sub" / "first.png")
    assert first["options"]["style_weight"] == 100.0 and first["options"]["iterations"] == [2]
    second = images.read_recipe(inputs["out"] / "p1--oil.png")
    assert second["options"]["style_weight"] == options.DEFAULT_STYLE_WEIGHT and second["options"][
        "iterations"
    ] == [3]
    assert second["content"]["path"] in (str(inputs["photos"][1]), "p1.png")
    by_out = {Path(l["output"]).name: l for l in read_log(inputs["out"])}
    assert by_out["first.png"]["iterations"] == 2 and by_out["p1--oil.png"]["iterations"] == 3


def test_manifest_jsonl_options_and_rejections(inputs, capsys):
    m = inputs["dir"] / "jobs.jsonl"
    rows = [
        {"content": str(inputs["photos"][2]), "style": "art/ink.png", "options": {"tv_weight": 0.5}},
        {"content": "photos/p0.png", "style": "art/oil.jpg", "output": "b.jpg", "seed": 3},
    ]
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    code, _, err = run_cli(
        ["batch", "--manifest", m, "--out-dir", inputs["out"], "--workers", "1", *FAST], capsys
    )
    assert code == 0, err
    assert images.read_recipe(inputs["out"] / "p2--ink.png")["options"]["tv_weight"] == 0.5
    assert images.read_recipe(inputs["out"] / "b.jpg")["seed"] == 3
    # A network option cannot vary per job: one clear line, nothing run.
    bad = inputs["dir"] / "bad.jsonl"
    bad.write_text(
        json.dumps({"content": "photos/p0.png", "style": "art/ink.png", "options": {"pooling": "max"}})
    )
    code, _, err = run_cli(["batch", "--manifest", bad, "--out-dir", inputs["dir"] / "o2", *FAST], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "bad.jsonl line 1: option 'pooling' fixes the network" in err and "--pooling" in err
    bad = inputs["dir"] / "bad.csv"
    bad.write_text("content,style,weights\nphotos/p0.png,art/ink.png,random\n")
    code, _, err = run_cli(["batch", "--manifest", bad, "--out-dir", inputs["dir"] / "o2", *FAST], capsys)
    assert code == 2 and "bad.csv line 2: option 'weights' fixes the network" in err
    for text, message in [
        ("content,style,stlye_weight\nphotos/p0.png,art/ink.png,3\n", "did you mean 'style_weight'"),
        ("content,style,size\nphotos/p0.png,art/ink.png,8\n", "--size must be within 16..8192, got 8"),
        ("content,style\nphotos/p0.png,art/missing.png\n", "missing.png' does not exist"),
        ("photo,painting\na.png,b.png\n", "with content and style among them"),
    ]:
        bad.write_text(text)
        code, _, err = run_cli(["batch", "--manifest", bad, "--out-dir", inputs["dir"] / "o2", *FAST], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_failing_image_fails_only_its_jobs(inputs, capsys):
    broken = inputs["dir"] / "photos" / "p1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, _, err = run_cli(
        [
            "batch",
            inputs["dir"] / "photos",
            "--style",
            inputs["paintings"][0],
            "--style",
            inputs["paintings"][1],
            "--out-dir",
            inputs["out"],
            "--workers",
            "1",
            *FAST,
        ],
        capsys,
    )
    assert code == 1
    lines = read_log(inputs["out"])
    failed = [l for l in lines if l["status"] == "failed"]
    assert len(lines) == 6 and len(failed) == 2
    assert {Path(l["content"]).name for l in failed} == {"p1.png"}
    assert all("p1.png" in l["error"] and "\n" not in l["error"] for l in failed)
    assert sorted(p.name for p in inputs["out"].glob("*.png")) == sorted(
        f"p{i}--{s}.png" for i in (0, 2) for s in ("ink", "oil")
    )
    assert "4 done, 0 skipped, 2 failed of 6 jobs" in err.strip().splitlines()[-1]


def _mtimes(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_resume_after_a_kill_redoes_nothing(inputs, capsys, sig):
    """A batch killed with SIGKILL (or stopped by Ctrl-C) mid-way: the rerun finishes the rest
    and redoes nothing. The one worker holds as it starts the 7th job (the first with oil.jpg;
    a worker keeps to one style while it has jobs), and the signal lands then: on any machine
    exactly the six ink jobs are done."""
    out = inputs["out"]
    for i in range(3, 6):
        _img(inputs["dir"] / "photos" / f"p{i}.png", i)
    argv = [
        "batch",
        str(inputs["dir"] / "photos"),
        "--style",
        str(inputs["paintings"][0]),
        "--style",
        str(inputs["paintings"][1]),
        "--out-dir",
        str(out),
        "--workers",
        "1",
        "--weights",
        "random",
        "--size",
        "32",
        "--iterations",
        "3",
        "--device",
        "cpu",
        "--quiet",
    ]
    marker = inputs["dir"] / "held"
    env = {**os.environ, "PYTHONPATH": SRC, **hold_env("batch job p0--oil.png", marker)}
    proc = subprocess.Popen([sys.executable, "-m", "painterly.cli", *argv], stderr=subprocess.PIPE, env=env)
    try:
        worker = wait_held(marker, proc)
        assert worker != proc.pid  # the hold is in the worker process
        os.kill(proc.pid, sig)
        proc.wait(60)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.stderr.close()
    if sig == signal.SIGINT:  # Ctrl-C: the workers are stopped, the summary says so
        assert proc.returncode == 130 and "interrupted" in err.splitlines()[-1] and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    wait_gone(worker)  # it dies with its parent (PR_SET_PDEATHSIG) or is stopped by it (Ctrl-C)
    assert marker.exists()  # never released: the worker did not go on with its job
    first = read_log(out)
    ink = {f"p{i}--ink.png" for i in range(6)}
    assert [l["status"] for l in first] == ["ok"] * 6 and {Path(l["output"]).name for l in first} == ink
    before = _mtimes(out)
    assert set(before) == ink  # only complete outputs, all of them logged
    assert all(images.read_recipe(out / n)["options"]["iterations"] == [3] for n in before)
    time.sleep(0.05)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    lines = read_log(out)
    rerun = lines[len(first) :]
    assert len(rerun) == 12
    assert {Path(l["output"]).name for l in rerun if l["status"] == "skipped"} == ink
    oks = [l["output"] for l in lines if l["status"] == "ok"]
    assert len(oks) == len(set(oks)) == 12  # no job done twice
    after = _mtimes(out)
    assert len(after) == 12 and all(after[n] == before[n] for n in before)  # nothing redone
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    assert "6 done, 6 skipped, 0 failed" in err


def test_force_redoes_everything_and_changed_options_redo(inputs, capsys):
    argv = [
        "batch",
        inputs["photos"][0],
        inputs["photos"][1],
        "--style",
        inputs["paintings"][0],
        "--out-dir",
        inputs["out"],
        "--workers",
        "1",
        *FAST,
    ]
    assert run_cli(argv, capsys)[0] == 0
    before = _mtimes(inputs["out"])
    time.sleep(0.05)
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and "0 done, 2 skipped" in err and _mtimes(inputs["out"]) == before
    code, _, err = run_cli(argv + ["--force"], capsys)
    assert code == 0 and "2 done, 0 skipped" in err
    assert all(t > before[n] for n, t in _mtimes(inputs["out"]).items())
    # Another option (or --workers/--threads, which do not change the result) ...
    code, _, err = run_cli(argv + ["--style-weight", "10", "--threads", "1"], capsys)
    assert code == 0 and "2 done, 0 skipped" in err
    code, _, err = run_cli(argv + ["--style-weight", "10", "--threads", "2"], capsys)
    assert code == 0 and "0 done, 2 skipped" in err
    # ... and a changed input pixel is redone.
    _img(inputs["photos"][0], 99)
    code, _, err = run_cli(argv + ["--style-weight", "10"], capsys)
    assert code == 0 and "1 done, 1 skipped" in err
    assert [l["status"] for l in read_log(inputs["out"])][-2:] in (["ok", "skipped"], ["skipped", "ok"])


def test_a_foreign_file_at_an_output_is_never_overwritten(inputs, capsys):
    inputs["out"].mkdir()
    mine = inputs["out"] / "p0--ink.png"
    Image.new("RGB", (8, 8), "red").save(mine)
    data = mine.read_bytes()
    code, _, err = run_cli(
        ["batch", inputs["photos"][0], "--style", inputs["paintings"][0], "--out-dir", inputs["out"], *FAST],
        capsys,
    )
    assert code == 1 and mine.read_bytes() == data
    assert "was not written by painterly" in read_log(inputs["out"])[0]["error"]


def test_stylize_many_yields_outcomes_and_a_dead_workers_job_is_retried(inputs, monkeypatch):
    import painterly

    monkeypatch.setenv(workers.CRASH_HOOK, "p1.png")  # the worker exits hard on p1's first attempt
    pairs = [
        (inputs["photos"][0], inputs["paintings"][0]),
        {
            "content": inputs["photos"][1],
            "style": inputs["paintings"][0],
            "output": "x/p1.png",
            "options": {"content_weight": 2.0},
        },
        (inputs["photos"][2], inputs["paintings"][1], "third.jpg"),
    ]
    got = list(
        painterly.stylize_many(
            pairs, inputs["out"], workers=1, weights="random", size=32, iterations=3, device="cpu"
        )
    )
    assert sorted(o.status for o in got) == ["ok"] * 3
    by_name = {Path(o.output).name: o for o in got}
    assert set(by_name) == {"p0--ink.png", "p1.png", "third.jpg"}
    assert by_name["p1.png"].attempts == 2 and by_name["p0--ink.png"].attempts == 1
    assert images.read_recipe(inputs["out"] / "x" / "p1.png")["options"]["content_weight"] == 2.0
    lines = read_log(inputs["out"])
    assert len(lines) == 3 and sum(Path(l["output"]).name == "p1.png" for l in lines) == 1
    monkeypatch.delenv(workers.CRASH_HOOK)
    again = list(
        painterly.stylize_many(
            pairs, inputs["out"], workers=1, weights="random", size=32, iterations=3, device="cpu"
        )
    )
    assert [o.status for o in again] == ["skipped"] * 3
    with pytest.raises(InvalidOption, match="pair 0: expected"):
        list(painterly.stylize_many(["a.png"], inputs["out"], weights="random"))
    with pytest.raises(InvalidOption, match="fixes the network"):
        list(
            painterly.stylize_many(
                [{"content": "a.png", "style": "b.png", "options": {"device": "cpu"}}],
                inputs["out"],
                weights="random",
            )
        )


def test_usage_errors_are_one_line(inputs, capsys):
    for argv, message in [
        (["batch", inputs["photos"][0], "--out-dir", inputs["out"]], "at least one --style"),
        (
            [
                "batch",
                inputs["photos"][0],
                "--style",
                inputs["paintings"][0],
                "--manifest",
                "m.csv",
                "--out-dir",
                inputs["out"],
            ],
            "either --manifest or INPUT",
        ),
        (
            [
                "batch",
                inputs["photos"][0],
                "--style",
                inputs["paintings"][0],
                "--out-dir",
                inputs["out"],
                "--workers",
                "0",
            ],
            "--workers must be >= 1",
        ),
        (
            [
                "batch",
                inputs["photos"][0],
                "--style",
                inputs["paintings"][0],
                "--out-dir",
                inputs["out"],
                "--ray-address",
                "h:6379",
            ],
            "--ray-address needs --executor ray",
        ),
        (
            [
                "batch",
                inputs["photos"][0],
                "--style",
                inputs["paintings"][0],
                "--out-dir",
                inputs["out"],
                "--size",
                "5",
            ],
            "--size must be",
        ),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_ray_executor_two_workers_retries_a_dead_worker_without_duplicates(inputs, monkeypatch):
    ray = require("ray", "the Ray executor needs the ray extra: pip install 'painterly[ray]'")
    import painterly

    monkeypatch.setenv(workers.CRASH_HOOK, "p0.png")  # set before ray.init: the workers inherit it
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        got = list(
            painterly.stylize_many(
                [(c, s) for c in inputs["photos"] for s in inputs["paintings"]],
                inputs["out"],
                executor="ray",
                workers=2,
                weights="random",
                size=32,
                iterations=3,
                device="cpu",
            )
        )
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
    assert sorted(o.status for o in got) == ["ok"] * 6
    assert {o.worker for o in got} == {0, 1}
    assert sorted(o.attempts for o in got) == [1, 1, 1, 1, 2, 2]  # p0's two jobs: retried once each
    lines = read_log(inputs["out"])
    assert len(lines) == 6 and len({l["output"] for l in lines}) == 6  # one line per job
    assert all(images.read_recipe(l["output"])["options"]["iterations"] == [3] for l in lines)


def test_a_local_pool_of_two_workers_shares_the_jobs(inputs):
    import painterly

    pairs = [(c, s) for c in inputs["photos"][:2] for s in inputs["paintings"]]
    got = list(
        painterly.stylize_many(
            pairs, inputs["out"], workers=2, weights="random", size=32, iterations=2, device="cpu"
        )
    )
    assert sorted(o.status for o in got) == ["ok"] * 4
    assert {o.worker for o in got} == {0, 1}  # both processes took jobs
    lines = read_log(inputs["out"])
    assert len(lines) == 4 and len({l["output"] for l in lines}) == 4


def test_two_batches_on_one_folder_are_refused(inputs, capsys):
    import fcntl

    out = inputs["out"]
    out.mkdir()
    fd = os.open(out / batch_jobs.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another batch running on `out` holds it
    argv = [
        "batch",
        inputs["photos"][0],
        "--style",
        inputs["paintings"][0],
        "--out-dir",
        out,
        "--workers",
        "1",
        *FAST,
    ]
    try:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and "another painterly batch is writing to" in err, err
        assert list(out.glob("*.png")) == []
    finally:
        os.close(fd)
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and "1 done" in err


def test_changed_style_pixels_or_weights_redo_a_job(inputs, capsys):
    from painterly.batch.workers import _Hashes, up_to_date

    argv = [
        "batch",
        inputs["photos"][0],
        "--style",
        inputs["paintings"][0],
        "--out-dir",
        inputs["out"],
        "--workers",
        "1",
        *FAST,
    ]
    assert run_cli(argv, capsys)[0] == 0
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and "0 done, 1 skipped" in err
    _img(inputs["paintings"][0], 77, (36, 36))  # the same file name, other pixels
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and "1 done, 0 skipped" in err
    # the recipe records the weights' SHA-256: another weights file is another job
    out = inputs["out"] / "p0--ink.png"
    recipe = images.read_recipe(out)
    o = options.Options.from_dict(recipe["options"])
    task = {"content": str(inputs["photos"][0]), "style": str(inputs["paintings"][0])}
    assert up_to_date(recipe, task, o, recipe["weights_sha256"], _Hashes())
    assert not up_to_date(recipe, task, o, "0" * 64, _Hashes())


def test_a_script_without_a_main_guard_is_not_rerun_by_its_workers(inputs):
    """stylize_many at a script's top level, as the README shows it: the spawned workers do not
    re-run the script (it prints its line once and paints every pair), and the lock is gone after."""
    script = inputs["dir"] / "paint.py"
    script.write_text(
        "import painterly\n"
        "print('top-level line', flush=True)\n"
        f"pairs = [({str(inputs['photos'][0])!r}, {str(inputs['paintings'][0])!r}),\n"
        f"         ({str(inputs['photos'][1])!r}, {str(inputs['paintings'][0])!r})]\n"
        f"for r in painterly.stylize_many(pairs, {str(inputs['out'])!r}, workers=2, weights='random', size=32,\n"
        "                                 iterations=2, device='cpu'):\n"
        "    print(r.status, r.error)\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(
        [sys.executable, str(script)], cwd=inputs["dir"], env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("top-level line") == 1, p.stdout
    assert p.stdout.splitlines()[1:] == ["ok None", "ok None"], p.stdout
    assert sorted(x.name for x in inputs["out"].glob("*.png")) == ["p0--ink.png", "p1--ink.png"]
    assert not (inputs["out"] / batch_jobs.LOCK_NAME).exists()


# --- GPUs --------------------------------------------------------------------------------------------
@pytest.fixture
def two_gpus(monkeypatch):
    """torch sees two CUDA devices; the parent's CUDA_VISIBLE_DEVICES is 2,3 (a test may unset it)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.delenv(executors.SHARE_ENV, raising=False)


def _spawned(monkeypatch, ex) -> list:
    """(CUDA_VISIBLE_DEVICES, share) each worker of `ex` is started with (no process starts)."""
    seen = []

    class Process:
        def __init__(self, **kw):
            pass

        def start(self):
            seen.append((os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get(executors.SHARE_ENV)))

    monkeypatch.setattr(ex.ctx, "Process", Process)
    ex.start()
    return seen


def test_workers_get_the_parents_visible_gpus_round_robin(two_gpus, monkeypatch):
    """A parent with CUDA_VISIBLE_DEVICES=2,3 sends its workers to GPUs 2 and 3 (not 0 and 1), one
    each by default; a third worker shares GPU 2 with the first, and their memory checks count half
    of it each."""
    o = options.DEFAULTS.replace(weights="random")
    assert executors.default_workers(o) == (2, ["2", "3"])
    assert executors.default_workers(o.replace(device="cpu"))[1] == []
    ex = executors.LocalExecutor(o, 3, False, executors.default_workers(o)[1])
    assert _spawned(monkeypatch, ex) == [("2", "2"), ("3", "1"), ("2", "2")]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3" and executors.SHARE_ENV not in os.environ  # restored
    assert ex.options["device"] == "cuda"  # each sees its one GPU as cuda
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert executors.default_workers(o) == (2, ["0", "1"])
    cpu = executors.LocalExecutor(o.replace(device="cpu"), 2, False, [])
    assert _spawned(monkeypatch, cpu) == [(None, None), (None, None)] and cpu.options["device"] == "cpu"


def test_a_shared_gpu_gives_each_worker_its_share_of_the_memory(monkeypatch):
    import torch

    from painterly.runtime import device_memory

    GiB = 1024**3
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (30 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d=None: 6 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: 4 * GiB)
    cuda = torch.device("cuda")
    monkeypatch.delenv(device_memory.SHARE_ENV, raising=False)
    assert device_memory.free_bytes(cuda) == 32 * GiB  # free + this process's cached blocks
    monkeypatch.setenv(device_memory.SHARE_ENV, "4")
    assert device_memory.free_bytes(cuda) == 16 * GiB  # 80 / 4, less its own 4 allocated
    monkeypatch.setenv(device_memory.SHARE_ENV, "2")
    assert device_memory.free_bytes(cuda) == 32 * GiB  # 40 - 4, but only 32 are free


def test_ray_reserves_a_gpu_per_actor_only_for_a_run_on_cuda():
    o = options.DEFAULTS.replace(weights="random")
    cluster = {"CPU": 8.0, "GPU": 2.0}
    cpu = executors.ray_actor_options(o.replace(device="cpu"), 2, cluster)
    assert cpu["num_gpus"] == 0 and cpu["num_cpus"] == 4
    for device in ("cuda", "auto"):
        assert executors.ray_actor_options(o.replace(device=device), 2, cluster)["num_gpus"] == 1
    assert executors.ray_actor_options(o, 2, {"CPU": 8.0})["num_gpus"] == 0  # auto without GPUs
    with pytest.raises(PainterlyError, match="the Ray cluster has no GPU"):
        executors.ray_actor_options(o.replace(device="cuda"), 2, {"CPU": 8.0})
    shared = executors.ray_actor_options(o.replace(device="cuda"), 4, cluster)  # two actors a GPU
    assert shared["num_gpus"] == 0.5 and shared["runtime_env"] == {"env_vars": {executors.SHARE_ENV: "2"}}
