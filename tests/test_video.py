"""Video (Ruder, Dosovitskiy & Brox 2016): decoding and encoding, flow and the consistency mask,
the temporal loss, resuming, shot cuts and the command line. Clips are generated here with PyAV;
stylisation runs on the seeded random VGG-19 at 32-48 px."""

from __future__ import annotations

import json
from fractions import Fraction

import av  # the video extra, part of the test extra
import numpy as np
import pytest
import torch
from PIL import Image

import painterly
from painterly import engine, options
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.errors import Stop
from painterly.video import cache as video_cache
from painterly.video import flow
from painterly.video import io as video_io
from painterly.video import stylize as video

FAST = dict(weights="random", size=48, iterations=(3,), device="cpu", precision="fp32")


def texture(w: int, h: int, seed: int) -> np.ndarray:
    """A smooth random colour texture (H, W, 3) uint8: blurred noise, structure at every scale."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for sigma, amp in ((1.0, 0.3), (3.0, 0.5), (8.0, 0.8)):
        n = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), sigma)
        out += amp * (n - n.mean()) / (n.std() + 1e-6)
    return np.clip(128 + 40 * out, 0, 255).astype(np.uint8)


def pan(n: int, w: int = 64, h: int = 48, seed: int = 0, dx: int = 2, dy: int = 1) -> list:
    """n frames of a camera panning over a texture by (dx, dy) px per frame."""
    big = texture(w + n * dx + 8, h + n * dy + 8, seed)
    return [
        np.ascontiguousarray(big[4 + t * dy : 4 + t * dy + h, 4 + t * dx : 4 + t * dx + w]) for t in range(n)
    ]


def make_clip(path, frames, fps=12, audio=False, codec=None):
    """Encode frames (uint8 arrays) with PyAV; audio: a 440 Hz AAC tone as long as the video."""
    path = str(path)
    c = av.open(path, "w")
    codec = codec or ("gif" if path.endswith(".gif") else "libx264")
    vs = c.add_stream(codec, rate=Fraction(fps))
    vs.height, vs.width = frames[0].shape[:2]
    vs.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
    a = None
    if audio:
        a = c.add_stream("aac", rate=22050)
        a.layout = "mono"
    for i, arr in enumerate(frames):
        f = av.VideoFrame.from_ndarray(arr, format="rgb24")
        f.pts = i
        for p in vs.encode(f):
            c.mux(p)
    for p in vs.encode():
        c.mux(p)
    if a is not None:
        total, t = int(22050 * len(frames) / fps), 0
        while t < total:
            s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(t, t + 1024) / 22050)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(s, format="fltp", layout="mono")
            af.sample_rate, af.pts = 22050, t
            for p in a.encode(af):
                c.mux(p)
            t += 1024
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def streams(path):
    """{'video': (frames, fps, seconds), 'audio': (codec, seconds) or None} of a clip, decoded."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        info = {
            "video": (n, Fraction(v.average_rate), n / float(v.average_rate)),
            "size": (v.width, v.height),
        }
    with av.open(str(path)) as c:
        if not c.streams.audio:
            info["audio"] = None
        else:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(a))
            info["audio"] = (a.codec_context.name, samples / a.rate)
    return info


@pytest.fixture
def style(tmp_path):
    p = tmp_path / "style.png"
    Image.fromarray(texture(40, 40, 99)).save(p)
    return p


# --- flow, warp, mask, loss ------------------------------------------------------------------------
def test_mask_marks_the_disoccluded_border_and_warp_error_is_small_elsewhere():
    big = texture(140, 100, 3).astype(np.float32)
    prev = big[10:74, 10:106]  # 96 x 64
    cur = big[8:72, 7:103]  # cur(x, y) = prev(x - 3, y - 2): the picture moves right 3, down 2
    m = flow.motion(prev.astype(np.uint8), cur.astype(np.uint8))
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(m.back[inner][..., 0]) == pytest.approx(-3, abs=0.2)
    assert np.median(m.back[inner][..., 1]) == pytest.approx(-2, abs=0.2)
    # the columns / rows that came into view have no source in the previous frame
    assert m.mask[:, :3].mean() < 0.1 and m.mask[:2, :].mean() < 0.1
    assert m.mask[inner].mean() > 0.95 and m.reliable > 0.85 and not m.cut
    carried = flow.warp(prev, m.back)
    err = np.abs(carried - cur).mean(-1)
    assert err[m.mask > 0].mean() < 2.0  # grey levels (0..255): near zero where reliable
    assert err[:, :3].mean() > 4 * err[m.mask > 0].mean()  # the disoccluded border is not


