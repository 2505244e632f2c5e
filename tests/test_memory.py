"""The memory estimate, the automatic tile choice, and refusing a run that cannot fit."""

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

import painterly
from painterly import engine, imaging, options
from painterly.errors import ResourceError
from painterly.optim import optimise as optimize
from painterly.runtime import device_memory, memory

GiB = 1024**3
O = options.DEFAULTS.replace(iterations=(2,))


def _lbfgs_history(o, iterations: int):
    """(bytes per pixel value per remembered pair, pairs remembered) of torch's L-BFGS as
    optimize.optimise sets it up, after `iterations` steps on a small, ill-conditioned quadratic
    (one that no step solves, so every step's pair is kept)."""
    made = []

    class Spy(torch.optim.LBFGS):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    scale = torch.logspace(0, 3, 3 * 8 * 8).view(1, 3, 8, 8)

    class Quadratic:
        def parts(self, x):
            return {"loss": (scale * (x - 0.5) ** 2).sum()}

        def total(self, parts):
            return parts["loss"]

        def summary(self, parts, total):
            return {"total": float(total.detach())}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(optimize.torch.optim, "LBFGS", Spy)
        optimize.optimise(Quadratic(), torch.zeros(1, 3, 8, 8), o, iterations, lambda losses, x: None)
    state = made[-1].state[made[-1]._params[0]]
    kept = state.get("old_dirs", [])
    stored = sum(t.numel() * t.element_size() for t in kept + state.get("old_stps", []))
    return (stored / (len(kept) * 3 * 8 * 8) if kept else 0.0), len(kept)


def test_estimate_grows_with_pixels_history_and_shrinks_with_tiles():
    est = [memory.estimate_peak_bytes(O.replace(size=s), s, s) for s in (256, 512, 1024, 2048)]
    assert est == sorted(est) and est[-1] - est[-2] > 3 * (est[1] - est[0])
    # about 1.1 GiB at 512 px (the issue's measurement), within the model's margin
    assert 0.9 * GiB < memory.estimate_peak_bytes(O.replace(size=512), 512, 384) < 1.5 * GiB
    # The history's share: what the optimiser really keeps, counted on torch's L-BFGS state after
    # a short run of each kind (the model was fitted with the one pair of a 2-step run).
    per_value, pairs = _lbfgs_history(O.replace(lbfgs_history=100), 500), _lbfgs_history(O, 2)[1]
    for history, iterations in ((100, 500), (5, 500), (100, 4)):
        o = O.replace(size=2048, lbfgs_history=history, iterations=(iterations,))
        kept = _lbfgs_history(o, iterations)[1]
        assert kept == min(history, iterations - 1)  # the state a 2048 px run would hold, counted
        extra = memory.estimate_peak_bytes(o, 2048, 2048) - memory.estimate_peak_bytes(
            O.replace(size=2048), 2048, 2048
        )
        assert extra == pytest.approx(
            memory.SAFETY * per_value[0] * 3 * 2048 * 2048 * (kept - pairs), rel=1e-6
        )
    tiled = [
        memory.estimate_peak_bytes(O.replace(size=4096), 4096, 4096, tile=t) for t in (0, 2048, 1024, 512)
    ]
    assert tiled == sorted(tiled, reverse=True)
    assert tiled[0] > 24 * GiB > tiled[1]  # 4096 px fits a 24 GiB machine only when tiled


def test_plan_untiled_when_it_fits_else_the_largest_tile_that_fits():
    o = O.replace(size=4096)
    need = {
        t: memory.estimate_peak_bytes(o, 4096, 4096, style_sizes=[(10, 10)], tile=t) for t in (0, 2048, 1024)
    }
    assert memory.plan(o, "transfer", (100, 100), [(10, 10)], available=need[0]) == 0
    assert memory.plan(o, "transfer", (100, 100), [(10, 10)], available=need[0] - 1) == 2048
    assert memory.plan(o, "transfer", (100, 100), [(10, 10)], available=need[1024]) == 1024
    assert memory.plan(o.replace(tile=1024), "transfer", (100, 100), [(10, 10)], available=need[1024]) == 1024


def test_refusal_names_the_largest_size_that_fits():
    o = O.replace(size=4096, iterations=(500,))
    avail = 20 * GiB
    with pytest.raises(ResourceError) as e:
        memory.plan(o, "transfer", (400, 300), [(10, 10)], available=avail)
    msg = str(e.value)
    assert "\n" not in msg and "4096x3072 run needs about" in msg and "20.0 GiB is available" in msg
    assert "--lbfgs-history" in msg
    best = int(msg.rsplit("--size ", 1)[1])

    def fits(side):
        w, h = imaging.long_side_size((400, 300), side)
        opts = o.replace(size=side)
        return any(
            memory.estimate_peak_bytes(opts, w, h, style_sizes=[(10, 10)], tile=t) <= avail
            for t in (0,) + tuple(t for t in memory.TILE_CANDIDATES if t < side)
        )

    assert 256 < best < 4096 and fits(best) and not fits(best + 1)
    hist = int(msg.split("--lbfgs-history ")[1].split()[0])
    assert memory.plan(o.replace(lbfgs_history=hist), "transfer", (400, 300), [(10, 10)], available=avail) > 0


