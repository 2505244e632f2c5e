"""One prepared check of a GPU machine (about 8 minutes on an H100), printed as a table and
written as JSON:

    python benchmarks/gpu_check.py                                   # CUDA (or --device cuda:1)
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/g.json   # plumbing only

1. env          torch, CUDA, cuDNN, the GPU's name, memory and driver
2. smoke        256 px runs: default, --precision fp32, --preset neighbour, each --style-loss,
                the colour modes, masks, tiling, the pyramid: finished, finite, seconds
3. default-512  the default at 512 px: seconds, seconds per step, peak GPU memory
                (torch.cuda.max_memory_allocated) beside runtime/memory.py's estimate
4. syncs        host-device synchronisations per step (torch.cuda.set_sync_debug_mode("warn"))
5. determinism  the same command in two processes (default and --preset neighbour): the same
                bytes? and the ops torch warned have no deterministic kernel
6. cpu-vs-gpu   CPU fp32 against the device in fp32 and bf16: final losses, PSNR of the images
7. large        a 3072 px run: the tile plan (host and device memory), peak, seconds per step
8. batch        `painterly batch` with one and two workers: images per minute

Everything uses the original weights (the default) and ../shared/images. A section that fails
records its error and the others still run. --quick shrinks every size (32-128 px) and step
count to check the script itself in a minute or two, on any device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import torch  # noqa: E402

import painterly  # noqa: E402
from painterly.net.device import native_bf16  # noqa: E402
from painterly.options import options_from  # noqa: E402
from painterly.runtime import memory  # noqa: E402

IMAGES = HERE.parents[1] / "shared" / "images"  # as benchmarks/common.py finds them
PHOTO, PAINTING, PAINTING2 = (IMAGES / n for n in ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg"))
BATCH_PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "brad_pitt.jpg", "hoovertowernight.jpg")
NONDETERMINISTIC = "does not have a deterministic implementation"
SECTIONS = ("env", "smoke", "default-512", "syncs", "determinism", "cpu-vs-gpu", "large", "batch")


class Check:
    def __init__(self, a):
        self.a, self.quick = a, a.quick
        self.cuda = a.device.startswith("cuda") or (a.device == "auto" and torch.cuda.is_available())
        self.tmp = Path(tempfile.mkdtemp(prefix="painterly-gpu-check-"))
        self.rows: list = []  # (section, case, status, seconds, note)

    def kw(self, **over) -> dict:
        return {"device": self.a.device, "weights": self.a.weights, **over}

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def steps(self, full: tuple, quick: tuple = (2,)) -> tuple:
        return quick if self.quick else full

    def row(self, section, case, status, seconds=None, note=""):
        self.rows.append((section, case, status, seconds, note))

    # --- 1 -----------------------------------------------------------------------------------------
    def env(self) -> dict:
        out = {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": self.a.device,
            "python": sys.version.split()[0],
        }
        if torch.cuda.is_available():
            i = torch.cuda.current_device() if ":" not in self.a.device else int(self.a.device.split(":")[1])
            p = torch.cuda.get_device_properties(i)
            out.update(
                gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=[p.major, p.minor]
            )
            out["bf16_native"] = native_bf16(torch.device("cuda", i))
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                q = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
                out["driver"] = subprocess.run(q, capture_output=True, text=True, timeout=20).stdout.strip()
        self.row(
            "env", out.get("gpu", self.a.device), "ok", None, f"torch {out['torch']}, CUDA {out['cuda']}"
        )
        return out

    # --- 2 -----------------------------------------------------------------------------------------
    def smoke(self) -> dict:
        s = self.size(256, 32)
        mask = self._mask()
        few = self.steps((10, 10))
        cases = {
            "default": {},
            "fp32": dict(precision="fp32"),
            "neighbour": dict(preset="neighbour", iterations=self.steps((10, 10, 5, 5), (1, 1))),
            "mean-std": dict(style_loss="mean-std"),
            "w2": dict(style_loss="w2"),
            "sliced": dict(style_loss="sliced"),
            "luminance": dict(preserve_color="luminance"),
            "histogram": dict(preserve_color="histogram"),
            "recolor": dict(recolor="oklab"),
            "masks": dict(content_mask=str(mask), style_masks=("0", "1")),
            "tiled": dict(size=2 * s, tile=s, iterations=self.steps((5,))),
            "tiled-w2": dict(size=2 * s, tile=s, style_loss="w2", iterations=self.steps((5,))),
            "pyramid": dict(parameterization="pyramid", optimizer="adam"),
        }
        out = {}
        for name, over in cases.items():
            kw = self.kw(**{"size": s, "iterations": few, **over})
            styles = [PAINTING, PAINTING2] if "content_mask" in over else PAINTING
            t = time.perf_counter()
            try:
                r = painterly.run_transfer(PHOTO, styles, **kw)
                total = r.losses.get("total", float("nan"))
                ok = math.isfinite(total) and bool(torch.isfinite(r.pixels).all())
                out[name] = dict(ok=ok, seconds=round(r.seconds, 2), total=total, ran_on=r.recipe["ran_on"])
                self.row("smoke", name, "ok" if ok else "NOT FINITE", r.seconds, f"loss {total:.4g}")
            except Exception as e:
                out[name] = dict(ok=False, error=f"{type(e).__name__}: {e}")
                self.row("smoke", name, "ERROR", time.perf_counter() - t, f"{type(e).__name__}: {e}"[:60])
        return out

    def _mask(self) -> Path:
        path = self.tmp / "mask.png"
        w, h = Image.open(PHOTO).size
        a = np.zeros((h, w), np.uint8)
        a[:, w // 2 :] = 1
        Image.fromarray(a).save(path)
        return path

    # --- 3 -----------------------------------------------------------------------------------------
    def _timed_run(self, **kw) -> tuple:
        """(Result, seconds per step of the last scale, peak device bytes or None)."""
        steps = []
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        r = painterly.run_transfer(
            PHOTO, PAINTING, callback=lambda it: steps.append((it.scale, it.elapsed)), **kw
        )
        last = [e for (k, _), e in steps if k == steps[-1][0][0]] if steps else []
        per = (last[-1] - last[0]) / (len(last) - 1) if len(last) > 1 else None
        peak = torch.cuda.max_memory_allocated() if self.cuda else None
        return r, per, peak

    def _estimate(self, o, w: int, h: int, tile=None) -> int:
        sw, sh = Image.open(PAINTING).size
        return memory.estimate_peak_bytes(o, w, h, job="transfer", style_sizes=[(sw, sh)], tile=tile)

    def default_512(self) -> dict:
        s = self.size(512, 64)
        kw = self.kw(size=s, **({"iterations": self.steps(())} if self.quick else {}))
        r, per, peak = self._timed_run(**kw)
        w, h = r.image.size
        est = self._estimate(r.options, w, h)
        out = dict(seconds=round(r.seconds, 2), per_step=per, peak_bytes=peak, estimate_bytes=est)
        out["peak_over_estimate"] = round(peak / est, 3) if peak else None
        note = f"{per:.3f} s/step" if per else ""
        note += f", peak {peak / 2**30:.2f} GiB, estimate {est / 2**30:.2f} GiB" if peak else ""
        self.row("default-512", f"{w}x{h}", "ok", r.seconds, note)
        return out

    # --- 4 -----------------------------------------------------------------------------------------
    def syncs(self) -> dict:
        if not self.cuda:
            self.row("syncs", "-", "n/a", None, "CUDA only")
            return {"skipped": "not CUDA"}
        counts = []
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                painterly.run_transfer(
                    PHOTO,
                    PAINTING,
                    callback=lambda it: counts.append(sum("synchroniz" in str(w.message) for w in seen)),
                    **self.kw(size=self.size(256, 32), iterations=self.steps((10, 10), (3,))),
                )
            finally:
                torch.cuda.set_sync_debug_mode("default")
        per_step = [b - a for a, b in zip(counts, counts[1:])]
        med = float(np.median(per_step)) if per_step else None
        total = sum("synchroniz" in str(w.message) for w in seen)
        self.row("syncs", "per step", "ok", None, f"median {med}, {total} in the whole run")
        return dict(
            per_step=per_step, median=med, before_first_step=counts[0] if counts else None, total=total
        )

    # --- 5 -----------------------------------------------------------------------------------------
    def _cli(self, args, out: Path, extra_env=None) -> tuple:
        cmd = [sys.executable, "-m", "painterly", *map(str, args), "-o", str(out), "--quiet"]
        env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), **(extra_env or {})}
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.tmp)
        return p, time.perf_counter() - t

    def determinism(self) -> dict:
        s, out = self.size(256, 32), {}
        runs = {
            "default": ["--iterations", ",".join(map(str, self.steps((30, 20))))],
            "neighbour": [
                "--preset",
                "neighbour",
                "--iterations",
                ",".join(map(str, self.steps((20, 20, 10, 10), (1, 1)))),
            ],
        }
        for name, extra in runs.items():
            args = [
                "transfer",
                PHOTO,
                PAINTING,
                "--size",
                s,
                "--device",
                self.a.device,
                "--weights",
                self.a.weights,
            ]
            files, warned, secs = [], set(), 0.0
            for i in range(2):
                dst = self.tmp / f"det-{name}-{i}.png"
                p, t = self._cli(args + extra, dst)
                secs += t
                if p.returncode:
                    raise RuntimeError(f"{name}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                warned |= {l.strip()[:160] for l in p.stderr.splitlines() if NONDETERMINISTIC in l}
                files.append(dst)
            same_file = files[0].read_bytes() == files[1].read_bytes()
            same_pixels = Image.open(files[0]).tobytes() == Image.open(files[1]).tobytes()
            out[name] = dict(
                same_bytes=same_file, same_pixels=same_pixels, nondeterministic_ops=sorted(warned)
            )
            note = f"{len(warned)} nondeterministic-op warnings" if warned else "no nondeterministic op"
            self.row("determinism", name, "same bytes" if same_file else "DIFFER", secs, note)
        return out

    # --- 6 -----------------------------------------------------------------------------------------
    def cpu_vs_gpu(self) -> dict:
        s, it = self.size(256, 32), self.steps((30, 20))
        ref = painterly.run_transfer(
            PHOTO, PAINTING, **self.kw(size=s, iterations=it, device="cpu", precision="fp32")
        )
        out = {"cpu-fp32": dict(total=ref.losses["total"], seconds=round(ref.seconds, 2))}
        self.row("cpu-vs-gpu", "cpu fp32", "ok", ref.seconds, f"loss {ref.losses['total']:.4g}")
        for precision in ("fp32", "bf16"):
            try:
                r = painterly.run_transfer(
                    PHOTO, PAINTING, **self.kw(size=s, iterations=it, precision=precision)
                )
            except Exception as e:  # bf16 refused (no native bf16 off the CPU): say so
                out[precision] = dict(error=f"{type(e).__name__}: {e}")
                self.row("cpu-vs-gpu", f"{self.a.device} {precision}", "ERROR", None, str(e)[:60])
                continue
            mse = float((r.pixels.clamp(0, 1) - ref.pixels.clamp(0, 1)).pow(2).mean())
            psnr = 10 * math.log10(1 / mse) if mse > 0 else float("inf")
            rel = r.losses["total"] / ref.losses["total"] - 1
            out[precision] = dict(
                total=r.losses["total"], rel_total=rel, psnr_db=psnr, seconds=round(r.seconds, 2)
            )
            note = f"loss {r.losses['total']:.4g} ({rel:+.2%} vs CPU), PSNR {psnr:.1f} dB"
            self.row("cpu-vs-gpu", f"{r.recipe['ran_on']['device']} {precision}", "ok", r.seconds, note)
        return out

    # --- 7 -----------------------------------------------------------------------------------------
    def large(self) -> dict:
        s = self.size(3072, 128)
        o = options_from(None, self.kw(size=s, scales=(s,), iterations=(3,)))
        if self.quick:
            o = o.replace(tile=64)
        wh = Image.open(PHOTO).size
        style_whs = [Image.open(PAINTING).size]
        # The plan a run makes itself (inputs.read_inputs: from the host's memory) and the one from
        # the device's free memory; on CUDA the run takes the device's (a tile side, or untiled).
        host_tile = memory.plan(o, "transfer", wh, style_whs)
        device_tile = memory.plan(o, "transfer", wh, style_whs, device="cuda") if self.cuda else None
        if self.cuda:
            o = o.replace(tile=device_tile)
        fields = {k: getattr(o, k) for k in ("size", "scales", "iterations", "tile")}
        try:
            r, per, peak = self._timed_run(**{**self.kw(), **fields})
        finally:
            if self.cuda:
                torch.cuda.empty_cache()
        w, h = r.image.size
        tile = o.tile or host_tile
        est = self._estimate(r.options, w, h, tile=tile or None)
        out = dict(size=[w, h], tile_host_plan=host_tile, tile_device_plan=device_tile, tile_run=tile)
        out.update(per_step=per, peak_bytes=peak, estimate_bytes=est, seconds=round(r.seconds, 2))
        note = f"tile {tile or 'none'} (host plan {host_tile}, device plan {device_tile})"
        note += f", {per:.2f} s/step" if per else ""
        note += f", peak {peak / 2**30:.1f} GiB, estimate {est / 2**30:.1f}" if peak else ""
        self.row("large", f"{w}x{h}", "ok", r.seconds, note)
        return out

    # --- 8 -----------------------------------------------------------------------------------------
    def batch(self) -> dict:
        src = self.tmp / "batch-in"
        src.mkdir(exist_ok=True)
        photos = BATCH_PHOTOS[:2] if self.quick else BATCH_PHOTOS
        for n in photos:
            shutil.copy(IMAGES / n, src / n)
        s, it = self.size(256, 32), ",".join(map(str, self.steps((30, 20))))
        out = {}
        for workers in (1, 2):
            dst = self.tmp / f"batch-{workers}"
            args = ["batch", src, "--style", PAINTING, "--out-dir", dst, "--workers", workers, "--size", s]
            args += ["--iterations", it, "--device", self.a.device, "--weights", self.a.weights, "--quiet"]
            env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
            t = time.perf_counter()
            p = subprocess.run(
                [sys.executable, "-m", "painterly", *map(str, args)], capture_output=True, text=True, env=env
            )
            secs = time.perf_counter() - t
            made = len(list(dst.glob("*.png"))) if dst.exists() else 0
            if p.returncode or made != len(photos):
                raise RuntimeError(
                    f"batch --workers {workers}: exit {p.returncode}, {made} outputs: {p.stderr[-300:]}"
                )
            out[f"workers-{workers}"] = dict(
                seconds=round(secs, 2), images=made, per_minute=round(60 * made / secs, 2)
            )
            self.row("batch", f"--workers {workers}", "ok", secs, f"{60 * made / secs:.1f} images/min")
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    ap.add_argument("--weights", default="original", help="the weights set (default: the original VGG-19)")
    ap.add_argument(
        "--quick", action="store_true", help="tiny sizes and steps: checks the script, not the GPU"
    )
    ap.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gpu_check.json")
    a = ap.parse_args(argv)
    chk = Check(a)
    record: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "sections": {}}
    wanted = a.only.split(",") if a.only else SECTIONS
    t0 = time.perf_counter()
    try:
        for name in wanted:
            t = time.perf_counter()
            try:
                result = getattr(chk, name.replace("-", "_"))()
            except Exception as e:
                result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
                chk.row(name, "-", "ERROR", time.perf_counter() - t, f"{type(e).__name__}: {e}"[:60])
            record["sections"][name] = {**result, "section_seconds": round(time.perf_counter() - t, 1)}
            print(f"... {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(chk.tmp, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    print("| section | case | status | seconds | note |\n|---|---|---|---:|---|")
    for sec, case, status, secs, note in chk.rows:
        print(f"| {sec} | {case} | {status} | {'' if secs is None else f'{secs:.1f}'} | {note} |")
    print(f"\n{record['seconds']:.0f} s in all; written to {a.out}")
    bad = [r for r in chk.rows if r[2] in ("ERROR", "DIFFER", "NOT FINITE")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
