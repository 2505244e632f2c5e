"""Video: flicker and style of `painterly video --per-frame` against the default (Ruder,
Dosovitskiy & Brox 2016), on clips whose motion is known exactly.

Two clips are generated here and encoded as mp4 (PyAV), then stylised through the whole
pipeline (decode, flow, stylise, encode) by painterly.stylize_video, both modes side by side in
one run with one prepared Stylizer on the original VGG-19:

  pan-zoom   a photograph (tubingen.jpg) seen through a camera that pans and zooms in: frame t
             shows the photo through a known affine map (48 frames, 256x192 px, 24 fps)
  occlusion  a "real-looking" shot: a background photograph (golden_gate.jpg) panning, an
             elliptical cut-out of another photograph (hoovertowernight.jpg) moving across it the
             other way, hiding and revealing the background; camera noise, h264 (24 frames)

Measured per clip and mode (each a mean over the frames):
  warp error  mean squared difference between stylised frame t and stylised frame t-1 carried
              to frame t by the KNOWN motion, over the pixels visible in both frames (values in
              [0, 1], x 1e3); the same on the input frames is the floor the motion allows
  style       painterly.scores style score S of each stylised frame against its input frame
              (lower is better), and the content score K
  s/frame     stylisation seconds per frame (all frames of the clip, the first one included)
Targets (issue 12): default warp error <= 1/3 of --per-frame's, style score at most 10% worse.

    flock /tmp/painterly-cpu.lock .venv/bin/python benchmarks/bench_video.py
    .venv/bin/python benchmarks/bench_video.py --iterations 30,20 --frame-iterations 20  # shorter

Prints a markdown table; writes benchmarks/results/video.json and a few frames to
benchmarks/results/video/ (pairs of consecutive frames of each mode, for looking at).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from common import machine  # noqa: E402
from painterly import imaging as images
from painterly import options, scores
from painterly.engine import Stylizer  # noqa: E402
from painterly.video import stylize as video  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
RESULTS = HERE / "results"
W, H, FPS = 256, 192, 24


# --- clips with known motion ---------------------------------------------------------------------
def _grid():
    return np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))


def pan_zoom_clip(n: int):
    """Frames and, for t >= 1, the known map (qx, qy) from frame t's pixels to frame t-1's and
    the mask of pixels visible in both. Frame t shows photo point c_t + s_t (p - centre)."""
    photo = np.asarray(Image.open(IMAGES / "tubingen.jpg").convert("RGB"))
    half = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ctr = np.array([(W - 1) / 2, (H - 1) / 2])

    def cam(t):  # in full-photo pixels: centre and photo pixels per frame pixel
        return np.array([400.0 + 4.0 * t, 384.0 + 1.5 * t]), 3.0 * 0.99**t

    frames, motion = [], []
    gx, gy = _grid()
    for t in range(n):
        c, s = cam(t)
        # frame (x, y) -> half-photo coordinates; warpAffine wants the inverse map with WARP_INVERSE_MAP
        A = np.array([[s / 2, 0, (c[0] - s * ctr[0]) / 2], [0, s / 2, (c[1] - s * ctr[1]) / 2]])
        frames.append(
            cv2.warpAffine(
                half, A, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
            )
        )
        if t:
            c0, s0 = cam(t - 1)
            px, py = c[0] + s * (gx - ctr[0]), c[1] + s * (gy - ctr[1])
            qx, qy = ctr[0] + (px - c0[0]) / s0, ctr[1] + (py - c0[1]) / s0
            visible = (qx >= 0) & (qx <= W - 1) & (qy >= 0) & (qy <= H - 1)
            motion.append((qx.astype(np.float32), qy.astype(np.float32), visible))
    return frames, motion


def occlusion_clip(n: int, seed: int = 0):
    """Background panning right-to-left, an elliptical foreground moving left-to-right."""
    bg = np.asarray(Image.open(IMAGES / "golden_gate.jpg").convert("RGB"))
    bg = cv2.resize(bg, (int(bg.shape[1] * 300 / bg.shape[0]), 300), interpolation=cv2.INTER_AREA)  # 400x300
    fg_src = np.asarray(Image.open(IMAGES / "hoovertowernight.jpg").convert("RGB"))
    fw, fh = 96, 72
    fg = cv2.resize(fg_src[60:340, 200:573], (fw, fh), interpolation=cv2.INTER_AREA)
    fy, fx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    ell = (((fx - (fw - 1) / 2) / (fw / 2)) ** 2 + ((fy - (fh - 1) / 2) / (fh / 2)) ** 2) <= 1.0
    rng = np.random.default_rng(seed)
    gx, gy = _grid()

    def bg_x0(t):  # background crop origin (pans 2.5 px/frame)
        return 20.0 + 2.5 * t

    def fg_pos(t):  # foreground top-left in frame pixels (moves +4, -0.75 px/frame)
        return np.array([10.0 + 4.0 * t, 90.0 - 0.75 * t])

    def fg_mask(t, x, y):
        o = fg_pos(t)
        u, v = x - o[0], y - o[1]
        return (((u - (fw - 1) / 2) / (fw / 2)) ** 2 + ((v - (fh - 1) / 2) / (fh / 2)) ** 2) <= 1.0

    frames, motion = [], []
    for t in range(n):
        M = np.float32([[1, 0, bg_x0(t)], [0, 1, 40.0]])
        frame = cv2.warpAffine(bg, M, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP).astype(np.float32)
        o = fg_pos(t)
        Mf = np.float32([[1, 0, -o[0]], [0, 1, -o[1]]])
        layer = cv2.warpAffine(fg, Mf, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP).astype(
            np.float32
        )
        alpha = cv2.warpAffine(
            ell.astype(np.float32), Mf, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        )
        frame = frame * (1 - alpha[..., None]) + layer * alpha[..., None]
        frame += rng.normal(0, 2.0, frame.shape)  # sensor noise (8-bit levels)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        if t:
            on_fg = fg_mask(t, gx, gy)
            d = fg_pos(t) - fg_pos(t - 1)
            qx = np.where(on_fg, gx - d[0], gx + (bg_x0(t) - bg_x0(t - 1)))
            qy = np.where(on_fg, gy - d[1], gy)
            # visible in both: same layer at t-1, away from the (anti-aliased) outline by 2 px
            edge_t = cv2.dilate((np.abs(alpha - 0.5) < 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            was_fg = fg_mask(t - 1, qx, qy)
            inside = (qx >= 0) & (qx <= W - 1) & (qy >= 0) & (qy <= H - 1)
            near_prev_edge = np.abs(
                fg_mask(t - 1, qx + 2, qy).astype(int) - fg_mask(t - 1, qx - 2, qy)
            ) + np.abs(fg_mask(t - 1, qx, qy + 2).astype(int) - fg_mask(t - 1, qx, qy - 2))
            visible = inside & (on_fg == was_fg) & ~edge_t & (near_prev_edge == 0)
            motion.append((qx.astype(np.float32), qy.astype(np.float32), visible))
    return frames, motion


def warp_error(frames, motion) -> float:
    """Mean over t of the mean squared difference (values in [0, 1]) between frame t and frame
    t-1 carried along the known motion, over the pixels visible in both."""
    errs = []
    for t in range(1, len(frames)):
        qx, qy, visible = motion[t - 1]
        prev = np.asarray(frames[t - 1], dtype=np.float32) / 255.0
        cur = np.asarray(frames[t], dtype=np.float32) / 255.0
        carried = cv2.remap(prev, qx, qy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errs.append(float(((cur - carried) ** 2).mean(-1)[visible].mean()))
    return float(np.mean(errs))


# --- one mode on one clip -------------------------------------------------------------------------
def run_mode(st, clip_path, style, out_dir, o, per_frame, args):
    frames, seconds = [], []

    def collect(fr):
        frames.append(fr.image.copy())
        seconds.append(fr.seconds)

    out = out_dir / ("per_frame.mp4" if per_frame else "default.mp4")
    t0 = time.perf_counter()
    res = video.stylize_video(
        clip_path,
        style,
        out,
        o,
        per_frame=per_frame,
        temporal_weight=args.temporal_weight,
        frame_iterations=args.frame_iterations,
        callback=collect,
        stylizer=st,
    )
    wall = time.perf_counter() - t0
    return frames, seconds, wall, res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default="pan-zoom,occlusion")
    p.add_argument("--frames", type=int, default=48, help="frames of the pan-zoom clip")
    p.add_argument("--occlusion-frames", type=int, default=24)
    p.add_argument(
        "--iterations", default=None, help="--iterations for both modes (default: the tool's 60,40)"
    )
    p.add_argument(
        "--frame-iterations",
        type=int,
        default=None,
        help="steps for each later frame in the default mode (default: the tool's, the last --iterations count)",
    )
    p.add_argument("--temporal-weight", type=float, default=video.DEFAULT_TEMPORAL_WEIGHT)
    p.add_argument("--weights", default="original")
    p.add_argument("--modes", default="per-frame,default")
    p.add_argument("--json", default=str(RESULTS / "video.json"))
    p.add_argument(
        "--keep-frames", default=str(RESULTS / "video"), help="folder for a few frames ('' for none)"
    )
    args = p.parse_args(argv)

    o = options.DEFAULTS.replace(size=W, weights=args.weights)
    if args.iterations:
        o = o.replace(iterations=tuple(int(v) for v in args.iterations.split(",")))
    st = Stylizer(o)
    scorer_net = None
    styles = {"pan-zoom": IMAGES / "starry_night.jpg", "occlusion": IMAGES / "the_scream.jpg"}
    makers = {
        "pan-zoom": lambda: pan_zoom_clip(args.frames),
        "occlusion": lambda: occlusion_clip(args.occlusion_frames),
    }
    modes = [m for m in args.modes.split(",") if m]
    report = {
        "machine": machine(),
        "command": " ".join(["benchmarks/bench_video.py"] + (argv or sys.argv[1:])),
        "settings": {
            "size": [W, H],
            "fps": FPS,
            "weights": args.weights,
            "iterations": list(o.iterations),
            "frame_iterations": args.frame_iterations or o.iterations[-1],
            "temporal_weight": args.temporal_weight,
            "note": (
                "fewer iterations than the tool's defaults (60,40; later frames 40), for time"
                if args.iterations or args.frame_iterations
                else "the tool's defaults"
            ),
        },
        "clips": {},
    }
    keep = Path(args.keep_frames) if args.keep_frames else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for clip in [c for c in args.clips.split(",") if c]:
            frames, motion = makers[clip]()
            path = tmp / f"{clip}.mp4"
            video.write_video(path, [Image.fromarray(f) for f in frames], FPS)
            decoded = [img for _, img in video.read_frames(path)]
            entry = {
                "frames": len(frames),
                "style": styles[clip].name,
                "input_warp_error_x1e3": round(1e3 * warp_error(decoded, motion), 4),
                "modes": {},
            }
            report["clips"][clip] = entry
            for mode in modes:
                out_dir = tmp / f"{clip}-{mode}"
                out_dir.mkdir()
                stylised, secs, wall, res = run_mode(
                    st, path, styles[clip], out_dir, o, mode == "per-frame", args
                )
                if scorer_net is None:
                    from painterly.net.load import get_vgg

                    scorer_net, _, _ = get_vgg(None, last="relu5_1", pooling="max")
                sc = [
                    scores.Scorer(decoded[i], Image.open(styles[clip]).convert("RGB"), net=scorer_net)(
                        stylised[i]
                    )
                    for i in range(len(stylised))
                ]
                m = {
                    "warp_error_x1e3": round(1e3 * warp_error(stylised, motion), 4),
                    "style": round(float(np.mean([s["style"] for s in sc])), 4),
                    "content": round(float(np.mean([s["content"] for s in sc])), 4),
                    "seconds_per_frame": round(sum(secs) / len(secs), 2),
                    "first_frame_seconds": round(secs[0], 2),
                    "later_frame_seconds": round(float(np.mean(secs[1:])), 2) if len(secs) > 1 else None,
                    "wall_seconds": round(wall, 1),
                    "cuts": res.cuts,
                    "reliable_mean": (
                        round(
                            float(np.mean([r["reliable"] for r in res.info if r["reliable"] is not None])), 3
                        )
                        if any(r["reliable"] is not None for r in res.info)
                        else None
                    ),
                }
                entry["modes"][mode] = m
                if keep:  # input frame k+1, painted frames k and k+1: early in the clip and at its end
                    keep.mkdir(parents=True, exist_ok=True)
                    for name, k in (("", min(10, len(stylised) - 2)), ("-end", len(stylised) - 2)):
                        strip = Image.new("RGB", (W * 3, H))
                        for j, img in enumerate([decoded[k + 1], stylised[k], stylised[k + 1]]):
                            strip.paste(img, (W * j, 0))
                        strip.save(keep / f"{clip}-{mode}{name}.png")
                rows.append((clip, mode, m))
                print(f"{clip} {mode}: {json.dumps(m)}", file=sys.stderr, flush=True)
            if "per-frame" in entry["modes"] and "default" in entry["modes"]:
                a, b = entry["modes"]["per-frame"], entry["modes"]["default"]
                entry["warp_error_ratio"] = round(b["warp_error_x1e3"] / a["warp_error_x1e3"], 4)
                entry["style_ratio"] = round(b["style"] / a["style"], 4)
                entry["targets_met"] = entry["warp_error_ratio"] <= 1 / 3 and entry["style_ratio"] <= 1.10
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            images.write_json(args.json, report)

    print(
        f"\nsize {W}x{H}, {report['settings']['weights']} weights, iterations {report['settings']['iterations']}, "
        f"later frames {report['settings']['frame_iterations']}, temporal weight {args.temporal_weight:g}\n"
    )
    print("| clip | mode | warp error x1e3 | style S | content K | s/frame | cuts |")
    print("|---|---|---|---|---|---|---|")
    for clip, mode, m in rows:
        print(
            f"| {clip} | {mode} | {m['warp_error_x1e3']:.3f} | {m['style']:.3f} | {m['content']:.3f} | "
            f"{m['seconds_per_frame']:.1f} | {len(m['cuts'])} |"
        )
    for clip, e in report["clips"].items():
        print(
            f"\n{clip}: input warp error x1e3 {e['input_warp_error_x1e3']:.3f}"
            + (
                f"; default/per-frame warp error {e['warp_error_ratio']:.3f} (target <= 0.333), "
                f"style {e['style_ratio']:.3f} (target <= 1.10): {'met' if e['targets_met'] else 'NOT met'}"
                if "warp_error_ratio" in e
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
