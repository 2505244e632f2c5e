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
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import __version__, config
from .config import Options
from .errors import ImageError, InvalidOption, OutputError, Stop



class _Lazy:
    """A module imported on first use: building the command line (cli.build_parser registers
    this verb) must not import torch, numpy, OpenCV or PyAV."""

    def __init__(self, name: str):
        self._lazy_target = name

    def __getattr__(self, attr):
        import importlib

        return getattr(importlib.import_module(self._lazy_target), attr)


np = _Lazy("numpy")
torch = _Lazy("torch")
F = _Lazy("torch.nn.functional")
Image = _Lazy("PIL.Image")
images = _Lazy("painterly.images")
color = _Lazy("painterly.color")

PathLike = Union[str, "os.PathLike[str]"]

# Output containers by extension: (FFmpeg muxer, video encoder, encoder options). GIF output has
# no audio (the format cannot hold it) and an adaptive 256-colour palette per frame.
CONTAINERS = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium"}),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "medium"}),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4"}),
    ".gif": ("gif", "gif", {}),
}
INPUTS = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi", ".m4v")  # any FFmpeg reads; these are tested

# --- the method's constants ------------------------------------------------------------------------
# The temporal weight gamma in this project's units: pixels in [0, 1] and L_temporal a mean over
# the D = C*H*W values, against the Gatys terms at alpha = 1, beta = 4e3 (config). Ruder et al.
# use gamma = 1e3 against alpha = 5, beta = 100 on 0..255 pixels; their units do not carry over,
# so the default was measured here (benchmarks/bench_video.py, README "Video").
DEFAULT_TEMPORAL_WEIGHT = 1e5
# Shot cuts (not in the paper, which assumes one shot): frame t starts afresh when the flow is
# reliable on less than this share of its pixels, or when the content frame t-1, warped to t
# along the flow, still differs from frame t by more than MAX_FLOW_ERROR on average over the
# reliable pixels (grey levels in [0, 1]).
MIN_RELIABLE = 0.5
MAX_FLOW_ERROR = 0.08
DIS_PRESET = "medium"  # OpenCV DIS preset (OpenCV offers ultrafast, fast, medium; the paper: DeepFlow / EpicFlow)


class VideoError(ImageError):
    """An input clip that is missing, empty, not a video, or cannot be decoded."""


def require() -> None:
    """Fail in one line when the [video] extra (PyAV, OpenCV) is not installed."""
    from .errors import PainterlyError

    for module, package in (("av", "av"), ("cv2", "opencv-python-headless")):
        try:
            __import__(module)
        except ImportError:
            raise PainterlyError(f"video needs the '{package}' package: pip install 'painterly[video]'") from None


# --- reading ----------------------------------------------------------------------------------------
@dataclass
class Clip:
    """What `probe` finds in a clip."""

    path: Path
    frames: int  # decoded video frames
    fps: Fraction  # frames per second (the stream's average rate)
    size: Tuple[int, int]  # (width, height) as decoded
    duration: float  # frames / fps, seconds
    audio: bool  # has an audio stream
    codec: str  # the video codec's name


