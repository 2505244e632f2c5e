"""The page's files: its one temporary directory, Gradio's import, the upload checks, and
the wording that keeps the server's own paths out of every message.

Every upload is checked before it can reach the optimiser: it must be a file Gradio stored
in this app's temporary directory, at most `max_bytes` long, an image Pillow decodes
completely, with at most `max_pixels` pixels. Failures are one line naming the file by the
name the user gave it. The optimiser only ever sees the decoded PIL images.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional, Tuple

from PIL import Image

from painterly.errors import ImageError, PainterlyError
from painterly.options import MAX_INPUT_PIXELS

# --- server limits (not options of a run: how much one web server accepts) ----------------
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # per uploaded file
MAX_UPLOAD_PIXELS = min(25_000_000, MAX_INPUT_PIXELS)  # per uploaded image
MAX_STYLES = 8  # style images per job

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


def gradio():
    """Import Gradio with its analytics and telemetry off and its cache in `temp_root()`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")
    temp_root()
    try:
        import gradio as gr
    except ImportError as e:
        raise PainterlyError(
            f"the web page needs the web extra: pip install 'painterly[web]' ({e})"
        ) from None
    return gr


def inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_upload(
    path,
    role: str = "image",
    *,
    root: Optional[Path] = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Tuple[Image.Image, str]:
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
    if not inside(real, root) or not real.is_file():
        raise ImageError(f"{role} '{name}': not a file uploaded to this page")
    size = real.stat().st_size
    if size > max_bytes:
        raise ImageError(f"{role} '{name}' is {megabytes(size)}; the limit is {megabytes(max_bytes)}")
    from painterly.imaging import load_image

    try:
        img = load_image(real, max_pixels=max_pixels)
    except PainterlyError as e:
        text = str(e).replace(str(real), name).replace(str(raw), name)
        raise ImageError(f"{role}: {scrub(text)}") from None
    return img, name


# An absolute path in a message (POSIX, or a Windows drive path): replaced by its last part.
_PATH = re.compile(
    r"(?<![\w.:/~-])/(?:[^\s'\"/,;()<>\[\]]+/)+([^\s'\"/,;()<>\[\]]*)"
    r"|(?<![\w])[A-Za-z]:\\(?:[^\s'\"\\,;()<>]+\\)*([^\s'\"\\,;()<>]*)"
)


def scrub(text: str) -> str:
    """`text` with every absolute path replaced by its file name: what the page may show.

    The server's folders (its temporary directory, home, working directory, weights) are
    its own business; a message keeps only the name of the file it is about.
    """
    return _PATH.sub(lambda m: m.group(1) if m.group(1) is not None else (m.group(2) or ""), str(text))


def shown_weights(weights: Optional[str]) -> Optional[str]:
    """How the page names the server's weights: a named set as is, a file by its name only."""
    from painterly.net.weights import WEIGHT_NAMES

    if weights is None or weights in WEIGHT_NAMES:
        return weights
    return Path(weights).name
