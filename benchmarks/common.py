"""Shared pieces of the benchmarks: inputs, the one objective evaluation, one run per process.

Every benchmark evaluates an output image the same way (`evaluate`): the paper's objective
(alpha * L_content + beta * sum_l w_l E_l, the `--preset paper` losses) in fp32, contiguous
layout, at the output's full size, on the saved 8-bit image (what the user gets: clipped to
[0, 1] and quantised), with the network normalised on the run's content and style images at
full size, exactly as `Stylizer.run` does. Outputs of different settings are therefore
compared on one scale, whatever precision, layout or schedule produced them.

Runs go through `run_worker`: one configuration per subprocess, so that its wall time and
its peak resident memory (ru_maxrss of that process) are its own.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from painterly import imaging as images
from painterly import (
    objective,  # noqa: E402
    options,
)
from painterly.engine import Stylizer  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
CONTENT = IMAGES / "tubingen.jpg"
STYLE = IMAGES / "starry_night.jpg"
RESULTS = HERE / "results"


def weights_arg(value: Optional[str]) -> str:
    """--weights NAME|PATH; default: the original VGG-19 (the package's default set)."""
    return value or "original"


def describe_weights(weights: str) -> str:
    if weights == "random":
        return "seeded random VGG-19 (seed 0)"
    return f"weights set {weights}" if weights in ("original", "torchvision") else f"weights file {weights}"


def machine() -> dict:
    """The machine a result belongs to: CPU model, cores, torch, date."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        flags = set(
            next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split()
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()),
        "commit": code_commit(),
    }


def code_commit() -> str:
    """The checkout's commit, with "+changes" when its tracked files differ from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=ROOT, capture_output=True
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "not recorded"
    return rev + ("+changes" if dirty else "")


def paper_options(size: int, weights: str) -> options.Options:
    """The paper's losses (what every output is scored with), fp32, contiguous."""
    return options.DEFAULTS.replace(**options.PRESETS["paper"].overrides).replace(
        size=size, weights=weights, device="cpu", precision="fp32", channels_last=False, compile=False
    )


class Evaluator:
    """The paper objective of an output image, for one (content, style, size, weights)."""

    def __init__(self, size: int, weights: str = "random", content=CONTENT, style=STYLE):
        o = paper_options(size, weights)
        self.o = o
        # The style image at the content's long side, as a run with --style-scale 1 makes it.
        self.objective, c = Stylizer(o).objective(content, style, size, fp32=True)
        self.size = (c.shape[-1], c.shape[-2])

    @torch.no_grad()
    def __call__(self, image) -> dict:
        img = images.load_image(image)
        if img.size != self.size:
            raise ValueError(f"output is {img.size}, expected {self.size}")
        x = images.to_tensor(img)
        parts = self.objective.parts(x)
        total = float(self.objective.total(parts))
        o = self.o
        return {
            "total": total,
            "content": o.content_weight * float(sum(parts["content"].values())),
            "style": o.style_weight
            * float(sum(w * parts["style"][l] for w, l in zip(objective.layer_weights(o), o.style_layers))),
        }


def cli_options(content, style, size: int, args: list):
    """The Options `painterly transfer CONTENT STYLE --size SIZE ARGS` runs with (the CLI's parser)."""
    from painterly import DEFAULTS
    from painterly.cli.main import build_parser

    ns = build_parser().parse_args(
        ["transfer", str(content), str(style), "-o", "x.png", "--size", str(size)] + args
    )
    fields = {*DEFAULTS.__dataclass_fields__, "preset"}
    return options.options_from(None, {k: v for k, v in vars(ns).items() if k in fields and v is not None})


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_main(argv) -> None:
    """python common.py JSON: one run; prints one JSON line (seconds, peak RSS, losses, steps).

    JSON: {"options": {...Options fields...}, "output": PATH, "checkpoints": [steps] (optional,
    renders the iterate at those steps to OUTPUT stem _NNNN.png, not counted in the time)}.
    """
    spec = json.loads(argv[0])
    o = options.Options.from_dict(spec["options"])
    out = Path(spec["output"])
    checkpoints = set(spec.get("checkpoints") or ())
    marks, side = [], {"t": 0.0}
    from painterly import api

    def callback(it):
        if it.step in checkpoints:
            t0 = time.perf_counter()
            it.image().save(out.with_name(f"{out.stem}_{it.step:04d}.png"))
            side["t"] += time.perf_counter() - t0
            marks.append(
                {
                    "step": it.step,
                    "seconds": it.elapsed - side["t"],
                    "size": list(it.size),
                    "optimiser_total": it.losses["total"],
                    "image": str(out.with_name(f"{out.stem}_{it.step:04d}.png")),
                }
            )

    t0 = time.perf_counter()
    res = api.run_transfer(
        spec.get("content", str(CONTENT)),
        spec.get("style", str(STYLE)),
        options=o,
        callback=callback if checkpoints else None,
    )
    seconds = time.perf_counter() - t0 - side["t"]
    res.image.save(out)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "run_seconds": res.seconds - side["t"],
                "iterations": res.iterations,
                "peak_rss_mib": peak_rss_mib(),
                "run_total": res.losses["total"],
                "output": str(out),
                "checkpoints": marks,
            }
        )
    )


def run_worker(
    options: options.Options, output: Path, checkpoints=(), timeout: Optional[float] = None
) -> dict:
    """Run one configuration in a fresh Python process; return its JSON report."""
    spec = {"options": options.to_dict(), "output": str(output), "checkpoints": list(checkpoints)}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, str(HERE / "common.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    worker_main(sys.argv[1:])
