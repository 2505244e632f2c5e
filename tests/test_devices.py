"""GPUs correct by construction, proven on the CPU: a run on the `meta` device (a stand-in for a
GPU, with no data) mixes no CPU tensor into the device's work; the same run as if on Apple's
MPS puts no float64 tensor and no op MPS lacks on the device; no tensor factory in the library
forgets its device; CUDA gets deterministic algorithms and no TF32; --device takes cuda:N
everywhere; the recipe and the report record the device and precision actually used."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import painterly
from painterly import engine, options
from painterly import imaging as images
from painterly.cli import main as cli
from painterly.errors import InvalidOption
from painterly.net import device as devices

aten = torch.ops.aten
PKG = Path(__file__).resolve().parents[1] / "src" / "painterly"

# Ops MPS has no kernel for (or had none in torch 2.1, the oldest the package accepts).
MPS_LACKS = {
    "_linalg_eigh",
    "linalg_eigh",
    "linalg_eigvalsh",
    "linalg_cholesky",
    "linalg_cholesky_ex",
    "linalg_solve_triangular",
    "linalg_inv_ex",
    "upsample_bicubic2d",
}
_COPIES = (aten._to_copy.default, aten.copy_.default)


class OnDevice(TorchDispatchMode):
    """Torch ops as a GPU run would see them, with `meta` as the GPU. Records (in `bad`) every op
    that mixes a CPU tensor with a device tensor (0-dim CPU tensors pass, as torch lets them on
    CUDA); with mps=True also every float64 tensor on the device and every op of MPS_LACKS run
    there. A copy from the device to the host gets made-up values (uniform in [0, 1)), and a
    scalar read from the device reads 0.5 (False for a bool), so a whole run goes through: its
    numbers mean nothing, its shapes, dtypes and devices are those of a real run."""

    def __init__(self, mps: bool = False):
        super().__init__()
        self.mps, self.bad = mps, []
        self.gen = torch.Generator().manual_seed(0)

    def _made_up(self, t: torch.Tensor, dtype) -> torch.Tensor:
        v = torch.rand(t.shape, generator=self.gen)
        return v.to(dtype) if dtype.is_floating_point else (v * 2).to(dtype)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on = [t for t in tensors if t.device.type == "meta"]
        if on and func is aten._local_scalar_dense.default:
            return False if on[0].dtype == torch.bool else (0.5 if on[0].is_floating_point() else 1)
        to = kwargs.get("device")
        if on and func is aten._to_copy.default and to is not None and torch.device(to).type == "cpu":
            return self._made_up(args[0], kwargs.get("dtype") or args[0].dtype)
        if func is aten.copy_.default and args[0].device.type == "cpu" and args[1].device.type == "meta":
            return args[0].copy_(self._made_up(args[1], args[0].dtype))
        stray = [tuple(t.shape) for t in tensors if t.device.type == "cpu" and t.dim() > 0]
        if on and stray and func not in _COPIES:
            self.bad.append(f"{func}: CPU tensors {stray} with device tensors")
        name = func._schema.name.split("::")[-1]
        if self.mps and on and name in MPS_LACKS:
            self.bad.append(f"{func}: not on MPS")
        out = func(*args, **kwargs)
        if self.mps:
            for t in tree_flatten(out)[0] + on:
                if isinstance(t, torch.Tensor) and t.device.type == "meta" and t.dtype == torch.float64:
                    self.bad.append(f"{func}: float64 on the device")
                    break
        return out


@pytest.fixture
def images3(tmp_path, content_path, style_path, style2_path):
    """The content, two styles and a two-region label map (left | right) of the content's size."""
    w, h = Image.open(content_path).size
    a = np.zeros((h, w), np.uint8)
    a[:, w // 2 :] = 1
    Image.fromarray(a).save(tmp_path / "mask.png")
    return content_path, style_path, style2_path, tmp_path / "mask.png"


# Each run covers a part: the objective (each statistic), tiling, the starts, masks, the colour
# steps, the pyramid and the neighbour search (with its re-matching at a second scale).
RUNS = {
    "default": {},
    "fp32-two-scales": dict(precision="fp32", scales=(32, 64), iterations=(1, 1)),
    "mean-std": dict(style_loss="mean-std"),
    "w2": dict(style_loss="w2"),
    "sliced": dict(style_loss="sliced"),
    "tiled": dict(size=96, tile=48),
    "tiled-w2": dict(size=96, tile=48, style_loss="w2"),
    "tiled-sliced": dict(size=96, tile=48, style_loss="sliced"),
    "masks": dict(content_mask="MASK", style_masks=("0", "1")),
    "luminance": dict(preserve_color="luminance"),
    "histogram-chol": dict(preserve_color="histogram", color_match="chol"),
    "pyramid-adam": dict(parameterization="pyramid", optimizer="adam"),
    "noise": dict(init="noise"),
    "style-init": dict(init="style"),
    "recolor": dict(recolor="oklab"),
    "neighbour": dict(preset="neighbour", iterations=(1, 1), rotations=True),
}


def _run_on_meta(monkeypatch, images3, overrides, mps: bool) -> OnDevice:
    c, s, s2, mask = images3
    monkeypatch.setattr(engine, "pick_device", lambda name: torch.device("meta"))
    if mps:  # the device lacks float64 and eigh: every helper of net/device.py treats it as MPS
        monkeypatch.setattr(devices, "NO_FLOAT64", devices.NO_FLOAT64 | {"meta"})
    kw = {**dict(weights="random", size=64, iterations=(2,), device="cpu"), **overrides}
    if kw.get("content_mask") == "MASK":
        kw["content_mask"] = str(mask)
    o = options.options_from(None, kw)
    mode = OnDevice(mps=mps)
    stylizer = engine.Stylizer(o)
    with mode:
        r = stylizer.run(c, [s, s2] if o.content_mask else s, options=o)
    assert r.image.size[0] == o.size or r.image.size[1] == o.size
    return mode


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_on_a_gpu_mixes_no_cpu_tensor_into_the_device_work(monkeypatch, images3, name):
    mode = _run_on_meta(monkeypatch, images3, RUNS[name], mps=False)
    assert mode.bad == [], "\n".join(dict.fromkeys(mode.bad))


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_on_mps_puts_no_float64_and_no_missing_op_on_the_device(monkeypatch, images3, name):
    mode = _run_on_meta(monkeypatch, images3, RUNS[name], mps=True)
    assert mode.bad == [], "\n".join(dict.fromkeys(mode.bad))


def test_the_mode_sees_what_it_should():
    """The checker itself: a stray CPU tensor, float64 and eigh on the device are caught."""
    x = torch.ones(3, 3, device="meta")
    with OnDevice(mps=True) as mode:
        try:
            _ = x + torch.ones(3)
        except RuntimeError:  # torch may refuse the mix itself
            pass
        _ = x.double()
        torch.linalg.eigh(x)
        _ = x + torch.tensor(2.0)  # a 0-dim CPU tensor is a scalar: allowed
    assert len(mode.bad) == 3 and "CPU tensors" in mode.bad[0]


def test_the_host_helpers_keep_the_cpu_path_and_carry_mps_work_to_the_host(monkeypatch):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert devices.wide(x).dtype == torch.float64 and devices.wide_dtype(x.device) == torch.float64
    assert torch.equal(devices.on_host_if_unsupported(torch.mul, x, 2), x * 2)
    monkeypatch.setattr(devices, "NO_FLOAT64", {"mps", "meta"})
    m = torch.ones(4, 4, device="meta")
    with OnDevice(mps=True) as mode:
        assert devices.wide(m).device.type == "cpu" and devices.wide_dtype(m.device) == torch.float32
        back = devices.on_host_if_unsupported(lambda t: t.double() * 2, m)
        up = devices.resize(torch.ones(1, 3, 4, 4, device="meta"), (8, 8), "bicubic", align_corners=False)
    assert back.device.type == "meta" and back.dtype == torch.float32 and up.shape == (1, 3, 8, 8)
    assert mode.bad == []


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (16, 8), (3, 3), (1, 9)])
def test_the_deterministic_bilinear_is_torchs_bilinear(align, size):
    """net.device.resize's CUDA form (two matrix products, whose backward is deterministic) gives
    torch's bilinear kernel's values and gradients, up and down, with and without aligned corners."""
    x = torch.rand(2, 3, 6, 9, generator=torch.Generator().manual_seed(0), requires_grad=True)
    want = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
    ry = devices._bilinear_matrix(6, size[0], align, x)
    rx = devices._bilinear_matrix(9, size[1], align, x)
    got = ry @ x @ rx.t()
    assert torch.allclose(got, want, atol=1e-6)
    g = torch.rand(want.shape, generator=torch.Generator().manual_seed(1))
    (gw,) = torch.autograd.grad(want, x, g)
    (gg,) = torch.autograd.grad(got, x, g)
    assert torch.allclose(gg, gw, atol=1e-5)


