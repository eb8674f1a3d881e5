"""The hyperparameters of SPEC 1-5 shared by all layers, declared once: name, type, default
(the paper's), bounds and meaning of each, and the one set of checks applied to them.

Everything that takes hyperparameters derives from `HYPERPARAMETERS`: the keyword arguments of
`hm2bp.Network` and `hm2bp.reference.Network` (`hyperparameter_signature`), the fields, checks
and documentation of `hm2bp.config.RunConfig` (docs/config.md), the metadata of a NIR export.
The engine declares the same names and defaults in its `Hyper` struct
(csrc/model/network_spec.hpp; tests/test_architecture.py checks that both agree), so adding a
hyperparameter is one line here and one there, plus the code that uses it. Nothing here imports
the engine: the NumPy reference takes its defaults from this table, written from the specs.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import limits

__all__ = ["DEFAULTS", "HYPERPARAMETERS", "Hyperparameter", "check", "check_all", "check_lr", "check_number",
           "check_whole", "hyperparameter_signature", "pick"]


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: type            # float, int, bool or str
    default: Any          # the paper's value
    doc: str
    minimum: float = 0.0  # numbers: the smallest allowed value
    strict: bool = False  # numbers: must be > minimum rather than >=
    choices: tuple[str, ...] = ()
    group: str = "network"  # its config section: the "network" (SPEC 1-4) or its "training" (SPEC 5)


# Python's `optimizer` is the engine's `adam` flag; every other name is the engine's.
HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in [
    Hyperparameter("tau_m", float, 64.0, "membrane time constant (steps, SPEC 1)", strict=True),
    Hyperparameter("tau_s", float, 8.0, "synaptic time constant (steps, SPEC 1); must differ from tau_m",
                   strict=True),
    Hyperparameter("t_ref", int, 2, "refractory period (steps, SPEC 1)"),
    Hyperparameter("lateral_inhibition", float, 1.0,
                   "w0, the output layer's lateral inhibition (SPEC 1); 0 switches it off"),
    Hyperparameter("desired", int, 35, "target spike count of the label neuron (SPEC 3)", minimum=1),
    Hyperparameter("undesired", int, 5, "target spike count of the other output neurons (SPEC 3)"),
    Hyperparameter("margin", int, 5, "count errors up to this size give no delta (SPEC 3)"),
    Hyperparameter("effect_ratio", bool, True, "use the effect ratio in the pre-deltas (SPEC 4)"),
    Hyperparameter("optimizer", str, "adam", "'adam' or 'sgd' (with momentum, SPEC 5)",
                   choices=("adam", "sgd"), group="training"),
    Hyperparameter("reg_lambda", float, 10.0, "weight regularization strength lambda (SPEC 5); 0 = off",
                   group="training"),
    Hyperparameter("reg_beta", float, 0.04, "weight regularization exponent beta (SPEC 5); 0 = off",
                   group="training"),
    Hyperparameter("weight_limit", float, 8.0, "weight scale of the regularization (SPEC 5)", strict=True),
    Hyperparameter("momentum", float, 0.9, "SGD momentum (SPEC 5)", group="training"),
    Hyperparameter("b1", float, 0.9, "Adam's first-moment decay (SPEC 5)", group="training"),
    Hyperparameter("b2", float, 0.999, "Adam's second-moment decay (SPEC 5)", group="training"),
    Hyperparameter("eps", float, 1e-8, "Adam's epsilon (SPEC 5)", strict=True, group="training"),
]}

DEFAULTS: dict[str, Any] = {name: h.default for name, h in HYPERPARAMETERS.items()}


def check_number(name: str, value: Any, minimum: float = 0.0, strict: bool = False) -> float:
    """A finite real number >= minimum (> minimum when strict), as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value}")
    return value


def check_whole(name: str, value: Any, minimum: int, maximum: int = limits.INT32_MAX) -> int:
    """An integer in [minimum, maximum] (by default the engine's int range), as int."""
    return limits.check_int(name, value, minimum, maximum)


def check_lr(lr: Any) -> float:
    """A learning rate: a finite number > 0 (the same rule for networks and configs)."""
    return check_number("lr", lr, strict=True)


def check(name: str, value: Any) -> Any:
    """One hyperparameter, checked against its schema entry and normalised."""
    h = HYPERPARAMETERS[name]
    if h.kind is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        return bool(value)
    if h.kind is str:
        if value not in h.choices:
            raise ValueError(f"{name} must be {' or '.join(repr(c) for c in h.choices)}, got {value!r}")
        return value
    if h.kind is int:
        return check_whole(name, value, int(h.minimum))
    return check_number(name, value, h.minimum, h.strict)


def pick(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters among `values` (e.g. a config's fields)."""
    return {name: values[name] for name in HYPERPARAMETERS if name in values}


def check_all(values: Mapping[str, Any]) -> dict[str, Any]:
    """All hyperparameters (missing ones take their defaults), checked one by one and together."""
    unknown = sorted(set(values) - HYPERPARAMETERS.keys())
    if unknown:
        raise ValueError(f"unknown hyperparameter {unknown[0]!r}; known: {', '.join(HYPERPARAMETERS)}")
    out = {name: check(name, values.get(name, default)) for name, default in DEFAULTS.items()}
    if out["tau_s"] == out["tau_m"]:
        raise ValueError("tau_s must differ from tau_m (the S-PSP divides by 1 - tau_s / tau_m)")
    if 4 * out["tau_m"] > limits.INT32_MAX:
        raise ValueError(f"tau_m must be <= {limits.INT32_MAX // 4} (the S-PSP window 4 * tau_m is an int), "
                         f"got {out['tau_m']}")
    return out


Init = TypeVar("Init", bound=Callable[..., None])


def hyperparameter_signature(init: Init) -> Init:
    """Give an ``__init__(self, ..., **hyperparameters)`` the signature it accepts: one
    keyword-only argument per hyperparameter, with its type and default, so that help(), IDEs
    and inspect show them (the function itself receives them in **hyperparameters)."""
    signature = inspect.signature(init)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(h.name, inspect.Parameter.KEYWORD_ONLY, default=h.default,
                                 annotation=h.kind.__name__) for h in HYPERPARAMETERS.values()]
    init.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return init
