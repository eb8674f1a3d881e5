"""The package's layout keeps its properties (docs/architecture.md): no module over 500 lines, no
import cycle between its modules. Read from the source text (ast), so nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "hm2bp"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that importing `name` runs: each imported module, the packages
    above it (their __init__ runs first) and, for `from X import y`, y when it is a module.
    The packages above `name` itself are left out: they are initialised before it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                found.add(".".join(parts[:k]))
    own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
    return {m for m in found if m in modules and m != name and m not in own}


def test_no_module_is_longer_than_500_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(name):] + [name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, stack + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


# What each sub-package may import of the others (docs/architecture.md): downwards only.
# config reads the rule names of train.schedule, which imports nothing of the package.
LAYERS = {
    "model": set(),
    "reference": {"model"},
    "data": {"model"},
    "config": {"model", "data", "train.schedule"},
    "train": {"model", "data", "config"},
    "interop": {"model", "config"},  # the authors' weight files build a preset's network
    "cli": {"model", "data", "config", "train", "interop"},
}


def test_sub_packages_import_downwards_only():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        room = name.split(".")[1] if name.count(".") >= 1 else None
        if room not in LAYERS:
            continue  # hm2bp/__init__.py and _moved.py sit above the rooms
        for target in _imports(name, path, modules):
            parts = target.split(".")
            other = parts[1] if len(parts) > 1 else None
            if other in (room, None) or other not in LAYERS:
                continue
            allowed = LAYERS[room]
            if len(parts) == 2:  # the sub-package's __init__, run on the way to one of its modules
                allowed = allowed | {a.split(".")[0] for a in allowed}
            if other not in allowed and ".".join(parts[1:3]) not in allowed:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_the_package_uses_no_old_module_path():
    from hm2bp._moved import MOVED

    modules = _modules()
    used = {name: sorted(set(MOVED) & _imports(name, path, {**modules, **MOVED}))
            for name, path in modules.items()}
    assert not {k: v for k, v in used.items() if v}, "import the new paths (hm2bp/_moved.py)"


def test_the_old_module_paths_are_the_moved_modules():
    import importlib.util

    from hm2bp._moved import MOVED

    for old, new in MOVED.items():
        if old == "hm2bp.torch" and importlib.util.find_spec("torch") is None:
            continue  # hm2bp.torch needs torch (tests/test_torch.py)
        assert importlib.import_module(old) is importlib.import_module(new), old
    import hm2bp.nir as by_path

    assert by_path is importlib.import_module("hm2bp.interop.nir")


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_reference_never_imports_the_engine():
    """The NumPy oracle is written from the specs: nothing it imports, directly or through
    hm2bp.model, is the compiled engine it is meant to check."""
    modules = {**_modules(), "hm2bp._core": PACKAGE / "_core"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items() if path.suffix == ".py"}
    for name in graph:
        if name.startswith("hm2bp.reference"):
            reached = _closure(name, graph)
            assert "hm2bp._core" not in reached, f"{name} reaches the engine: {sorted(reached)}"


def test_the_reference_runs_without_the_engine():
    """The package's folder under a stand-in parent whose _core cannot be imported (as bench/
    loads it before the engine is built): the reference imports and trains."""
    import importlib
    import sys
    import types

    import numpy as np

    prefix = "_hm2bp_without_engine"
    parent = types.ModuleType(prefix)
    parent.__path__ = [str(PACKAGE)]  # its __init__ (which imports the engine) is not run
    sys.modules[prefix] = parent
    sys.modules[f"{prefix}._core"] = None  # importing it raises ImportError
    try:
        ref = importlib.import_module(f"{prefix}.reference")
        layers = importlib.import_module(f"{prefix}.model.layers")
        net = ref.Network(input_shape=(1, 6, 6), layers=[layers.Conv2d(2, 3, 1.0), layers.Pool2d(2, 1.0),
                                                         layers.Dense(3, 1.0)],
                          lateral_inhibition=0.0, desired=5, undesired=1, margin=1, seed=1)
        spikes = np.random.default_rng(0).random((2, 40, 36)) < 0.3
        spikes[:, 0] = False
        out = net.train_step(spikes, np.array([0, 2]), 0.01)
        assert out["counts"].shape == (2, 3) and net.get_state()["step"] == 1
        assert all(np.isfinite(w).all() for w in net.get_weights())
    finally:
        for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
            del sys.modules[name]
