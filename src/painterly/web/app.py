"""The page: its layout (Gradio Blocks, controls, CSS and JS) and its handlers.

`build_app` returns the page, not launched (see server.launch); its settings are kept on the
app as `app.painterly`. The controls come from `painterly.options.SPECS` (web/controls.py);
jobs run in a `painterly.web.queue.JobQueue`. No message on the page shows a path of the server's:
every one goes through `uploads.scrub`, and files are named by the names users gave them.
"""

# No `from __future__ import annotations`: Gradio finds the `gr.Request` parameter of the
# handlers by evaluating their annotations, and `gr` is imported lazily (a local name).
import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Optional

from painterly.options import DEFAULTS, PRESETS, Options
from painterly.web.controls import (
    CONTROLS,
    MAIN,
    MAX_ITERATIONS,
    MAX_SIZE,
    control_values,
    layout,
    make,
    preset_of,
    preset_options,
    schedule_text,
)
from painterly.web.look import (
    CSS,
    NO_TOOLS,
    RATIO_JS,
    SHOW_RESULT_JS,
    SIZE_NOTE_JS,
    error_text,
    jobs_text,
    md_escape,
    say,
    supported,
    theme,
    thumbnail,
)
from painterly.web.queue import PREVIEW_EVERY, JobQueue
from painterly.web.runs import follow_job, prepare_job
from painterly.web.settings import DEFAULT_QUEUE_SIZE, Settings, cpu_count, default_concurrency, job_devices
from painterly.web.uploads import (
    MAX_STYLES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    gradio,
    inside,
    megabytes,
    temp_root,
)

log = logging.getLogger(__name__)


