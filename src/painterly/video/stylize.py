"""Video: style a clip without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for
videos", GCPR 2016), on one prepared engine.Stylizer for the whole clip.

    painterly video clip.mp4 starry_night.jpg -o painted.mp4
    painterly.stylize_video("clip.mp4", "starry_night.jpg", "painted.mp4", size=256)

Per frame t (after the first):
  1. optical flow between the content frames t-1 and t in both directions (OpenCV's DIS);
  2. c, the reliable pixels of frame t: not disoccluded and not on a motion boundary by the
     paper's forward-backward consistency rule (`consistency`);
  3. the previous stylised frame warped to frame t along the backward flow (`warp`) is the
     starting image, and the temporal loss (1/D) sum_k c_k (x_k - warped_k)^2 (the paper's
     short-term L_temporal) is added to the Gatys objective with weight --temporal-weight.
A frame whose flow is unreliable on most of the picture (a shot cut) starts afresh, like the
first frame: the normal schedule from the normal --init, without the temporal term.
--per-frame stylises every frame on its own (the baseline that flickers).

Frames are decoded and encoded with PyAV (its wheels bundle FFmpeg). Stylised frames are kept
as PNGs in a cache folder next to the output (OUT.frames/) with a small state file, so an
interrupted run continues where it stopped; the output is written atomically at the end and
the cache removed. The library never prints: progress goes to the `callback`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from PIL import Image

from painterly import __version__, methods
from painterly.errors import InvalidOption, OutputError, Stop, shown_path
from painterly.imaging import check_output, fit_to, load_image, save_image, to_tensor, write_json
from painterly.options import Options, options_from, scale_sides
from painterly.video.cache import (
    STATE,
    STATE_KIND,
    _clear_cache,
    _file_sha256,
    _frame_path,
    _open_cache,
    _style_key,
    frame_cache,
)
from painterly.video.flow import TemporalLoss, motion, warp
from painterly.video.io import (
    CONTAINERS,
    DEFAULT_TEMPORAL_WEIGHT,
    DIS_PRESET,
    MAX_FLOW_ERROR,
    MIN_RELIABLE,
    PathLike,
    VideoError,
    probe,
    read_frames,
    require,
    working_size,
    write_video,
)


# --- stylising a clip --------------------------------------------------------------------------------
@dataclass
class Frame:
    """One output frame, as passed to stylize_video's `callback` (in order, cached ones too)."""

    index: int  # 0-based, within the output clip
    total: int  # frames in the output clip
    image: Image.Image  # the stylised frame
    fresh: bool  # started afresh (first frame, a shot cut, --per-frame), not from the warp
    cut: bool  # a shot cut was detected before this frame
    reliable: Optional[float]  # share of pixels with reliable flow (None: not computed)
    cached: bool  # read from the frame cache of an earlier, interrupted run
    seconds: float  # stylisation time of this frame (0 when cached)
    losses: Dict[str, float] = field(default_factory=dict)  # the last step's weighted losses
    elapsed: float = 0.0  # seconds since stylize_video started
    eta: float = 0.0  # seconds left, from the frames stylised so far

    @property
    def step(self) -> int:  # terminal.Progress reads step/total/size/losses/elapsed/eta
        return self.index + 1

    @property
    def size(self) -> Tuple[int, int]:
        return self.image.size


@dataclass
class VideoResult:
    output: Path
    frames: int
    fps: Fraction
    size: Tuple[int, int]
    audio: bool  # the output has an audio track
    computed: int  # frames stylised by this call
    cached: int  # frames taken from the cache of an interrupted run
    cuts: List[int]  # indices of frames where a shot cut restarted the stylisation
    seconds: float
    stopped: bool = False  # interrupted (callback raised Stop): no output written, cache kept
    info: List[dict] = field(default_factory=list)  # per frame: fresh, cut, reliable, error, seconds

    def report(self) -> dict:
        return {
            "version": __version__,
            "output": str(self.output),
            "frames": self.frames,
            "fps": str(self.fps),
            "size": list(self.size),
            "audio": self.audio,
            "computed": self.computed,
            "cached": self.cached,
            "cuts": self.cuts,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "per_frame": self.info,
        }


def own_size(o: Options, clip_size) -> Options:
    """`o` with the clip's own long side, at most o.size: a video keeps its size unless asked."""
    return o.replace(size=max(16, min(max(clip_size), o.size)))