def test_consistency_rule_flags_inconsistent_flow_and_motion_boundaries():
    h, w = 40, 60
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -2.0
    fwd = -back.copy()
    assert flow.consistency(back, fwd)[:, 3:].min() == 1.0  # consistent: reliable (but x < 2 leaves)
    assert flow.consistency(back, fwd)[:, :2].max() == 0.0  # sources outside the frame
    bad = fwd.copy()
    bad[10:20, 20:30, 0] = 5.0  # forward flow that does not undo the backward one
    c = flow.consistency(back, bad)
    # w~(p) = fwd(p + back(p)): pixels whose source lies in the bad block, i.e. x in 22..31
    assert c[12:18, 23:31].max() == 0.0 and c[30:, 40:].min() == 1.0
    step = back.copy()
    step[:, 30:, 0] = -6.0  # a motion boundary at x = 30 (the flow jumps by 4 px)
    fwd2 = np.zeros_like(step)
    fwd2[..., 0] = np.where(np.arange(w) >= 24, 6.0, 2.0)  # consistent with `step` away from the edge
    c = flow.consistency(step, fwd2)
    assert c[:, 29:31].max() == 0.0 and c[:, 40:50].min() == 1.0


def test_temporal_loss_is_the_papers_formula():
    g = torch.Generator().manual_seed(0)
    warped, x = torch.rand(1, 3, 6, 8, generator=g), torch.rand(1, 3, 6, 8, generator=g)
    c = (torch.rand(1, 1, 6, 8, generator=g) > 0.3).float()
    loss = flow.TemporalLoss(warped, c)
    expect = float((c * (x - warped) ** 2).sum()) / (3 * 6 * 8)
    assert float(loss(x)) == pytest.approx(expect, rel=1e-6)
    assert float(loss(warped)) == 0.0
    y = torch.rand(1, 1, 6, 8, generator=g)  # --preserve-color luminance: x is Y alone
    from painterly.imaging import color

    wy = color.luminance_only(warped)[:, :1]
    assert float(loss(y)) == pytest.approx(float((c * (y - wy) ** 2).sum()) / (6 * 8), rel=1e-5)