# --- the library names a device for every tensor it makes ------------------------------------------
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "linspace", "randn", "rand", "randint", "randperm"}
FACTORIES |= {"eye", "tensor"}
# (module, function, factory): why the tensor is made on the CPU.
ALLOWED = {
    ("imaging/color.py", "<module>", "tensor"): "colour matrices; _apply moves them to the image's device",
    ("imaging/masks.py", "read_style_mask", "zeros"): "masks are read on the host; for_scale moves them",
    ("losses/pixel.py", "palette_directions", "tensor"): "cached on the host; moved to the image's by .to(x)",
    ("losses/sliced.py", "directions", "randn"): "a CPU generator: the same directions on every device",
    ("net/vgg.py", "__init__", "tensor"): "buffers of the network, which move with it (net.to(device))",
    ("net/vgg.py", "random_vgg", "randn"): "a CPU generator: the same random network on every device",
    ("optim/starts.py", "initial", "rand"): "the run's CPU generator: the same noise on every device",
    ("scores.py", "_patches", "arange"): "the scores are computed on the CPU (one ruler for every run)",
    ("scores.py", "_best_matches", "zeros"): "the scores are computed on the CPU",
    ("scores.py", "sliced_wasserstein", "randn"): "the scores are computed on the CPU",
    ("scores.py", "sliced_wasserstein", "linspace"): "the scores are computed on the CPU",
}