def stylize_video(
    input: PathLike,
    style,
    output: PathLike,
    options: Optional[Options] = None,
    *,
    per_frame: bool = False,
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT,
    frame_iterations: Optional[int] = None,
    start: int = 0,
    frames: Optional[int] = None,
    keep_frames: bool = False,
    callback: Optional[Callable[[Frame], None]] = None,
    step_callback=None,
    stylizer=None,
    **overrides,
) -> VideoResult:
    """Stylise the clip `input` in the manner of `style` (one image or several, blended) and
    write `output` (.mp4, .mov, .mkv, .webm or .gif) with the same frame rate and frame count,
    the audio copied (re-encoded only when the output container cannot hold its codec).

    Keyword arguments are Options fields (size=256, iterations=(60, 40), preset="quality", ...).
    Without size= (or scales=) a clip keeps its own size, up to the options' size (512 by
    default): a small clip is never enlarged unless asked (own_size);
    the first frame and every frame after a shot cut run the normal schedule from the normal
    --init. per_frame: every frame so (the independent baseline). Otherwise later frames start
    from the previous result warped by the optical flow, with the temporal loss at weight
    `temporal_weight`, for `frame_iterations` L-BFGS steps at full size (default: the last
    --iterations count). start, frames: the 0-based first frame and how many (default: to the
    end). keep_frames: keep the OUT.frames cache folder after writing the output.

    callback(Frame) follows every frame (cached ones too); step_callback(engine.Iterate) every
    optimisation step. Raising painterly.Stop in either ends the run: the frames finished so far
    stay in the cache (a later call with the same arguments continues), nothing is written to
    `output`, and the result has stopped=True.
    """
    from painterly import engine
    from painterly.objective import PixelTerm

    require()
    began = time.perf_counter()
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    o = options_from(options, overrides)
    out = Path(output)
    kind = out.suffix.lower()
    if kind not in CONTAINERS:
        ext = f"extension '{out.suffix}'" if out.suffix else "no extension"
        raise OutputError(
            f"cannot write '{shown_path(out)}': {ext} is not a video format (use {', '.join(CONTAINERS)})"
        )
    check_output(out, kinds=None)
    for name, value, low in (
        ("--start", start, 0),
        ("--frames", frames, 1),
        ("--frame-iterations", frame_iterations, 1),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InvalidOption(f"{name} must be a whole number >= {low}, got {value}")
    if not (
        isinstance(temporal_weight, (int, float)) and math.isfinite(temporal_weight) and temporal_weight >= 0
    ):
        raise InvalidOption(f"--temporal-weight must be a number >= 0, got {temporal_weight}")
    methods.validate(o, "transfer", len(styles))
    clip = probe(input)
    if "size" not in overrides and not o.scales:
        o = own_size(o, clip.size)
    if out.exists() and out.resolve() == clip.path.resolve():
        raise OutputError(f"cannot write '{shown_path(out)}': it is the input clip")
    if start >= clip.frames:
        raise InvalidOption(
            f"--start {start} is past the end of '{shown_path(clip.path)}' ({clip.frames} frames)"
        )
    n = min(frames if frames is not None else clip.frames, clip.frames - start)
    for s in styles:
        load_image(s)

    # The size rule of images, on the first frame's size (a clip's frames share it).
    final_side = scale_sides(o)[-1]
    W, H = working_size(clip.size, final_side)
    L = max(W, H)
    # --content-ceiling is off for a clip: a polish on some frames and not others would flicker.
    o_first = o.replace(size=L, scales=(tuple(o.scales[:-1]) + (L,)) if o.scales else (), content_ceiling=0.0)
    n_next = frame_iterations if frame_iterations is not None else o.iterations[-1]
    # Ruder et al. run every frame at one scale; later frames here: one scale at full size from
    # the warp (the first frame keeps the normal coarse-to-fine schedule).
    o_next = o_first.replace(iterations=(n_next,), scales=(L,) if o.scales else ())

    key_data = {
        "version": __version__,
        "input": _file_sha256(clip.path),
        "styles": [_style_key(s) for s in styles],
        "options": o_first.to_dict(),
        "per_frame": per_frame,
        "temporal_weight": temporal_weight,
        "frame_iterations": n_next,
        "start": start,
        "frames": n,
        "size": [W, H],
        "cuts": [MIN_RELIABLE, MAX_FLOW_ERROR, DIS_PRESET],
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()
    cache = frame_cache(out)
    records = _open_cache(cache, key)
    n_cached = min(len(records), n)
    records = records[:n_cached]

    def save_state():
        write_json(cache / STATE, {"kind": STATE_KIND, "key": key, "inputs": key_data, "frames": records})

    save_state()
    st = stylizer if stylizer is not None else engine.Stylizer(o)
    prev_content: Optional[Image.Image] = None
    prev_styled: Optional[torch.Tensor] = None
    t_first, computed, compute_seconds, stopped = None, 0, 0.0, False
    last_losses: Dict[str, float] = {}

    def on_step(it):
        last_losses.clear()
        last_losses.update(it.losses)
        if step_callback is not None:
            step_callback(it)

    def report(i, img, rec, cached):
        if callback is None:
            return
        done_here = max(computed, 1)
        eta = compute_seconds / done_here * (n - i - 1) if computed else 0.0
        callback(
            Frame(
                i,
                n,
                img,
                rec["fresh"],
                rec["cut"],
                rec.get("reliable"),
                cached,
                rec.get("seconds", 0.0),
                dict(last_losses) if not cached else {},
                time.perf_counter() - began,
                eta,
            )
        )

    try:
        for i, (t, frame) in enumerate(read_frames(clip.path, start, n)):
            t_first = t if t_first is None else t_first
            content = fit_to(frame, (W, H))
            if i < n_cached:
                img = load_image(_frame_path(cache, i))
                if i == n_cached - 1:
                    prev_styled = to_tensor(img)
                prev_content = content
                report(i, img, records[i], cached=True)
                continue
            t0 = time.perf_counter()
            rec = {"index": i, "fresh": True, "cut": False, "reliable": None, "error": None}
            m = None
            if not per_frame and prev_styled is not None:
                m = motion(prev_content, content)
                rec.update(reliable=round(m.reliable, 4), error=round(m.error, 4), cut=m.cut, fresh=m.cut)
            last_losses.clear()
            if rec["fresh"]:
                res = st.run(content, styles, options=o_first, callback=on_step)
            else:
                warped = (
                    torch.from_numpy(warp(prev_styled[0].permute(1, 2, 0).numpy(), m.back))
                    .permute(2, 0, 1)[None]
                    .contiguous()
                )
                mask = torch.from_numpy(m.mask)[None, None]
                term = PixelTerm("temporal", float(temporal_weight), TemporalLoss(warped, mask))
                res = st.run(
                    content,
                    styles,
                    options=o_next,
                    init=warped.clamp(0, 1),
                    extra_terms=[term],
                    callback=on_step,
                )
            if res.stopped:
                stopped = True
                break
            save_image(res.image, _frame_path(cache, i))
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            records.append(rec)
            save_state()
            computed += 1
            compute_seconds += rec["seconds"]
            # The previous result as saved (8-bit): a resumed run continues from the same pixels.
            prev_styled = to_tensor(res.image)
            prev_content = content
            report(i, res.image, rec, cached=False)
    except Stop:
        stopped = True

    cuts = [r["index"] for r in records if r["cut"]]
    result = VideoResult(
        out,
        n,
        clip.fps,
        (W, H),
        False,
        computed,
        n_cached,
        cuts,
        time.perf_counter() - began,
        stopped,
        records,
    )
    if stopped:
        return result
    if len(records) != n:  # the clip decoded to fewer frames than probe counted (cannot happen twice)
        raise VideoError(f"cannot read video '{shown_path(clip.path)}': frames changed while reading")
    # the audio under the frames written: from the first frame's time when the clip starts later
    # than frame 0 (else from the start), to the end of the last frame when --frames cuts it
    end = None if frames is None else (t_first or 0.0) + n / float(clip.fps)
    result.audio = write_video(
        out,
        [_frame_path(cache, i) for i in range(n)],
        clip.fps,
        audio_from=clip.path if clip.audio else None,
        audio_span=((t_first or 0.0) if start else 0.0, end),
    )
    if not keep_frames:
        _clear_cache(cache, remove_folder=True)
    result.seconds = time.perf_counter() - began
    return result


# --- the command line -------------------------------------------------------------------------------
