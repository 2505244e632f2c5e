"""Reading and writing clips with PyAV (its wheels bundle FFmpeg): frames, rates, audio.

Part of video mode (video/stylize.py); imported on first use, like its packages.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple, Union

from painterly.errors import ImageError, OutputError, shown_path


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
images = _Lazy("painterly.imaging")
imaging_load = _Lazy("painterly.imaging.load")
imaging_save = _Lazy("painterly.imaging.save")


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
# so the default was measured here (benchmarks/bench_video.py): 1e5 on 2026-12-01; with the
# defaults of 2026-12-07 1e5 held later frames so close to the warp of the last that the style
# faded (pan-zoom S 0.50 against 0.066 painted frame by frame), and 1e3 gave both less flicker and
# the style (pan-zoom warp error 0.81 against 1.48 x1e-3, S 0.078; occlusion 0.30 against 0.37,
# S 0.056 against 0.119; 1e4 on occlusion 0.48, S 0.077). docs/guides/video.md.
DEFAULT_TEMPORAL_WEIGHT = 1e3
# Shot cuts (not in the paper, which assumes one shot): frame t starts afresh when the flow is
# reliable on less than this share of its pixels, or when the content frame t-1, warped to t
# along the flow, still differs from frame t by more than MAX_FLOW_ERROR on average over the
# reliable pixels (grey levels in [0, 1]).
MIN_RELIABLE = 0.5
MAX_FLOW_ERROR = 0.08
# OpenCV DIS preset (OpenCV offers ultrafast, fast, medium; the paper: DeepFlow / EpicFlow)
DIS_PRESET = "medium"


class VideoError(ImageError):
    """An input clip that is missing, empty, not a video, or cannot be decoded."""


def require() -> None:
    """Fail in one line when the [video] extra (PyAV, OpenCV) is not installed."""
    from painterly.errors import PainterlyError

    for module, package in (("av", "av"), ("cv2", "opencv-python-headless")):
        try:
            __import__(module)
        except ImportError:
            raise PainterlyError(
                f"video needs the '{package}' package: pip install 'painterly[video]'"
            ) from None


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
    name = shown_path(p)
    imaging_load.check_readable(p, name, "read video", "a video", VideoError)
    try:
        container = av.open(str(p), "r")
    except av.FFmpegError as e:
        raise VideoError(
            f"cannot read video '{name}': not a video file or an unsupported format ({_ffmpeg_reason(e)})"
        ) from None
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
        return Clip(
            Path(path), n, fps, size, n / float(fps), bool(container.streams.audio), vs.codec_context.name
        )
    finally:
        container.close()


def _rate(vs, container, n: int) -> Fraction:
    for rate in (vs.average_rate, vs.guessed_rate, vs.base_rate):
        if rate:
            return Fraction(rate)
    if container.duration:  # microseconds
        return Fraction(n * 1_000_000, int(container.duration)).limit_denominator(1001)
    return Fraction(25)


def read_frames(
    path: PathLike, start: int = 0, count: Optional[int] = None
) -> Iterator[Tuple[float, Image.Image]]:
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


# --- writing ------------------------------------------------------------------------------------
def write_video(
    path: PathLike,
    frames: Sequence,
    fps: Fraction,
    audio_from: Optional[PathLike] = None,
    audio_span: Tuple[float, Optional[float]] = (0.0, None),
) -> bool:
    """Encode `frames` (PIL images or image paths, all one size with even sides) at `fps` to
    `path` (format by extension, see CONTAINERS), atomically: `path` is the old file or the
    complete new one. With `audio_from`, its first audio stream is copied over `audio_span`
    (seconds of the source, end None = to the end), shifted to start with the video; it is
    re-encoded only when the container cannot hold its codec. Returns whether audio was written.
    """
    out = Path(path)
    name = shown_path(out)
    if out.suffix.lower() not in CONTAINERS:
        raise OutputError(f"cannot write '{name}': not a video format (use {', '.join(CONTAINERS)})")
    wrote_audio = [False]
    imaging_save.atomic_write(
        out,
        name,
        lambda f: wrote_audio.__setitem__(
            0, _encode(f, out.suffix.lower(), frames, fps, audio_from, audio_span)
        ),
        overwrite=True,
    )
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
        audio = (
            _AudioCopy(audio_from, container, audio_span)
            if audio_from is not None and kind != ".gif"
            else None
        )
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
