"""The bytes of a fixed set of small runs, to prove that a change of form changes no picture.

    python benchmarks/byte_record.py --out benchmarks/results/bytes.json     # record
    python benchmarks/byte_record.py --check benchmarks/results/bytes.json   # compare
    python benchmarks/byte_record.py --check benchmarks/results/bytes.json --pixels

Every method, style statistic, job, preset, tiling, masks, colour modes, batch and video run
through the `painterly` command at 64-96 px with a few steps on the paper's network; each
output's sha256 is printed in a table and written as JSON: `sha256` of the file's bytes (a
PNG's include its recipe, a text chunk) and `pixels_sha256` of its decoded pixels (mode, size,
then the bytes; for video: every decoded frame's pixels, as `sha256`). `--check` reruns the
same commands and fails (exit 1) on any output whose pixels differ, or whose file bytes differ
unless `--pixels` is given: a change that only adds to the recipe (a new option, `ran_on`)
changes every file and no pixel. A record made before pixels_sha256 existed has only file
hashes; record the older commit's pixels with this script (PYTHONPATH=that tree's src) first.
The hashes hold on one machine and software (CPU kind, torch build): record and check there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
PHOTO, PAINTING, PAINTING2 = (IMAGES / n for n in ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg"))
SMALL = ["--size", "64", "--iterations", "4,3"]

# name -> the arguments of `painterly` after the verb's inputs ({out} is the output path).
RUNS = {
    "default": ["transfer", PHOTO, PAINTING, *SMALL],
    "fp32": ["transfer", PHOTO, PAINTING, *SMALL, "--precision", "fp32"],
    "mean-std": ["transfer", PHOTO, PAINTING, *SMALL, "--style-loss", "mean-std"],
    "w2": ["transfer", PHOTO, PAINTING, *SMALL, "--style-loss", "w2"],
    "sliced": ["transfer", PHOTO, PAINTING, *SMALL, "--style-loss", "sliced"],
    "two-styles": ["transfer", PHOTO, PAINTING, PAINTING2, *SMALL, "--style-blend", "0.7,0.3"],
    "adam-pyramid": [
        "transfer",
        PHOTO,
        PAINTING,
        *SMALL,
        "--optimizer",
        "adam",
        "--parameterization",
        "pyramid",
    ],
    "content-target": ["transfer", PHOTO, PAINTING, *SMALL, "--content-target", "0.3"],
    "ceiling": ["transfer", PHOTO, PAINTING, *SMALL, "--content-ceiling", "0.05"],
    "preset-quality": [
        "transfer",
        PHOTO,
        PAINTING,
        "--preset",
        "quality",
        "--size",
        "64",
        "--iterations",
        "4,3",
    ],
    "preset-paper": ["transfer", PHOTO, PAINTING, "--preset", "paper", "--size", "64", "--iterations", "6"],
    "preset-neighbour": [
        "transfer",
        PHOTO,
        PAINTING,
        "--preset",
        "neighbour",
        "--size",
        "96",
        "--iterations",
        "3,3,2,2",
    ],
    "neighbour-rotations": [
        "transfer",
        PHOTO,
        PAINTING,
        "--preset",
        "neighbour",
        "--size",
        "96",
        "--iterations",
        "2,2,2,2",
        "--rotations",
        "--recolor",
        "oklab",
    ],
    "tiled": ["transfer", PHOTO, PAINTING, "--size", "96", "--iterations", "3", "--tile", "48"],
    "tiled-mean-std": [
        "transfer",
        PHOTO,
        PAINTING,
        "--size",
        "96",
        "--iterations",
        "3",
        "--tile",
        "48",
        "--style-loss",
        "mean-std",
    ],
    "masks": [
        "transfer",
        PHOTO,
        PAINTING,
        PAINTING2,
        *SMALL,
        "--content-mask",
        "{mask}",
        "--style-masks",
        "0,1",
    ],
    "luminance": ["transfer", PHOTO, PAINTING, *SMALL, "--preserve-color", "luminance"],
    "histogram": ["transfer", PHOTO, PAINTING, *SMALL, "--preserve-color", "histogram"],
    "recolor": ["transfer", PHOTO, PAINTING, *SMALL, "--recolor", "oklab-clip"],
    "init-noise": ["transfer", PHOTO, PAINTING, *SMALL, "--init", "noise", "--seed", "3"],
    "content": ["content", PHOTO, "--size", "64", "--iterations", "5"],
    "texture": ["texture", PAINTING, "--size", "64", "--iterations", "5"],
}


def _mask(path: Path) -> None:
    """A label map: the left half region 0, the right half region 1."""
    with Image.open(PHOTO) as im:
        w, h = im.size
    a = np.zeros((h, w), np.uint8)
    a[:, w // 2 :] = 1
    Image.fromarray(a).save(path)


def _clip(path: Path) -> None:
    """Four frames panning across the photo, 64 x 48, as an MP4 (PyAV)."""
    import av

    with Image.open(PHOTO) as im:
        src = np.asarray(im.convert("RGB").resize((96, 72)))
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            f = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(src[8 : 8 + 48, 4 * i : 4 * i + 64]), format="rgb24"
            )
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _sha_image(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha_pixels(path: Path) -> str:
    """sha256 of an image's decoded pixels: its mode and size, then its bytes (no metadata)."""
    with Image.open(path) as im:
        h = hashlib.sha256(f"{im.mode} {im.size[0]}x{im.size[1]}\n".encode())
        h.update(im.tobytes())
    return h.hexdigest()


