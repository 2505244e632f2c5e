"""The web page: drop a photograph and one or more paintings, move a slider, watch it form.

`painterly serve [--host 127.0.0.1] [--port 7860]` calls `main`; tests call `build_app`
and `launch`. Needs the optional extra: ``pip install 'painterly[web]'`` (Gradio).

Jobs and the queue
    At most `concurrency` jobs optimise at once (default: one per CPU, each with
    cpus / concurrency torch threads); up to `queue_size` more wait their turn (default 8)
    and see their place in the queue. A job submitted when both are full is refused at once
    with a message starting "The queue is full" -- nothing is accepted that will not run.
    One job per browser session at a time. Cancel sets the job's threading.Event, which the
    library callback checks after every iteration and answers with `painterly.Stop`, so
    a run stops within one iteration and its image so far is still shown and downloadable.

Uploads
    Every upload is checked before it can reach the optimiser: it must be a file Gradio
    stored in this app's temporary directory, at most `max_bytes` long, an image Pillow
    decodes completely, with at most `max_pixels` pixels. Failures are one clear line on
    the page. The optimiser only ever sees the decoded PIL images.

Files and network
    Gradio's upload cache and the results live in one temporary directory (removed at
    exit); Gradio serves nothing else (no `allowed_paths`; the working directory is
    blocked). API calls whose file arguments name a URL are refused with HTTP 400 before
    Gradio could fetch them, and the page has no field that takes a URL. Gradio's
    analytics, share links, SSR, MCP, run history and monitoring are off, the theme uses
    bundled or system fonts, and remote <script>/<link> tags of Gradio's page template are
    dropped, so the browser loads everything from this server and nothing else.

Choices and defaults come from `painterly.config` (and the `options` passed to
`build_app`, `config.DEFAULTS` unless given); nothing here restates them.
"""
# No `from __future__ import annotations`: Gradio finds the `gr.Request` parameter of the
# handlers by evaluating their annotations, and `gr` is imported lazily (a local name).
import asyncio
import atexit
import collections
import inspect
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from PIL import Image

from . import config
from .config import Options
from .errors import ImageError, InvalidOption, PainterlyError, Stop

log = logging.getLogger(__name__)

# --- server limits (not options of a run: how much one web server accepts) ----------------
DEFAULT_QUEUE_SIZE = 8  # jobs that may wait for a free worker, beyond the running ones
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # per uploaded file
MAX_UPLOAD_PIXELS = min(25_000_000, config.MAX_INPUT_PIXELS)  # per uploaded image
MAX_STYLES = 8  # style images per job
MAX_SIZE = 1024  # longest output side the page offers
MAX_ITERATIONS = 2000  # iterations per scale the page offers
PREVIEW_EVERY = 5  # iterations between preview images
POLL_SECONDS = 0.1  # how often a page's stream looks for news from its job

QUEUE_FULL = "The queue is full"  # every refusal starts with this
RATIO_SPAN = 4  # the ratio slider covers the default's power of ten +- this many decades

# The controls of the page, in the order the Start handler (and the API) takes them after
# the content and style files. "ratio" is log10(content_weight / style_weight).
CONTROLS = ("size", "iterations", "ratio", "preserve_color", "style_loss", "optimizer", "init",
            "pooling", "color_match", "precision", "seed", "tv_weight", "style_scale", "learning_rate",
            "style_blend", "scales", "content_layers", "style_layers", "normalize", "lbfgs_line_search")
CHOICES = {"preserve_color": config.PRESERVE_COLOR, "style_loss": config.STYLE_LOSSES,
           "optimizer": config.OPTIMIZERS, "init": config.INITS, "pooling": config.POOLING,
           "color_match": config.COLOR_MATCH, "precision": config.PRECISIONS}


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the page on this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (host or "").strip().strip("[]")
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> Optional[str]:
    """The warning to print when serving on `host` exposes the page to other machines."""
    if is_loopback(host):
        return None
    return (f"serving on {host}: the page is reachable from other machines, with no "
            "authentication; anyone who can reach it can run jobs")


# --- the temporary directory ----------------------------------------------------------------
_ROOT: Optional[Path] = None
_ROOT_LOCK = threading.Lock()


def temp_root() -> Path:
    """The app's one temporary directory: Gradio's upload cache and the results.

    GRADIO_TEMP_DIR when it is set, else a fresh directory removed at exit. It must be
    fixed before Gradio is imported (Gradio reads it at import time).
    """
    global _ROOT
    with _ROOT_LOCK:
        if _ROOT is None:
            given = os.environ.get("GRADIO_TEMP_DIR")
            if given:
                _ROOT = Path(given).resolve()
                _ROOT.mkdir(parents=True, exist_ok=True)
            else:
                _ROOT = Path(tempfile.mkdtemp(prefix="painterly-web-")).resolve()
                os.environ["GRADIO_TEMP_DIR"] = str(_ROOT)
                atexit.register(shutil.rmtree, str(_ROOT), True)
        return _ROOT


