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
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the web page needs the web extra: pip install 'painterly[web]'")

from painterly import DEFAULTS, config, read_recipe, web  # noqa: E402
from painterly.errors import ImageError, InvalidOption  # noqa: E402

# Gradio's queue trips pandas deprecation warnings; they are Gradio's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

ROOT = Path(__file__).resolve().parents[1]
# The README's docs/web.png is refreshed only on request (PAINTERLY_SCREENSHOT=docs/web.png), so a
# test run leaves the checkout clean; by default the screenshot goes to pytest's temporary folder.
SCREENSHOT = Path(os.environ["PAINTERLY_SCREENSHOT"]) if os.environ.get("PAINTERLY_SCREENSHOT") else None
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags Chromium needs here: no sandbox (containers), and nothing that phones home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic"]
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
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
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
    return {"content": Path(content_path), "style": Path(style_path), "style2": Path(style2_path),
            "small": d / "small.png", "broken": d / "broken.png", "notes": d / "notes.png",
            "huge": d / "huge.png", "heavy": d / "heavy.png"}


# --- pure functions --------------------------------------------------------------------------
def test_is_loopback():
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert web.is_loopback(host), host
        assert web.host_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org", ""):
        assert not web.is_loopback(host), host
    assert "other machines" in web.host_warning("0.0.0.0")


def test_controls_round_trip_the_defaults_and_presets():
    for name in config.PRESETS:
        o = DEFAULTS.replace(**config.PRESET_OVERRIDES[name])
        back = web.options_from_controls(web.control_values(o), o)
        # Everything but beta comes back exactly; beta to the slider's 0.01 decade (see below).
        assert back.replace(style_weight=o.style_weight) == o
        assert back.style_weight == pytest.approx(o.style_weight, rel=0.025)
    # A beta that is a power of ten survives the slider exactly.
    o = DEFAULTS.replace(style_weight=1e4)
    assert web.options_from_controls(web.control_values(o), o) == o
    # Every choice a control offers comes from config.
    assert web.CHOICES["preserve_color"] is config.PRESERVE_COLOR
    assert web.CHOICES["style_loss"] is config.STYLE_LOSSES


def test_an_untouched_ratio_slider_keeps_the_default_beta():
    back = web.options_from_controls(web.control_values(DEFAULTS), DEFAULTS)
    assert back.style_weight == DEFAULTS.style_weight


def test_ratio_slider_is_log10_alpha_over_beta():
    values = web.control_values(DEFAULTS)
    # The slider shows log10(alpha/beta) to two decimals.
    assert values["ratio"] == pytest.approx(np.log10(DEFAULTS.content_weight / DEFAULTS.style_weight), abs=0.005)
    assert values["ratio"] == round(values["ratio"], 2)
    o = web.options_from_controls(dict(values, ratio=-2), DEFAULTS)
    assert o.content_weight / o.style_weight == pytest.approx(1e-2)
    o = web.options_from_controls(dict(values, ratio=-5), DEFAULTS)
    assert o.content_weight / o.style_weight == pytest.approx(1e-5)


@pytest.mark.parametrize("change, message", [
    ({"preserve_color": "sepia"}, "preserve color"),
    ({"size": 99999}, "size"),
    ({"iterations": 0}, "iterations"),
    ({"iterations": 2.5}, "whole number"),
    ({"seed": float("nan")}, "finite"),
    ({"style_blend": "1, 2"}, "style blend has 2 weights for 1"),
    ({"scales": "64, x"}, "scales"),
    ({"content_layers": ["conv9_9"]}, "unknown layer"),
])
def test_controls_refuse_values_no_control_produces(change, message):
    values = dict(web.control_values(DEFAULTS), **change)
    with pytest.raises(InvalidOption, match=re.escape(message)):
        web.options_from_controls(values, DEFAULTS, n_styles=1)


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
    link = Path(__import__("tempfile").mkdtemp(dir=root)) / "link.png"
    link.symlink_to(outside)
    for sneaky in (traversal, link):
        with pytest.raises(ImageError, match="not a file uploaded to this page"):
            web.check_upload(sneaky, root=root)
    with pytest.raises(ImageError, match="no content image"):
        web.check_upload(None, "content image", root=root)