def test_run_refuses_before_loading_anything(small, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 100 * 1024**2)
    monkeypatch.setattr(engine, "get_vgg", lambda *a, **k: pytest.fail("the network was loaded"))
    with pytest.raises(ResourceError, match="needs about .* GiB but 0.1 GiB is available"):
        painterly.run_transfer(small["content"], small["style"], weights="random", size=64)


def test_run_tiles_automatically_when_that_makes_it_fit(small, monkeypatch):
    kw = dict(
        weights="random",
        size=64,
        iterations=(1,),
        device="cpu",
        precision="fp32",
        style_layers=("conv1_1", "conv2_1"),
        content_layers=("conv2_2",),
    )
    o = options.DEFAULTS.replace(**kw)
    monkeypatch.setattr(memory, "TILE_CANDIDATES", (32,))
    untiled = memory.estimate_peak_bytes(o, 64, 51, style_sizes=[(36, 36)])
    tiled = memory.estimate_peak_bytes(o, 64, 51, style_sizes=[(36, 36)], tile=32)
    assert tiled < untiled
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": (tiled + untiled) // 2)
    from painterly.objective import tiling

    calls = []
    orig = tiling.TiledObjective.pass1
    monkeypatch.setattr(
        tiling.TiledObjective,
        "pass1",
        lambda self, *a, **k: calls.append(self.tiler.tile) or orig(self, *a, **k),
    )
    res = painterly.run_transfer(small["content"], small["style"], **kw)
    assert calls and set(calls) == {32} and res.iterations == 1


