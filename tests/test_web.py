"""The web page (painterly.web): uploads, options, the job queue, the served app and a
real browser.

Needs the [web] extra (Gradio); the browser tests also need Playwright and Debian's
Chromium (/usr/bin/chromium, or $CHROMIUM). Without them those tests are skipped with the
reason -- except under CI (CI=true), where a missing browser is a failure. Every server
here binds a free loopback port and uses a seeded random VGG-19 at a tiny size; nothing
reaches the network.
"""

import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ci import require, skip_or_fail

gr = require("gradio", "the web page needs the web extra: pip install 'painterly[web]'")

from painterly import (
    DEFAULTS,
    options,  # noqa: E402
    read_recipe,
    web,
)
from painterly.errors import ImageError, InvalidOption, PainterlyError  # noqa: E402
from painterly.web import look

# Gradio's queue trips pandas deprecation warnings; they are Gradio's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

ROOT = Path(__file__).resolve().parents[1]
# The README's docs/web.png is refreshed only on request (PAINTERLY_SCREENSHOT=docs/web.png), so a
# test run leaves the checkout clean; by default the screenshot goes to pytest's temporary folder.
SCREENSHOT = Path(os.environ["PAINTERLY_SCREENSHOT"]) if os.environ.get("PAINTERLY_SCREENSHOT") else None
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags Chromium needs here: no sandbox (containers), and nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
PAGE_TIMEOUT_MS = 120_000  # generous: CI machines may be slow and busy; never a timing assertion


# --- helpers -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(**kwargs):
    """A launched app on a free loopback port with a random VGG-19: (app, url)."""
    kwargs.setdefault("weights", "random")
    app = web.build_app(**kwargs)
    url = web.launch(app, "127.0.0.1", free_port(), block=False, quiet=True)
    return app, url