def _factories_without_device() -> dict:
    found: dict = {}

    def visit(node, rel, fn):
        for ch in ast.iter_child_nodes(node):
            inner = ch.name if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            f = getattr(ch, "func", None)
            if (
                isinstance(ch, ast.Call)
                and isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id == "torch"
                and f.attr in FACTORIES
                and not any(k.arg == "device" for k in ch.keywords)
            ):
                found.setdefault((rel, fn, f.attr), []).append(ch.lineno)
            visit(ch, rel, inner)

    for path in sorted(PKG.rglob("*.py")):
        visit(ast.parse(path.read_text()), str(path.relative_to(PKG)), "<module>")
    return found


def test_every_tensor_factory_in_the_library_names_its_device_or_says_why_not():
    found = _factories_without_device()
    unexplained = [f"{k[0]}:{v[0]} torch.{k[2]} in {k[1]}" for k, v in found.items() if k not in ALLOWED]
    assert unexplained == [], "add device=, or an entry with its reason to ALLOWED"
    assert set(ALLOWED) <= set(found), f"stale ALLOWED entries: {set(ALLOWED) - set(found)}"


# --- CUDA: the settings that repeat the bytes --------------------------------------------------------
@pytest.fixture
def pretend_cuda(monkeypatch):
    """torch believes in two CUDA devices; every process-wide flag a run sets is put back after."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[4], saved[5]
    if saved[6] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[6]


def test_a_cuda_stylizer_turns_on_deterministic_algorithms_and_turns_off_tf32(pretend_cuda):
    s = engine.Stylizer(weights="random", device="cuda", precision="fp32")
    assert s.device == torch.device("cuda", 0)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_no_deterministic_lets_cudnn_pick_its_fastest_kernels(pretend_cuda):
    engine.Stylizer(weights="random", device="cuda:1", deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.allow_tf32


def test_the_cpu_sets_nothing_process_wide():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    engine.Stylizer(weights="random", device="cpu", deterministic=False)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


def test_cuda_n_picks_that_device_or_says_in_one_line_that_it_is_not_there(pretend_cuda):
    assert devices.pick_device("cuda:1") == torch.device("cuda", 1)
    assert devices.pick_device("auto") == torch.device("cuda", 0)
    with pytest.raises(InvalidOption, match=r"^--device cuda:2: this machine has 2 CUDA devices \(cuda:0 to"):
        devices.pick_device("cuda:2")


# --- --device on every surface -------------------------------------------------------------------
@pytest.mark.parametrize("value", ["cpu", "auto", "cuda", "cuda:0", "cuda:12", "mps"])
def test_every_device_form_passes_the_option_checks(value):
    o = options.options_from(None, {"device": value})
    options.validate(o)
    options.SPECS["device"].check("device", value)


@pytest.mark.parametrize(
    "value, words",
    [
        ("gpu", "unknown --device value 'gpu'"),
        ("cuda:", "unknown --device value 'cuda:'"),
        ("cuda:N", "--device takes a number for N, got 'cuda:N'"),
        ("cuda:-1", "unknown --device value 'cuda:-1'"),
    ],
)
def test_a_bad_device_gets_one_line(value, words):
    with pytest.raises(InvalidOption, match="^" + words.replace("(", r"\(")):
        options.SPECS["device"].check("device", value)
    if value == "gpu":
        with pytest.raises(
            InvalidOption, match=r"did you mean 'cpu'\? \(valid: auto, cpu, cuda, mps, cuda:N\)"
        ):
            options.SPECS["device"].check("device", value)


def test_cli_python_batch_and_video_take_cuda_n(small, capsys):
    parser = cli.build_parser()
    d = str(small["dir"])
    for argv in (
        ["transfer", "c.png", "s.png", "-o", "o.png"],
        ["batch", d, "--style", "s.png", "--out-dir", d],
        ["video", "v.mp4", "s.png", "-o", "o.mp4"],
    ):
        assert parser.parse_args(argv + ["--device", "cuda:1", "--no-deterministic"]).device == "cuda:1"
    code = cli.main(
        ["transfer", str(small["content"]), str(small["style"]), "-o", d + "/o.png"] + ["--device", "cuda:1"]
    )
    err = capsys.readouterr().err
    if not torch.cuda.is_available():  # this machine: the one line that says so
        assert code == 2 and err.startswith("painterly: error: --device cuda:1: no CUDA device is available")
        assert err.count("\n") == 1
        with pytest.raises(InvalidOption, match="^--device cuda:1: no CUDA device"):
            painterly.stylize(small["content"], small["style"], device="cuda:1", weights="random", size=32)
    code = cli.main(
        ["transfer", str(small["content"]), str(small["style"]), "-o", d + "/o.png", "--device", "gpu"]
    )
    assert code == 2 and "unknown --device value 'gpu'; did you mean 'cpu'?" in capsys.readouterr().err


# --- what the recipe and the report record -------------------------------------------------------
def test_the_recipe_and_the_report_record_the_device_and_precision_used(monkeypatch, small):
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    fast = dict(weights="random", size=32, iterations=(2,))
    r = painterly.run_transfer(small["content"], small["style"], **fast)  # device and precision auto
    assert r.recipe["ran_on"] == {"device": "cpu", "precision": "fp32"}
    assert r.recipe["options"]["device"] == "auto" and r.recipe["options"]["precision"] == "auto"
    assert r.report()["ran_on"] == r.recipe["ran_on"] and r.recipe["options"]["deterministic"] is True
    out = small["dir"] / "o.png"
    r.save(out)
    assert images.read_recipe(out)["ran_on"] == {"device": "cpu", "precision": "fp32"}
    bf16 = painterly.run_transfer(small["content"], small["style"], **fast, precision="bf16", device="cpu")
    assert bf16.recipe["ran_on"] == {"device": "cpu", "precision": "bf16"}


def test_rerun_reads_the_options_and_an_old_recipe_reruns_as_it_ran(small, capsys):
    """ran_on is a record: rerun takes the options ("auto" again), and a recipe from before
    deterministic and ran_on existed gives the same pixels as one with them."""
    d = small["dir"]
    argv = [small["content"], small["style"], "--weights", "random", "--size", "32", "--iterations", "3"]
    assert cli.main(["transfer", *map(str, argv), "-o", str(d / "a.png"), "--quiet"]) == 0
    recipe = images.read_recipe(d / "a.png")
    old = dict(recipe)
    old.pop("ran_on")
    old["options"] = {k: v for k, v in recipe["options"].items() if k != "deterministic"}
    assert options.Options.from_dict(old["options"]) == options.Options.from_dict(recipe["options"])
    images.save_image(Image.open(d / "a.png").convert("RGB"), d / "old.png", old)
    assert cli.main(["rerun", str(d / "old.png"), "-o", str(d / "b.png"), "--quiet"]) == 0
    assert Image.open(d / "b.png").tobytes() == Image.open(d / "a.png").tobytes()
    assert json.dumps(images.read_recipe(d / "b.png")["ran_on"]) == json.dumps(recipe["ran_on"])