def _open(path: PathLike):
    require()
    import av

    p = Path(path)
    name = images._name(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VideoError(f"cannot read video '{name}': no such file") from None
    except OSError as e:
        raise VideoError(f"cannot read video '{name}': {images._reason(e)}") from None
    if p.is_dir():
        raise VideoError(f"cannot read video '{name}': is a directory, not a video file")
    if st.st_size == 0:
        raise VideoError(f"cannot read video '{name}': the file is empty")
    try:
        container = av.open(str(p), "r")
    except av.FFmpegError as e:
        raise VideoError(f"cannot read video '{name}': not a video file or an unsupported format "
                         f"({_ffmpeg_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"cannot read video '{name}': it has no video stream")
    return container, name


def _ffmpeg_reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())[:200]


def probe(path: PathLike) -> Clip:
    """Open `path` and count its frames by decoding them all (a truncated or corrupt clip fails
    here, before any stylisation). Raises VideoError."""
    import av

    container, name = _open(path)
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        n, size = 0, None
        try:
            for frame in container.decode(vs):
                n += 1
                size = size or (frame.width, frame.height)
        except av.FFmpegError as e:
            if n == 0:
                raise VideoError(f"cannot read video '{name}': {_ffmpeg_reason(e)}") from None
            # a damaged tail: the frames before it are kept (FFmpeg's own behaviour)
        if n == 0:
            raise VideoError(f"cannot read video '{name}': it has no frames")
        fps = _rate(vs, container, n)
        return Clip(Path(path), n, fps, size, n / float(fps), bool(container.streams.audio), vs.codec_context.name)
    finally:
        container.close()


def _rate(vs, container, n: int) -> Fraction:
    for rate in (vs.average_rate, vs.guessed_rate, vs.base_rate):
        if rate:
            return Fraction(rate)
    if container.duration:  # microseconds
        return Fraction(n * 1_000_000, int(container.duration)).limit_denominator(1001)
    return Fraction(25)


def read_frames(path: PathLike, start: int = 0, count: Optional[int] = None) -> Iterator[Tuple[float, Image.Image]]:
    """Yield (time in seconds, RGB PIL image) for frames start .. start+count-1 (0-based),
    decoded in order. Raises VideoError."""
    import av

    container, name = _open(path)
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        i = -1
        try:
            for frame in container.decode(vs):
                i += 1
                if i < start:
                    continue
                if count is not None and i >= start + count:
                    break
                t = float(frame.time) if frame.time is not None else 0.0
                yield t, frame.to_image().convert("RGB")
        except av.FFmpegError as e:
            raise VideoError(f"cannot read video '{name}': {_ffmpeg_reason(e)} at frame {i + 1}") from None
    finally:
        container.close()


def working_size(frame_size: Tuple[int, int], long_side: int) -> Tuple[int, int]:
    """The stylised frames' (W, H): the image size rule (long side = --size, aspect ratio kept),
    each side then rounded down to an even number (the yuv420p video encoders need it)."""
    w, h = frame_size
    scale = long_side / max(w, h)
    w, h = max(1, math.floor(w * scale + 0.5)), max(1, math.floor(h * scale + 0.5))
    return max(2, w - w % 2), max(2, h - h % 2)


# --- optical flow, warping and the consistency mask -----------------------------------------------
def _grey(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3:
        import cv2

        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(a)


def flow(a, b, preset: str = DIS_PRESET) -> np.ndarray:
    """Dense optical flow from image a to image b (OpenCV DIS): (H, W, 2) float32 (dx, dy) with
    a(p) ~ b(p + flow(p)). a, b: PIL images or (H, W[, 3]) arrays of the same size.

    Departure: the paper uses DeepFlow or EpicFlow (minutes per frame); DIS runs in milliseconds
    on a CPU with the same forward-backward check on top."""
    import cv2

    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets[preset])
    return dis.calc(_grey(a), _grey(b), None).astype(np.float32)


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(img: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Sample img at p + f(p) (bilinear, edges replicated): with f the backward flow from frame
    t to frame t-1, this carries frame t-1's pixels to where they are in frame t.
    img: (H, W) or (H, W, C) float32; f: (H, W, 2)."""
    import cv2

    h, w = f.shape[:2]
    gx, gy = _grid(h, w)
    return cv2.remap(np.ascontiguousarray(img, dtype=np.float32), gx + f[..., 0], gy + f[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency(back: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """The paper's reliability mask c for frame t: (H, W) float32, 1 where the flow is reliable.

    back: flow from frame t to t-1; fwd: flow from frame t-1 to t. With w~ = fwd warped to
    frame t (w~(p) = fwd(p + back(p))), a pixel is disoccluded when
        |w~ + back|^2 > 0.01 (|w~|^2 + |back|^2) + 0.5
    and on a motion boundary when
        |grad back_u|^2 + |grad back_v|^2 > 0.01 |back|^2 + 0.002;
    both get c = 0 (the paper, eqs. 5-6), and so does a pixel whose backward flow leaves the
    frame (as in the authors' consistencyChecker). Departure: their checker then smooths the
    mask with a Gaussian (sigma 0.8); ours stays binary.
    """
    h, w = back.shape[:2]
    gx, gy = _grid(h, w)
    bx, by = gx + back[..., 0], gy + back[..., 1]
    inside = (bx >= 0) & (bx <= w - 1) & (by >= 0) & (by <= h - 1)
    fw = warp(fwd, back)
    disoccluded = ((fw + back) ** 2).sum(-1) > 0.01 * ((fw ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
    # central differences, as the authors' CDerivative(3)
    du_dy, du_dx = np.gradient(back[..., 0])
    dv_dy, dv_dx = np.gradient(back[..., 1])
    edge = du_dx ** 2 + du_dy ** 2 + dv_dx ** 2 + dv_dy ** 2 > 0.01 * (back ** 2).sum(-1) + 0.002
    return (inside & ~disoccluded & ~edge).astype(np.float32)


@dataclass
class Motion:
    """The motion from content frame t-1 to frame t, and whether it looks like a shot cut."""

    back: np.ndarray  # (H, W, 2) flow from t to t-1
    fwd: np.ndarray  # (H, W, 2) flow from t-1 to t
    mask: np.ndarray  # (H, W) c: 1 where reliable
    reliable: float  # share of pixels with c = 1
    error: float  # mean |frame t - warped frame t-1| over reliable pixels (grey, [0, 1])
    cut: bool


def motion(prev, cur, preset: str = DIS_PRESET, min_reliable: float = MIN_RELIABLE,
           max_error: float = MAX_FLOW_ERROR) -> Motion:
    """Flows both ways, the consistency mask, and the shot-cut test between two content frames."""
    a, b = _grey(prev), _grey(cur)
    back, fwd = flow(b, a, preset), flow(a, b, preset)
    mask = consistency(back, fwd)
    reliable = float(mask.mean())
    residual = np.abs(b.astype(np.float32) - warp(a.astype(np.float32), back)) / 255.0
    error = float((residual * mask).sum() / max(mask.sum(), 1.0)) if reliable > 0 else 1.0
    return Motion(back, fwd, mask, reliable, error, reliable < min_reliable or error > max_error)


class TemporalLoss:
    """The paper's short-term temporal loss: (1/D) sum_k c_k (x_k - w_k)^2, D = C*H*W, with w
    the warped previous stylised frame and c the reliability mask. Called with the iterate x
    (1, C, h, w); a coarser x or a luminance-only x (--preserve-color luminance) gets w and c
    resized / converted to match."""

    def __init__(self, warped: torch.Tensor, mask: torch.Tensor):
        self.warped, self.mask = warped, mask  # (1, 3, H, W), (1, 1, H, W)
        self._at: Dict[tuple, tuple] = {}

    def targets(self, shape, device) -> tuple:
        key = (tuple(shape), str(device))
        if key not in self._at:
            w, c = self.warped, self.mask
            if tuple(w.shape[-2:]) != tuple(shape[-2:]):
                w = F.interpolate(w, size=tuple(shape[-2:]), mode="area")
                c = F.interpolate(c, size=tuple(shape[-2:]), mode="area")
            if shape[1] == 1:
                w = color.luminance_only(w)[:, :1]
            self._at[key] = (w.to(device), c.to(device))
        return self._at[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w, c = self.targets(x.shape, x.device)
        return (c * (x - w) ** 2).sum() / x.numel()


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
        return {"version": __version__, "output": str(self.output), "frames": self.frames,
                "fps": str(self.fps), "size": list(self.size), "audio": self.audio, "computed": self.computed,
                "cached": self.cached, "cuts": self.cuts, "seconds": round(self.seconds, 3),
                "stopped": self.stopped, "per_frame": self.info}


def frame_cache(output: PathLike) -> Path:
    """The folder of stylised frames of a run writing `output`: OUT.frames next to it."""
    out = Path(output)
    return out.with_name(out.name + ".frames")


STATE = "state.json"
STATE_KIND = "painterly-video-frames"


def _frame_path(cache: Path, i: int) -> Path:
    return cache / f"frame_{i:06d}.png"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _style_key(s) -> str:
    img = images.load_image(s)
    return hashlib.sha256(img.tobytes()).hexdigest() + f":{img.size}"


def _open_cache(cache: Path, key: str) -> List[dict]:
    """The per-frame records of a matching earlier run (frames 0..k-1 cached), or [] after
    clearing a cache made with other inputs or options. Only our own files are ever removed."""
    state_path = cache / STATE
    if cache.exists():
        if not cache.is_dir():
            raise OutputError(f"cannot use the frame cache '{images._name(cache)}': it is not a folder")
        state = None
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            pass
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            if any(cache.iterdir()):
                raise OutputError(f"the frame cache folder '{images._name(cache)}' exists and was not made by "
                                  "painterly video; move it away")
            state = None
        if state and state.get("key") == key:
            done = []
            for i, rec in enumerate(state.get("frames", [])):
                if not _frame_path(cache, i).is_file():
                    break
                done.append(rec)
            return done
        _clear_cache(cache)
    else:
        try:
            cache.mkdir()
        except OSError as e:
            raise OutputError(f"cannot create the frame cache '{images._name(cache)}': {images._reason(e)}") from None
    return []


def _clear_cache(cache: Path, remove_folder: bool = False) -> None:
    for p in cache.glob("frame_*.png"):
        p.unlink()
    for p in (cache / STATE,):
        if p.exists():
            p.unlink()
    if remove_folder:
        try:
            cache.rmdir()  # only when empty: a file someone else put there stays
        except OSError:
            pass


def stylize_video(input: PathLike, style, output: PathLike, options: Optional[Options] = None, *,
                  per_frame: bool = False, temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT,
                  frame_iterations: Optional[int] = None, start: int = 0, frames: Optional[int] = None,
                  keep_frames: bool = False, callback: Optional[Callable[[Frame], None]] = None,
                  step_callback=None, stylizer=None, **overrides) -> VideoResult:
    """Stylise the clip `input` in the manner of `style` (one image or several, blended) and
    write `output` (.mp4, .mov, .mkv, .webm or .gif) with the same frame rate and frame count,
    the audio copied (re-encoded only when the output container cannot hold its codec).

    Keyword arguments are Options fields (size=256, iterations=(60, 40), preset="quality", ...);
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
    from . import engine
    from .objective import PixelTerm

    require()
    began = time.perf_counter()
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    o = config.options_from(options, overrides)
    out = Path(output)
    kind = out.suffix.lower()
    if kind not in CONTAINERS:
        ext = f"extension '{out.suffix}'" if out.suffix else "no extension"
        raise OutputError(f"cannot write '{images._name(out)}': {ext} is not a video format "
                          f"(use {', '.join(CONTAINERS)})")
    images.check_output(out, kinds=None)
    for name, value, low in (("--start", start, 0), ("--frames", frames, 1), ("--frame-iterations", frame_iterations, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InvalidOption(f"{name} must be a whole number >= {low}, got {value}")
    if not (isinstance(temporal_weight, (int, float)) and math.isfinite(temporal_weight) and temporal_weight >= 0):
        raise InvalidOption(f"--temporal-weight must be a number >= 0, got {temporal_weight}")
    config.validate(o, "transfer", len(styles))
    clip = probe(input)
    if out.exists() and out.resolve() == clip.path.resolve():
        raise OutputError(f"cannot write '{images._name(out)}': it is the input clip")
    if start >= clip.frames:
        raise InvalidOption(f"--start {start} is past the end of '{images._name(clip.path)}' ({clip.frames} frames)")
    n = min(frames if frames is not None else clip.frames, clip.frames - start)
    for s in styles:
        images.load_image(s)

    # The size rule of images, on the first frame's size (a clip's frames share it).
    final_side = config.scale_sides(o)[-1]
    W, H = working_size(clip.size, final_side)
    L = max(W, H)
    o_first = o.replace(size=L, scales=(tuple(o.scales[:-1]) + (L,)) if o.scales else ())
    n_next = frame_iterations if frame_iterations is not None else o.iterations[-1]
    # Ruder et al. run every frame at one scale; later frames here: one scale at full size from
    # the warp (the first frame keeps the normal coarse-to-fine schedule).
    o_next = o_first.replace(iterations=(n_next,), scales=(L,) if o.scales else ())

    key_data = {"version": __version__, "input": _file_sha256(clip.path), "styles": [_style_key(s) for s in styles],
                "options": o_first.to_dict(), "per_frame": per_frame, "temporal_weight": temporal_weight,
                "frame_iterations": n_next, "start": start, "frames": n, "size": [W, H],
                "cuts": [MIN_RELIABLE, MAX_FLOW_ERROR, DIS_PRESET]}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()
    cache = frame_cache(out)
    records = _open_cache(cache, key)
    n_cached = min(len(records), n)
    records = records[:n_cached]

    def save_state():
        images.write_json(cache / STATE, {"kind": STATE_KIND, "key": key, "inputs": key_data, "frames": records})

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
        callback(Frame(i, n, img, rec["fresh"], rec["cut"], rec.get("reliable"), cached, rec.get("seconds", 0.0),
                       dict(last_losses) if not cached else {}, time.perf_counter() - began, eta))

    try:
        for i, (t, frame) in enumerate(read_frames(clip.path, start, n)):
            t_first = t if t_first is None else t_first
            content = images.fit_to(frame, (W, H))
            if i < n_cached:
                img = images.load_image(_frame_path(cache, i))
                if i == n_cached - 1:
                    prev_styled = images.to_tensor(img)
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
                warped = torch.from_numpy(warp(prev_styled[0].permute(1, 2, 0).numpy(), m.back)).permute(2, 0, 1)[None].contiguous()
                mask = torch.from_numpy(m.mask)[None, None]
                term = PixelTerm("temporal", float(temporal_weight), TemporalLoss(warped, mask))
                res = st.run(content, styles, options=o_next, init=warped.clamp(0, 1), extra_terms=[term],
                             callback=on_step)
            if res.stopped:
                stopped = True
                break
            images.save_image(res.image, _frame_path(cache, i))
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            records.append(rec)
            save_state()
            computed += 1
            compute_seconds += rec["seconds"]
            # The previous result as saved (8-bit): a resumed run continues from the same pixels.
            prev_styled = images.to_tensor(res.image)
            prev_content = content
            report(i, res.image, rec, cached=False)
    except Stop:
        stopped = True

    cuts = [r["index"] for r in records if r["cut"]]
    result = VideoResult(out, n, clip.fps, (W, H), False, computed, n_cached, cuts,
                         time.perf_counter() - began, stopped, records)
    if stopped:
        return result
    if len(records) != n:  # the clip decoded to fewer frames than probe counted (cannot happen twice)
        raise VideoError(f"cannot read video '{images._name(clip.path)}': frames changed while reading")
    # the audio under the frames written: from the first frame's time when the clip starts later
    # than frame 0 (else from the start), to the end of the last frame when --frames cuts it
    end = None if frames is None else (t_first or 0.0) + n / float(clip.fps)
    result.audio = write_video(out, [_frame_path(cache, i) for i in range(n)], clip.fps,
                               audio_from=clip.path if clip.audio else None,
                               audio_span=((t_first or 0.0) if start else 0.0, end))
    if not keep_frames:
        _clear_cache(cache, remove_folder=True)
    result.seconds = time.perf_counter() - began
    return result


# --- writing ------------------------------------------------------------------------------------
def write_video(path: PathLike, frames: Sequence, fps: Fraction, audio_from: Optional[PathLike] = None,
                audio_span: Tuple[float, Optional[float]] = (0.0, None)) -> bool:
    """Encode `frames` (PIL images or image paths, all one size with even sides) at `fps` to
    `path` (format by extension, see CONTAINERS), atomically: `path` is the old file or the
    complete new one. With `audio_from`, its first audio stream is copied over `audio_span`
    (seconds of the source, end None = to the end), shifted to start with the video; it is
    re-encoded only when the container cannot hold its codec. Returns whether audio was written.
    """
    out = Path(path)
    name = images._name(out)
    if out.suffix.lower() not in CONTAINERS:
        raise OutputError(f"cannot write '{name}': not a video format (use {', '.join(CONTAINERS)})")
    wrote_audio = [False]
    images._atomic_write(out, name, lambda f: wrote_audio.__setitem__(0, _encode(f, out.suffix.lower(), frames, fps,
                                                                                  audio_from, audio_span)),
                         overwrite=True)
    return wrote_audio[0]


def _as_array(frame) -> np.ndarray:
    img = frame if isinstance(frame, Image.Image) else images.load_image(frame)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _palette_frame(arr: np.ndarray):
    """An RGB frame as a pal8 VideoFrame with its own adaptive 256-colour palette (GIF)."""
    import av

    q = Image.fromarray(arr).quantize(256)
    pal = np.array(q.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
    pal = np.concatenate([pal, np.zeros((256 - len(pal), 3), np.uint8)])
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), pal], 1)  # PyAV takes the palette as ARGB
    return av.VideoFrame.from_ndarray((np.asarray(q, dtype=np.uint8), argb), format="pal8")


def _encode(f, kind: str, frames: Sequence, fps: Fraction, audio_from, audio_span) -> bool:
    import av

    fmt, codec, opts = CONTAINERS[kind]
    first = _as_array(frames[0])
    h, w = first.shape[:2]
    container = av.open(f, "w", format=fmt)
    try:
        vs = container.add_stream(codec, rate=fps, options=dict(opts))
        vs.width, vs.height = w, h
        vs.pix_fmt = "pal8" if codec == "gif" else "yuv420p"
        audio = _AudioCopy(audio_from, container, audio_span) if audio_from is not None and kind != ".gif" else None
        tb = Fraction(1, 1) / fps
        for i, fr in enumerate(frames):
            arr = first if i == 0 else _as_array(fr)
            vf = _palette_frame(arr) if codec == "gif" else av.VideoFrame.from_ndarray(arr, format="rgb24")
            vf.pts, vf.time_base = i, tb
            if audio is not None:
                audio.mux_until(i * tb)
            for p in vs.encode(vf):
                container.mux(p)
        for p in vs.encode():
            container.mux(p)
        if audio is not None:
            audio.mux_until(None)
        return audio is not None and audio.written
    finally:
        container.close()


class _AudioCopy:
    """The first audio stream of a source, copied packet by packet into `container` (or
    re-encoded to the container's default audio codec when it cannot hold the source's), over
    [t0, t1) seconds of the source, shifted to start at 0."""

    def __init__(self, src: PathLike, container, span):
        import av

        self.src = av.open(str(src), "r")
        self.ins = self.src.streams.audio[0]
        self.t0, self.t1 = span
        codec = self.ins.codec_context.name
        self.copy = codec in container.supported_codecs
        if self.copy:
            self.outs = container.add_stream_from_template(self.ins)
        else:
            import av

            name = container.default_audio_codec
            rates = av.Codec(name, "w").audio_rates  # e.g. Opus: 8000 ... 48000 only
            rate = self.ins.rate or 48000
            if rates and rate not in rates:
                rate = min((r for r in rates if r >= rate), default=max(rates))
            self.outs = container.add_stream(name, rate=rate)
            try:
                self.outs.layout = self.ins.layout.name
            except Exception:
                pass
        self.container, self.written = container, False
        self._items = self._packets() if self.copy else self._frames()
        self._pending = None

    def _packets(self):
        tb = self.ins.time_base
        offset = int(round(self.t0 / tb)) if tb and self.t0 > 0 else 0
        for p in self.src.demux(self.ins):
            if p.pts is None or p.size == 0:
                continue
            t = float(p.pts * tb)
            if not self._inside(t, t + float((p.duration or 0) * tb)):
                continue
            p.pts -= offset
            p.dts = p.pts if p.dts is None else p.dts - offset
            p.stream = self.outs
            yield max(t - self.t0, 0.0), [p]

    def _frames(self):
        import av

        try:
            for fr in self.src.decode(self.ins):
                t = float(fr.time) if fr.time is not None else 0.0
                if not self._inside(t, t + fr.samples / max(fr.sample_rate or 1, 1)):
                    continue
                fr.pts = None
                yield t - self.t0, list(self.outs.encode(fr))
        except av.FFmpegError:
            pass
        yield float("inf"), list(self.outs.encode(None))

    def _inside(self, t: float, ends: float) -> bool:
        """Audio from t to `ends` (seconds of the source) belongs to the span: it does not end
        before the first frame (with t0 = 0 everything from the start is kept, AAC's priming
        packet at a negative time included) and does not start after the last."""
        if self.t0 > 0 and ends <= self.t0 + 1e-6:
            return False
        return self.t1 is None or t < self.t1 - 1e-6

    def mux_until(self, t: Optional[Fraction]) -> None:
        """Mux the audio that starts before video time t (None: all that is left)."""
        while True:
            if self._pending is None:
                self._pending = next(self._items, None)
                if self._pending is None:
                    self.src.close()
                    return
            at, packets = self._pending
            if t is not None and at > float(t):
                return
            for p in packets:
                self.container.mux(p)
                self.written = True
            self._pending = None


# --- the command line -------------------------------------------------------------------------------
def add_parser(sub) -> None:
    """The `painterly video` verb (registered by cli.build_parser)."""
    from . import terminal

    help_ = "paint every frame of a clip in the manner of STYLE, without flicker (Ruder et al. 2016)"
    sp = sub.add_parser("video", help=help_, description=help_)
    sp.add_argument("input", help="input clip (.mp4, .mov, .mkv, .webm, .gif, ...)")
    sp.add_argument("styles", nargs="+", help="style image(s)")
    sp.add_argument("-o", "--output", required=True, help=f"output clip ({', '.join(CONTAINERS)})")
    sp.add_argument("--preset", choices=config.PRESETS, default="fast", help="as for transfer")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--report", metavar="FILE.json", help="write per-frame details and timing as JSON")
    sp.add_argument("--per-frame", action="store_true",
                    help="stylise every frame on its own (no flow, no temporal loss): the flickering baseline")
    sp.add_argument("--temporal-weight", type=float, default=DEFAULT_TEMPORAL_WEIGHT, metavar="W",
                    help=f"weight of the temporal loss (default: {DEFAULT_TEMPORAL_WEIGHT:g})")
    sp.add_argument("--frame-iterations", type=int, default=None, metavar="N",
                    help="L-BFGS steps for each frame after the first, at full size from the warped previous "
                         "result (default: the last --iterations count)")
    sp.add_argument("--start", type=int, default=0, metavar="S", help="first frame to stylise (0-based; default 0)")
    sp.add_argument("--frames", type=int, default=None, metavar="N", help="how many frames (default: to the end)")
    sp.add_argument("--keep-frames", action="store_true", help="keep the OUT.frames folder of stylised frames")
    terminal.add_option_flags(sp, "transfer")


def run(args) -> int:
    """`painterly video`: progress over frames, Ctrl-C keeps the finished frames for a rerun."""
    import sys

    from . import terminal

    o = terminal.options_from_args(args)
    if args.report:
        images.check_output(args.report, kinds=None)
    progress = terminal.Progress(not args.quiet)
    with terminal.Interrupt() as interrupt:
        def on_step(it):
            if interrupt.hit:
                raise Stop

        def on_frame(fr: Frame):
            progress(fr)
            if interrupt.hit:
                raise Stop

        result = stylize_video(args.input, args.styles, args.output, o, per_frame=args.per_frame,
                               temporal_weight=args.temporal_weight, frame_iterations=args.frame_iterations,
                               start=args.start, frames=args.frames, keep_frames=args.keep_frames,
                               callback=on_frame, step_callback=on_step)
    progress.close()
    if args.report:
        images.write_json(args.report, result.report())
    done = result.computed + result.cached
    if result.stopped:
        print(f"painterly: interrupted after frame {done}/{result.frames}; the finished frames are kept in "
              f"{frame_cache(args.output)} (run the same command again to continue)", file=sys.stderr)
        return 130
    if not args.quiet:
        extra = f", {result.cached} from the cache" if result.cached else ""
        cuts = f", {len(result.cuts)} shot cut(s)" if result.cuts else ""
        print(f"wrote {result.output} ({result.frames} frames at {float(result.fps):.3g} fps, "
              f"{result.size[0]}x{result.size[1]}{extra}{cuts}, {result.seconds:.1f} s)", file=sys.stderr)
    return 0
