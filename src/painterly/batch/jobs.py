"""Batch jobs: the job list from inputs (files, folders, globs), a manifest (CSV or JSON Lines)
or Python pairs; output names; per-job options, checked before anything runs; and the output
folder's log, lock and stale temporary files (see batch/stylize.py)."""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from painterly import methods
from painterly.errors import InvalidOption, OutputError, PainterlyError, choice, user_message
from painterly.options import DEFAULTS, NETWORK_FIELDS, SPECS, Options, flag, options_from

LOG_NAME = "batch.jsonl"
LOCK_NAME = ".painterly-batch.lock"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")


# --- jobs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One (content, style) pair. Paths are absolute; `options` are this job's own overrides."""

    index: int
    content: str
    style: str
    output: str
    options: Tuple[Tuple[str, Any], ...] = ()

    def task(self, attempt: int = 0) -> dict:
        return {
            "index": self.index,
            "content": self.content,
            "style": self.style,
            "output": self.output,
            "options": dict(self.options),
            "attempt": attempt,
        }


@dataclass
class Outcome:
    """How one job ended, as `stylize_many` yields it and batch.jsonl records it.

    status: "ok" (written), "skipped" (an up-to-date output existed) or "failed" (`error` says why).
    """

    content: str
    style: str
    output: str
    status: str
    seconds: float = 0.0
    error: Optional[str] = None
    iterations: Optional[int] = None
    worker: Optional[int] = None
    attempts: int = 1
    peak_rss_mb: Optional[float] = None  # the worker process's peak resident memory so far
    peak_gpu_mb: Optional[float] = None  # its peak allocated GPU memory so far (CUDA only)
    index: int = field(default=-1, repr=False)

    def log_record(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "index" and v is not None}
        d["seconds"] = round(self.seconds, 3)
        return d