def _gradio():
    """Import Gradio with its analytics and telemetry off and its cache in `temp_root()`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")
    temp_root()
    try:
        import gradio as gr
    except ImportError as e:
        raise PainterlyError(f"the web page needs the web extra: pip install 'painterly[web]' ({e})") from None
    return gr


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


# --- uploads -----------------------------------------------------------------------------------
def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_upload(path, role: str = "image", *, root: Optional[Path] = None, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_pixels: int = MAX_UPLOAD_PIXELS) -> Tuple[Image.Image, str]:
    """Validate one uploaded file; return (RGB image, the name the user gave it).

    Raises ImageError with a one-line message naming the file by its own name (never the
    server's path): not an upload of this app, too many bytes, not an image, truncated or
    otherwise undecodable, too many pixels.
    """
    if not path:
        raise ImageError(f"no {role} uploaded")
    if isinstance(path, dict):  # FileData as a dict (some Gradio versions / API calls)
        path = path.get("path")
    raw = Path(os.fspath(path))
    name = raw.name or "upload"
    try:
        real = raw.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ImageError(f"{role} '{name}': the uploaded file is gone; please upload it again") from None
    root = (root or temp_root()).resolve()
    if not _inside(real, root) or not real.is_file():
        raise ImageError(f"{role} '{name}': not a file uploaded to this page")
    size = real.stat().st_size
    if size > max_bytes:
        raise ImageError(f"{role} '{name}' is {_megabytes(size)}; the limit is {_megabytes(max_bytes)}")
    try:
        img = _load(real, max_pixels)
    except PainterlyError as e:
        text = str(e).replace(str(real), name).replace(str(raw), name)
        raise ImageError(f"{role}: {text}") from None
    return img, name


def _load(path: Path, max_pixels: int) -> Image.Image:
    from .images import load_image

    return load_image(path, max_pixels=max_pixels)


# --- options from the controls -----------------------------------------------------------------
def ratio_of(o: Options) -> float:
    """The slider value for `o`: log10(alpha / beta)."""
    if o.content_weight <= 0 or o.style_weight <= 0:
        return 0.0
    return round(math.log10(o.content_weight / o.style_weight), 2)


def control_values(o: Options) -> Dict[str, Any]:
    """The controls' values that represent `o` (the inverse of `options_from_controls`)."""
    return {
        "size": o.size, "iterations": o.iterations[-1] if o.iterations else 0, "ratio": ratio_of(o),
        "preserve_color": o.preserve_color, "style_loss": o.style_loss, "optimizer": o.optimizer,
        "init": o.init if o.init in config.INITS else config.INITS[0], "pooling": o.pooling,
        "color_match": o.color_match, "precision": o.precision, "seed": o.seed, "tv_weight": o.tv_weight,
        "style_scale": o.style_scale, "learning_rate": o.learning_rate,
        "style_blend": ", ".join(f"{b:g}" for b in o.style_blend) if o.style_blend else "",
        "scales": ", ".join(str(s) for s in o.scales), "content_layers": list(o.content_layers),
        "style_layers": list(o.style_layers), "normalize": o.normalize, "lbfgs_line_search": o.lbfgs_line_search,
    }


def _numbers(text, kind, what: str) -> tuple:
    text = (text or "").strip() if isinstance(text, str) else text
    if not text:
        return ()
    if isinstance(text, (list, tuple)):
        items = text
    else:
        items = [t for t in re.split(r"[,\s]+", text) if t]
    try:
        values = tuple(kind(float(t)) if kind is int else kind(t) for t in items)
    except (TypeError, ValueError):
        raise InvalidOption(f"{what}: expected comma-separated numbers, got '{text}'") from None
    if kind is int and any(float(t) != int(float(t)) for t in items):
        raise InvalidOption(f"{what}: expected whole numbers, got '{text}'")
    if not all(math.isfinite(v) for v in values):
        raise InvalidOption(f"{what}: numbers must be finite")
    return values


def _number(value, what: str, kind=float, lo=None, hi=None):
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        if lo is not None and value < lo or hi is not None and value > hi:
            raise InvalidOption(f"{what} {value} is outside {lo:g}..{hi:g}")
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InvalidOption(f"{what}: expected a finite number, got {value!r}")
    if kind is int:
        if v != int(v):
            raise InvalidOption(f"{what}: expected a whole number, got {value!r}")
        v = int(v)
    if lo is not None and v < lo or hi is not None and v > hi:
        raise InvalidOption(f"{what} {v:g} is outside {lo:g}..{hi:g}")
    return v


def _iterations(value, base: Options, max_iterations: int) -> tuple:
    """The slider shows the full-size count; left alone, the base schedule stays whole,
    moved, its value is the count for every scale."""
    n = _number(value, "iterations", int, 1, max_iterations)
    return tuple(base.iterations) if base.iterations and n == base.iterations[-1] else (n,)


def options_from_controls(values: Dict[str, Any], base: Options, n_styles: int = 1,
                          max_size: int = MAX_SIZE, max_iterations: int = MAX_ITERATIONS) -> Options:
    """The Options for the controls' `values`, on top of `base` (the server's settings).

    Raises InvalidOption for a value no control could produce (API callers) or beyond the
    server's limits.
    """
    for key, allowed in CHOICES.items():
        if values[key] not in allowed:
            raise InvalidOption(f"{key.replace('_', ' ')} '{values[key]}' is not one of {', '.join(allowed)}")
    ratio = _number(values["ratio"], "content/style ratio (log10)", lo=-12, hi=12)
    alpha = base.content_weight if base.content_weight > 0 else 1.0
    scales = _numbers(values["scales"], int, "scales")
    if any(not 16 <= s <= max_size for s in scales):
        raise InvalidOption(f"scales: each must be within 16..{max_size}")
    blend = _numbers(values["style_blend"], float, "style blend")
    if blend and len(blend) != n_styles:
        raise InvalidOption(f"style blend has {len(blend)} weights for {n_styles} style images")
    layers = {}
    for key in ("content_layers", "style_layers"):
        chosen = values[key] or []
        chosen = [chosen] if isinstance(chosen, str) else list(chosen)
        bad = [l for l in chosen if l not in config.LAYERS]
        if bad:
            raise InvalidOption(f"{key.replace('_', ' ')}: unknown layer '{bad[0]}'")
        layers[key] = tuple(l for l in config.LAYERS if l in chosen)  # network order
    return base.replace(
        size=_number(values["size"], "size", int, 16, max_size),
        iterations=_iterations(values["iterations"], base, max_iterations),
        content_weight=alpha,
        # An untouched slider keeps the base beta exactly (the slider shows log10 rounded to 0.01).
        style_weight=base.style_weight if ratio == ratio_of(base) else alpha / 10.0 ** ratio,
        preserve_color=values["preserve_color"], style_loss=values["style_loss"],
        optimizer=values["optimizer"], init=values["init"], pooling=values["pooling"],
        color_match=values["color_match"], precision=values["precision"],
        seed=_number(values["seed"], "seed", int, 0, 2 ** 63 - 1),
        tv_weight=_number(values["tv_weight"], "tv weight", lo=0, hi=1e12),
        style_scale=_number(values["style_scale"], "style scale", lo=0.05, hi=4),
        learning_rate=_number(values["learning_rate"], "learning rate", lo=0, hi=10),
        style_blend=blend or None, scales=scales,
        content_layers=layers["content_layers"], style_layers=layers["style_layers"],
        normalize=bool(values["normalize"]), lbfgs_line_search=bool(values["lbfgs_line_search"]),
    )


def command_line(content_name: str, style_names: Sequence[str], output_name: str, options: Options) -> str:
    """The `painterly transfer ...` command that reproduces a run of the page."""
    return config.command_line(content_name, list(style_names), output_name, options)


# --- jobs -------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What a page shows of its job: progress (every iteration), preview (every few)."""

    step: int = 0
    total: int = 0
    losses: Dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    eta: float = 0.0
    version: int = 0  # +1 per iteration
    preview: Optional[Image.Image] = None
    preview_version: int = 0  # +1 per preview image


class Job:
    """One style transfer run in its own thread, cancellable within one iteration."""

    def __init__(self, content: Image.Image, styles: List[Image.Image], options: Options,
                 names: Tuple[str, List[str]] = ("content.png", ["style.png"]), session: Optional[str] = None,
                 preview_every: int = PREVIEW_EVERY):
        self.id = uuid.uuid4().hex
        self.content, self.styles, self.options = content, styles, options
        self.names, self.session = names, session
        self.preview_every = max(1, int(preview_every))
        self.state = "new"  # new -> waiting -> running -> done
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.result = None  # painterly.Result
        self.error: Optional[str] = None
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
            s.step, s.total, s.losses, s.elapsed, s.eta = it.step, it.total, dict(it.losses), it.elapsed, it.eta
            s.version += 1
            if image is not None:
                s.preview, s.preview_version = image, s.preview_version + 1
        if self.cancelled.is_set():
            raise Stop

    def run(self) -> None:
        """The job's thread: run the transfer; any failure becomes `error`, one line."""
        from .engine import run

        try:
            if self.cancelled.is_set():
                return
            self.result = run("transfer", self.content, self.styles, self.options, callback=self._callback)
        except PainterlyError as e:
            self.error = str(e)
        except MemoryError:
            self.error = "the server ran out of memory for this job; try a smaller size"
        except Exception as e:  # a bug: log it, tell the page in one line
            log.exception("job %s failed", self.id)
            self.error = f"internal error ({type(e).__name__}: {e})"


class JobQueue:
    """A bounded queue: `concurrency` jobs run, at most `queue_size` more wait (FIFO)."""

    def __init__(self, concurrency: int, queue_size: int):
        if concurrency < 1 or queue_size < 0:
            raise ValueError("concurrency must be >= 1 and queue_size >= 0")
        self.concurrency, self.queue_size = int(concurrency), int(queue_size)
        self._lock = threading.Lock()
        self._waiting: collections.deque = collections.deque()
        self._running: set = set()
        self._sessions: Dict[str, Job] = {}
        self.stats = {"submitted": 0, "refused": 0, "finished": 0, "cancelled": 0,
                      "peak_running": 0, "peak_waiting": 0}

    def submit(self, job: Job) -> Optional[str]:
        """Start or enqueue `job`; None when accepted, else the message refusing it."""
        with self._lock:
            other = self._sessions.get(job.session) if job.session else None
            if other is not None and not other.done.is_set():
                return "This page already has a job in progress: cancel it or wait for it to finish."
            if len(self._running) + len(self._waiting) >= self.concurrency + self.queue_size:
                self.stats["refused"] += 1
                return (f"{QUEUE_FULL}: {len(self._running)} job(s) running and {len(self._waiting)} waiting, "
                        "the most this server accepts. Please try again in a minute.")
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
        job.state = "running"
        self._running.add(job)
        threading.Thread(target=self._work, args=(job,), name=f"painterly-job-{job.id[:8]}", daemon=True).start()

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
        with self._lock:
            return len(self._running), len(self._waiting)

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._running) + list(self._waiting)
        for job in jobs:
            self.cancel(job)


