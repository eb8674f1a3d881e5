"""python/hm2bp/_core.pyi declares the compiled module exactly: every public name, class member
and parameter that _core exposes is in the stub (and nothing the stub declares is missing from
_core), so a binding added in C++ without its type fails here."""

import ast
import re
from pathlib import Path

import pytest
from hm2bp import _core

STUB = Path(__file__).resolve().parents[1] / "python" / "hm2bp" / "_core.pyi"
TREE = ast.parse(STUB.read_text())


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _declared(body) -> dict[str, list[ast.AST]]:
    """Name -> its declarations (several for @overload) among statements `body`."""
    out: dict[str, list[ast.AST]] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, []).append(node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, []).append(node)
    return out


MODULE = _declared(TREE.body)
CLASSES = {name: _declared(nodes[0].body) for name, nodes in MODULE.items()
           if isinstance(nodes[0], ast.ClassDef) and not name.startswith("_")}


def _binding_members(cls) -> set[str]:
    """The public members pybind11 defined on cls (not inherited from object/pybind11)."""
    return _public(n for n in vars(cls) if n != "_pybind11_conduit_v1_")


def test_every_public_name_of_core_is_in_the_stub_and_back():
    exposed = _public(dir(_core))
    declared = _public(MODULE)
    assert exposed - declared == set(), f"_core exposes names the stub lacks: {sorted(exposed - declared)}"
    assert declared - exposed == set(), f"the stub declares names _core lacks: {sorted(declared - exposed)}"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_member_of_each_class_is_in_the_stub_and_back(name):
    exposed = _binding_members(getattr(_core, name))
    declared = _public(CLASSES[name])
    assert exposed - declared == set(), f"_core.{name} has members the stub lacks: {sorted(exposed - declared)}"
    assert declared - exposed == set(), f"the stub's {name} declares members _core lacks: {sorted(declared - exposed)}"


def _binding_parameters(func, name: str) -> list[tuple[str, bool, bool]]:
    """The parameters of pybind11's signature line, which is Python syntax once given a `def`."""
    line = next(l for l in func.__doc__.splitlines() if l.startswith(name + "("))
    node = ast.parse(f"def {line}: ...").body[0]
    return _parameters(node)


def _parameters(node: ast.FunctionDef) -> list[tuple[str, bool, bool]]:
    """(name, has a default, positional-only) of each parameter of a def (self dropped)."""
    a = node.args
    positional = a.posonlyargs + a.args
    defaults = [False] * (len(positional) - len(a.defaults)) + [True] * len(a.defaults)
    params = [(p.arg, d, i < len(a.posonlyargs)) for i, (p, d) in enumerate(zip(positional, defaults))]
    params += [(p.arg, d is not None, False) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return [p for p in params if p[0] != "self"]


def _functions():
    for name, nodes in MODULE.items():
        if isinstance(nodes[0], ast.FunctionDef) and not name.startswith("_"):
            yield name, getattr(_core, name), nodes
    for cls, members in CLASSES.items():
        if cls == "LayerKind":  # pybind11's enum machinery, not a binding of ours
            continue
        for name, nodes in members.items():
            is_method = isinstance(nodes[0], ast.FunctionDef) and not any(
                isinstance(d, ast.Name) and d.id == "property" for d in nodes[0].decorator_list)
            if is_method and (name == "__init__" or not name.startswith("_")):
                yield f"{cls}.{name}", getattr(getattr(_core, cls), name), nodes


@pytest.mark.parametrize("qualname,func,nodes", list(_functions()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_parameter_is_in_the_stub(qualname, func, nodes):
    bound = _binding_parameters(func, qualname.rsplit(".", 1)[-1])
    for node in nodes:  # every @overload lists the binding's parameters, in its order
        stub = _parameters(node)
        assert len(stub) == len(bound), f"{qualname}: stub {stub}, binding {bound}"
        for (name, default, _), (s_name, s_default, s_posonly) in zip(bound, stub):
            if re.fullmatch(r"arg\d+", name):  # unnamed in the binding: positional only
                assert s_posonly, f"{qualname}: {s_name} must be positional-only (before /)"
            else:
                assert s_name == name, f"{qualname}: stub parameter {s_name}, binding {name}"
            if len(nodes) == 1:
                assert s_default == default, f"{qualname}: default of {name}"
