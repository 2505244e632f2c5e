"""Demo images: fetched into a cache, checked to decode, clear errors offline. No internet."""
from __future__ import annotations

import http.server
import io
import socket
import threading
import time

import pytest
import torch
from PIL import Image

from neural_style import assets
from neural_style.errors import NeuralStyleError

OWN_IMAGES = "neural-style transfer CONTENT STYLE -o out.png"


class Server:
    """A local HTTP server: routes[path] = body; anything else is a 404."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                if self.path not in outer.routes:
                    self.send_error(404, "Not Found")
                    return
                body = outer.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path):
        return self.base + path

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def jpeg(size, color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def server():
    s = Server()
    s.routes["/photo.jpg"] = jpeg((40, 30), (200, 40, 10))
    s.routes["/Van%20Gogh%20-%20Starry.jpg"] = jpeg((20, 25), (10, 20, 200))
    s.routes["/page.jpg"] = b"<html><body>Please log in to the Wi-Fi</body></html>"
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home


def refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_demo_urls_are_the_papers_images_on_wikimedia():
    content, style = assets.DEMO_IMAGES
    assert (content.role, style.role) == ("content", "style")
    assert content.url == "https://upload.wikimedia.org/wikipedia/commons/0/00/Tuebingen_Neckarfront.jpg"
    assert style.url == (
        "https://upload.wikimedia.org/wikipedia/commons/thumb/e/ea/"
        "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
        "800px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg")
    assert all(d.page.startswith("https://commons.wikimedia.org/wiki/File:") for d in assets.DEMO_IMAGES)


def test_default_cache_dir_is_in_torch_hub(torch_home):
    assert assets.default_cache_dir() == torch_home / "hub" / "neural_style"


def test_images_are_downloaded_checked_cached_and_reused_offline(server, torch_home):
    urls = (server.url("/photo.jpg"), server.url("/Van%20Gogh%20-%20Starry.jpg"))
    content, style = assets.demo_images(urls=urls)
    folder = torch_home / "hub" / "neural_style"
    assert content == folder / "photo.jpg"
    assert style == folder / "Van_Gogh_-_Starry.jpg"  # unquoted, then made a safe name
    assert sorted(p.name for p in folder.iterdir()) == ["Van_Gogh_-_Starry.jpg", "photo.jpg"]
    with Image.open(content) as a, Image.open(style) as b:
        assert a.size == (40, 30) and b.size == (20, 25)
        assert a.convert("RGB").getpixel((20, 15))[0] > 150  # the red one is the content
    assert len(server.requests) == 2
    assert all(h.get("User-Agent", "").startswith("neural-style/") for _, h in server.requests)

    server.stop()
    t = time.monotonic()
    assert assets.demo_images(urls=urls) == (content, style)
    assert time.monotonic() - t < 5


def test_explicit_cache_dir(server, tmp_path):
    urls = (server.url("/photo.jpg"), server.url("/Van%20Gogh%20-%20Starry.jpg"))
    content, style = assets.demo_images(cache_dir=tmp_path / "demo", urls=urls)
    assert content.parent == style.parent == tmp_path / "demo"
    assert content.read_bytes() == server.routes["/photo.jpg"]


def test_a_response_that_is_not_an_image_is_refused_and_not_kept(server, tmp_path):
    urls = (server.url("/photo.jpg"), server.url("/page.jpg"))
    with pytest.raises(NeuralStyleError) as e:
        assets.demo_images(cache_dir=tmp_path, urls=urls)
    msg = one_line(e)
    assert msg.startswith(f"{urls[1]} did not return an image (")
    assert "nothing was saved" in msg and OWN_IMAGES in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # the good one stays


def test_http_error(server, tmp_path):
    urls = (server.url("/gone.jpg"), server.url("/photo.jpg"))
    with pytest.raises(NeuralStyleError) as e:
        assets.demo_images(cache_dir=tmp_path, urls=urls)
    msg = one_line(e)
    assert f"could not download the demo content image from {urls[0]} (HTTP 404" in msg
    assert OWN_IMAGES in msg
    assert list(tmp_path.iterdir()) == []


def test_refused_connection_fails_fast_and_says_what_to_do(tmp_path):
    port = refused_port()
    urls = (f"http://127.0.0.1:{port}/a.jpg", f"http://127.0.0.1:{port}/b.jpg")
    t = time.monotonic()
    with pytest.raises(NeuralStyleError) as e:
        assets.demo_images(cache_dir=tmp_path / "c", urls=urls)
    assert time.monotonic() - t < 5
    msg = one_line(e)
    assert urls[0] in msg and "connection refused" in msg and OWN_IMAGES in msg
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []


def test_a_corrupt_cached_image_is_reported_not_replaced(server, tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"garbage")
    urls = (server.url("/photo.jpg"), server.url("/Van%20Gogh%20-%20Starry.jpg"))
    with pytest.raises(NeuralStyleError) as e:
        assets.demo_images(cache_dir=tmp_path, urls=urls)
    msg = one_line(e)
    assert str(tmp_path / "photo.jpg") in msg and "delete it" in msg
    assert (tmp_path / "photo.jpg").read_bytes() == b"garbage"
    assert server.requests == []


def test_urls_must_be_a_pair(tmp_path):
    with pytest.raises(ValueError, match="content_url, style_url"):
        assets.demo_images(cache_dir=tmp_path, urls=("http://127.0.0.1:1/a.jpg",))