# --- the page ----------------------------------------------------------------------------------------
def build_app(
    *,
    concurrency: Optional[int] = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    weights: Optional[str] = None,
    options: Optional[Options] = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
    max_styles: int = MAX_STYLES,
    max_size: int = MAX_SIZE,
    max_iterations: int = MAX_ITERATIONS,
    preview_every: int = PREVIEW_EVERY,
    device: str = "auto",
):
    """The page as a gr.Blocks (not launched; see `launch`). Its settings: `app.painterly`.

    concurrency: jobs optimising at once (default: one per GPU, else one per CPU); queue_size:
    jobs that may wait beyond those. weights: the server's VGG-19 (None: the original set, with
    its own preprocessing, "random": a seeded random network, for tests). device: where the jobs
    compute (--device: auto, cpu, cuda, cuda:N, mps; with several GPUs the jobs are spread over
    them). options: the page's initial values (default DEFAULTS); the other arguments are the
    server's limits.
    """
    gr = gradio()
    base = (options or DEFAULTS).replace(
        weights=weights, device=device, threads=0, content_mask=None, style_masks=(), compile=False
    )
    root = temp_root()
    n = int(concurrency or default_concurrency(device))
    settings = Settings(
        concurrency=n,
        queue_size=int(queue_size),
        weights=weights,
        options=base,
        max_bytes=int(max_bytes),
        max_pixels=int(max_pixels),
        max_styles=int(max_styles),
        max_size=int(max_size),
        max_iterations=int(max_iterations),
        preview_every=int(preview_every),
        root=root,
        outputs=Path(tempfile.mkdtemp(prefix="results-", dir=root)),
        jobs=JobQueue(n, int(queue_size), job_devices(device)),
        page={"theme": theme(gr), "css": CSS},
    )
    init = control_values(base)
    if base.size > settings.max_size or max(base.iterations or (0,)) > settings.max_iterations:
        raise ValueError("the initial size or iterations exceed the server's limits")

    blocks_kw = supported(
        gr.Blocks.__init__,
        {"title": "painterly", "analytics_enabled": False, "delete_cache": (3600, 3600), **settings.page},
    )
    with gr.Blocks(**blocks_kw) as app:
        gr.Markdown(
            "# painterly\n"
            "Neural style transfer: drop a photograph and one or more paintings (or pick an example "
            "below), press **Start** and watch the picture form (Gatys, Ecker & Bethge, *Image Style "
            "Transfer Using Convolutional Neural Networks*, 2016). "
            f"This server runs {jobs_text(settings.concurrency)} at a time and "
            f"queues up to {settings.queue_size} more. Images: at most {megabytes(settings.max_bytes)} "
            f"and {settings.max_pixels / 1e6:g} megapixels each."
        )
        with gr.Row():
            with gr.Column(elem_classes=["drop"]):
                content_file = gr.File(
                    label="Content image (the photograph)",
                    file_count="single",
                    file_types=["image"],
                    type="filepath",
                    height=200,
                    elem_id="content-file",
                )
                content_view = gr.Image(
                    type="pil",
                    interactive=False,
                    show_label=False,
                    visible=False,
                    elem_id="content-view",
                    elem_classes=["view"],
                    height=150,
                    container=False,
                    **supported(gr.Image.__init__, {"format": "png", **NO_TOOLS}),
                )
            with gr.Column(elem_classes=["drop"]):
                style_files = gr.File(
                    label=f"Style images (1 to {settings.max_styles})",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    height=200,
                    elem_id="style-files",
                )
                style_view = gr.Gallery(
                    show_label=False,
                    columns=4,
                    visible=False,
                    elem_id="style-view",
                    elem_classes=["view"],
                    object_fit="contain",
                    height=150,
                    container=False,
                    **supported(gr.Gallery.__init__, {"format": "png", "allow_preview": False, **NO_TOOLS}),
                )
        upload_message = gr.Markdown("", elem_id="upload-message")
        messages = gr.State({"content": "", "style": ""})  # each input's line: both stay shown
        with gr.Row():  # above the fold, whatever the options below
            start_button = gr.Button("Start", variant="primary", elem_id="start")
            cancel_button = gr.Button("Cancel", variant="secondary", interactive=False, elem_id="cancel")
        late = {}  # handlers defined below, called by the examples
        from painterly import assets

        demo = [str(p) for p in assets.demo_images()]
        gr.Examples(
            [[demo[0], [demo[1]]]],
            [content_file, style_files],
            label="Example (click, then Start)",
            fn=lambda c, st: late["example"](c, st),
            outputs=[upload_message, messages, content_view, style_view],
            run_on_click=True,
            cache_examples=False,
            elem_id="examples",
            **supported(gr.Examples.__init__, {"example_labels": ["Tübingen × The Starry Night"]}),
        )

        c = {}
        with gr.Row(elem_id="main-row"):
            with gr.Column(scale=1):
                for name in MAIN:
                    c[name] = make(gr, name, init[name], settings)
                    if name == "size":
                        gr.Markdown("", elem_id="size-note")
                    if name == "iterations":
                        schedule = gr.Markdown(
                            schedule_text(init, base, settings.max_size, settings.max_iterations),
                            elem_id="schedule",
                        )
                    if name == "ratio":
                        ratio_note = gr.Markdown("", elem_id="ratio-note")
                preset = gr.Dropdown(
                    list(PRESETS), value=preset_of(base), elem_id="preset", label="Preset (sets the controls)"
                )
                with gr.Accordion("More options", open=False, elem_id="more-options"):
                    for row in layout([k for k in CONTROLS if k not in MAIN]):
                        with gr.Row():
                            for name in row:
                                c[name] = make(gr, name, init[name], settings)
            with gr.Column(scale=1):
                status = gr.Markdown(
                    "Upload a content image and at least one style image, then press Start.", elem_id="status"
                )
                preview = gr.Image(
                    label="Preview",
                    type="pil",
                    interactive=False,
                    elem_id="preview",
                    height=420,
                    **supported(gr.Image.__init__, {"format": "png"}),
                )
                compare = gr.ImageSlider(
                    label="Before / after (drag the handle)",
                    type="pil",
                    interactive=False,
                    visible=False,
                    elem_id="compare",
                    height=420,
                    **supported(gr.ImageSlider.__init__, {"format": "png"}),
                )
                download = gr.DownloadButton(
                    "Download PNG (with its recipe)", value=None, interactive=False, elem_id="download"
                )
                command = gr.Textbox(
                    "",
                    label="Equivalent command line",
                    interactive=False,
                    lines=2,
                    max_lines=8,
                    elem_id="command",
                    **supported(gr.Textbox.__init__, {"buttons": ["copy"], "show_copy_button": True}),
                )
        controls = [c[k] for k in CONTROLS]
        outputs_ = [status, preview, download, command, start_button, cancel_button, compare]

        # --- handlers --------------------------------------------------------------------
        def said(msgs, key, line):
            """The upload message: the content's line and the styles' line, each kept."""
            msgs = dict(msgs or {}, **{key: line})
            return "\n\n".join(m for m in (msgs.get("content"), msgs.get("style")) if m), msgs

        def view(value):
            return gr.update(value=value, visible=value is not None)

        def show_content(path, msgs=None):
            if not path:
                return (*said(msgs, "content", ""), view(None))
            try:
                img, name = settings.check(path, "content image")
            except Exception as e:  # noqa: BLE001
                return (*said(msgs, "content", error_text(say(e))), view(None))
            return (
                *said(msgs, "content", f"Content: **{md_escape(name)}**, {img.width}×{img.height} ✓"),
                view(thumbnail(img)),
            )

        def show_styles(paths, msgs=None):
            paths = list(paths or [])
            if not paths:
                return (*said(msgs, "style", ""), view(None))
            if len(paths) > settings.max_styles:
                return (
                    *said(
                        msgs,
                        "style",
                        error_text(
                            f"{len(paths)} style images; the most this page takes is {settings.max_styles}"
                        ),
                    ),
                    view(None),
                )
            shown, notes = [], []
            for p in paths:
                try:
                    img, name = settings.check(p, "style image")
                except Exception as e:  # noqa: BLE001
                    return (*said(msgs, "style", error_text(say(e))), view(None))
                shown.append((thumbnail(img), name))
                notes.append(f"**{md_escape(name)}**, {img.width}×{img.height}")
            return (*said(msgs, "style", "Style: " + "; ".join(notes) + " ✓"), view(shown))

        def restore(path, source: str) -> None:
            # Gradio deletes its cached copy of an example file: in its hourly delete_cache sweep
            # (files older than an hour) and whenever an app of the process closes (every file
            # an app made). The example then said "the uploaded file is gone"; its copy is
            # written again from the package instead.
            p = Path(os.fspath(path.get("path") if isinstance(path, dict) else path)) if path else None
            # settings.root is temp_root(), already resolved
            if (
                p is not None
                and not p.exists()
                and p.name == Path(source).name
                and inside(p.resolve(), settings.root)
            ):
                p.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, p)

        def show_example(content, styles):
            restore(content, demo[0])
            for s in styles or []:
                restore(s, demo[1])
            c = show_content(content, {})
            st = show_styles(styles, c[1])
            return st[0], st[1], c[2], st[2]

        late["example"] = show_example

        def set_preset(name):
            """The controls a preset sets; the others (Size among them) keep what the user chose."""
            if name not in PRESETS:
                return [gr.update() for _ in CONTROLS]
            values = control_values(preset_options(name, base))
            touched = {k for p in PRESETS for k in PRESETS[p].overrides}
            if touched & {"content_weight", "style_weight"}:
                touched.add("ratio")
            return [values[k] if k in touched else gr.update() for k in CONTROLS]

        def show_schedule(*values):
            return schedule_text(
                dict(zip(CONTROLS, values)), base, settings.max_size, settings.max_iterations
            )

        def cancel(request: gr.Request):
            session = getattr(request, "session_hash", None)
            if settings.jobs.cancel_session(session):
                return "Cancelling…"
            return gr.update()

        # The controls' values arrive in CONTROLS' order after the files (the API's order too).
        async def start(request: gr.Request, content, styles, *values):
            session = getattr(request, "session_hash", None) or uuid.uuid4().hex
            keep = gr.update()
            try:
                job = await asyncio.to_thread(
                    prepare_job, content, styles, dict(zip(CONTROLS, values)), settings, session
                )
            except Exception as e:  # noqa: BLE001 -- one line on the page, never a traceback
                yield error_text(say(e)), keep, keep, keep, keep, keep, keep
                return
            refusal = settings.jobs.submit(job)
            if refusal:
                yield error_text(refusal), keep, keep, keep, keep, keep, keep
                return
            async for update in follow_job(job, settings):
                yield update

        quiet = {"show_progress": "hidden"}
        fast = {"concurrency_limit": None}
        # Decoding uploads takes memory: a few at a time, the rest wait in Gradio's queue.
        checks = {"concurrency_limit": 2 * cpu_count(), "concurrency_id": "check-uploads"}
        shown_c, shown_s = [upload_message, messages, content_view], [upload_message, messages, style_view]
        content_file.upload(show_content, [content_file, messages], shown_c, **checks, **quiet)
        content_file.clear(lambda m: show_content(None, m), messages, shown_c, **fast, **quiet)
        style_files.upload(show_styles, [style_files, messages], shown_s, **checks, **quiet)
        style_files.clear(lambda m: show_styles(None, m), messages, shown_s, **fast, **quiet)
        preset.change(set_preset, preset, controls, **fast, **quiet)
        for name in ("size", "iterations", "scales"):
            c[name].change(show_schedule, controls, schedule, **fast, **quiet)
        c["ratio"].change(None, c["ratio"], ratio_note, js=RATIO_JS, **quiet)
        app.load(None, c["ratio"], ratio_note, js=RATIO_JS, **quiet)
        app.load(None, None, None, js=SIZE_NOTE_JS, **quiet)
        # Start: no Gradio-level limit, so every request reaches the JobQueue at once and is
        # either accepted (run or wait, visibly) or refused; none waits unseen in Gradio's queue.
        start_button.click(
            start,
            [content_file, style_files] + controls,
            outputs_,
            api_name="stylise",
            js=SHOW_RESULT_JS,
            **fast,
            **quiet,
        )
        cancel_button.click(cancel, None, status, api_name="cancel", **fast, **quiet)

    # Gradio's own queue only backs up the JobQueue (handlers return at once when it is full).
    app.queue(
        **supported(
            app.queue,
            {
                "max_size": 4 * (settings.concurrency + settings.queue_size) + 64,
                "default_concurrency_limit": None,
            },
        )
    )
    app.painterly = settings
    return app
