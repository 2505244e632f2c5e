"""Serving the page: binding, the host warning, the middleware, `launch` and `main`.

Files and network
    Gradio's upload cache and the results live in one temporary directory (removed at
    exit); Gradio serves nothing else (no `allowed_paths`; the working directory is
    blocked). API calls whose file arguments name a URL are refused with HTTP 400 before
    Gradio could fetch them, and the page has no field that takes a URL. The browser never
    sees that directory's path either: `HideServerPaths` names it `ALIAS` in everything sent
    and restores it in what comes back. Gradio's analytics, share links, SSR, MCP, run history,
    monitoring and its "Use via API" link are off, the theme uses bundled or system fonts, and
    remote <script>/<link> tags of Gradio's page template are dropped, so the browser loads
    everything from this server and nothing else.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import ipaddress
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import List, Optional

from painterly.cli import verbs
from painterly.errors import InvalidOption, PainterlyError
from painterly.options import SPECS
from painterly.web.app import build_app
from painterly.web.look import jobs_text, supported
from painterly.web.settings import DEFAULT_QUEUE_SIZE, Settings, cpu_count, default_concurrency
from painterly.web.uploads import gradio, inside, scrub

ALIAS = "/painterly-files"  # how the browser sees the app's temporary directory


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
    return (
        f"serving on {host}: the page is reachable from other machines, with no "
        "authentication; anyone who can reach it can run jobs"
    )


# --- middleware ------------------------------------------------------------------------------------
async def _read_body(receive, limit: int):
    """(body, None) or (None, the first message that is not a request body), or (False, None) if too big."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, message
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return False, None
    return b"".join(chunks), None


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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_json(scope) -> bool:
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    return b"json" in headers.get(b"content-type", b"")


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
        if scope.get("type") != "http" or scope.get("method") != "POST" or not _is_json(scope):
            return await self.app(scope, receive, send)
        body, pending = await _read_body(receive, self.MAX_BODY)
        if body is False:
            return await _respond(send, 413, "request body too large")
        if body is None:
            return await self.app(scope, _replay([], pending), send)
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