# --- what the page shows ------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _losses(losses: Dict[str, float]) -> str:
    keys = [k for k in ("content", "style", "tv", "total") if k in losses and (k != "tv" or losses[k])]
    return ", ".join(f"{k} {losses[k]:.3g}" for k in keys)


def progress_text(s: Snapshot) -> str:
    return (f"**Step {s.step} / {s.total}** · losses: {_losses(s.losses)} · "
            f"{_clock(s.elapsed)} elapsed, about {_clock(s.eta)} left")


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _md(text: str) -> str:
    """`text` (file names, messages) shown literally in Markdown."""
    return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", str(text))


def _error(text: str) -> str:
    return f"**Error:** {_md(text)}"


# --- the app ------------------------------------------------------------------------------------
@dataclass
class Settings:
    """Everything `build_app` was given; kept on the app as `app.painterly`."""

    concurrency: int
    queue_size: int
    weights: Optional[str]
    options: Options
    max_bytes: int
    max_pixels: int
    max_styles: int
    max_size: int
    max_iterations: int
    preview_every: int
    root: Path
    outputs: Path
    jobs: JobQueue


CSS = """
#status { min-height: 3em; }
#upload-message { min-height: 1.5em; }
#preview img { width: 100%; height: 100%; object-fit: contain; }
#upload-message p, #status p { margin: 0.2em 0; }
.painterly-error { color: var(--error-text-color, #b91c1c); }
"""

