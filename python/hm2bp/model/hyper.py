"""The hyperparameter schema of SPEC 1-5: name, type, bounds and meaning of each hyperparameter
shared by all layers, and the one set of checks that `hm2bp.Network`, `hm2bp.config.RunConfig`
and `hm2bp.reference.Network` apply.

The defaults are the paper's and come from the engine's own declaration (`Hyper` in
csrc/model/network_spec.hpp, read through the binding), so that C++ and Python cannot disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _core
from . import limits

__all__ = ["DEFAULTS", "HYPERPARAMETERS", "Hyperparameter", "check", "check_all", "check_number",
           "check_whole", "engine_hyper", "pick"]


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: type            # float, int, bool or str
    doc: str
    minimum: float = 0.0  # numbers: the smallest allowed value
    strict: bool = False  # numbers: must be > minimum rather than >=
    choices: tuple[str, ...] = ()
    group: str = "network"  # what it is about: the "network" (SPEC 1-4) or its "training" (SPEC 5)


# Python's `optimizer` is the engine's `adam` flag; every other name is the engine's.
HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in [
    Hyperparameter("tau_m", float, "membrane time constant (steps, SPEC 1)", strict=True),
    Hyperparameter("tau_s", float, "synaptic time constant (steps, SPEC 1); must differ from tau_m",
                   strict=True),
    Hyperparameter("t_ref", int, "refractory period (steps, SPEC 1)"),
    Hyperparameter("lateral_inhibition", float,
                   "w0, the output layer's lateral inhibition (SPEC 1); 0 switches it off"),
    Hyperparameter("desired", int, "target spike count of the label neuron (SPEC 3)", minimum=1),
    Hyperparameter("undesired", int, "target spike count of the other output neurons (SPEC 3)"),
    Hyperparameter("margin", int, "count errors up to this size give no delta (SPEC 3)"),
    Hyperparameter("effect_ratio", bool, "use the effect ratio in the pre-deltas (SPEC 4)"),
    Hyperparameter("optimizer", str, "'adam' or 'sgd' (with momentum, SPEC 5)", choices=("adam", "sgd"),
                   group="training"),
    Hyperparameter("reg_lambda", float, "weight regularization strength lambda (SPEC 5); 0 = off",
                   group="training"),
    Hyperparameter("reg_beta", float, "weight regularization exponent beta (SPEC 5); 0 = off",
                   group="training"),
    Hyperparameter("weight_limit", float, "weight scale of the regularization (SPEC 5)", strict=True),
    Hyperparameter("momentum", float, "SGD momentum (SPEC 5)", group="training"),
    Hyperparameter("b1", float, "Adam's first-moment decay (SPEC 5)", group="training"),
    Hyperparameter("b2", float, "Adam's second-moment decay (SPEC 5)", group="training"),
    Hyperparameter("eps", float, "Adam's epsilon (SPEC 5)", strict=True, group="training"),
]}

_ENGINE_DEFAULTS: dict[str, Any] = _core.hyper_defaults()
DEFAULTS: dict[str, Any] = {
    name: ("adam" if _ENGINE_DEFAULTS["adam"] else "sgd") if name == "optimizer" else _ENGINE_DEFAULTS[name]
    for name in HYPERPARAMETERS
}


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
    """The hyperparameters among `values` (e.g. a constructor's locals())."""
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


def engine_hyper(values: dict[str, Any], threads: int) -> Any:
    """The engine's Hyper struct from checked values (check_all)."""
    h = _core.Hyper()
    for name, value in values.items():
        if name == "optimizer":
            h.adam = value == "adam"
        else:
            setattr(h, name, value)
    h.threads = threads
    return h
