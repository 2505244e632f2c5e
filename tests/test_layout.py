"""The shape of the code: no import circle, no import from a lower layer back up, no oversized
module, no method named outside methods/, one place that builds a network."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "painterly"
# A generous guard, not a target: files are sized by their topic (most are well under 400 lines).
MAX_LINES = 450


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set) -> set:
    """Modules of the package that `path` imports, at any depth (lazy imports count too)."""
    name = _module(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            elif node.module and node.module.split(".")[0] == "painterly":
                base, node_module = [], ".".join(node.module.split(".")[1:])
                candidates = [node_module] + [f"{node_module}.{a.name}".strip(".") for a in node.names]
                out.update(c for c in candidates if c in modules)
                continue
            else:
                continue
            mod = ".".join(base + ([node.module] if node.module else []))
            out.update(c for c in [mod] + [f"{mod}.{a.name}".strip(".") for a in node.names] if c in modules)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("painterly."):
                    out.add(a.name[len("painterly.") :])
    out.discard(name)
    out.discard("")  # the package's __init__: only lazy names, never a circle
    return out


def _graph() -> dict:
    files = {_module(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) for m, p in files.items()}


def test_the_import_graph_sees_known_edges():
    g = _graph()  # a check of the checker: these edges exist
    assert (
        "engine" in g["api"] and "net.vgg" in g["engine"] and "objective.objective" in g["objective.tiling"]
    )


def test_no_import_circle():
    g = _graph()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_is_oversized(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines"


# The layers, lowest first: a module may import its own layer's and lower ones', never a higher one's.
LAYERS = [
    ("errors", "options", "testhooks", "assets"),
    ("imaging",),
    ("net",),
    ("losses",),
    ("objective",),
    ("methods",),
    ("optim", "result"),
    ("runtime", "assemble", "progress", "inputs"),
    ("engine",),
    ("api", "scores"),
    ("cli", "batch", "video", "web"),
    ("__main__",),  # `python -m painterly`: the command, above everything
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def test_every_module_sits_in_a_layer():
    assert {m.split(".")[0] for m in _graph() if m} <= set(RANK)


def test_no_import_from_a_lower_layer_back_up():
    up = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if m
        for d in deps
        if RANK[d.split(".")[0]] > RANK[m.split(".")[0]]
    ]
    assert up == []


def test_no_module_outside_the_methods_names_a_method():
    """No `style_loss ==` comparison and no method's name in code outside methods/ (option fields
    such as --neighbour-photo and their help texts are the options' own, in options/)."""
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ("methods", "options", "losses"):  # losses/ registers the statistics by name
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(s, ast.Attribute) and s.attr == "style_loss"
                for s in [node.left, *node.comparators]
            ):
                bad.append(f"{rel}:{node.lineno}: style_loss compared")
            if isinstance(node, ast.Constant) and node.value in (
                "neighbour",
                "gram",
                "sliced",
                "w2",
                "mean-std",
            ):
                bad.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert bad == []


def test_no_line_is_longer_than_the_formatter_allows():
    long = [
        f"{p.relative_to(PKG)}:{n}"
        for p in PKG.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if len(line) > 110
    ]
    assert long == []


def test_only_the_engine_builds_a_network():
    """get_vgg / random_vgg / load_vgg are called by the engine alone (net/load.py and net/vgg.py
    define them)."""
    callers = set()
    for p in PKG.rglob("*.py"):
        if p.name in ("load.py", "vgg.py"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in ("get_vgg", "random_vgg", "load_vgg", "VGG19"):
                    callers.add(p.name)
    assert callers == {"engine.py"}


TESTS = Path(__file__).resolve().parent
_SKIPS = ("pytest.skip(", "importorskip(", "skipif(", "pytest.mark.skip(", "xfail(")


def test_every_skip_goes_through_ci_or_is_a_marked_platform_skip():
    """In CI nothing may skip except for a platform reason: a skip is ci.skip_or_fail/require/
    shared_images (skips locally, fails under CI=true), or a line marked "# platform: ..."."""
    bad = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name in ("ci.py", Path(__file__).name):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(s in line for s in _SKIPS) and "# platform:" not in line:
                bad.append(f"{path.name}:{n}: {line.strip()}")
    assert bad == []


def test_ci_turns_a_skip_into_a_failure(monkeypatch):
    import ci

    monkeypatch.setattr(ci, "SHARED", Path("/nonexistent/shared/images"))
    for ci_value, outcome in (("true", pytest.fail.Exception), ("", pytest.skip.Exception)):
        monkeypatch.setenv("CI", ci_value)
        with pytest.raises(outcome, match="no_such_module_for_painterly"):
            ci.require("no_such_module_for_painterly", "needed")
        with pytest.raises(outcome, match="shared images are absent"):
            ci.shared_images()
    assert ci.require("json", "needed").__name__ == "json"