def http_get(url: str):
    """(status, body) of a GET, without raising for 4xx/5xx."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, data):
    req = urllib.request.Request(
        url, data=json.dumps(data).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upload(root: Path, src: Path, name: str = None) -> Path:
    """Place a file in the app's upload folder as Gradio would (tests of check_upload)."""
    folder = Path(__import__("tempfile").mkdtemp(dir=root))
    dst = folder / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory, content_path, style_path, style2_path):
    """Good inputs (the shared photographs when present) and bad ones, by name."""
    d = tmp_path_factory.mktemp("web-files")
    good = Image.open(content_path)
    good.convert("RGB").resize((64, 48)).save(d / "small.png")
    data = (d / "small.png").read_bytes()
    (d / "broken.png").write_bytes(data[: len(data) // 2])  # truncated
    (d / "notes.png").write_text("this is not an image\n")
    Image.new("RGB", (2000, 1200), (200, 30, 30)).save(d / "huge.png")  # 2.4 MP, a few kB
    noise = np.random.RandomState(0).randint(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "heavy.png")  # ~1.5 MB, 0.49 MP
    return {
        "content": Path(content_path),
        "style": Path(style_path),
        "style2": Path(style2_path),
        "small": d / "small.png",
        "broken": d / "broken.png",
        "notes": d / "notes.png",
        "huge": d / "huge.png",
        "heavy": d / "heavy.png",
    }


# --- controls, derived from options.SPECS ------------------------------------------------------
def test_the_controls_are_the_web_options_of_the_option_table():
    from painterly.web import controls

    web_options = [name for name, spec in options.SPECS.items() if spec.web]
    assert set(web.CONTROLS) == set(web_options) | {"ratio"} and len(web.CONTROLS) == len(web_options) + 1
    for name in web_options:
        spec = options.SPECS[name]
        info = controls.info(name)
        # The info line is the option's help, in the page's words (labels, not flags).
        assert info and "--" not in info, (name, info)
        expected = controls.page_words(spec.help)
        if name in controls.PAGE_CHOICES:
            expected = re.sub(r"(?i)\s*\|\s*PATH\b|comma-separated ", "", expected)
        assert info.lower().startswith(expected.lower()), (name, info)
        if spec.choices is not None:
            assert controls.choices(name) is spec.choices, name
    # The page offers only these starting images: never a path on the server.
    assert controls.choices("init") is options.INITS and "PATH" not in controls.info("init")
    assert controls.choices("style_layers") is options.LAYERS
    assert controls.label("tv_weight") == "TV weight" and controls.label("style_scale") == "Style scale"


def test_controls_round_trip_the_defaults_and_presets():
    for name in options.PRESETS:
        o = DEFAULTS.replace(**options.PRESETS[name].overrides)
        back = web.options_from_controls(web.control_values(o), o)
        # Everything but beta comes back exactly; beta to the slider's 0.01 decade (see below).
        assert back.replace(style_weight=o.style_weight) == o
        assert back.style_weight == pytest.approx(o.style_weight, rel=0.025)
    # A beta that is a power of ten survives the slider exactly.
    o = DEFAULTS.replace(style_weight=1e4)
    assert web.options_from_controls(web.control_values(o), o) == o


def test_the_iterations_box_shows_the_whole_schedule():
    values = web.control_values(DEFAULTS)
    assert DEFAULTS.iterations == (60, 40)
    assert values["iterations"] == "60, 40"  # not the last count alone
    assert (
        web.schedule_text(values, DEFAULTS)
        == "Runs 60 steps at 256 px, then 40 steps at 512 px: 100 steps in all."
    )
    o = web.options_from_controls(dict(values, iterations="30"), DEFAULTS)
    assert o.iterations == (30,) and options.schedule(o) == [(512, 30)]
    assert web.schedule_text(dict(values, iterations="30"), DEFAULTS) == "Runs 30 steps at 512 px."
    o = web.options_from_controls(dict(values, iterations="20 10", scales="128, 256"), DEFAULTS)
    assert options.schedule(o) == [(128, 20), (256, 10)]
    o = web.options_from_controls(dict(values, scales="auto", size=1024), DEFAULTS)
    assert o.scales == (256, 512, 1024)
    assert "Iterations 5000 is more than this page allows (2000)" in web.schedule_text(
        dict(values, iterations="5000"), DEFAULTS
    )


def test_the_deep_split_is_a_control_of_the_page():
    # issue 41: the faster finest scale is reachable from every surface, the page included.
    from painterly.web.controls import WEB_OPTIONS

    assert "deep_split" in WEB_OPTIONS
    values = web.control_values(DEFAULTS)
    assert values["deep_split"] == "none"
    o = web.options_from_controls(dict(values, deep_split="relu3_1"), DEFAULTS)
    assert o.deep_split == "relu3_1" and o.replace(deep_split="none") == DEFAULTS
    assert web.options_from_controls(web.control_values(o), o) == o


def test_the_preset_starts_on_the_options_it_matches():
    assert web.preset_of(DEFAULTS) == "fast" == list(options.PRESETS)[0]
    for name in options.PRESETS:
        assert web.preset_of(DEFAULTS.replace(**options.PRESETS[name].overrides)) == name
    from painterly.web.controls import preset_options

    base = DEFAULTS.replace(size=96, iterations=(40,))
    quality = preset_options("quality", base)
    assert quality.iterations == options.PRESETS["quality"].overrides["iterations"] and quality.size == 96
    assert preset_options("fast", quality).iterations == DEFAULTS.iterations


def test_an_untouched_ratio_slider_keeps_the_default_beta():
    back = web.options_from_controls(web.control_values(DEFAULTS), DEFAULTS)
    assert back.style_weight == DEFAULTS.style_weight


def test_ratio_slider_is_log10_alpha_over_beta():
    values = web.control_values(DEFAULTS)
    # The slider shows log10(alpha/beta) to two decimals.
    assert values["ratio"] == pytest.approx(
        np.log10(DEFAULTS.content_weight / DEFAULTS.style_weight), abs=0.005
    )
    assert values["ratio"] == round(values["ratio"], 2)
    o = web.options_from_controls(dict(values, ratio=-2), DEFAULTS)
    assert o.content_weight / o.style_weight == pytest.approx(1e-2)
    o = web.options_from_controls(dict(values, ratio=-5), DEFAULTS)
    assert o.content_weight / o.style_weight == pytest.approx(1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"preserve_color": "sepia"}, "unknown Preserve colour 'sepia'"),
        ({"size": 99999}, "Size 99999 is more than this page allows (1024)"),
        ({"size": 8}, "Size must be within 16..8192, got 8"),
        ({"iterations": "2.5"}, "Iterations: expected a whole number"),
        ({"iterations": ""}, "Iterations needs 1 to 1 values"),
        ({"seed": float("nan")}, "Seed: expected a finite number"),
        ({"tv_weight": -1}, "TV weight must be within 0..1e+30, got -1"),
        ({"style_blend": "1, 2"}, "Style blend has 2 weights for 1 style images"),
        ({"scales": "64, x"}, "Scales: expected a number, got 'x'"),
        ({"content_layers": ["conv9_9"]}, "unknown content layer 'conv9_9'"),
        ({"init": "/etc/passwd"}, "unknown Initial image '/etc/passwd'"),  # never read from the server
        ({"ratio": 40}, "is outside -12..12"),
    ],
)
def test_controls_refuse_values_no_control_produces(change, message):
    values = dict(web.control_values(DEFAULTS), **change)
    with pytest.raises(InvalidOption) as e:
        web.options_from_controls(values, DEFAULTS, n_styles=1)
    assert message in str(e.value) and "--" not in str(e.value)


def test_is_loopback():
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert web.is_loopback(host), host
        assert web.host_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org", ""):
        assert not web.is_loopback(host), host
    assert "other machines" in web.host_warning("0.0.0.0")


def test_check_upload_refuses_bad_files_with_their_own_name(files):
    root = web.temp_root()
    img, name = web.check_upload(upload(root, files["small"]), "content image", root=root)
    assert (img.size, img.mode, name) == ((64, 48), "RGB", "small.png")
    cases = {"broken": "truncated", "notes": "not an image", "huge": "exceeds the limit of 2,000,000 pixels"}
    for key, reason in cases.items():
        path = upload(root, files[key])
        with pytest.raises(ImageError) as e:
            web.check_upload(path, "style image", root=root, max_pixels=2_000_000)
        text = str(e.value)
        assert f"'{path.name}'" in text and reason in text and "\n" not in text
        assert str(path.parent) not in text  # never the server's path
    with pytest.raises(ImageError, match=r"'heavy.png' is 1.4 MB; the limit is 1.0 MB"):
        web.check_upload(upload(root, files["heavy"]), "style image", root=root, max_bytes=1 << 20)
    # Anything outside the app's temporary directory is not an upload, image or not.
    with pytest.raises(ImageError, match="not a file uploaded to this page"):
        web.check_upload(files["small"], root=root)
    outside = files["small"].resolve()
    traversal = str(root) + "/" + os.path.relpath(outside, root)  # root/../../…/small.png
    link = Path(tempfile.mkdtemp(dir=root)) / "link.png"
    link.symlink_to(outside)
    for sneaky in (traversal, link):
        with pytest.raises(ImageError, match="not a file uploaded to this page"):
            web.check_upload(sneaky, root=root)
    with pytest.raises(ImageError, match="no content image"):
        web.check_upload(None, "content image", root=root)