def test_refuse_remote_files_finds_urls_in_file_arguments():
    names_url = web.RefuseRemoteFiles._names_url
    assert names_url({"data": [{"path": "http://169.254.169.254/x.png", "meta": {"_type": "gradio.FileData"}}]})
    assert names_url({"data": [None, [{"path": " https://example.org/a.jpg"}]]})
    assert names_url({"data": [{"path": "file:///etc/passwd"}]})
    assert not names_url({"data": [{"path": "/tmp/x/a.png", "url": "http://127.0.0.1:7860/gradio_api/file=a"}]})
    assert not names_url({"data": ["http://example.org is just text", 3, None]})


def test_names_are_shown_literally_in_markdown():
    assert web._md("my_*photo*[1].png") == r"my\_\*photo\*\[1\].png"
    assert web._error("<img src=x> 'a.png'") == r"**Error:** \<img src=x\> 'a.png'"


def test_local_assets_only_drops_remote_scripts_and_links():
    html = (b'<head><link rel="preconnect" href="https://fonts.gstatic.com" crossorigin="anonymous" />'
            b'<script\n src="https://cdnjs.cloudflare.com/x.min.js"\n async></script>'
            b'<script src="./assets/index.js"></script><link rel="stylesheet" href="./assets/a.css">'
            b'<meta property="og:image" content="https://example.org/i.jpg" /></head>')
    out = web.LocalAssetsOnly._REMOTE.sub(b"", html)
    assert b"cdnjs" not in out and b"fonts.gstatic" not in out
    assert b"./assets/index.js" in out and b"./assets/a.css" in out and b"og:image" in out


# --- the job queue ---------------------------------------------------------------------------
class HeldJob(web.Job):
    """A job whose run() waits for `release` instead of optimising."""

    def __init__(self, session=None):
        super().__init__(None, [], DEFAULTS, session=session)
        self.release = threading.Event()

    def run(self):
        self.release.wait(30)


def test_queue_admits_concurrency_plus_queue_size_and_refuses_the_rest():
    q = web.JobQueue(concurrency=1, queue_size=2)
    jobs = [HeldJob() for _ in range(4)]
    assert [q.submit(j) for j in jobs[:3]] == [None, None, None]
    refusal = q.submit(jobs[3])
    assert refusal.startswith(web.QUEUE_FULL)
    assert [j.state for j in jobs[:3]] == ["running", "waiting", "waiting"]
    assert (q.position(jobs[1]), q.position(jobs[2]), q.counts()) == (1, 2, (1, 2))
    q.cancel(jobs[1])  # a waiting job leaves the queue at once
    assert jobs[1].done.is_set() and q.position(jobs[2]) == 1
    jobs[0].release.set()
    assert jobs[0].done.wait(10) and jobs[2].state in ("running", "done")
    jobs[2].release.set()
    assert jobs[2].done.wait(10)
    assert q.counts() == (0, 0)
    assert q.stats["refused"] == 1 and q.stats["finished"] == 2 and q.stats["cancelled"] == 1
    assert q.stats["peak_running"] == 1 and q.stats["peak_waiting"] == 2


def test_queue_takes_one_job_per_session():
    q = web.JobQueue(concurrency=2, queue_size=2)
    a, b = HeldJob("s1"), HeldJob("s1")
    assert q.submit(a) is None
    assert "already has a job" in q.submit(b)
    assert q.cancel_session("s1") and not q.cancel_session("nobody")
    a.release.set()
    assert a.done.wait(10)
    assert q.submit(b) is None
    b.release.set()
    assert b.done.wait(10)


def test_cancel_stops_within_one_iteration(files):
    content = Image.open(files["small"]).convert("RGB")
    options = DEFAULTS.replace(weights="random", size=32, iterations=(50,), device="cpu", precision="fp32")
    job = web.Job(content, [content], options, preview_every=1)
    callback = job._callback

    def click_cancel_during_step_3(it):  # as if Cancel arrived while step 3 was computed
        if it.step == 3:
            job.cancel()
        callback(it)

    job._callback = click_cancel_during_step_3
    job.run()
    assert job.error is None and job.result.stopped and job.result.iterations == 3


