"""Image output: atomic saving (PNG, JPEG) with the recipe embedded, JSON files, and reading
a recipe back.

Every failure the user can fix raises OutputError (or ImageError, reading a recipe) with a
one-line message naming the file; nothing prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
from PIL import Image, PngImagePlugin

from painterly.errors import ImageError, OutputError, reason, shown_path
from painterly.imaging.load import PathLike, check_readable, open_image, srgb_icc, to_pil, to_rgb
from painterly.options import MAX_INPUT_PIXELS

RECIPE_KEY = "painterly"  # PNG text-chunk key holding the recipe JSON
# Keys written by earlier releases (the project was called neural-style): still read by
# read_recipe, so `painterly rerun` regenerates pictures made before the rename.
LEGACY_RECIPE_KEYS = ("neural-style",)
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # output extension -> format
JPEG_QUALITY = 95


# --- saving --------------------------------------------------------------------------------
def save_image(
    img: Union[Image.Image, torch.Tensor],
    path: PathLike,
    recipe: Optional[dict] = None,
    overwrite: bool = True,
) -> Path:
    """Write `img` (PIL image or tensor, see `to_pil`) to `path` as PNG or JPEG, atomically.

    The format follows the extension (.png, .jpg, .jpeg). `recipe` is embedded as JSON
    (PNG text chunk "painterly"; JPEG COM comment). The file is written to a hidden
    temporary file in the same directory, fsynced, then renamed over `path`, so `path` is
    either the old file or the complete new one. Returns `path`. Raises OutputError.
    """
    path = Path(path)
    name = shown_path(path)
    fmt = _output_format(path, name)
    _check_directory(path, name, overwrite)
    if isinstance(img, torch.Tensor):
        img = to_pil(img)
    params = _save_params(img, fmt, recipe, name)
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = to_rgb(img)
    atomic_write(path, name, lambda f: img.save(f, format=fmt, **params), overwrite)
    return path


def check_output(
    path: PathLike,
    kinds: Optional[Tuple[str, ...]] = tuple(FORMATS),
    *,
    inputs=(),
    overwrite_input: bool = False,
    overwrite_readonly: bool = False,
) -> Path:
    """Fail before a run, not after it, when `path` cannot or must not be written.

    kinds: the extensions allowed (None: any). inputs: the run's input files; an output that
    would replace one of them (the same path, or the same file through a link) is refused
    unless overwrite_input. An existing read-only output is refused unless overwrite_readonly.
    """
    if not os.fspath(path):  # Path("") would be the current folder
        raise OutputError("cannot write '': the path is empty")
    path = Path(path)
    name = shown_path(path)
    if path.is_dir():
        raise OutputError(f"cannot write '{name}': it is a folder; name a file in it")
    if kinds is not None and path.suffix.lower() not in kinds:
        ext = f"extension '{path.suffix}'" if path.suffix else "no extension"
        raise OutputError(f"cannot write '{name}': {ext} is not supported (use {', '.join(kinds)})")
    _check_directory(path, name, overwrite=True)
    if not overwrite_input:
        for src in inputs:
            if src is not None and not isinstance(src, Image.Image) and _same_file(path, Path(src)):
                raise OutputError(
                    f"output '{name}' is the input '{shown_path(src)}': it would be overwritten; "
                    "choose another output (or pass --overwrite-input)"
                )
    if path.exists() and not os.access(path, os.W_OK) and not overwrite_readonly:
        raise OutputError(
            f"output '{name}' exists and is read-only; choose another output "
            "(or pass --overwrite to replace it)"
        )
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def write_json(path: PathLike, data: dict) -> Path:
    """Write `data` as indented JSON to `path`, atomically (as save_image)."""
    path = Path(path)
    name = shown_path(path)
    _check_directory(path, name, overwrite=True)
    text = (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8")
    atomic_write(path, name, lambda f: f.write(text), overwrite=True)
    return path


def _output_format(path: Path, name: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        ext = f"extension '{path.suffix}'" if path.suffix else "no extension"
        raise OutputError(f"cannot write '{name}': {ext} is not supported (use {', '.join(FORMATS)})")
    return fmt


def _check_directory(path: Path, name: str, overwrite: bool) -> None:
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"cannot write '{name}': directory '{shown_path(parent)}' does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write '{name}': '{shown_path(parent)}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write '{name}': directory '{shown_path(parent)}' is not writable")
    if path.is_dir():
        raise OutputError(f"cannot write '{name}': it is a directory")
    if not overwrite and path.exists():
        raise OutputError(f"cannot write '{name}': the file exists (overwrite is off)")


def _save_params(img: Image.Image, fmt: str, recipe: Optional[dict], name: str) -> dict:
    """Pillow save() keywords: the recipe as text, JPEG quality, the sRGB profile, no other
    metadata carried over."""
    text = None
    if recipe is not None:
        try:
            text = json.dumps(recipe, sort_keys=True, ensure_ascii=True, default=str)
        except (TypeError, ValueError) as e:
            raise OutputError(
                f"cannot write '{name}': the recipe is not JSON-serialisable ({reason(e)})"
            ) from None
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if text is not None:
            info.add_itxt(RECIPE_KEY, text, zip=True)
        return {"pnginfo": info, "icc_profile": srgb_icc()}
    # An explicit (possibly empty) comment stops Pillow reusing img.info["comment"].
    return {"quality": JPEG_QUALITY, "comment": (text or "").encode("ascii"), "icc_profile": srgb_icc()}


def atomic_write(path: Path, name: str, write, overwrite: bool) -> None:
    """Call write(file) on a hidden temp file next to `path`, fsync it, and rename it in place."""
    mode = _new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write '{name}': {reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _chmod(tmp, mode)
        _commit(tmp, path, name, overwrite)
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OutputError) or not isinstance(e, Exception):  # incl. KeyboardInterrupt
            raise
        raise OutputError(f"cannot write '{name}': {reason(e)}") from None
    _fsync_dir(path.parent)


def _commit(tmp: str, path: Path, name: str, overwrite: bool) -> None:
    """Rename `tmp` to `path`; without overwrite, fail (atomically where possible) if it exists."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic "create if absent"
    except FileExistsError:
        raise OutputError(f"cannot write '{name}': the file exists (overwrite is off)") from None
    except OSError:  # hard links unsupported on this file system
        if path.exists():
            raise OutputError(f"cannot write '{name}': the file exists (overwrite is off)") from None
        os.replace(tmp, path)
        return
    _unlink(tmp)