RATIO_JS = """(x) => {
  const r = Math.pow(10, x);
  return `content : style = 10^${Number(x).toFixed(1)} = ${r.toExponential(1)} (α/β)`;
}"""


def _supported(fn, kwargs: dict) -> dict:
    """The keyword arguments `fn` declares by name (Gradio's signatures differ by version)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def _theme(gr):
    """Gradio's default theme, with system fonts if it would fetch web fonts."""
    theme = gr.themes.Default()
    fonts = getattr(gr.themes, "GoogleFont", None)
    used = list(getattr(theme, "_font", [])) + list(getattr(theme, "_font_mono", []))
    if fonts is not None and any(isinstance(f, fonts) for f in used):
        theme = gr.themes.Default(font=("ui-sans-serif", "system-ui", "sans-serif"),
                                  font_mono=("ui-monospace", "Consolas", "monospace"))
    return theme


def build_app(*, concurrency: Optional[int] = None, queue_size: int = DEFAULT_QUEUE_SIZE,
              weights: Optional[str] = None, options: Optional[Options] = None,
              max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS,
              max_styles: int = MAX_STYLES, max_size: int = MAX_SIZE, max_iterations: int = MAX_ITERATIONS,
              preview_every: int = PREVIEW_EVERY):
    """The page as a gr.Blocks (not launched; see `launch`). Its settings: `app.painterly`.

    concurrency: jobs optimising at once (default: one per CPU); queue_size: jobs that may
    wait beyond those. weights: the server's VGG-19 (None: the original set, with its own preprocessing,
    "random": a seeded random network, for tests). options: the page's initial values
    (default config.DEFAULTS); the other arguments are the server's limits.
    """
    gr = _gradio()
    base = (options or config.DEFAULTS).replace(weights=weights, device="auto", threads=0,
                                                content_mask=None, style_masks=(), compile=False)
    root = temp_root()
    outputs = Path(tempfile.mkdtemp(prefix="results-", dir=root))
    settings = Settings(
        concurrency=int(concurrency or cpu_count()), queue_size=int(queue_size), weights=weights, options=base,
        max_bytes=int(max_bytes), max_pixels=int(max_pixels), max_styles=int(max_styles),
        max_size=int(max_size), max_iterations=int(max_iterations), preview_every=int(preview_every),
        root=root, outputs=outputs, jobs=JobQueue(int(concurrency or cpu_count()), int(queue_size)))
    init = control_values(base)
    if init["size"] > settings.max_size or init["iterations"] > settings.max_iterations:
        raise ValueError("the initial size or iterations exceed the server's limits")
    lo_ratio = math.floor(ratio_of(config.DEFAULTS)) - RATIO_SPAN
    hi_ratio = math.ceil(ratio_of(config.DEFAULTS)) + RATIO_SPAN

    blocks_kw = _supported(gr.Blocks.__init__, {"title": "painterly", "analytics_enabled": False,
                                                "theme": _theme(gr), "css": CSS, "delete_cache": (3600, 3600)})
    with gr.Blocks(**blocks_kw) as app:
        gr.Markdown(
            "# Neural style transfer\n"
            "Drop a photograph and one or more paintings, press **Start** and watch the picture "
            "form (Gatys, Ecker & Bethge, *Image Style Transfer Using Convolutional Neural "
            f"Networks*, 2016). This server runs {_jobs(settings.concurrency)} at a time and "
            f"queues up to {settings.queue_size} more. Images: at most {_megabytes(settings.max_bytes)} "
            f"and {settings.max_pixels / 1e6:g} megapixels each.")
        with gr.Row():
            with gr.Column():
                content_file = gr.File(label="Content image (the photograph)", file_count="single",
                                       file_types=["image"], type="filepath", height=120, elem_id="content-file")
                content_view = gr.Image(label="Content", type="pil", interactive=False, height=160,
                                        elem_id="content-view", **_supported(gr.Image.__init__, {"format": "png"}))
            with gr.Column():
                style_files = gr.File(label=f"Style images (1 to {settings.max_styles})", file_count="multiple",
                                      file_types=["image"], type="filepath", height=120, elem_id="style-files")
                style_view = gr.Gallery(label="Styles", columns=4, height=160, elem_id="style-view",
                                        **_supported(gr.Gallery.__init__, {"format": "png", "allow_preview": False}))
        upload_message = gr.Markdown("", elem_id="upload-message")

        with gr.Row():
            with gr.Column(scale=1):
                c = {}
                c["size"] = gr.Slider(32, settings.max_size, value=init["size"], step=16, label="Size (long side, px)",
                                      elem_id="size")
                c["iterations"] = gr.Slider(1, settings.max_iterations, value=init["iterations"], step=1,
                                            label="Iterations", elem_id="iterations")
                c["ratio"] = gr.Slider(lo_ratio, hi_ratio, value=init["ratio"], step=0.1, elem_id="ratio",
                                       label="Content : style ratio, log10(α/β)  (← more style · more content →)")
                ratio_note = gr.Markdown("", elem_id="ratio-note")
                c["preserve_color"] = gr.Radio(list(config.PRESERVE_COLOR), value=init["preserve_color"],
                                               label="Preserve the content's colours", elem_id="preserve-color")
                preset = gr.Dropdown(list(config.PRESETS), value=None, label="Preset (sets the controls)",
                                     elem_id="preset")
                with gr.Accordion("More options", open=False, elem_id="more-options"):
                    with gr.Row():
                        c["style_loss"] = gr.Dropdown(list(config.STYLE_LOSSES), value=init["style_loss"],
                                                      label="Style loss", elem_id="style-loss")
                        c["optimizer"] = gr.Radio(list(config.OPTIMIZERS), value=init["optimizer"],
                                                  label="Optimiser", elem_id="optimizer")
                        c["init"] = gr.Radio(list(config.INITS), value=init["init"], label="Start from",
                                             elem_id="init")
                    with gr.Row():
                        c["pooling"] = gr.Radio(list(config.POOLING), value=init["pooling"], label="Pooling",
                                                elem_id="pooling")
                        c["color_match"] = gr.Radio(list(config.COLOR_MATCH), value=init["color_match"],
                                                    label="Colour match (histogram)", elem_id="color-match")
                        c["precision"] = gr.Radio(list(config.PRECISIONS), value=init["precision"],
                                                  label="Precision", elem_id="precision")
                    with gr.Row():
                        c["seed"] = gr.Number(init["seed"], precision=0, label="Seed", elem_id="seed")
                        c["tv_weight"] = gr.Number(init["tv_weight"], label="Total-variation weight",
                                                   elem_id="tv-weight")
                        c["style_scale"] = gr.Number(init["style_scale"], label="Style scale",
                                                     elem_id="style-scale")
                        c["learning_rate"] = gr.Number(init["learning_rate"], label="Learning rate (Adam)",
                                                       elem_id="learning-rate")
                    with gr.Row():
                        c["style_blend"] = gr.Textbox(init["style_blend"], label="Style blend (one weight per style; "
                                                      "empty: equal)", placeholder="e.g. 2, 1", elem_id="style-blend")
                        c["scales"] = gr.Textbox(init["scales"], label="Scales, coarse to fine (empty: just the size)",
                                                 placeholder="e.g. 128, 256", elem_id="scales")
                    c["content_layers"] = gr.Dropdown(list(config.LAYERS), value=init["content_layers"],
                                                      multiselect=True, label="Content layers",
                                                      elem_id="content-layers")
                    c["style_layers"] = gr.Dropdown(list(config.LAYERS), value=init["style_layers"], multiselect=True,
                                                    label="Style layers", elem_id="style-layers")
                    with gr.Row():
                        c["normalize"] = gr.Checkbox(init["normalize"], label="Normalised network (the paper's)",
                                                     elem_id="normalize")
                        c["lbfgs_line_search"] = gr.Checkbox(init["lbfgs_line_search"],
                                                             label="L-BFGS line search", elem_id="line-search")
                with gr.Row():
                    start_button = gr.Button("Start", variant="primary", elem_id="start")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
            with gr.Column(scale=1):
                status = gr.Markdown("Upload a content image and at least one style image, then press Start.",
                                     elem_id="status")
                preview = gr.Image(label="Preview", type="pil", interactive=False, elem_id="preview", height=420,
                                   **_supported(gr.Image.__init__, {"format": "png"}))
                download = gr.DownloadButton("Download PNG (with its recipe)", value=None, interactive=False,
                                             elem_id="download")
                command = gr.Textbox("", label="Equivalent command line", interactive=False, lines=2,
                                     max_lines=8, elem_id="command",
                                     **_supported(gr.Textbox.__init__, {"buttons": ["copy"], "show_copy_button": True}))
        assert list(c) == list(CONTROLS)
        controls = [c[k] for k in CONTROLS]
        outputs_ = [status, preview, download, command]

        # --- handlers --------------------------------------------------------------------
        def show_content(path):
            if not path:
                return "", None
            try:
                img, name = check_upload(path, "content image", root=root, max_bytes=settings.max_bytes,
                                         max_pixels=settings.max_pixels)
            except PainterlyError as e:
                return _error(str(e)), None
            return f"Content: **{_md(name)}**, {img.width}×{img.height} ✓", _thumbnail(img)

        def show_styles(paths):
            paths = list(paths or [])
            if not paths:
                return "", None
            if len(paths) > settings.max_styles:
                return _error(f"{len(paths)} style images; the most this page takes is {settings.max_styles}"), None
            shown, notes = [], []
            for p in paths:
                try:
                    img, name = check_upload(p, "style image", root=root, max_bytes=settings.max_bytes,
                                             max_pixels=settings.max_pixels)
                except PainterlyError as e:
                    return _error(str(e)), None
                shown.append((_thumbnail(img), name))
                notes.append(f"**{_md(name)}**, {img.width}×{img.height}")
            return "Style: " + "; ".join(notes) + " ✓", shown

        def set_preset(name):
            if name not in config.PRESETS:
                return [gr.update() for _ in CONTROLS]
            values = control_values(base.replace(**config.PRESET_OVERRIDES[name]))
            values["size"] = min(values["size"], settings.max_size)
            values["iterations"] = min(values["iterations"], settings.max_iterations)
            return [values[k] for k in CONTROLS]

        def cancel(request: gr.Request):
            session = getattr(request, "session_hash", None)
            if settings.jobs.cancel_session(session):
                return "Cancelling…"
            return gr.update()

        async def start(content, styles, size, iterations, ratio, preserve_color, style_loss, optimizer, init,
                        pooling, color_match, precision, seed, tv_weight, style_scale, learning_rate, style_blend,
                        scales, content_layers, style_layers, normalize, lbfgs_line_search,
                        request: gr.Request):
            args = locals()
            values = {k: args[k] for k in CONTROLS}
            session = getattr(request, "session_hash", None) or uuid.uuid4().hex
            keep = gr.update()
            try:
                job = await asyncio.to_thread(_prepare, content, styles, values, settings, session)
            except PainterlyError as e:
                yield _error(str(e)), keep, keep, keep
                return
            refusal = settings.jobs.submit(job)
            if refusal:
                yield _error(refusal), keep, keep, keep
                return
            async for update in _follow(job, settings):
                yield update

        ns_api = {"api_name": "stylise"}
        quiet = {"show_progress": "hidden"}
        fast = {"concurrency_limit": None}
        # Decoding uploads takes memory: a few at a time, the rest wait in Gradio's queue.
        checks = {"concurrency_limit": 2 * cpu_count(), "concurrency_id": "check-uploads"}
        content_file.upload(show_content, content_file, [upload_message, content_view], **checks, **quiet)
        content_file.clear(lambda: ("", None), None, [upload_message, content_view], **fast, **quiet)
        style_files.upload(show_styles, style_files, [upload_message, style_view], **checks, **quiet)
        style_files.clear(lambda: ("", None), None, [upload_message, style_view], **fast, **quiet)
        preset.change(set_preset, preset, controls, **fast, **quiet)
        c["ratio"].change(None, c["ratio"], ratio_note, js=RATIO_JS, **quiet)
        app.load(None, c["ratio"], ratio_note, js=RATIO_JS)
        # Start: no Gradio-level limit, so every request reaches the JobQueue at once and is
        # either accepted (run or wait, visibly) or refused; none waits unseen in Gradio's queue.
        start_button.click(start, [content_file, style_files] + controls, outputs_, **ns_api, **fast, **quiet)
        cancel_button.click(cancel, None, status, api_name="cancel", **fast, **quiet)

    # Gradio's own queue only backs up the JobQueue (handlers return at once when it is full).
    app.queue(**_supported(app.queue, {"max_size": 4 * (settings.concurrency + settings.queue_size) + 64,
                                       "default_concurrency_limit": None}))
    app.painterly = settings
    return app


