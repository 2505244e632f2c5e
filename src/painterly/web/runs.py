"""A run from the page: a Job from the page's values and files, its progress streamed to the
page, the buttons while it runs, and its final picture."""

import asyncio
import tempfile
from pathlib import Path

from painterly.cli import terminal
from painterly.errors import ImageError
from painterly.web.controls import (
    options_from_controls,
)
from painterly.web.look import (
    clock_text,
    error_text,
    losses_text,
    progress_text,
    say,
)
from painterly.web.queue import Job
from painterly.web.settings import POLL_SECONDS, Settings
from painterly.web.uploads import (
    shown_weights,
)


def prepare_job(content, styles, values: dict, settings: Settings, session: str) -> Job:
    """Check the uploads and the controls (in a worker thread); the Job, or ImageError/InvalidOption."""
    styles = [s for s in (styles or []) if s]
    if not content:
        raise ImageError("upload a content image first")
    if not styles:
        raise ImageError("upload at least one style image")
    if len(styles) > settings.max_styles:
        raise ImageError(f"{len(styles)} style images; the most this page takes is {settings.max_styles}")
    content_img, content_name = settings.check(content, "content image")
    loaded = [settings.check(s, "style image") for s in styles]
    options = options_from_controls(
        values, settings.options, len(loaded), settings.max_size, settings.max_iterations
    )
    return Job(
        content_img,
        [img for img, _ in loaded],
        options,
        (content_name, [n for _, n in loaded]),
        session=session,
        preview_every=settings.preview_every,
    )


def buttons(gr, running: bool):
    """(Start, Cancel): Cancel is live (and red) only while a job of this page is under way."""
    return (
        gr.update(interactive=not running),
        gr.update(interactive=running, variant="stop" if running else "secondary"),
    )


async def follow_job(job: Job, settings: Settings):
    """Yield (status, preview, download, command, start, cancel, compare) for a submitted job
    until it ends; at the end the before/after comparison shows the photo and the result."""
    import gradio as gr

    keep = gr.update()
    seen, seen_preview = -1, 0
    try:
        # The last comparison stays until this run's replaces it (hiding it would move the page under
        # the reader).
        yield ("Queued…", None, gr.update(value=None, interactive=False), "") + buttons(gr, True) + (keep,)
        while not job.done.is_set():
            if job.state == "waiting":
                pos = settings.jobs.position(job)
                running, waiting = settings.jobs.counts()
                if pos is not None and seen != -pos - 1:
                    seen = -pos - 1
                    yield (
                        f"Waiting in the queue: position {pos} of {waiting} ({running} job(s) running).",
                        keep,
                        keep,
                        keep,
                        keep,
                        keep,
                        keep,
                    )
            else:
                s = job.snapshot()
                if s.version == 0 and seen != 0:
                    seen = 0
                    yield (
                        "Starting: preparing the network and the images…",
                        keep,
                        keep,
                        keep,
                        keep,
                        keep,
                        keep,
                    )
                elif s.version > seen and s.version > 0:
                    seen = s.version
                    image = keep
                    if s.preview_version != seen_preview:
                        seen_preview, image = s.preview_version, s.preview
                    yield progress_text(s), image, keep, keep, keep, keep, keep
            await asyncio.sleep(POLL_SECONDS)
        final = await asyncio.to_thread(final_update, job, settings)
        done = job.result is not None and not job.error
        compare = (
            gr.update(value=(job.content.resize(job.result.image.size), job.result.image), visible=True)
            if done
            else keep
        )
        yield final + buttons(gr, False) + (compare,)
    finally:
        if not job.done.is_set():  # the page went away: stop the work it asked for
            settings.jobs.cancel(job)


def final_update(job: Job, settings: Settings):
    """The last update of a job: its image, the PNG with the recipe, the command line."""
    import gradio as gr

    keep = gr.update()
    if job.error:
        return error_text(job.error), keep, keep, keep
    r = job.result
    if r is None:
        return "Cancelled before it started.", keep, keep, keep
    from painterly.imaging import save_image

    content_name, style_names = job.names
    out_name = f"{Path(content_name).stem or 'content'}-stylised.png"
    # The recipe and the command name the server's weights file (if any) by its name only.
    options = job.options.replace(weights=shown_weights(job.options.weights))
    # The inputs by the names they were uploaded with (their pixel hashes are the engine's), so
    # `painterly rerun` finds them beside the download as it does for a command's outputs.
    recipe = dict(r.recipe, options=dict(r.recipe["options"], weights=options.weights))
    if isinstance(recipe.get("content"), dict):
        recipe["content"] = dict(recipe["content"], path=Path(content_name).name)
    recipe["styles"] = [
        dict(s, path=Path(n).name) if isinstance(s, dict) else s
        for s, n in zip(recipe.get("styles") or [], style_names)
    ]
    folder = Path(tempfile.mkdtemp(prefix="job-", dir=settings.outputs))
    try:
        path = save_image(r.image, folder / out_name, recipe)
        cmd = terminal.command_line(content_name, list(style_names), out_name, options)
    except Exception as e:  # noqa: BLE001
        return error_text(say(e)), r.image, keep, keep
    last = job.snapshot()
    summary = f"losses: {losses_text(last.losses)} · " if last.losses else ""
    if r.stopped:
        total = last.total or r.iterations
        text = f"**Cancelled at step {r.iterations} / {total}** · the image so far is below."
    else:
        text = (
            f"**Finished:** {r.iterations} steps in {clock_text(r.seconds)} · {summary}"
            "download the PNG below."
        )
    return text, r.image, gr.update(value=str(path), interactive=True), cmd