def _new_file_mode(path: Path) -> int:
    """Permission bits for the result: the existing file's, else 0o666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide, not thread-safe)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod(tmp: str, mode: int) -> None:
    try:
        os.chmod(tmp, mode)  # mkstemp makes 0o600 files
    except OSError:
        pass


def _unlink(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- recipes and names ---------------------------------------------------------------------
def read_recipe(path: PathLike) -> Optional[dict]:
    """The recipe dict embedded by `save_image` in a PNG or JPEG, or None if there is none.

    Reads metadata only (no pixel decoding). Raises ImageError if the file is unreadable
    or not an image, or if its "painterly" PNG chunk (or the "neural-style" chunk written before
    the rename) is not a JSON object.
    """
    path = Path(path)
    name = shown_path(path)
    check_readable(path, name)
    with open_image(path, name, MAX_INPUT_PIXELS) as im:
        key = next((k for k in (RECIPE_KEY,) + LEGACY_RECIPE_KEYS if k in im.info), RECIPE_KEY)
        own = im.info.get(key)  # PNG text chunks before the image data
        text = own if own is not None else im.info.get("comment") if im.format in ("JPEG", "MPO") else None
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        recipe = json.loads(text)
    except ValueError:
        recipe = None
    if isinstance(recipe, dict):
        return recipe
    if own is not None:
        raise ImageError(f"cannot read the recipe in '{name}': the '{key}' chunk is not a JSON object")
    return None  # some other program's JPEG comment


def numbered_path(path: PathLike, step: int) -> Path:
    """The path of intermediate `step` next to `path`: out.png, 12 -> out_0012.png."""
    if int(step) != step or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    path = Path(path)
    return path.with_name(f"{path.stem}_{int(step):04d}{path.suffix}")


def describe(src, img: Image.Image, paths: str = "name") -> dict:
    """How a recipe names input `src` (loaded as `img`): its file name (paths="full": its absolute
    path; none for an image in memory) and the SHA-256 of its pixels, which `rerun` checks."""
    path = None if isinstance(src, Image.Image) else os.path.abspath(src)
    return {
        "path": path if path is None or paths == "full" else os.path.basename(path),
        "size": list(img.size),
        "pixels_sha256": hashlib.sha256(img.tobytes()).hexdigest(),
    }
