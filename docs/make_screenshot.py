"""Make docs/web.png: the web page after a run of its example pair, on the real network.

Serves the page on a free loopback port with the default weights ("original"), opens it in
Debian's Chromium through Playwright (the `test` extra; `apt-get install chromium`), clicks the
example pair (the bundled Tuebingen and Starry Night), presses Start, waits for the run to
finish and takes a full-page screenshot at a desktop's width. A small run: 192 px, 30 + 20
steps, about a minute on 2 cores.

    PYTHONPATH=src .venv/bin/python docs/make_screenshot.py            # writes docs/web.png
    PYTHONPATH=src .venv/bin/python docs/make_screenshot.py -o /tmp/web.png
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No sandbox (containers), and nothing that phones home.
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
TIMEOUT_MS = 600_000
SIZE, ITERATIONS = 192, (30, 20)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_text(page, selector: str, pattern: str) -> None:
    page.wait_for_function(
        "([s, p]) => new RegExp(p).test((document.querySelector(s) || {}).innerText || '')",
        arg=[selector, pattern],
        timeout=TIMEOUT_MS,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "web.png"))
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from painterly import DEFAULTS, web

    app = web.build_app(
        concurrency=1, queue_size=4, options=DEFAULTS.replace(size=SIZE, iterations=ITERATIONS)
    )
    url = web.launch(app, "127.0.0.1", free_port(), block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(url, timeout=TIMEOUT_MS)
            page.locator("#examples").get_by_text(re.compile("tubingen")).first.click()
            wait_text(page, "#upload-message", r"Content: .*✓(.|\n)*Style: .*✓")
            page.click("#start")
            wait_text(page, "#status", "Finished")
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)  # let the result's image settle before the picture
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.output, full_page=True)
            browser.close()
    finally:
        app.painterly.jobs.cancel_all()
        app.close()
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