def _thumbnail(img: Image.Image, side: int = 400) -> Image.Image:
    t = img.copy()
    t.thumbnail((side, side))
    return t


def _prepare(content, styles, values: dict, settings: Settings, session: str) -> Job:
    """Check the uploads and the controls (in a worker thread); the Job, or ImageError/InvalidOption."""
    styles = [s for s in (styles or []) if s]
    if not content:
        raise ImageError("upload a content image first")
    if not styles:
        raise ImageError("upload at least one style image")
    if len(styles) > settings.max_styles:
        raise ImageError(f"{len(styles)} style images; the most this page takes is {settings.max_styles}")
    limits = dict(root=settings.root, max_bytes=settings.max_bytes, max_pixels=settings.max_pixels)
    content_img, content_name = check_upload(content, "content image", **limits)
    loaded = [check_upload(s, "style image", **limits) for s in styles]
    options = options_from_controls(values, settings.options, len(loaded), settings.max_size,
                                    settings.max_iterations)
    config.validate(options, "transfer", len(loaded))
    return Job(content_img, [img for img, _ in loaded], options, (content_name, [n for _, n in loaded]),
               session=session, preview_every=settings.preview_every)


async def _follow(job: Job, settings: Settings):
    """Yield (status, preview, download, command) for a submitted job until it ends."""
    import gradio as gr

    keep = gr.update()
    seen, seen_preview = -1, 0
    try:
        yield "Queued…", None, gr.update(value=None, interactive=False), ""
        while not job.done.is_set():
            if job.state == "waiting":
                pos = settings.jobs.position(job)
                running, waiting = settings.jobs.counts()
                if pos is not None and seen != -pos - 1:
                    seen = -pos - 1
                    yield (f"Waiting in the queue: position {pos} of {waiting} ({running} job(s) running).",
                           keep, keep, keep)
            else:
                s = job.snapshot()
                if s.version == 0 and seen != 0:
                    seen = 0
                    yield "Starting: preparing the network and the images…", keep, keep, keep
                elif s.version > seen and s.version > 0:
                    seen = s.version
                    image = keep
                    if s.preview_version != seen_preview:
                        seen_preview, image = s.preview_version, s.preview
                    yield progress_text(s), image, keep, keep
            await asyncio.sleep(POLL_SECONDS)
        yield await asyncio.to_thread(_final, job, settings)
    finally:
        if not job.done.is_set():  # the page went away: stop the work it asked for
            settings.jobs.cancel(job)


