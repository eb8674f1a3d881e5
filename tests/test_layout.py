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