class HideServerPaths:
    """ASGI middleware: the browser never sees the server's path of the app's folder.

    Gradio names every file it serves by its absolute path (uploads, previews, results:
    `/gradio_api/file=/tmp/painterly-web-x1y2/...`). In responses (JSON, HTML, event streams)
    that folder's path becomes `alias`; in requests (the URL, JSON bodies) the alias becomes
    the path again, so Gradio's own checks (files only from its cache) still apply.
    """

    MAX_BODY = RefuseRemoteFiles.MAX_BODY
    TEXT = (b"application/json", b"text/html", b"text/event-stream", b"text/plain")

    def __init__(self, app, root: Path, alias: str = ALIAS):
        self.app = app
        self.root, self.alias = str(root).encode(), alias.encode()

    def hide(self, data: bytes) -> bytes:
        return data.replace(self.root, self.alias)

    def restore(self, data: bytes) -> bytes:
        return data.replace(self.alias, self.root)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        scope = dict(scope)
        if self.alias.decode() in scope.get("path", ""):
            scope["path"] = self.restore(scope["path"].encode()).decode()
            scope["raw_path"] = self.restore(scope.get("raw_path") or b"")
        scope["query_string"] = self.restore(scope.get("query_string", b""))
        if scope.get("method") == "POST" and _is_json(scope):
            body, pending = await _read_body(receive, self.MAX_BODY)
            if body is False:
                return await _respond(send, 413, "request body too large")
            receive = _replay([self.restore(body)], None) if body is not None else _replay([], pending)
        start, chunks = None, []

        async def rewrite(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                kind = headers.get(b"content-type", b"")
                if (
                    headers.get(b"content-encoding")
                    or not kind.startswith(self.TEXT)
                    or scope.get("method") == "HEAD"
                ):  # HEAD: no body, and the GET's length
                    return await send(message)
                if kind.startswith(b"text/event-stream") or b"content-length" not in headers:
                    # Streamed: every chunk is rewritten as it goes (an event is one chunk).
                    start = False
                    return await send(message)
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                return await send(message)
            if start is False:
                return await send(dict(message, body=self.hide(message.get("body", b""))))
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self.hide(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send(dict(start, headers=headers))
            await send({"type": "http.response.body", "body": body})

        return await self.app(scope, receive, rewrite)


class LocalAssetsOnly:
    """ASGI middleware: drop remote <script src> and <link href> tags from HTML pages.

    Some Gradio versions' page template loads a script from a CDN and preconnects to
    Google's font servers; neither is needed, and the page must not reach outside.
    """

    _REMOTE = re.compile(
        rb"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script\s*>"
        rb"|<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>",
        re.I,
    )

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
                if headers.get(b"content-type", b"").startswith(b"text/html") and not headers.get(
                    b"content-encoding"
                ):
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


# --- serving -----------------------------------------------------------------------------------------
def launch(
    app,
    host: str = verbs.FLAGS["host"].default,
    port: int = verbs.FLAGS["port"].default,
    *,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Serve `app` on host:port (no share link, no SSR, no MCP, no monitoring, no API link); its URL.

    block=False returns once the server answers (tests); stop it with `app.close()`.
    """
    gr = gradio()
    from starlette.middleware import Middleware

    settings: Settings = app.painterly
    root = settings.root
    blocked = [p for p in {os.getcwd(), str(Path.home())} if not inside(root, Path(p).resolve())]
    middleware = [
        Middleware(RefuseRemoteFiles),
        Middleware(HideServerPaths, root=root),
        Middleware(LocalAssetsOnly),
    ]
    kw = {
        "server_name": host,
        "server_port": int(port),
        "share": False,
        "inbrowser": False,
        "prevent_thread_lock": not block,
        "quiet": quiet,
        "show_error": False,
        "allowed_paths": [],
        "blocked_paths": blocked,
        "max_file_size": settings.max_bytes,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "favicon_path": None,
        "run_history": False,
        "show_api": False,
        "footer_links": ["gradio", "settings"],
        "app_kwargs": {"middleware": middleware},
        **settings.page,
    }
    if not 1 <= int(port) <= 65535:
        raise InvalidOption(f"--port must be within 1..65535, got {port}")
    if "theme" in inspect.signature(gr.Blocks.__init__).parameters:
        kw.pop("theme"), kw.pop("css")  # Gradio < 6 takes them in Blocks()
    try:
        app.launch(**supported(app.launch, kw))
    except OSError as e:
        # Gradio's own text points at its environment variables; the user's lever is --port.
        why = "the port is in use" if "port" in str(e).lower() else scrub(" ".join(str(e).split()))
        raise PainterlyError(
            f"cannot serve on {host}:{port}: {why}; choose another with --port (or --host)"
        ) from None
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def main(
    host: str = verbs.FLAGS["host"].default,
    port: int = verbs.FLAGS["port"].default,
    concurrency: Optional[int] = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    weights: Optional[str] = None,
    device: str = "auto",
    **limits,
) -> None:
    """`painterly serve`: build the page and serve it until interrupted (blocking).

    Binds to loopback by default; the CLI prints `host_warning(host)` for other hosts.
    Each of the `concurrency` jobs (default: one per GPU of `device`, else one per CPU) gets
    cpus / concurrency torch threads.
    """
    import signal

    import torch

    if concurrency is not None and int(concurrency) < 1:
        raise InvalidOption(f"--concurrency must be >= 1, got {concurrency}")
    if int(queue_size) < 0:
        raise InvalidOption(f"--queue-size must be >= 0, got {queue_size}")
    if not 1 <= int(port) <= 65535:
        raise InvalidOption(f"--port must be within 1..65535, got {port}")
    SPECS["device"].check("device", device)
    concurrency = int(concurrency or default_concurrency(device))
    torch.set_num_threads(max(1, cpu_count() // concurrency))
    app = build_app(concurrency=concurrency, queue_size=queue_size, weights=weights, device=device, **limits)
    url = launch(app, host, port, block=False, quiet=True)
    print(
        f"painterly: serving {url} ({jobs_text(concurrency)} at a time, {queue_size} more may wait); "
        "Ctrl-C stops",
        flush=True,
    )

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
        with contextlib.redirect_stdout(io.StringIO()):  # Gradio's "Closing server ..." line
            app.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