def test_messages_never_show_a_server_path():
    cases = {
        "cannot write /tmp/painterly-web-x1/results-2/job-3/photo-stylised.png: disk full": "cannot write photo-stylised.png: disk full",
        "weights '/home/alice/models/vgg19.pth' do not load": "weights 'vgg19.pth' do not load",
        r"cannot read C:\Users\alice\Pictures\a.png": "cannot read a.png",
        "Step 3 / 40 at 1/2 size, 10^3/5, http://127.0.0.1:7860/x": "Step 3 / 40 at 1/2 size, 10^3/5, http://127.0.0.1:7860/x",
    }
    for text, shown in cases.items():
        assert web.scrub(text) == shown
    assert (
        look.error_text("FileNotFoundError: [Errno 2] No such file: '/srv/app/cache/x.png'")
        == r"**Error:** FileNotFoundError: \[Errno 2\] No such file: 'x.png'"
    )
    # Flags of the page's controls become their labels.
    assert "Size" in look.error_text("--size must be within 16..8192") and "--size" not in look.error_text(
        "--size"
    )


def test_a_result_names_the_server_weights_file_by_its_name_only(files):
    from painterly.web import runs as page

    content = Image.open(files["small"]).convert("RGB")
    job = web.Job(
        content,
        [content],
        DEFAULTS.replace(weights="random", size=32, iterations=(2,), device="cpu", precision="fp32"),
        names=("my photo.png", ["art.png"]),
    )
    job.run()
    secret = "/srv/secret-folder/vgg19-mine.pth"
    job.options = job.options.replace(weights=secret)  # as if the server had been started with that file
    job.result.recipe["options"]["weights"] = secret
    settings = type("S", (), {"outputs": Path(tempfile.mkdtemp(dir=web.temp_root()))})()
    text, image, download, command = page.final_update(job, settings)
    assert (
        text.startswith("**Finished:**") and "--weights vgg19-mine.pth" in command and "secret" not in command
    )
    saved = Path(download["value"])
    assert saved.name == "my photo-stylised.png"
    recipe = read_recipe(saved)
    assert recipe["options"]["weights"] == "vgg19-mine.pth" and "secret" not in json.dumps(recipe)


