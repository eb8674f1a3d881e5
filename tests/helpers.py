"""Helpers shared by the tests: random engine cases and comparisons (CPU and CUDA), and the
one-line error check of the CLI and file-safety tests."""
from __future__ import annotations

import numpy as np

from hm2bp import reference as ref
from hm2bp.model.layers import Dense, Reservoir

TAU = dict(tau_m=64.0, tau_s=8.0, t_ref=2)

# Random networks every backend is checked on: (layers, T, batch, lateral inhibition, effect ratio).
CASES = [
    ([30, 20, 6], 60, 1, 1.0, True),
    ([30, 20, 6], 90, 3, 0.0, True),
    ([30, 20, 6], 75, 2, 1.0, False),
    ([40, 25, 15, 5], 80, 2, 1.0, True),
    ([40, 25, 15, 5], 120, 1, 0.5, False),
    ([24, 7], 64, 4, 1.0, True),  # a single weight layer: the output layer reads the inputs
    ([16, 12, 70], 50, 2, 1.0, True),  # a wide lateral layer: several vectors, two mask words
]


def random_case(seed: int, layers: list[int], T: int, batch: int, rate: float = 0.08,
                vth: list[float] | None = None, **kw):
    """A network config, random input spikes and labels."""
    rng = np.random.default_rng(seed)
    vth = vth or [2.0 + 2.0 * l for l in range(len(layers) - 1)]
    config = dict(layers=layers, vth=vth, desired=10, undesired=2, margin=2, seed=seed, **kw)
    spikes = rng.random((batch, T, layers[0])) < rate
    labels = rng.integers(0, layers[-1], batch)
    return config, spikes, labels


def assert_rel_close(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-12)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def tie_margin(config, weights, spikes) -> float:
    """Closest approach of any membrane potential to the threshold (float32 may flip a spike there)."""
    vth, w0 = config["vth"], config.get("lateral_inhibition", 1.0)
    return min(ref.forward_sample(weights, s, vth, w0=w0, **TAU)[1] for s in spikes)


def random_reservoir_case(seed: int, T: int = 90, batch: int = 3):
    """A random reservoir network with random (non-integer) fixed weights and random input spikes."""
    rng = np.random.default_rng(seed)
    config = dict(input_shape=(10, 1, 1), layers=[Reservoir(18, 6.0, grid=(2, 3, 3), seed=seed), Dense(9, 3.0),
                                                  Dense(4, 2.0)],
                  desired=10, undesired=2, margin=2, seed=seed, lateral_inhibition=[0.0, 1.0][seed % 2],
                  optimizer=["adam", "sgd"][seed % 2], effect_ratio=bool(seed % 3))
    fixed = [(rng.uniform(-2.0, 6.0, size=(18, 10)), rng.uniform(-1.5, 2.0, size=(18, 18)))]
    spikes = rng.random((batch, T, 10)) < 0.1
    labels = rng.integers(0, 4, batch)
    return config, fixed, spikes, labels


def fire_margin(oracle, spikes) -> float:
    """tie_margin of a reference network of any layers (its connections)."""
    return min(ref.forward_sample(oracle.connections(), s, None, **TAU, w0=oracle.lateral_inhibition)[1]
               for s in spikes)


# What an editable install prints when it checks its build at import (not from hm2bp).
_BUILD_NOISE = ("ninja:", "-- ", "Running cmake")


def one_line_error(err: str, *fragments: str, max_len: int = 700) -> str:
    """The single line hm2bp wrote to stderr: no traceback, one line (build noise of an
    editable install aside) of at most max_len characters, holding every fragment."""
    assert "Traceback" not in err, err
    lines = [x for x in err.strip().splitlines() if not x.startswith(_BUILD_NOISE)]
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) <= max_len, lines[0][:2000]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