def image_files(folder: Path) -> List[Path]:
    """The images directly inside `folder` (by extension), sorted by name."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
    )


def expand_inputs(items: Sequence, what: str = "input", exclude: Optional[Path] = None) -> List[Path]:
    """Files, folders (their images, sorted) and globs -> absolute paths, in order, without repeats.

    Folders and globs leave out anything inside `exclude` (the output folder), so a rerun with
    DIR among the inputs does not take the outputs for inputs. Raises InvalidOption for a name
    that is neither an existing file or folder nor a glob with matches.
    """
    found: List[Path] = []
    ex = Path(exclude).resolve() if exclude else None

    def keep(p: Path) -> bool:
        return ex is None or ex not in p.resolve().parents

    for item in items:
        p = Path(item)
        if p.is_dir():
            files = [f for f in image_files(p) if keep(f)]
            if not files:
                raise InvalidOption(f"{what} folder '{item}' has no images ({', '.join(IMAGE_SUFFIXES)})")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(str(item)):
            files = [
                Path(f)
                for f in sorted(glob.glob(str(item), recursive=True))
                if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_SUFFIXES and keep(Path(f))
            ]
            if not files:
                raise InvalidOption(f"{what} pattern '{item}' matches no image")
        else:
            raise InvalidOption(f"{what} '{item}' does not exist")
        found += [Path(os.path.abspath(f)) for f in files]
    return list(dict.fromkeys(found))


def output_name(content, style) -> str:
    """`{content stem}--{style stem}.png`."""
    return f"{Path(content).stem}--{Path(style).stem}.png"


def cross_jobs(contents: Sequence, styles: Sequence, out_dir) -> List[Job]:
    """Every content x style pair, grouped by style (one style's jobs together)."""
    out = Path(os.path.abspath(out_dir))
    jobs = [(str(c), str(s), str(out / output_name(c, s))) for s in styles for c in contents]
    return [Job(i, c, s, o) for i, (c, s, o) in enumerate(jobs)]


def _option_name(key: str, where: str) -> str:
    name = key.strip().lstrip("-").replace("-", "_")
    names = [f.name for f in dataclasses.fields(Options)]
    if name not in names:
        choice(f"option in {where}", name, names)
    if name in NETWORK_FIELDS:
        raise InvalidOption(
            f"{where}: option '{name}' fixes the network and cannot vary per job; give "
            f"{flag(name)} on the command line for the whole batch"
        )
    return name


def _parse_value(name: str, text: str):
    """A manifest cell (text) -> the option's Python value, as the CLI flag would parse it."""
    spec, default = SPECS[name], getattr(DEFAULTS, name)
    if spec.item is not None:
        if name == "scales" and text.strip() == "auto":
            return "auto"
        try:
            return tuple(spec.item(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise InvalidOption(
                f"{flag(name)}: expected comma-separated {spec.item.__name__} values, got '{text}'"
            ) from None
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise InvalidOption(f"{flag(name)}: expected true or false, got '{text}'")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise InvalidOption(f"{flag(name)}: expected {kind.__name__}, got '{text}'") from None
    return text


def job_options(
    raw: Dict[str, Any], base: Options, where: str, from_text: bool
) -> Tuple[Tuple[str, Any], ...]:
    """Per-job option overrides, checked now (one line naming `where` for a bad one)."""
    given = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        name = _option_name(str(key), where)
        given[name] = _parse_value(name, value) if from_text and isinstance(value, str) else value
    if not given:
        return ()
    try:
        o = options_from(base, given)
        methods.validate(o, "transfer", 1)
    except PainterlyError as e:
        raise InvalidOption(f"{where}: {user_message(e, '')[0]}") from None
    except (TypeError, ValueError) as e:
        raise InvalidOption(f"{where}: {e}") from None
    return tuple((k, getattr(o, k)) for k in sorted(given))


def read_manifest(path, out_dir, base: Options = DEFAULTS) -> List[Job]:
    """Jobs from a CSV (header: content,style[,output][,option...]) or JSON Lines file
    ({"content": ..., "style": ..., "output": ..., "options": {...}} or options as keys).

    Relative content and style paths are relative to the manifest's folder, outputs to
    `out_dir`; an output defaults to `{content stem}--{style stem}.png`. Option columns are
    Options fields or their flags (style_weight or --style-weight); network options
    (NETWORK_FIELDS) cannot vary per job. Raises InvalidOption naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidOption(f"manifest '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidOption(f"cannot read manifest '{path.name}': {e}") from None
    rows: List[Tuple[int, dict, bool]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InvalidOption(f"manifest {path.name} line {n}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InvalidOption(f"manifest {path.name} line {n}: expected a JSON object")
            opts = row.pop("options", None) or {}
            if not isinstance(opts, dict):
                raise InvalidOption(f"manifest {path.name} line {n}: 'options' must be an object")
            rows.append((n, {**row, **opts}, False))
    elif path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if not reader.fieldnames or not {"content", "style"} <= {f.strip() for f in reader.fieldnames}:
            raise InvalidOption(
                f"manifest {path.name}: the first line must name the columns, with content and "
                "style among them"
            )
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise InvalidOption(f"manifest {path.name} line {n}: more cells than columns")
            rows.append((n, {k.strip(): v for k, v in row.items() if k}, True))
    else:
        raise InvalidOption(f"manifest '{path.name}': expected a .csv or .jsonl file")
    here, out = path.resolve().parent, Path(os.path.abspath(out_dir))
    jobs = []
    for n, row, from_text in rows:
        where = f"manifest {path.name} line {n}"
        content, style, output = (row.pop(k, None) for k in ("content", "style", "output"))
        if not content or not style:
            raise InvalidOption(f"{where}: needs a content and a style")
        content, style = (Path(os.path.abspath(here / str(p).strip())) for p in (content, style))
        for p in (content, style):
            if not p.is_file():
                raise InvalidOption(f"{where}: '{p}' does not exist")
        output = str(
            out / (str(output).strip() if output and str(output).strip() else output_name(content, style))
        )
        if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InvalidOption(f"{where}: output '{output}' must end in {', '.join(OUTPUT_SUFFIXES)}")
        jobs.append(
            Job(
                len(jobs),
                str(content),
                str(style),
                os.path.abspath(output),
                job_options(row, base, where, from_text),
            )
        )
    if not jobs:
        raise InvalidOption(f"manifest '{path.name}' lists no jobs")
    return jobs


def check_jobs(jobs: Sequence[Job]) -> None:
    """No two jobs may write one output, and no output may be an input."""
    seen: Dict[str, Job] = {}
    inputs = {os.path.realpath(p) for j in jobs for p in (j.content, j.style)}
    for j in jobs:
        real = os.path.realpath(j.output)
        if real in seen:
            a = seen[real]
            raise InvalidOption(
                f"two jobs would write '{j.output}' ({Path(a.content).name} with "
                f"{Path(a.style).name}, and {Path(j.content).name} with {Path(j.style).name}); "
                "give the inputs different names or use --manifest with outputs"
            )
        if real in inputs:
            raise InvalidOption(f"output '{j.output}' is one of the inputs")
        seen[real] = j


def jobs_from_pairs(pairs: Iterable, out_dir, base: Options) -> List[Job]:
    """The Python API's pairs: (content, style), (content, style, output) or dicts as manifest rows."""
    out, jobs = Path(os.path.abspath(out_dir)), []
    for n, pair in enumerate(pairs):
        where = f"pair {n}"
        opts: dict = {}
        if isinstance(pair, dict):
            pair = dict(pair)
            opts = dict(pair.pop("options", None) or {})
            content, style, output = (pair.pop(k, None) for k in ("content", "style", "output"))
            opts.update(pair)
        elif isinstance(pair, (tuple, list)) and len(pair) in (2, 3):
            content, style, output = (list(pair) + [None])[:3]
        else:
            raise InvalidOption(f"{where}: expected (content, style), (content, style, output) or a dict")
        if content is None or style is None:
            raise InvalidOption(f"{where}: needs a content and a style")
        if not isinstance(content, (str, os.PathLike)) or not isinstance(style, (str, os.PathLike)):
            raise InvalidOption(f"{where}: content and style must be paths (workers read the files)")
        content, style = os.path.abspath(content), os.path.abspath(style)
        output = os.path.abspath(out / (output if output is not None else output_name(content, style)))
        if Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InvalidOption(f"{where}: output '{output}' must end in {', '.join(OUTPUT_SUFFIXES)}")
        jobs.append(Job(n, content, style, output, job_options(opts, base, where, False)))
    return jobs


# --- the log ----------------------------------------------------------------------------------------
class Log:
    """DIR/batch.jsonl, appended one line per job by this process only. A line cut short by a
    kill is removed when the log is opened again."""

    def __init__(self, path: Path):
        self.path = path
        try:
            if path.exists():
                data = path.read_bytes()
                if data and not data.endswith(b"\n"):
                    with open(path, "r+b") as f:
                        f.truncate(data.rfind(b"\n") + 1)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot write the log '{path}': {e.strerror or e}") from None

    def write(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self.fd)


def take_lock(out_dir: Path):
    """An exclusive lock on DIR for this batch (released by the OS when the process ends; the
    lock file is removed by release_lock when the batch ends)."""
    import fcntl

    path = out_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(
                f"another painterly batch is writing to '{out_dir}'; wait for it or use another --out-dir"
            ) from None
        try:  # the file we locked may have been removed by a batch that just ended: lock the new one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def release_lock(out_dir: Path, fd: int) -> None:
    """Remove the lock file (while still holding the lock), then release it."""
    try:
        os.unlink(out_dir / LOCK_NAME)
    except OSError:
        pass
    os.close(fd)


def clean_stale_temps(jobs: Sequence[Job]) -> None:
    """Remove the hidden temp files a killed worker left next to this batch's outputs (each
    output is written to `.NAME.XXXX.tmp`, then renamed: see images._atomic_write)."""
    by_dir: Dict[str, set] = collections.defaultdict(set)
    for j in jobs:
        by_dir[os.path.dirname(j.output)].add(os.path.basename(j.output))
    for d, names in by_dir.items():
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") and e.name.endswith(".tmp"):
                stem = e.name[1:].rsplit(".", 2)[0]
                if stem in names:
                    try:
                        os.unlink(e.path)
                    except OSError:
                        pass
