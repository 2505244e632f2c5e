"""The frame cache of a clip: each finished frame kept (with the state that says which run made
it), so a stopped run continues where it stopped and a changed one starts afresh."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List

from painterly.errors import OutputError, reason, shown_path
from painterly.imaging import load_image
from painterly.video.io import (
    PathLike,
)


def frame_cache(output: PathLike) -> Path:
    """The folder of stylised frames of a run writing `output`: OUT.frames next to it."""
    out = Path(output)
    return out.with_name(out.name + ".frames")


STATE = "state.json"


STATE_KIND = "painterly-video-frames"


def _frame_path(cache: Path, i: int) -> Path:
    return cache / f"frame_{i:06d}.png"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _style_key(s) -> str:
    img = load_image(s)
    return hashlib.sha256(img.tobytes()).hexdigest() + f":{img.size}"


def _open_cache(cache: Path, key: str) -> List[dict]:
    """The per-frame records of a matching earlier run (frames 0..k-1 cached), or [] after
    clearing a cache made with other inputs or options. Only our own files are ever removed."""
    state_path = cache / STATE
    if cache.exists():
        if not cache.is_dir():
            raise OutputError(f"cannot use the frame cache '{shown_path(cache)}': it is not a folder")
        state = None
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            pass
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            if any(cache.iterdir()):
                raise OutputError(
                    f"the frame cache folder '{shown_path(cache)}' exists and was not made by "
                    "painterly video; move it away"
                )
            state = None
        if state and state.get("key") == key:
            done = []
            for i, rec in enumerate(state.get("frames", [])):
                if not _frame_path(cache, i).is_file():
                    break
                done.append(rec)
            return done
        _clear_cache(cache)
    else:
        try:
            cache.mkdir()
        except OSError as e:
            raise OutputError(f"cannot create the frame cache '{shown_path(cache)}': {reason(e)}") from None
    return []


def _clear_cache(cache: Path, remove_folder: bool = False) -> None:
    for p in cache.glob("frame_*.png"):
        p.unlink()
    for p in (cache / STATE,):
        if p.exists():
            p.unlink()
    if remove_folder:
        try:
            cache.rmdir()  # only when empty: a file someone else put there stays
        except OSError:
            pass