def _final(job: Job, settings: Settings):
    """The last update of a job: its image, the PNG with the recipe, the command line."""
    import gradio as gr

    keep = gr.update()
    if job.error:
        return _error(job.error), keep, keep, keep
    r = job.result
    if r is None:
        return "Cancelled before it started.", keep, keep, keep
    from .images import save_image

    content_name, style_names = job.names
    out_name = f"{Path(content_name).stem or 'content'}-stylised.png"
    folder = Path(tempfile.mkdtemp(prefix="job-", dir=settings.outputs))
    try:
        path = save_image(r.image, folder / out_name, r.recipe)
        cmd = command_line(content_name, style_names, out_name, job.options)
    except PainterlyError as e:
        return _error(str(e)), r.image, keep, keep
    last = job.snapshot()
    summary = f"losses: {_losses(last.losses)} · " if last.losses else ""
    if r.stopped:
        total = last.total or r.iterations
        text = f"**Cancelled at step {r.iterations} / {total}** · the image so far is below."
    else:
        text = f"**Finished:** {r.iterations} steps in {_clock(r.seconds)} · {summary}download the PNG below."
    return text, r.image, gr.update(value=str(path), interactive=True), cmd


# --- serving ------------------------------------------------------------------------------------
class RefuseRemoteFiles:
    """ASGI middleware: refuse API calls whose file arguments name a URL.

    Gradio would download such a file to its cache before the handler runs; this page
    takes uploads only. JSON request bodies naming `"path": "<scheme>://..."` get HTTP 400.
    """

    MAX_BODY = 4 * 1024 * 1024
    _URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if b"json" not in headers.get(b"content-type", b""):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([], message), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.MAX_BODY:
                return await _respond(send, 413, "request body too large")
        body = b"".join(chunks)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if self._names_url(data):
            return await _respond(send, 400, "file arguments must be uploads to this page, not URLs")
        return await self.app(scope, _replay([body], None), send)

    @classmethod
    def _names_url(cls, data, depth: int = 0) -> bool:
        if depth > 64:
            return True
        if isinstance(data, dict):
            p = data.get("path")
            if isinstance(p, str) and cls._URL.match(p):
                return True
            return any(cls._names_url(v, depth + 1) for v in data.values())
        if isinstance(data, list):
            return any(cls._names_url(v, depth + 1) for v in data)
        return False


