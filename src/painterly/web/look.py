"""What the page shows besides its controls: progress and error texts, CSS, the small scripts
and the theme (app.py lays the page out)."""

from __future__ import annotations

import inspect
import logging
import re
from typing import Dict

from PIL import Image

from painterly.errors import PainterlyError, user_message
from painterly.web.controls import page_words
from painterly.web.queue import Snapshot
from painterly.web.uploads import scrub

log = logging.getLogger("painterly.web.app")  # the page's log, as before the split
NARROW = 700  # px: below this width the columns stack (a phone)


# --- what the page shows ------------------------------------------------------------------------
def clock_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def losses_text(losses: Dict[str, float]) -> str:
    keys = [k for k in ("content", "style", "tv", "total") if k in losses and (k != "tv" or losses[k])]
    return ", ".join(f"{k} {losses[k]:.3g}" for k in keys)


def progress_text(s: Snapshot) -> str:
    return (
        f"**Step {s.step} / {s.total}** · losses: {losses_text(s.losses)} · "
        f"{clock_text(s.elapsed)} elapsed, about {clock_text(s.eta)} left"
    )


def jobs_text(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def md_escape(text: str) -> str:
    """`text` (file names, messages) shown literally in Markdown."""
    return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", str(text))


def say(e: BaseException) -> str:
    """An exception in one line (errors.user_message); a bug also goes to the server's log."""
    text, code = user_message(e, debug_hint="")
    if not isinstance(e, PainterlyError):
        log.error("web page: %s", text, exc_info=e)
    return text


def error_text(text: str) -> str:
    """A message for the page: no server path, the page's labels for flags, literal Markdown."""
    return f"**Error:** {md_escape(page_words(scrub(text)))}"


CSS = f"""
#status {{ min-height: 3em; }}
#upload-message {{ min-height: 1.5em; }}
#preview img {{ width: 100%; height: 100%; object-fit: contain; }}
/* One box per input: the upload zone, with the picture shown inside it once uploaded (the
   file list stays underneath, its clear button on top). Pictures are letterboxed, never cropped. */
.drop {{ position: relative; }}
#content-file, #style-files {{ min-height: 196px; }}
.drop .view {{ position: absolute; top: 34px; left: 4px; right: 4px; bottom: 4px; z-index: 5;
  pointer-events: none; border: none !important; box-shadow: none !important;
  background: var(--block-background-fill); }}
.drop .view img, #compare img {{ object-fit: contain !important; }}
.drop .view .thumbnail-item img, .drop .view .grid-wrap img {{ object-fit: contain !important; }}
#style-view button, #style-view img {{ max-height: 140px; }}
#upload-message p, #status p, #schedule p {{ margin: 0.2em 0; }}
@media (max-width: {NARROW}px) {{
  #main-row {{ flex-direction: column; }}
  #main-row > div {{ width: 100%; min-width: 0; }}
  #preview {{ max-height: 60vh; }}
}}
"""

RATIO_JS = """(x) => {
  const r = Math.pow(10, x);
  return `content : style = 10^${Number(x).toFixed(1)} = ${r.toExponential(1)} (α/β)`;
}"""

# The browser clamps a number typed into a slider's box to the slider's range before the server
# sees it: say so under Size, in words, rather than change the value silently.
SIZE_NOTE_JS = """() => {
  document.addEventListener('change', (e) => {
    const t = e.target;
    if (!t || !t.closest || t.type !== 'number' || !t.closest('#size')) return;
    const v = Number(t.value), lo = Number(t.min), hi = Number(t.max);
    const note = document.querySelector('#size-note');
    if (!note) return;
    note.innerText = v > hi ? `Size ${v} is more than this page allows (${hi}): it is set to ${hi}.`
      : v < lo ? `Size ${v} is less than ${lo}: it is set to ${lo}.` : '';
  }, true);
}"""

# On a phone the result column sits below the controls: bring it on screen when Start is pressed.
SHOW_RESULT_JS = f"""(...args) => {{
  if (window.matchMedia('(max-width: {NARROW}px)').matches) {{
    const show = () => {{
      const s = document.getElementById('status');
      if (s) s.scrollIntoView({{block: 'start'}});
    }};
    show(); setTimeout(show, 400);  // again once the page has laid out the run's first update
  }}
  return args;  // the Start handler's inputs, unchanged
}}"""


NO_TOOLS = {
    "show_download_button": False,
    "show_share_button": False,
    "show_fullscreen_button": False,
    "buttons": [],
}  # a view inside an upload box needs none (names differ by Gradio version)


def supported(fn, kwargs: dict) -> dict:
    """The keyword arguments `fn` declares by name (Gradio's signatures differ by version)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def theme(gr):
    """Gradio's default theme, with system fonts if it would fetch web fonts."""
    theme = gr.themes.Default()
    fonts = getattr(gr.themes, "GoogleFont", None)
    used = list(getattr(theme, "_font", [])) + list(getattr(theme, "_font_mono", []))
    if fonts is not None and any(isinstance(f, fonts) for f in used):
        theme = gr.themes.Default(
            font=("ui-sans-serif", "system-ui", "sans-serif"),
            font_mono=("ui-monospace", "Consolas", "monospace"),
        )
    return theme


def thumbnail(img: Image.Image, side: int = 400) -> Image.Image:
    t = img.copy()
    t.thumbnail((side, side))
    return t