# --- whole clips --------------------------------------------------------------------------------------
def test_frame_count_fps_and_duration_kept(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", pan(10), fps=15)
    out = tmp_path / "out.mp4"
    seen = []
    res = painterly.stylize_video(
        clip, style, out, callback=lambda f: seen.append((f.index, f.total, f.fresh)), **FAST
    )
    assert (res.frames, res.fps, res.computed, res.cached, res.stopped) == (10, Fraction(15), 10, 0, False)
    got = streams(out)
    assert got["video"] == (10, Fraction(15), pytest.approx(10 / 15))
    assert got["size"] == (48, 36) == res.size and got["audio"] is None
    assert [s[0] for s in seen] == list(range(10)) and {s[1] for s in seen} == {10}
    assert [s[2] for s in seen] == [True] + [False] * 9  # later frames start from the warp
    assert not video_cache.frame_cache(out).exists()  # the cache is removed once OUT is written


@pytest.mark.parametrize("src,dst", [(".gif", ".webm"), (".mp4", ".gif"), (".mov", ".mkv")])
def test_other_containers(tmp_path, style, src, dst):
    clip = make_clip(tmp_path / f"in{src}", pan(6, 40, 30), fps=10)
    out = tmp_path / f"out{dst}"
    res = painterly.stylize_video(clip, style, out, per_frame=True, **dict(FAST, size=32))
    got = streams(out)
    assert got["video"][0] == 6 == res.frames
    assert got["video"][1] == Fraction(10) and got["size"] == res.size == (32, 24)


def test_audio_is_copied_and_trimmed_with_the_frames(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", pan(12), fps=12, audio=True)
    src = streams(clip)
    assert src["audio"][0] == "aac" and src["audio"][1] == pytest.approx(1.0, abs=0.1)
    out = tmp_path / "out.mp4"
    res = painterly.stylize_video(clip, style, out, per_frame=True, **FAST)
    got = streams(out)
    assert res.audio and got["audio"][0] == "aac"  # copied (mp4 holds AAC)
    assert got["audio"][1] == pytest.approx(src["audio"][1], abs=0.05)
    # --start 3 --frames 6: half a second of video, and of audio; webm cannot hold AAC: re-encoded
    out = tmp_path / "part.webm"
    res = painterly.stylize_video(clip, style, out, per_frame=True, start=3, frames=6, **FAST)
    got = streams(out)
    assert got["video"][0] == 6 and res.audio and got["audio"][0] == "opus"
    assert got["audio"][1] == pytest.approx(0.5, abs=0.1)


def test_resume_after_interruption_recomputes_nothing_cached(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", pan(7), fps=12)
    out = tmp_path / "out.mp4"

    def stop_after_three(f):
        if f.index == 2:
            raise Stop

    res = painterly.stylize_video(clip, style, out, callback=stop_after_three, **FAST)
    assert res.stopped and res.computed == 3 and not out.exists()
    cache = video_cache.frame_cache(out)
    assert sorted(p.name for p in cache.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(3)]
    state = json.loads((cache / video_cache.STATE).read_text())
    assert len(state["frames"]) == 3
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("frame_*.png")}

    seen, steps = [], []
    res = painterly.stylize_video(
        clip,
        style,
        out,
        keep_frames=True,
        callback=lambda f: seen.append((f.index, f.cached)),
        step_callback=lambda it: steps.append(it.step),
        **FAST,
    )
    assert not res.stopped and (res.cached, res.computed) == (3, 4)
    assert seen == [(i, i < 3) for i in range(7)]
    assert {p: cache.joinpath(p).stat().st_mtime_ns for p in stamps} == stamps  # not rewritten
    assert streams(out)["video"][0] == 7
    resumed = [np.asarray(Image.open(cache / f"frame_{i:06d}.png")) for i in range(7)]

    # the same frames as a run that was never interrupted
    whole = tmp_path / "whole.mp4"
    painterly.stylize_video(clip, style, whole, keep_frames=True, **FAST)
    fresh = [np.asarray(Image.open(video_cache.frame_cache(whole) / f"frame_{i:06d}.png")) for i in range(7)]
    assert all(np.array_equal(a, b) for a, b in zip(resumed, fresh))

    # other options: the cache does not match and every frame is stylised again
    res = painterly.stylize_video(clip, style, out, **dict(FAST, iterations=(2,)))
    assert (res.cached, res.computed) == (0, 7) and not cache.exists()


def test_a_shot_cut_restarts_from_the_normal_initialisation(tmp_path, style):
    frames = pan(5, seed=1) + pan(5, seed=2)  # a different picture from frame 5 on
    clip = make_clip(tmp_path / "in.mp4", frames, fps=12)
    out = tmp_path / "out.mp4"
    seen, temporal = [], {}
    current = [0]

    def on_frame(f):
        seen.append(f)
        current[0] = f.index + 1

    res = painterly.stylize_video(
        clip,
        style,
        out,
        keep_frames=True,
        callback=on_frame,
        step_callback=lambda it: temporal.setdefault(current[0], "temporal" in it.losses),
        **FAST,
    )
    assert res.cuts == [5]
    assert [f.fresh for f in seen] == [True, False, False, False, False, True, False, False, False, False]
    # the cut is the flow's own verdict: frame 5's flow is unreliable, every other warped frame's is not
    assert seen[5].cut and seen[5].reliable < video_io.MIN_RELIABLE
    assert all(seen[i].reliable >= video_io.MIN_RELIABLE for i in range(1, 10) if i != 5)
    assert temporal == {i: not seen[i].fresh for i in range(10)}  # the temporal term only on warped frames
    # the frame after the cut is exactly a fresh stylisation of that frame on its own (a clip's
    # frames run without --content-ceiling: video.py)
    _, content = list(video_io.read_frames(clip, 5, 1))[0]
    one = options.options_from(None, {**FAST, "content_ceiling": 0.0})
    alone = engine.Stylizer(one).run(images.fit_to(content, res.size), [style], options=one)
    cached = np.asarray(Image.open(video_cache.frame_cache(out) / "frame_000005.png"))
    assert np.array_equal(cached, np.asarray(alone.image))
    # frame 6 is not (it starts from frame 5's result, warped)
    _, content6 = list(video_io.read_frames(clip, 6, 1))[0]
    alone6 = engine.Stylizer(one).run(images.fit_to(content6, res.size), [style], options=one)
    assert not np.array_equal(
        np.asarray(Image.open(video_cache.frame_cache(out) / "frame_000006.png")), np.asarray(alone6.image)
    )


def test_per_frame_mode_computes_no_flow(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", pan(4), fps=12)
    seen = []
    res = painterly.stylize_video(
        clip, style, tmp_path / "out.mp4", per_frame=True, callback=seen.append, **FAST
    )
    assert [f.fresh for f in seen] == [True] * 4 and all(f.reliable is None for f in seen) and res.cuts == []


# --- the command line --------------------------------------------------------------------------------
def _cli(args, capsys):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("make", ["text", "missing", "empty"])
def test_bad_input_is_one_line(tmp_path, style, capsys, make):
    bad = tmp_path / "clip.mp4"
    if make == "text":
        bad.write_text("this is not a video\n")
    elif make == "empty":
        bad.write_bytes(b"")
    code, err = _cli(["video", bad, style, "-o", tmp_path / "out.mp4", "--weights", "random"], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"painterly: error: cannot read video '{bad}'")
    assert not (tmp_path / "out.mp4").exists()


def test_bad_output_and_options_are_one_line(tmp_path, style, capsys):
    clip = make_clip(tmp_path / "in.mp4", pan(3), fps=12)
    for extra, needle in (
        (["-o", tmp_path / "out.png"], "not a video format"),
        (["-o", tmp_path / "o.mp4", "--start", "9"], "past the end"),
        (["-o", tmp_path / "o.mp4", "--temporal-weight", "-1"], "--temporal-weight"),
        (["-o", tmp_path / "nodir" / "o.mp4"], "does not exist"),
    ):
        code, err = _cli(["video", clip, style, "--weights", "random", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_cli_video_runs_a_part_of_a_clip(tmp_path, style, capsys):
    clip = make_clip(tmp_path / "in.mp4", pan(8), fps=12)
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    code, err = _cli(
        [
            "video",
            clip,
            style,
            "-o",
            out,
            "--weights",
            "random",
            "--size",
            "32",
            "--iterations",
            "2",
            "--frame-iterations",
            "1",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--start",
            "2",
            "--frames",
            "4",
            "--report",
            report,
            "--keep-frames",
            "--temporal-weight",
            "500",
        ],
        capsys,
    )
    assert code == 0, err
    assert (
        streams(out)["video"][0] == 4 and "wrote" in err and "] 4/4 32x24 " in err
    )  # the progress bar over frames
    data = json.loads(report.read_text())
    assert data["frames"] == 4 and len(data["per_frame"]) == 4 and data["per_frame"][1]["fresh"] is False
    assert len(list(video_cache.frame_cache(out).glob("frame_*.png"))) == 4  # --keep-frames


def test_ctrl_c_keeps_the_finished_frames_and_a_rerun_continues(tmp_path, style):
    """The run holds as it reports frame 3 (index 2) done; Ctrl-C arrives then, on any machine."""
    import os
    import signal
    import subprocess
    import sys

    from holds import hold_env, release, wait_held

    clip = make_clip(tmp_path / "in.mp4", pan(12), fps=12)
    out = tmp_path / "out.mp4"
    cmd = [
        sys.executable,
        "-m",
        "painterly.cli",
        "video",
        str(clip),
        str(style),
        "-o",
        str(out),
        "--weights",
        "random",
        "--size",
        "48",
        "--iterations",
        "3",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--quiet",
    ]
    marker = tmp_path / "held"
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **hold_env("video frame 2", marker)}
    )
    try:
        wait_held(marker, proc)
        proc.send_signal(signal.SIGINT)
        release(marker)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "run the same command again to continue" in err
    assert not out.exists()
    kept = len(list(video_cache.frame_cache(out).glob("frame_*.png")))
    assert kept == 3 and "after frame 3/12" in err
    report = tmp_path / "r.json"
    code = cli.main(cmd[3:] + ["--report", str(report)])
    data = json.loads(report.read_text())
    assert code == 0 and data["cached"] == kept and data["computed"] == 12 - kept
    assert streams(out)["video"][0] == 12


def test_without_the_video_extra_one_line_says_what_to_install(monkeypatch, tmp_path, style, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    code, err = _cli(["video", tmp_path / "in.mp4", style, "-o", tmp_path / "out.mp4"], capsys)
    assert (
        code == 2
        and err.strip() == "painterly: error: video needs the 'av' package: pip install 'painterly[video]'"
    )


def _pan_warp_error(frames, dx=2, dy=1) -> float:
    """The video benchmark's warp error on a pan of known motion: frame t at (x, y) shows what
    frame t-1 showed at (x + dx, y + dy); mean squared difference (values in [0, 1]) over the
    pixels both frames show, averaged over t."""
    errs = []
    for prev, cur in zip(frames, frames[1:]):
        p, c = (np.asarray(f, dtype=np.float32) / 255.0 for f in (prev, cur))
        errs.append(float(((c[:-dy, :-dx] - p[dy:, dx:]) ** 2).mean()))
    return float(np.mean(errs))


def test_the_temporal_term_reduces_flicker_against_per_frame(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", pan(6), fps=12)
    decoded = [img for _, img in video_io.read_frames(clip)]
    assert _pan_warp_error(decoded) < 2e-3  # the clip itself follows the known motion
    errors = {}
    for per_frame in (True, False):
        frames = []
        painterly.stylize_video(
            clip,
            style,
            tmp_path / f"out-{per_frame}.mp4",
            per_frame=per_frame,
            callback=lambda f: frames.append(f.image.copy()),
            **{**FAST, "size": 64},
        )
        assert len(frames) == 6 and frames[0].size == (64, 48)
        errors["per-frame" if per_frame else "temporal"] = _pan_warp_error(frames)
    # Measured: per-frame 8.0e-4, temporal 3.2e-6; the warped start alone (--temporal-weight 0)
    # gives 3.4e-4, so this bound fails unless the temporal term itself does its work.
    assert errors["temporal"] < 0.1 * errors["per-frame"], errors


def test_a_clip_keeps_its_own_size_and_small_inputs_are_noted(tmp_path, capsys):
    """Without --size a 64x48 clip is painted at 64x48 (never enlarged unless asked); a 20 px
    style image is enlarged, which one line on stderr (and the report) says."""
    clip = make_clip(tmp_path / "in.mp4", pan(3), fps=12)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(texture(20, 20, 5)).save(tiny)
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    code, err = _cli(
        [
            "video",
            clip,
            tiny,
            "-o",
            out,
            "--weights",
            "random",
            "--iterations",
            "1",
            "--frame-iterations",
            "1",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--report",
            report,
        ],
        capsys,
    )
    assert code == 0, err
    assert streams(out)["size"] == (64, 48)
    note = "style image 'tiny.png' is 20x20 px and is enlarged 3x to 64 px"
    assert f"painterly: note: {note}" in err and err.count(note) == 1
    assert any(n.startswith(note) for n in json.loads(report.read_text())["notes"])
    big = make_clip(tmp_path / "big.mp4", pan(2, w=600, h=400), fps=12)  # larger than the default: 512 px
    o = video.own_size(options.DEFAULTS, video_io.probe(big).size)
    assert o.size == 512 and video.own_size(options.DEFAULTS.replace(size=96), (64, 48)).size == 64