def test_a_download_reruns_with_its_inputs_beside_it(files, tmp_path, capsys):
    """The page's PNG names the uploads by their names and pixel hashes: `painterly rerun` finds
    them next to the download (as for a command's output) and paints the same picture."""
    from painterly.cli import main as cli
    from painterly.web import runs as page
    from painterly.web.uploads import check_upload

    root = web.temp_root()
    content, name = check_upload(upload(root, files["small"], "my photo.png"), root=root)
    style, style_name = check_upload(upload(root, files["style"], "art.jpg"), root=root)
    job = web.Job(
        content,
        [style],
        DEFAULTS.replace(weights="random", size=32, iterations=(2,), device="cpu", precision="fp32", seed=3),
        names=(name, [style_name]),
    )
    job.run()
    settings = type("S", (), {"outputs": Path(tempfile.mkdtemp(dir=root))})()
    _, _, download, _ = page.final_update(job, settings)
    recipe = read_recipe(download["value"])
    assert recipe["content"]["path"] == "my photo.png" and recipe["styles"][0]["path"] == "art.jpg"
    folder = tmp_path / "downloads"
    folder.mkdir()
    shutil.copyfile(download["value"], folder / "download.png")
    shutil.copyfile(files["small"], folder / "my photo.png")
    shutil.copyfile(files["style"], folder / "art.jpg")
    capsys.readouterr()
    assert (
        cli.main(["rerun", str(folder / "download.png"), "-o", str(tmp_path / "again.png"), "--quiet"]) == 0
    ), capsys.readouterr().err
    with Image.open(tmp_path / "again.png") as again, Image.open(folder / "download.png") as first:
        assert again.size == first.size
        assert np.abs(np.asarray(again, np.int16) - np.asarray(first, np.int16)).max() <= 2
    (folder / "art.jpg").unlink()  # without an input: one line that says where it looked
    assert cli.main(["rerun", str(folder / "download.png"), "-o", str(tmp_path / "x.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'art.jpg'" in err and "was not found" in err and err.count("\n") == 1


def test_refuse_remote_files_finds_urls_in_file_arguments():
    names_url = web.RefuseRemoteFiles._names_url
    assert names_url(
        {"data": [{"path": "http://169.254.169.254/x.png", "meta": {"_type": "gradio.FileData"}}]}
    )
    assert names_url({"data": [None, [{"path": " https://example.org/a.jpg"}]]})
    assert names_url({"data": [{"path": "file:///etc/passwd"}]})
    assert not names_url(
        {"data": [{"path": "/tmp/x/a.png", "url": "http://127.0.0.1:7860/gradio_api/file=a"}]}
    )
    assert not names_url({"data": ["http://example.org is just text", 3, None]})


def _asgi(middleware, scope, body=b"", response=()):
    """Run `middleware` around an app that records what it got and answers `response` (messages)."""
    import asyncio

    got, sent = {}, []

    async def app(scope, receive, send):
        got["scope"], got["body"] = scope, (await receive()).get("body", b"")
        for message in response:
            await send(message)

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(app)(scope, receive, send))
    return got, sent


def test_hide_server_paths_in_both_directions():
    root = "/tmp/painterly-web-abc123"
    hide = lambda app: web.HideServerPaths(app, root=Path(root))  # noqa: E731
    # Requests: the alias in the URL and in JSON bodies becomes the folder again.
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/gradio_api/file={web.ALIAS}/x/a.png",
        "raw_path": f"/gradio_api/file={web.ALIAS}/x/a.png".encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    body = json.dumps({"data": [{"path": f"{web.ALIAS}/x/a.png"}]}).encode()
    got, _ = _asgi(hide, scope, body)
    assert got["scope"]["path"] == f"/gradio_api/file={root}/x/a.png"
    assert json.loads(got["body"])["data"][0]["path"] == f"{root}/x/a.png"
    # Responses: JSON (its length fixed) and event streams name the alias only.
    get = dict(scope, method="GET", headers=[])
    payload = json.dumps(
        {"path": f"{root}/x/a.png", "url": f"http://h/gradio_api/file={root}/x/a.png"}
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
    }
    _, sent = _asgi(hide, get, response=[start, {"type": "http.response.body", "body": payload}])
    out = b"".join(m.get("body", b"") for m in sent)
    assert root.encode() not in out and out.count(web.ALIAS.encode()) == 2
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(out)).encode()
    events = [b"data: " + payload + b"\n\n"] * 2
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/event-stream")],
    }
    _, sent = _asgi(
        hide,
        get,
        response=[start] + [{"type": "http.response.body", "body": e, "more_body": True} for e in events],
    )
    assert len(sent) == 3 and all(root.encode() not in m.get("body", b"") for m in sent)
    assert all(web.ALIAS.encode() in m["body"] for m in sent[1:])
    # Binary files pass untouched.
    png = b"\x89PNG" + root.encode()
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]}
    _, sent = _asgi(hide, get, response=[start, {"type": "http.response.body", "body": png}])
    assert sent[1]["body"] == png


def test_names_are_shown_literally_in_markdown():
    assert look.md_escape("my_*photo*[1].png") == r"my\_\*photo\*\[1\].png"
    assert look.error_text("<img src=x> 'a.png'") == r"**Error:** \<img src=x\> 'a.png'"


def test_local_assets_only_drops_remote_scripts_and_links():
    html = (
        b'<head><link rel="preconnect" href="https://fonts.gstatic.com" crossorigin="anonymous" />'
        b'<script\n src="https://cdnjs.cloudflare.com/x.min.js"\n async></script>'
        b'<script src="./assets/index.js"></script><link rel="stylesheet" href="./assets/a.css">'
        b'<meta property="og:image" content="https://example.org/i.jpg" /></head>'
    )
    out = web.LocalAssetsOnly._REMOTE.sub(b"", html)
    assert b"cdnjs" not in out and b"fonts.gstatic" not in out
    assert b"./assets/index.js" in out and b"./assets/a.css" in out and b"og:image" in out


