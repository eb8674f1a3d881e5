"""The module paths of hm2bp before it had sub-packages, kept working for code written against
them: ``import hm2bp.layers`` or ``from hm2bp.nir import to_nir`` give the module that now holds
that code (the same object, so every name and monkeypatching behave as before). The package
itself and its tests use the new paths (tests/test_layout.py checks the package).

hm2bp.data, hm2bp.config and hm2bp.cli are sub-packages now and re-export what the modules of
those names held; the old hm2bp.trainer is split into hm2bp.train.* (hm2bp.Trainer is its
public name).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

__all__ = ["MOVED", "install"]

MOVED: dict[str, str] = {
    "hm2bp.arrays": "hm2bp.model.arrays",
    "hm2bp.hyper": "hm2bp.model.hyper",
    "hm2bp.layers": "hm2bp.model.layers",
    "hm2bp.limits": "hm2bp.model.limits",
    "hm2bp.network": "hm2bp.model.network",
    "hm2bp.augment": "hm2bp.data.augment",
    "hm2bp.config_doc": "hm2bp.config.doc",
    "hm2bp.metrics_log": "hm2bp.train.metrics_log",
    "hm2bp.runstate": "hm2bp.train.runstate",
    "hm2bp.schedule": "hm2bp.train.schedule",
    "hm2bp.validation": "hm2bp.train.validation",
    "hm2bp.authors": "hm2bp.interop.authors",
    "hm2bp.nir": "hm2bp.interop.nir",
    "hm2bp.torch": "hm2bp.interop.torch",
    "hm2bp.distributed": "hm2bp.cli.distributed",
    "hm2bp.plot": "hm2bp.cli.plot",
    "hm2bp.progress": "hm2bp.cli.progress",
    "hm2bp.sweep": "hm2bp.cli.sweep",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path only when no file has it, and loads the module of its new path
    (imported only then: hm2bp.torch still needs torch only when it is used)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: object) -> None:
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns what sys.modules holds under the name after this call.
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    """Add the finder after the import system's own (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