def test_a_cancelled_job_returns_its_image_so_far(files):
    content = Image.open(files["small"]).convert("RGB")
    options = DEFAULTS.replace(weights="random", size=32, iterations=(2000,), device="cpu", precision="fp32")
    q = web.JobQueue(1, 0)
    job = web.Job(content, [content], options, preview_every=1)
    assert q.submit(job) is None
    deadline = time.monotonic() + 120
    while job.snapshot().step < 2 and time.monotonic() < deadline and not job.done.is_set():
        time.sleep(0.01)
    q.cancel(job)
    assert job.done.wait(120)
    assert job.error is None and job.result.stopped and job.result.iterations < 2000
    assert job.result.image.size == (32, 24) and job.snapshot().preview is not None


# --- the served app (HTTP) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """The browser tests' server: one job at a time, a queue of 4, 96 px, 40 iterations."""
    app, url = serve(concurrency=1, queue_size=4, options=DEFAULTS.replace(size=96, iterations=(40,)),
                     preview_every=2, max_bytes=1 << 20, max_pixels=2_000_000)
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
    payload = {"data": [{"path": "http://127.0.0.1:9/remote.png", "meta": {"_type": "gradio.FileData"}}],
               "fn_index": 0, "session_hash": "test-url"}
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
        args = [handle_file(str(files["small"])), [handle_file(str(files["style"]))]] + [values[k] for k in web.CONTROLS]
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
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page (its own session) on the server; records any request leaving loopback."""
    _, url = server
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
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
    yield page
    context.close()


def _text(page, selector):
    return page.inner_text(selector)


def _wait_text(page, selector, pattern):
    page.wait_for_function("([s, p]) => new RegExp(p).test((document.querySelector(s) || {}).innerText || '')",
                           arg=[selector, pattern], timeout=PAGE_TIMEOUT_MS)
    return _text(page, selector)


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
@pytest.mark.parametrize("key, reason", [("broken", "image file is truncated"), ("notes", "not an image file"),
                                         ("huge", "the image (2000x1200 = 2,400,000 pixels) exceeds the limit of 2,000,000 pixels")])
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
def test_run_watch_download_and_cancel(page, server, files, tmp_path):
    app, _ = server
    page.set_input_files("#content-file input[type=file]", str(files["content"]))
    _wait_text(page, "#upload-message", re.escape(files["content"].name) + ".*✓")
    page.set_input_files("#style-files input[type=file]", [str(files["style"]), str(files["style2"])])
    _wait_text(page, "#upload-message", re.escape(files["style2"].name) + ".*✓")
    # Some controls: the ratio slider (log10 alpha/beta), a start image, colour preservation.
    _set_number(page, "ratio", -2)
    page.get_by_text("More options", exact=True).click()
    page.locator("#init label", has_text="noise").click()
    page.locator("#preserve-color label", has_text=config.PRESERVE_COLOR[1]).click()

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
    for part in (files["content"].name, files["style"].name, "--style-weight 100", "--init noise",
                 f"--preserve-color {config.PRESERVE_COLOR[1]}", "--size 96", "--iterations 40"):
        assert part in command, (part, command)

    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.suffix == ".png" and saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recipe = read_recipe(saved)
    assert recipe["options"]["size"] == 96 and recipe["options"]["init"] == "noise"
    assert recipe["options"]["style_weight"] == pytest.approx(100.0)
    assert len(recipe["styles"]) == 2 and recipe["content"]["path"] is None  # no server paths
    with Image.open(saved) as im:
        assert max(im.size) == 96

    page.get_by_text("More options", exact=True).click()  # fold the options again for the picture
    page.evaluate("window.scrollTo(0, 0)")
    shot = SCREENSHOT or Path(tempfile.mkdtemp(prefix="painterly_web_")) / "web.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)

    # A second, long run, cancelled once it is under way.
    _set_number(page, "iterations", 1000)
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
    _set_number(page, "iterations", 2000)
    page.click("#start")
    _wait_text(page, "#status", r"Step \d+ / 2000")
    cancelled = app.painterly.jobs.stats["cancelled"]
    page.close()
    deadline = time.monotonic() + 120
    while app.painterly.jobs.counts() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert app.painterly.jobs.counts() == (0, 0)
    assert app.painterly.jobs.stats["cancelled"] == cancelled + 1