def test_the_web_package_imports_neither_gradio_nor_the_cli():
    code = (
        "import sys, painterly.web, painterly.web.queue; "
        "print(sorted(m for m in ('gradio', 'painterly.cli.main') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_serve_refuses_bad_limits_in_one_line():
    with pytest.raises(InvalidOption, match="--concurrency must be >= 1, got 0"):
        web.main(concurrency=0)
    with pytest.raises(InvalidOption, match="--queue-size must be >= 0, got -1"):
        web.main(queue_size=-1)
    with pytest.raises(InvalidOption, match="--port must be within 1..65535, got 0"):
        web.main(port=0)
    app = web.build_app(weights="random", concurrency=1, queue_size=0)
    with pytest.raises(InvalidOption, match="--port must be within 1..65535, got 99999"):
        web.launch(app, "127.0.0.1", 99999, block=False, quiet=True)


def test_a_port_in_use_names_the_port_option():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        app = web.build_app(weights="random", concurrency=1, queue_size=0)
        with pytest.raises(PainterlyError) as e:
            web.launch(app, "127.0.0.1", port, block=False, quiet=True)
    text = str(e.value)
    assert f"cannot serve on 127.0.0.1:{port}" in text and "--port" in text and "GRADIO" not in text


# --- the served app (HTTP) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """The browser tests' server: one job at a time, a queue of 4, 96 px, the default schedule."""
    app, url = serve(
        concurrency=1,
        queue_size=4,
        options=DEFAULTS.replace(size=96),
        preview_every=2,
        max_bytes=1 << 20,
        max_pixels=2_000_000,
    )
    yield app, url
    app.painterly.jobs.cancel_all()
    app.close()


def test_analytics_off_and_nothing_outside_the_temp_dir_is_served(server):
    app, url = server
    assert app.analytics_enabled is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    status, _ = http_get(url)
    assert status == 200
    for target in ("/etc/passwd", str(ROOT / "pyproject.toml"), str(Path(web.__file__))):
        for prefix in ("gradio_api/file=", "file="):
            status, body = http_get(url + prefix + target)
            assert status != 200 or (b"root:" not in body and b"[project]" not in body), (prefix, target)


def test_the_page_loads_nothing_from_elsewhere(server):
    _, url = server
    status, body = http_get(url)
    assert status == 200
    remote = re.findall(rb"<(?:script|link)\b[^>]*(?:src|href)=[\"']?(?:https?:)?//[^>]*>", body, re.I)
    assert remote == []


def test_file_arguments_naming_urls_are_refused(server):
    _, url = server
    payload = {
        "data": [{"path": "http://127.0.0.1:9/remote.png", "meta": {"_type": "gradio.FileData"}}],
        "fn_index": 0,
        "session_hash": "test-url",
    }
    for route in ("gradio_api/queue/join", "queue/join", "gradio_api/run/stylise"):
        status, body = http_post_json(url + route, payload)
        assert status == 400 and b"not URLs" in body, route


# --- the load test -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_twenty_clients_against_a_queue_of_four(files, monkeypatch):
    """20 clients submit at once; one runs, four wait, fifteen are told the queue is full.

    The first job is held (inside the server) until every refusal has come back, so the
    outcome does not depend on how fast the machine is; every call has a deadline.
    """
    from gradio_client import Client, handle_file

    held = threading.Event()
    run = web.Job.run

    def held_run(self):
        held.wait(120)
        run(self)

    monkeypatch.setattr(web.Job, "run", held_run)
    app, url = serve(concurrency=1, queue_size=4, options=DEFAULTS.replace(size=32, iterations=(3,)))
    client_kw = {"verbose": False, "download_files": False, "analytics_enabled": False}
    client_kw = {k: v for k, v in client_kw.items() if k in Client.__init__.__code__.co_varnames}
    try:
        values = web.control_values(app.painterly.options)
        args = [handle_file(str(files["small"])), [handle_file(str(files["style"]))]] + [
            values[k] for k in web.CONTROLS
        ]
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            clients = list(pool.map(lambda _: Client(url, **client_kw), range(20)))
            start = threading.Barrier(20, timeout=60)

            def one(client):
                start.wait()
                return client.predict(*args, api_name="/stylise")[0]

            futures = [pool.submit(one, c) for c in clients]
            outcomes, deadline = [], time.monotonic() + 300
            for f in concurrent.futures.as_completed(futures, timeout=300):
                outcomes.append(f.result(timeout=max(1, deadline - time.monotonic())))
                if sum(web.QUEUE_FULL in o for o in outcomes) >= 15:
                    held.set()  # every refusal is in: let the held job (and the queue) run
            held.set()
        finished = [o for o in outcomes if o.startswith("**Finished:**")]
        refused = [o for o in outcomes if web.QUEUE_FULL in o]
        assert len(outcomes) == 20 and len(finished) + len(refused) == 20, outcomes
        assert (len(finished), len(refused)) == (5, 15)
        stats = app.painterly.jobs.stats
        assert stats["peak_running"] == 1 and stats["peak_waiting"] == 4 and stats["refused"] == 15
        # The server still answers, and still runs jobs.
        assert http_get(url)[0] == 200
        assert Client(url, **client_kw).predict(*args, api_name="/stylise")[0].startswith("**Finished:**")
        assert app.painterly.jobs.counts() == (0, 0)
    finally:
        held.set()
        app.painterly.jobs.cancel_all()
        app.close()


# --- the browser ---------------------------------------------------------------------------------------
def _browser_or_skip():
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        reason = "Playwright is not installed (pip install playwright)"
    if reason is None and not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)"
    if reason:
        skip_or_fail(f"browser tests: {reason}")


