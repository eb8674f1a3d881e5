"""SPEC 4 (SPEC_CNN 3): the micro-level backward pass: lateral factor, per-sample gradients.

The connection-specific parts (S-PSPs of the connected pairs, side term, gradient, pre_delta)
come from each layer's `Connection.backward`; the order of the steps around the revival follows
the authors' CUDA code (see `sample_gradients`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .connection import Connection, as_connections, forward_sample
from .loss import output_delta, revive
from .spsp import BackwardParams, spsp_matrix


def lateral_factor(
    s_out: np.ndarray,
    label: int,
    vth: float,
    w0: float,
    tau_m: float,
    tau_s: float,
    t_ref: int,
) -> np.ndarray:
    """lat[j] = 1 / (1 - w0^2 * sum_{l != j} r_jl d_l r_lj d_j) for the output layer (SPEC 4).

    s_out: output spikes BEFORE revival. r_jl = e_{l|j}/n_j, r_lj = e_{j|l}/n_l (both 1 when
    n_j == 0 or n_l == 0), d_j = 1/vth if n_j > 0 or j == label else 0. w0 == 0 gives ones.
    """
    s_out = np.asarray(s_out, dtype=bool)
    O = s_out.shape[1]
    if w0 == 0.0:
        return np.ones(O)
    n = s_out.sum(axis=0)
    e = spsp_matrix(s_out, s_out, tau_m, tau_s, t_ref)  # e[l, j] = e_{l|j}: post l, pre j
    d = np.where((n > 0) | (np.arange(O) == label), 1.0 / vth, 0.0)
    lat = np.ones(O)
    for j in range(O):
        total = 0.0
        for l in range(O):
            if l == j:
                continue
            if n[j] == 0 or n[l] == 0:
                r_jl = r_lj = 1.0
            else:
                r_jl = e[l, j] / n[j]
                r_lj = e[j, l] / n[l]
            total += r_jl * d[l] * r_lj * d[j]
        lat[j] = 1.0 / (1.0 - w0**2 * total)
    return lat


def sample_gradients(
    layers: Sequence[Connection] | Sequence[np.ndarray],
    s_in: np.ndarray,
    label: int,
    *,
    vth: Sequence[float] | None = None,
    tau_m: float = 64.0,
    tau_s: float = 8.0,
    t_ref: int = 2,
    w0: float = 1.0,
    desired: int = 35,
    undesired: int = 5,
    margin: float = 5,
    use_effect_ratio: bool = True,
    sample_weight: float = 1.0,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Per-sample SPEC-4 gradients of every trainable layer (no regularization) and the forward
    info.

    layers: connection objects (vth None), or dense weight arrays (O, N) with one vth each. The
    last layer is the output: dense, with lateral inhibition w0.
    Order (matches the authors' CUDA code): delta and cost from the pre-revival output counts,
    delta times sample_weight, lateral factor from the pre-revival output spikes, then revival;
    everything after (output S-PSPs, n_o, side term, effect ratio, pre_delta) uses the revived
    output train. Layers are walked top-down, each handing its pre_delta to the one below; the
    first layer hands nothing down (its input is the data).
    The walk stops above a fixed layer (a reservoir, SPEC_SPEECH 3.6), which gets no pre_delta;
    nothing at or below it learns.
    Returns (grads: one float64 array per trainable layer, in order, shaped like them; info)
    with info keys: spikes (pre-revival trains per layer), counts (int64 output counts,
    pre-revival), prediction, cost (unweighted), delta (weighted output delta), margin
    (smallest fire-test margin).
    """
    stack = as_connections(layers, vth)
    L = len(stack)
    spikes, fire_margin = forward_sample(stack, s_in, None, tau_m, tau_s, t_ref, w0)
    s_top = spikes[-1]
    counts = s_top.sum(axis=0).astype(np.int64)
    delta, cost = output_delta(counts, label, desired, undesired, margin)
    delta = delta * sample_weight
    out_delta = delta  # kept for info: `delta` is reused for each layer's pre_delta below
    lat_top = lateral_factor(s_top, label, stack[-1].vth, w0, tau_m, tau_s, t_ref)
    trains = list(spikes)
    trains[-1] = revive(s_top, label, desired)

    params = BackwardParams(tau_m, tau_s, t_ref, use_effect_ratio)
    grads: list[np.ndarray | None] = [None] * L
    for l in range(L - 1, -1, -1):
        if stack[l].fixed:
            break
        s_i = np.asarray(s_in, dtype=bool) if l == 0 else trains[l - 1]
        below_learns = l > 0 and not stack[l - 1].fixed
        grads[l], delta = stack[l].backward(delta, trains[l], s_i, params, need_pre_delta=below_learns)
    grads[-1] = grads[-1] * lat_top[:, None]  # the output layer is dense: one row per neuron

    info = {
        "spikes": spikes,
        "counts": counts,
        "prediction": int(np.argmax(counts)),
        "cost": cost,
        "delta": out_delta,
        "margin": fire_margin,
    }
    return [g for g in grads if g is not None], info