def _hashes(path: Path) -> dict:
    return {"sha256": _sha_image(path), "pixels_sha256": _sha_pixels(path)}


def _sha_video(path: Path) -> str:
    import av

    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            h.update(frame.to_ndarray(format="rgb24").tobytes())
    return h.hexdigest()


# `painterly ARGS` as this Python runs it: the package on its path (PYTHONPATH may point at another
# tree, e.g. an older commit checked out, to record its bytes), by either layout's module.
RUNNER = """import sys
try:
    from painterly.cli.main import main
except ImportError:  # the flat layout before painterly.cli became a package
    from painterly.cli import main
sys.exit(main(sys.argv[1:]))"""


def _painterly() -> list:
    return [sys.executable, "-c", RUNNER]


def record(only=None) -> dict:
    out: dict = {}
    # A fixed folder: the recipe embedded in each output names its inputs (the mask by its path).
    tmp = Path(tempfile.gettempdir()) / "painterly-byte-record"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        mask, clip = tmp / "mask.png", tmp / "clip.mp4"
        _mask(mask)
        runs = {k: v for k, v in RUNS.items() if not only or k in only}
        for name, args in runs.items():
            dst = tmp / f"{name}.png"
            cmd = _painterly() + [str(a).format(mask=mask) for a in args] + ["-o", str(dst), "--quiet"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=tmp)
            out[name] = {**_hashes(dst), "seconds": round(time.perf_counter() - t, 1)}
            print(f"{name:22s} {out[name]['sha256'][:16]}  {out[name]['seconds']:6.1f} s", flush=True)
        # rerun: the recipe embedded in the default's output regenerates it
        if "default" in runs:
            again = tmp / "rerun.png"
            shutil.copy(PHOTO, tmp / PHOTO.name)
            shutil.copy(PAINTING, tmp / PAINTING.name)
            subprocess.run(
                _painterly() + ["rerun", str(tmp / "default.png"), "-o", str(again), "--quiet"],
                check=True,
                cwd=tmp,
            )
            out["rerun"] = _hashes(again)
            print(f"{'rerun':22s} {out['rerun']['sha256'][:16]}")
        if not only or "batch" in only:
            (tmp / "in").mkdir()
            shutil.copy(PHOTO, tmp / "in" / PHOTO.name)
            shutil.copy(IMAGES / "golden_gate.jpg", tmp / "in" / "golden_gate.jpg")
            subprocess.run(
                _painterly()
                + [
                    "batch",
                    str(tmp / "in"),
                    "--style",
                    str(PAINTING),
                    "--out-dir",
                    str(tmp / "batch"),
                    *SMALL,
                    "--workers",
                    "1",
                    "--quiet",
                ],
                check=True,
                cwd=tmp,
            )
            for p in sorted((tmp / "batch").glob("*.png")):
                out[f"batch/{p.name}"] = _hashes(p)
                print(f"{'batch/' + p.name:22s} {out[f'batch/{p.name}']['sha256'][:16]}")
        if not only or "video" in only:
            _clip(clip)
            dst = tmp / "video.mp4"
            subprocess.run(
                _painterly()
                + [
                    "video",
                    str(clip),
                    str(PAINTING),
                    "-o",
                    str(dst),
                    "--size",
                    "64",
                    "--iterations",
                    "3,2",
                    "--frame-iterations",
                    "2",
                    "--quiet",
                ],
                check=True,
                cwd=tmp,
            )
            out["video"] = {"sha256": _sha_video(dst), "pixels_sha256": _sha_video(dst)}
            print(f"{'video':22s} {out['video']['sha256'][:16]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the record here")
    ap.add_argument("--check", type=Path, help="compare with this record; exit 1 on a difference")
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument(
        "--pixels", action="store_true", help="with --check: compare decoded pixels only, not file bytes"
    )
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    got = record(only)
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpu": _cpu()}
    if a.out:
        a.out.write_text(json.dumps({"env": env, "runs": got}, indent=1) + "\n")
    if a.check:
        want = json.loads(a.check.read_text())["runs"]
        both = [k for k in got if k in want]
        # pixels: compared where the record has them; a record without them compares file bytes
        pixels = [
            k for k in both if want[k].get("pixels_sha256", want[k]["sha256"]) != _pixel_key(got[k], want[k])
        ]
        files = [k for k in both if want[k]["sha256"] != got[k]["sha256"]]
        missing = [k for k in want if k not in got and not only]
        bad = pixels if a.pixels else sorted(set(pixels) | set(files), key=list(got).index)
        print(
            f"{len(both) - len(pixels)} of {len(both)} outputs have the recorded pixels, "
            f"{len(both) - len(files)} the recorded file bytes"
            + (f"; pixels differ: {', '.join(pixels)}" if pixels else "")
            + (f"; file bytes differ: {', '.join(files)}" if files else "")
            + (f"; not run: {', '.join(missing)}" if missing else "")
        )
        return 1 if bad or missing else 0
    return 0


def _pixel_key(got: dict, want: dict) -> str:
    """The hash of `got` to compare with the record's pixels: its pixels' where the record has
    pixel hashes, else (an older record) its file's."""
    return got["pixels_sha256"] if "pixels_sha256" in want else got["sha256"]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + (
                    " (avx512_bf16)" if "avx512_bf16" in Path("/proc/cpuinfo").read_text() else ""
                )
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