def test_a_missing_browser_fails_under_ci_and_is_skipped_elsewhere(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI: browser tests"):
        _browser_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _browser_or_skip()


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a phone's CSS pixels (iPhone 12-15)


def open_page(browser, url, viewport=DESKTOP):
    """A fresh page (its own session) at `url`; records any request leaving loopback."""
    phone = viewport["width"] < 700
    context = browser.new_context(viewport=viewport, accept_downloads=True, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.outside = []

    def route(r):
        u = r.request.url
        if u.startswith(("http://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            page.outside.append(u)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_selector("#start")
    return context, page


@pytest.fixture
def page(browser, server):
    context, page = open_page(browser, server[1])
    yield page
    context.close()


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def any_page(request, browser, server):
    """The page at a desktop's width and at a phone's (390 px)."""
    context, page = open_page(browser, server[1], request.param)
    page.width = request.param["width"]
    yield page
    context.close()


def screenshot(page, tmp_path, name, record_property, full_page=True):
    """A screenshot in pytest's temporary folder (never the repository); its path is printed
    (pytest -rA shows it) and recorded as a property of the test (in --junitxml reports)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    record_property(f"screenshot-{name}", str(path))
    return path


def _text(page, selector):
    return page.inner_text(selector)


def _wait_text(page, selector, pattern):
    page.wait_for_function(
        "([s, p]) => new RegExp(p).test((document.querySelector(s) || {}).innerText || '')",
        arg=[selector, pattern],
        timeout=PAGE_TIMEOUT_MS,
    )
    return _text(page, selector)


def _set_text(page, elem_id, value):
    """Type into a text box and commit it."""
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first
    box.fill(str(value))
    box.blur()


def _set_number(page, elem_id, value):
    """Type into a slider's or number's box and commit it."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


RECORD_PREVIEWS = """() => {
  window.__previews = []; window.__statuses = [];
  const grab = () => {
    document.querySelectorAll('#preview img').forEach(i => {
      if (i.src && !window.__previews.includes(i.src)) window.__previews.push(i.src); });
    const s = (document.querySelector('#status') || {}).innerText || '';
    if (s && window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
  };
  new MutationObserver(grab).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     characterData: true});
  grab();
}"""


@pytest.mark.browser
@pytest.mark.parametrize(
    "key, reason",
    [
        ("broken", "image file is truncated"),
        ("notes", "not an image file"),
        ("huge", "the image (2000x1200 = 2,400,000 pixels) exceeds the limit of 2,000,000 pixels"),
    ],
)
def test_a_bad_upload_gets_a_clear_message(page, files, key, reason):
    page.set_input_files("#content-file input[type=file]", str(files[key]))
    text = _wait_text(page, "#upload-message", "Error")
    assert f"content image: cannot load image '{files[key].name}': {reason}" in text, text
    assert page.outside == []


@pytest.mark.browser
def test_a_bad_upload_never_reaches_the_optimiser(page, server, files):
    app, _ = server
    submitted = app.painterly.jobs.stats["submitted"]
    page.set_input_files("#content-file input[type=file]", str(files["small"]))
    page.set_input_files("#style-files input[type=file]", [str(files["style"]), str(files["broken"])])
    text = _wait_text(page, "#upload-message", "Error")
    assert "style image: cannot load image 'broken.png': image file is truncated" in text, text
    page.click("#start")
    text = _wait_text(page, "#status", "Error")
    assert "broken.png" in text and "truncated" in text, text
    # Too many bytes: refused before it is stored (Gradio's upload limit is the page's).
    page.click("#content-file button[aria-label=Clear]")
    page.set_input_files("#content-file input[type=file]", str(files["heavy"]))
    page.get_by_text(re.compile(r"heavy.png")).first.wait_for()
    assert page.get_by_text(re.compile(r"exceed.*maximum allowed size|too large", re.I)).count() >= 1
    assert app.painterly.jobs.stats["submitted"] == submitted
    assert page.outside == []


@pytest.mark.browser
def test_run_watch_download_and_cancel(page, server, files, tmp_path, record_property):
    app, _ = server
    page.set_input_files("#content-file input[type=file]", str(files["content"]))
    _wait_text(page, "#upload-message", re.escape(files["content"].name) + ".*✓")
    page.set_input_files("#style-files input[type=file]", [str(files["style"]), str(files["style2"])])
    _wait_text(page, "#upload-message", re.escape(files["style2"].name) + ".*✓")
    # Some controls: the ratio slider (log10 alpha/beta), a start image, colour preservation.
    _set_number(page, "ratio", -2)
    _set_text(page, "iterations", "40")
    page.get_by_text("More options", exact=True).click()
    page.locator("#init label", has_text="noise").click()
    page.locator("#preserve-color label", has_text=options.PRESERVE_COLOR[1]).click()

    page.evaluate(RECORD_PREVIEWS)
    page.click("#start")
    status = _wait_text(page, "#status", "Finished")
    previews = page.evaluate("window.__previews")
    statuses = page.evaluate("window.__statuses")
    assert len(previews) >= 3, (previews, statuses)  # appeared, then changed at least twice
    progress = [s for s in statuses if re.search(r"Step \d+ / 40 .*losses: content .*style .*left", s)]
    assert len(progress) >= 2, statuses
    assert "40 steps" in status

    command = page.input_value("#command textarea")
    assert command.startswith("painterly transfer "), command
    for part in (
        files["content"].name,
        files["style"].name,
        "--style-weight 100",
        "--init noise",
        f"--preserve-color {options.PRESERVE_COLOR[1]}",
        "--size 96",
        "--iterations 40",
    ):
        assert part in command, (part, command)

    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.suffix == ".png" and saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recipe = read_recipe(saved)
    assert recipe["options"]["size"] == 96 and recipe["options"]["init"] == "noise"
    assert recipe["options"]["style_weight"] == pytest.approx(100.0)
    # The inputs by the names they were uploaded with (no server paths), so `rerun` can find them.
    assert recipe["content"]["path"] == files["content"].name
    assert [s["path"] for s in recipe["styles"]] == [files["style"].name, files["style2"].name]
    with Image.open(saved) as im:
        assert max(im.size) == 96

    page.get_by_text("More options", exact=True).click()  # fold the options again for the picture
    page.evaluate("window.scrollTo(0, 0)")
    if SCREENSHOT:  # the README's picture, on request only
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    screenshot(page, tmp_path, "after-a-run", record_property)

    # A second, long run, cancelled once it is under way.
    _set_text(page, "iterations", 1000)
    page.click("#start")
    _wait_text(page, "#status", r"Step \d+ / 1000")
    page.click("#cancel")
    status = _wait_text(page, "#status", r"Cancelled at step \d+ / 1000")
    step = int(re.search(r"Cancelled at step (\d+) / 1000", status).group(1))
    assert 1 <= step < 1000
    assert app.painterly.jobs.counts() == (0, 0)
    assert page.outside == []  # the page never left loopback


@pytest.mark.browser
def test_closing_the_page_cancels_its_job(page, server, files):
    app, _ = server
    page.set_input_files("#content-file input[type=file]", str(files["small"]))
    page.set_input_files("#style-files input[type=file]", str(files["style"]))
    _wait_text(page, "#upload-message", "Style: .*✓")
    _set_text(page, "iterations", 2000)
    page.click("#start")
    _wait_text(page, "#status", r"Step \d+ / 2000")
    cancelled = app.painterly.jobs.stats["cancelled"]
    page.close()
    deadline = time.monotonic() + 120
    while app.painterly.jobs.counts() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert app.painterly.jobs.counts() == (0, 0)
    assert app.painterly.jobs.stats["cancelled"] == cancelled + 1


def _cancel_state(page):
    return page.evaluate("""() => { const b = document.querySelector('#cancel');
        return {disabled: b.disabled, red: b.classList.contains('stop'), primary: b.classList.contains('primary'),
                colour: getComputedStyle(b).backgroundColor}; }""")


def _server_paths():
    """Paths of this machine that must never reach the browser."""
    return [str(web.temp_root()), str(ROOT), os.getcwd(), str(Path.home()) + "/"]


def _everything_shown(page) -> str:
    """The page's HTML (attributes included: links, image sources) and every field's value."""
    values = page.evaluate("() => Array.from(document.querySelectorAll('input, textarea')).map(e => e.value)")
    return page.content() + "\n".join(values)


@pytest.mark.browser
def test_the_page_as_it_opens(any_page, tmp_path, record_property):
    page = any_page
    # The iterations box shows the schedule the run will do: 60 steps at half size, then 40.
    assert page.input_value("#iterations textarea, #iterations input[type=text]") == "60, 40"
    assert (
        _wait_text(page, "#schedule", "steps in all")
        == "Runs 60 steps at 48 px, then 40 steps at 96 px: 100 steps in all."
    )
    # The preset names the settings shown, and starts on "fast".
    assert page.input_value("#preset input") == "fast" == list(options.PRESETS)[0]
    # Nothing runs: Cancel is neither red nor primary, and cannot be pressed.
    state = _cancel_state(page)
    assert state["disabled"] and not state["red"] and not state["primary"], state
    start = page.evaluate("getComputedStyle(document.querySelector('#start')).backgroundColor")
    assert state["colour"] != start
    # No "Use via API" link.
    assert "via API" not in page.inner_text("body") and page.locator("a[href*='view=api']").count() == 0
    # Nothing sticks out sideways; on a phone the columns stack and the preview spans the width.
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.width
    box = page.locator("#preview").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.width
    controls = page.locator("#size").bounding_box()
    if page.width < 700:
        assert box["y"] > controls["y"] and box["width"] > 0.75 * page.width
    else:
        assert box["x"] > controls["x"] + controls["width"]  # side by side
    screenshot(page, tmp_path, f"opened-{page.width}px", record_property)
    # A preset sets the controls, the iterations box included, and the line below it follows.
    page.locator("#preset input").click()
    page.get_by_role("option", name="quality").click()
    quality = options.PRESETS["quality"].overrides["iterations"]
    _wait_text(page, "#schedule", f"{sum(quality)} steps in all")
    assert page.input_value("#iterations textarea, #iterations input[type=text]") == ", ".join(
        map(str, quality)
    )
    assert page.outside == []


@pytest.mark.browser
def test_a_run_shows_what_it_does(any_page, server, files, tmp_path, record_property):
    page = any_page
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.set_input_files("#content-file input[type=file]", str(files["small"]))
    page.set_input_files("#style-files input[type=file]", str(files["style"]))
    _wait_text(page, "#upload-message", "Style: .*✓")
    # The box takes one count per scale; the line below it says what that runs.
    _set_text(page, "iterations", "6, 4")
    _wait_text(page, "#schedule", "10 steps in all")
    assert page.inner_text("#schedule") == "Runs 6 steps at 48 px, then 4 steps at 96 px: 10 steps in all."
    page.evaluate(RECORD_PREVIEWS)
    page.click("#start")
    status = _wait_text(page, "#status", "Finished")
    assert "Finished: 10 steps" in status, status
    totals = {int(t) for t in re.findall(r"Step \d+ / (\d+)", " ".join(page.evaluate("window.__statuses")))}
    assert totals == {10}
    assert "--iterations 6,4" in page.input_value("#command textarea")

    # A long run: Cancel turns red and live while it runs, and the preview is on screen.
    _set_text(page, "iterations", "400, 300")
    _wait_text(page, "#schedule", "700 steps in all")
    page.click("#start")
    _wait_text(page, "#status", r"Step \d+ / 700")
    page.wait_for_function("() => document.querySelector('#preview img')")
    state = _cancel_state(page)
    assert not state["disabled"] and state["red"], state
    box = page.locator("#preview").bounding_box()
    height = page.viewport_size["height"]
    visible = min(box["y"] + box["height"], height) - max(box["y"], 0)
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.width
    assert visible >= 0.5 * box["height"], (box, height)  # at least half of it, without scrolling
    screenshot(page, tmp_path, f"running-{page.width}px", record_property, full_page=False)
    page.click("#cancel")
    _wait_text(page, "#status", r"Cancelled at step \d+ / 700")
    page.wait_for_function("() => document.querySelector('#cancel').disabled")
    state = _cancel_state(page)
    assert state["disabled"] and not state["red"], state

    # No path of the server anywhere: text, links, image sources, fields, or what the server sent.
    shown = _everything_shown(page)
    for path in _server_paths():
        assert path not in shown, path
    assert web.ALIAS in shown  # the files are there, under the alias
    for r in responses:
        kind = r.headers.get("content-type", "")
        if kind.startswith(("application/json", "text/html")):
            try:
                body = r.body().decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 -- a body the browser no longer holds
                continue
            for path in _server_paths():
                assert path not in body, (r.url, path)
    screenshot(page, tmp_path, f"cancelled-{page.width}px", record_property)
    assert page.outside == []


@pytest.mark.browser
def test_an_error_shows_no_server_path(page, server, files, tmp_path, record_property):
    page.set_input_files("#content-file input[type=file]", str(files["broken"]))
    text = _wait_text(page, "#upload-message", "Error")
    assert "broken.png" in text
    page.set_input_files("#style-files input[type=file]", str(files["style"]))
    page.click("#start")
    text = _wait_text(page, "#status", "Error")
    assert "broken.png" in text and "truncated" in text, text
    shown = _everything_shown(page)
    for path in _server_paths():
        assert path not in shown, path
    screenshot(page, tmp_path, "error", record_property)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--port", "99999"], "painterly: error: --port must be within 1..65535, got 99999"),
        (["--concurrency", "0"], "painterly: error: --concurrency must be >= 1, got 0"),
        (["--queue-size", "-1"], "painterly: error: --queue-size must be >= 0, got -1"),
    ],
)
def test_painterly_serve_refuses_bad_values_in_one_line(argv, line, capsys):
    from painterly.cli import main as cli

    assert cli.main(["serve"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [line]


def _copy_shot(path: Path) -> None:
    """A copy of a screenshot where a person can look at it (PAINTERLY_SHOTS, e.g. /tmp/shots)."""
    if os.environ.get("PAINTERLY_SHOTS"):
        Path(os.environ["PAINTERLY_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["PAINTERLY_SHOTS"]) / path.name)


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 1000}, PHONE], ids=["desktop", "phone"])
def test_a_first_visit_title_inputs_example_and_before_after(
    browser, server, viewport, tmp_path, record_property
):
    """The page is painterly's; Start is on screen at 1280x1000; each input is one box that
    shows its picture (letterboxed), and each input's line stays; a preset leaves Size alone;
    a Size beyond the page's range is said in words; the example fills both inputs, and a
    finished run shows a before/after comparison."""
    context, page = open_page(browser, server[1], viewport)
    try:
        width = viewport["width"]
        assert page.title() == "painterly" and page.inner_text("h1") == "painterly"
        if width >= 1280:
            start = page.locator("#start").bounding_box()
            assert start["y"] + start["height"] <= viewport["height"], start  # above the fold
        # The example pair fills both inputs and shows them, as an upload would.
        page.locator("#examples").get_by_text(re.compile("tubingen")).first.click()
        message = _wait_text(page, "#upload-message", r"Content: .*✓(.|\n)*Style: .*✓")
        assert "tubingen.jpg" in message and "starry_night.jpg" in message
        # One box per input: the picture lies inside the upload box, letterboxed.
        _copy_shot(screenshot(page, tmp_path, f"example-{width}px", record_property, full_page=False))
        for box_id, view in (("content-file", "#content-view img"), ("style-files", "#style-view img")):
            page.locator(view).first.wait_for()
            outer, inner = (
                page.locator(f"#{box_id}").bounding_box(),
                page.locator(view.split()[0]).bounding_box(),
            )
            assert (
                outer["y"] <= inner["y"] and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1
            )
            assert page.evaluate(f"getComputedStyle(document.querySelector('{view}')).objectFit") == "contain"
        # A new style upload keeps the content's line.
        page.locator("#style-files button[aria-label=Clear]").first.click()
        page.set_input_files(
            "#style-files input[type=file]", str(ROOT / "src" / "painterly" / "data" / "starry_night.jpg")
        )
        _wait_text(page, "#upload-message", r"Content: .*tubingen.*✓(.|\n)*Style: .*✓")
        # A preset sets what it sets; Size stays where the user put it.
        _set_number(page, "size", 64)
        page.locator("#preset input").click()
        page.get_by_role("option", name="quality").click()
        _wait_text(page, "#schedule", "200 steps in all")
        assert page.input_value("#size input[type=number]") == "64"
        # Beyond the page's range: words, not a silent clamp.
        _set_number(page, "size", 5000)
        assert (
            _wait_text(page, "#size-note", "5000")
            == "Size 5000 is more than this page allows (1024): it is set to 1024."
        )
        _set_number(page, "size", 48)
        _set_text(page, "iterations", "2")
        _wait_text(page, "#schedule", "Runs 2 steps at 48 px")
        page.click("#start")
        _wait_text(page, "#status", "Finished")
        page.locator("#compare img").first.wait_for()
        assert page.locator("#compare img").count() == 2  # before and after
        shot = screenshot(page, tmp_path, f"first-visit-{width}px", record_property)
        _copy_shot(shot)
        assert page.outside == []
    finally:
        context.close()
