"""The web page: drop a photograph and one or more paintings, move a slider, watch it form.

`painterly serve [--host 127.0.0.1] [--port 7860]` calls `main`; tests call `build_app`
and `launch`. Needs the optional extra: ``pip install 'painterly[web]'`` (Gradio).

    app.py       the page: its layout and handlers (`build_app`)
    controls.py  the controls, derived from painterly.options.SPECS, and back to Options
    settings.py  what a server allows (sizes, uploads, concurrency, queue)
    look.py      the page's texts, CSS, scripts and theme
    runs.py      a run from the page: its Job, its progress stream, its final picture
    uploads.py   the temporary directory, the upload checks, messages without server paths
    server.py    binding, the host warning, middleware, `launch`, `main`
    queue.py     the jobs and the queue that runs them (no Gradio there)

Importing this package does not import Gradio; `build_app` and `launch` do.
"""

from painterly.web.app import build_app
from painterly.web.controls import (
    CONTROLS,
    MAX_ITERATIONS,
    MAX_SIZE,
    control_values,
    options_from_controls,
    preset_of,
    ratio_of,
    schedule_text,
)
from painterly.web.look import progress_text
from painterly.web.queue import QUEUE_FULL, Job, JobQueue, Snapshot
from painterly.web.server import (
    ALIAS,
    HideServerPaths,
    LocalAssetsOnly,
    RefuseRemoteFiles,
    host_warning,
    is_loopback,
    launch,
    main,
)
from painterly.web.settings import DEFAULT_QUEUE_SIZE, POLL_SECONDS, Settings, cpu_count
from painterly.web.uploads import (
    MAX_STYLES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    check_upload,
    scrub,
    temp_root,
)

__all__ = [
    "ALIAS",
    "CONTROLS",
    "DEFAULT_QUEUE_SIZE",
    "HideServerPaths",
    "Job",
    "JobQueue",
    "LocalAssetsOnly",
    "MAX_ITERATIONS",
    "MAX_SIZE",
    "MAX_STYLES",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "POLL_SECONDS",
    "QUEUE_FULL",
    "RefuseRemoteFiles",
    "Settings",
    "Snapshot",
    "build_app",
    "check_upload",
    "control_values",
    "cpu_count",
    "host_warning",
    "is_loopback",
    "launch",
    "main",
    "options_from_controls",
    "preset_of",
    "progress_text",
    "ratio_of",
    "schedule_text",
    "scrub",
    "temp_root",
]
