"""The two demo images of the paper's Figure 2, fetched on demand from Wikimedia Commons.

Their bytes are not pinned (Wikimedia may re-encode thumbnails), so instead of a hash
each download must decode with Pillow before it is moved into the cache.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union
from urllib.parse import unquote, urlsplit

import torch
from PIL import Image

from .errors import NeuralStyleError
from .weights import DEFAULT_TIMEOUT, Progress, _FetchFailed, _one_line, fetch

MAX_BYTES = 64 << 20  # a demo image larger than this is not what we asked for


@dataclass(frozen=True)
class DemoImage:
    role: str  # "content" or "style"
    url: str
    page: str  # the Commons page with author and licence


DEMO_IMAGES: Tuple[DemoImage, DemoImage] = (
    DemoImage(
        role="content",
        url="https://upload.wikimedia.org/wikipedia/commons/0/00/Tuebingen_Neckarfront.jpg",
        page="https://commons.wikimedia.org/wiki/File:Tuebingen_Neckarfront.jpg",
    ),
    DemoImage(
        role="style",
        url="https://upload.wikimedia.org/wikipedia/commons/thumb/e/ea/"
            "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
            "800px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg",
        page="https://commons.wikimedia.org/wiki/File:Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg",
    ),
)

_OWN_IMAGES = "run `neural-style transfer CONTENT STYLE -o out.png` with your own images instead"


def default_cache_dir() -> Path:
    """``torch.hub.get_dir()/neural_style`` (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "neural_style"


def _filename(url: str, role: str) -> str:
    name = unquote(os.path.basename(urlsplit(url).path))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or f"{role}.jpg"


def _decode_error(path: Path) -> Optional[str]:
    """None if `path` decodes as an image, else a short reason."""
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        return _one_line(e, 120) if str(e) else type(e).__name__
    return None


def demo_images(cache_dir: Union[None, str, os.PathLike] = None, urls: Optional[Sequence[str]] = None, *,
                progress: Optional[Progress] = None,
                timeout: float = DEFAULT_TIMEOUT) -> Tuple[Path, Path]:
    """(content_path, style_path) of the demo images, downloaded into the cache if absent.

    cache_dir: default ``torch.hub.get_dir()/neural_style``. urls: (content_url, style_url)
    to fetch instead of the Wikimedia ones; a file is cached under its URL's base name.
    A cached file that no longer decodes is reported, not replaced.
    """
    urls = tuple(urls) if urls is not None else tuple(d.url for d in DEMO_IMAGES)
    if len(urls) != 2:
        raise ValueError("urls must be (content_url, style_url)")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    paths = []
    for role, url in zip(("content", "style"), urls):
        path = folder / _filename(url, role)
        if path.exists():
            reason = _decode_error(path)
            if reason is not None:
                raise NeuralStyleError(f"cached demo image {path} does not decode ({reason}); "
                                       "delete it to download it again")
            paths.append(path)
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise NeuralStyleError(f"cannot create the demo image folder {folder} ({e.strerror or e}); "
                                   + _OWN_IMAGES) from None

        def check(tmp: Path, _digest: str, url=url) -> None:
            reason = _decode_error(tmp)
            if reason is not None:
                raise NeuralStyleError(f"{url} did not return an image ({reason}); nothing was saved; "
                                       + _OWN_IMAGES)

        try:
            fetch(url, path, timeout=timeout, progress=progress, check=check, max_bytes=MAX_BYTES)
        except _FetchFailed as e:
            raise NeuralStyleError(f"could not download the demo {role} image from {url} "
                                   f"({e.args[0]}); " + _OWN_IMAGES) from None
        paths.append(path)
    return paths[0], paths[1]