class LocalAssetsOnly:
    """ASGI middleware: drop remote <script src> and <link href> tags from HTML pages.

    Some Gradio versions' page template loads a script from a CDN and preconnects to
    Google's font servers; neither is needed, and the page must not reach outside.
    """

    _REMOTE = re.compile(
        rb"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script\s*>"
        rb"|<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>", re.I)

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        start, chunks = None, []

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if (headers.get(b"content-type", b"").startswith(b"text/html")
                        and not headers.get(b"content-encoding")):
                    start = message
                    return
                return await send(message)
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self._REMOTE.sub(b"", b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send(dict(start, headers=headers))
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

        return await self.app(scope, receive, capture)


def _replay(chunks: List[bytes], pending):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None:
                return pending
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _respond(send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def launch(app, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False) -> str:
    """Serve `app` on host:port (no share link, no SSR, no MCP, no monitoring); its URL.

    block=False returns once the server answers (tests); stop it with `app.close()`.
    """
    gr = _gradio()
    from starlette.middleware import Middleware

    settings: Settings = app.painterly
    root = settings.root
    blocked = [p for p in {os.getcwd(), str(Path.home())} if not _inside(root, Path(p).resolve())]
    kw = {
        "server_name": host, "server_port": int(port), "share": False, "inbrowser": False,
        "prevent_thread_lock": not block, "quiet": quiet, "show_error": False, "allowed_paths": [],
        "blocked_paths": blocked, "max_file_size": settings.max_bytes, "ssr_mode": False,
        "mcp_server": False, "pwa": False, "enable_monitoring": False, "favicon_path": None,
        "run_history": False,
        "app_kwargs": {"middleware": [Middleware(RefuseRemoteFiles), Middleware(LocalAssetsOnly)]}, "theme": _theme(gr), "css": CSS,
    }
    if "theme" in inspect.signature(gr.Blocks.__init__).parameters:
        kw.pop("theme"), kw.pop("css")  # Gradio < 6 takes them in Blocks()
    try:
        app.launch(**_supported(app.launch, kw))
    except OSError as e:
        raise PainterlyError(f"cannot serve on {host}:{port}: {e}") from None
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def main(host: str = "127.0.0.1", port: int = 7860, concurrency: Optional[int] = None,
         queue_size: int = DEFAULT_QUEUE_SIZE, weights: Optional[str] = None, **limits) -> None:
    """`painterly serve`: build the page and serve it until interrupted (blocking).

    Binds to loopback by default; the CLI prints `host_warning(host)` for other hosts.
    Each of the `concurrency` jobs gets cpus / concurrency torch threads.
    """
    import signal

    import torch

    concurrency = int(concurrency or cpu_count())
    torch.set_num_threads(max(1, cpu_count() // concurrency))
    app = build_app(concurrency=concurrency, queue_size=queue_size, weights=weights, **limits)
    url = launch(app, host, port, block=False, quiet=True)
    print(f"painterly: serving {url} ({_jobs(concurrency)} at a time, {queue_size} more may wait); "
          "Ctrl-C stops", flush=True)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops it like Ctrl-C
        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        while app.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        app.painterly.jobs.cancel_all()
        app.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