# --- on a GPU --------------------------------------------------------------------------------------
@pytest.fixture
def fake_cuda(monkeypatch):
    """torch sees one CUDA device (80 GiB) with `free` bytes free and `reserved` - `allocated`
    bytes held by this process's caching allocator; the host has `host` bytes."""
    gpu = {"free": 8 * GiB, "reserved": 0, "allocated": 0, "host": 1024 * GiB}
    props = type("Props", (), {"total_memory": 80 * GiB, "name": "Fake GPU", "major": 9, "minor": 0})()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (gpu["free"], 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: gpu["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: gpu["allocated"])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(memory, "_host_bytes", lambda: gpu["host"])
    return gpu


def test_a_gpu_counts_its_free_memory_and_the_blocks_this_process_keeps(fake_cuda):
    fake_cuda.update(free=3 * GiB, reserved=5 * GiB, allocated=4 * GiB)
    assert memory.available_bytes(torch.device("cuda")) == 4 * GiB  # free + cached, not the host's
    assert memory.available_bytes("cpu") == 1024 * GiB


def test_mps_counts_its_recommended_working_set(monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 12 * GiB, raising=False)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 2 * GiB, raising=False)
    monkeypatch.setattr(memory, "_host_bytes", lambda: 64 * GiB)
    assert memory.available_bytes(torch.device("mps")) == 10 * GiB
    monkeypatch.delattr(torch.mps, "recommended_max_memory")  # an older torch: the shared host memory
    assert memory.available_bytes(torch.device("mps")) == 64 * GiB


def test_the_plan_uses_the_memory_of_the_device_that_runs(fake_cuda):
    """A small GPU on a large host is tiled (the host's memory would let it run whole and fail on
    the GPU); a large GPU on a small host is not (the host's would tile or refuse it)."""
    o, cuda = O.replace(size=4096), torch.device("cuda")

    def need(t, device):
        return memory.estimate_peak_bytes(o, 4096, 4096, style_sizes=[(10, 10)], tile=t, device=device)

    assert need(2048, cuda) < need(0, cuda) and need(0, cuda) != need(0, "cpu")
    fake_cuda.update(free=(need(2048, cuda) + need(0, cuda)) // 2)
    plan = memory.assess(o, "transfer", (100, 100), [(10, 10)], device=cuda)
    assert plan.tile == 2048 and plan.need == need(2048, cuda) and plan.device == "cuda"
    assert memory.plan(o, "transfer", (100, 100), [(10, 10)], device="cpu") == 0  # the host would not tile
    fake_cuda.update(free=200 * GiB, host=2 * GiB)
    assert memory.plan(o, "transfer", (100, 100), [(10, 10)], device=cuda) == 0
    with pytest.raises(ResourceError, match="GiB is available; "):
        memory.plan(o, "transfer", (100, 100), [(10, 10)], device="cpu")
    fake_cuda.update(free=GiB // 4)
    with pytest.raises(ResourceError, match="but 0.2 GiB is available on cuda; "):
        memory.plan(o, "transfer", (100, 100), [(10, 10)], device=cuda)


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_the_engine_plans_for_its_own_device(small, fake_cuda, monkeypatch, device):
    """Stylizer.run checks the memory of the device it resolved (--device auto: the GPU)."""
    kw = dict(weights="random", size=4096, iterations=(2,), device=device)
    o = options.DEFAULTS.replace(**kw)
    style_wh = imaging.load_image(small["style"]).size
    w, h = imaging.long_side_size(imaging.load_image(small["content"]).size, 4096)
    cuda = torch.device("cuda")
    whole, tiled = (
        memory.estimate_peak_bytes(o, w, h, style_sizes=[style_wh], tile=t, device=cuda) for t in (0, 2048)
    )
    fake_cuda.update(free=(whole + tiled) // 2)
    seen = []
    monkeypatch.setattr(engine, "read_inputs", lambda *a: seen.append(_read_inputs(*a)) or seen[-1])
    monkeypatch.setattr(engine, "get_vgg", lambda *a, **k: pytest.fail("planned"))
    with pytest.raises(pytest.fail.Exception, match="planned"):
        painterly.run_transfer(small["content"], small["style"], **kw)
    assert seen[0].tile == 2048  # the host's 1 TiB would have run it whole


_read_inputs = engine.read_inputs


def test_the_terminal_note_names_the_gpu(small, fake_cuda):
    from painterly.cli import terminal

    fake_cuda.update(free=10 * GiB)
    o = options.DEFAULTS.replace(weights="random", size=2000, iterations=(2,), device="auto")
    note = terminal.memory_note(o, "transfer", small["content"], [small["style"]])
    assert "of GPU memory (cuda:0)" in note and "(10.0 GiB available" in note
    assert terminal.memory_note(o.replace(device="cpu"), "transfer", small["content"], [small["style"]]) == ""
    fake_cuda.update(host=10 * GiB)  # the host's memory for --device cpu
    cpu = terminal.memory_note(o.replace(device="cpu"), "transfer", small["content"], [small["style"]])
    assert "GiB of memory (10.0 GiB available" in cpu


class _LiveTensors(TorchDispatchMode):
    """The peak bytes of the tensor storages alive among those made under the mode: the
    memory a run's tensors take, which on a GPU is the device memory it needs."""

    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self.seen = WeakIdKeyDictionary()

    def _free(self, n):
        self.now -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st not in self.seen:
                    self.seen[st] = n = st.nbytes()
                    self.now += n
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(st, self._free, n)
        return out


@pytest.mark.parametrize(
    "extra",
    [{"iterations": (12,)}, {"style_loss": "sliced"}, {"content_mask": "half"}, {"optimizer": "adam"}],
    ids=["default", "sliced", "masks", "adam"],
)
def test_the_gpu_estimate_covers_the_tensors_a_run_allocates(small, extra):
    """On a GPU the estimate is the run's tensors (runtime/device_memory.py), not the CPU's
    resident-set fit: checked against the tensors a CPU run allocates (the same ones a GPU run
    does, cuDNN's workspace aside), counted by a dispatch mode. Measured (2027-01, 128-384 px):
    the estimate's tensors are 1.1-1.45x what the runs allocate."""
    import numpy as np
    from PIL import Image

    kw = dict(
        weights="random", size=128, iterations=(3,), device="cpu", precision="fp32", content_ceiling=0.0
    )
    kw.update(extra)
    if kw.get("content_mask") == "half":
        labels = np.zeros((32, 40), np.uint8)
        labels[:, 20:] = 1
        Image.fromarray(labels).save(small["dir"] / "m.png")
        kw["content_mask"] = str(small["dir"] / "m.png")
    o = options.DEFAULTS.replace(**kw)
    stylizer = engine.Stylizer(o).prepare()  # the weights are counted apart
    with _LiveTensors() as live:
        res = stylizer.run(small["content"], small["style"], options=o)
    w, h = res.image.size
    est = memory.estimate_peak_bytes(
        o,
        w,
        h,
        style_sizes=[imaging.load_image(small["style"]).size],
        n_regions=2 if o.content_mask else 0,
        device="cuda",
    )
    layers = list(o.content_layers) + list(o.style_layers)
    tensors = est / device_memory.SAFETY - device_memory.BASE - device_memory.weights_bytes(layers, 4)
    assert live.peak <= tensors <= 1.6 * live.peak, (live.peak / 2**20, tensors / 2**20)
    # the CPU's estimate holds the interpreter and torch (memory.BASE); the GPU's does not
    assert memory.estimate_peak_bytes(o, w, h) > memory.BASE > est - device_memory.BASE


@pytest.mark.slow
@pytest.mark.parametrize(
    "size, tile, extra",
    [
        (512, 0, {}),
        (1024, 512, {}),
        (512, 0, {"preset": "neighbour", "iterations": [1, 1, 1, 2]}),
        # the plain formula (recipes from before --fused-cosine) keeps autograd's copies: more memory
        (512, 0, {"preset": "neighbour", "iterations": [1, 1, 1, 2], "fused_cosine": False}),
    ],
    ids=["gatys", "gatys-tiled", "neighbour", "neighbour-plain"],
)
def test_estimate_is_close_to_the_measured_peak(size, tile, extra):
    o = options.options_from(O, extra).replace(size=size, precision="bf16")
    m = memory.measure(size, tile=tile, precision="bf16", **extra)
    w, h = m["size"]
    est = memory.estimate_peak_bytes(o, w, h, style_sizes=[(300, 300)], tile=tile)
    # The estimate must never be below the peak (a run it lets through must fit) and not far
    # above it. Tiled runs are estimated more conservatively: measured 2026-12-01 (VmHWM of the
    # run's own process), 1024 px with --tile 512 peaked at 1.14 GiB against 1.66 estimated.
    assert m["peak"] <= est <= (1.45 if not tile else 1.6) * m["peak"], (m["peak"] / GiB, est / GiB)
    # with freed memory kept (the CLI's way) the heap fragments; the kept estimate covers it
    kept = memory.measure(size, tile=tile, precision="bf16", keep=True, **extra)
    kept_est = memory.estimate_peak_bytes(o, w, h, style_sizes=[(300, 300)], tile=tile, kept=True)
    assert kept["peak"] <= kept_est, (kept["peak"] / GiB, kept_est / GiB)


_REFAULT = r"""
import json, os, resource, sys
import torch
from painterly.runtime import memory
from painterly.options import DEFAULTS
from painterly.runtime import allocator
kept = allocator.keep_freed_memory()
if sys.argv[1:] == ["big"]:  # a run estimated at half the free memory: glibc's default again
    memory.plan(DEFAULTS, "transfer", (64, 64), [(64, 64)], available=2 * memory.estimate_peak_bytes(
        DEFAULTS, 64, 64))
    kept = allocator._keep["on"]
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def heap():
    return sum(int(b, 16) - int(a, 16) for a, b in (l.split()[0].split("-") for l in open("/proc/self/maps")
                                                   if l.rstrip().endswith("[heap]")))
heap0 = heap()
torch.ones(16, 1024, 1024).sum()  # 64 MiB: glibc's own mmap unless told otherwise
before = faults()
for _ in range(32):
    x = torch.ones(16, 1024, 1024)
    del x
print(json.dumps({"kept": kept, "faults": faults() - before, "heap_growth": heap() - heap0}))
"""


@pytest.mark.skipif(  # platform: glibc (Linux) only
    not __import__("sys").platform.startswith("linux"), reason="glibc's malloc"
)
@pytest.mark.parametrize("opt_out", [False, True, "big"])
def test_freed_memory_is_reused_not_faulted_in_again(opt_out):
    """keep_freed_memory (called by the CLI, batch workers and Ray actors): a freed 64 MiB tensor's
    pages serve the next one, where glibc's default unmaps them and the kernel faults in (and
    zeroes) all 16384 pages again on each of 32 allocations; PAINTERLY_RETURN_MEMORY=1
    keeps glibc's default, and so does a run estimated above allocator.KEEP_SHARE of the free memory."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("PAINTERLY_RETURN_MEMORY", None)
    if opt_out is True:
        env["PAINTERLY_RETURN_MEMORY"] = "1"
    args = [sys.executable, "-c", _REFAULT] + (["big"] if opt_out == "big" else [])
    out = json.loads(
        subprocess.run(args, env=env, capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    block = 64 * 1024 * 1024
    pages = 32 * block // 4096
    if opt_out:  # each block its own mapping, faulted in afresh
        assert out["kept"] is False and out["heap_growth"] < block and out["faults"] > 0.9 * pages
    else:  # blocks in the heap; a few new pages when the 64-byte alignment leaves a hole just
        # too small for the next block and the heap grows instead (measured: 1 to 5 of the 32 blocks)
        assert out["kept"] is True and out["heap_growth"] >= block and out["faults"] < 0.4 * pages
