"""SPEC 4: the micro-level backward pass: lateral factor, effect ratio, per-sample gradients.

The connection-specific parts (side term, pre_delta) come from `dense`; the order of the steps
around the revival follows the authors' CUDA code (see `sample_gradients`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import dense
from .loss import output_delta, revive
from .neuron import forward_sample
from .spsp import spsp_matrix


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


def effect_ratio(e: np.ndarray, n_out: np.ndarray, n_in: np.ndarray) -> np.ndarray:
    """R[o,i] = e[o,i]/n_i, or 1 where n_i == 0 or n_o == 0  (SPEC 4)."""
    n_out = np.asarray(n_out, dtype=np.float64)
    n_in = np.asarray(n_in, dtype=np.float64)
    safe_n_in = np.where(n_in > 0, n_in, 1.0)
    silent = (n_out == 0)[:, None] | (n_in == 0)[None, :]
    return np.where(silent, 1.0, e / safe_n_in[None, :])


def sample_gradients(
    weights: Sequence[np.ndarray],
    s_in: np.ndarray,
    label: int,
    *,
    vth: Sequence[float],
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
    """Per-sample SPEC-4 gradients of every layer (no regularization) and the forward info.

    Order (matches the authors' CUDA code): delta and cost from the pre-revival output counts,
    delta times sample_weight, lateral factor from the pre-revival output spikes, then revival;
    everything after (output S-PSPs, n_o, side term, effect ratio, pre_delta) uses the revived
    output train.
    Returns (grads: list of (O_l, N_l) float64, info) with info keys: spikes (pre-revival trains
    per layer), counts (int64 output counts, pre-revival), prediction, cost (unweighted), delta
    (weighted output delta), margin (smallest fire-test margin).
    """
    L = len(weights)
    spikes, fire_margin = forward_sample(weights, s_in, vth, tau_m, tau_s, t_ref, w0)
    s_top = spikes[-1]
    counts = s_top.sum(axis=0).astype(np.int64)
    delta, cost = output_delta(counts, label, desired, undesired, margin)
    delta = delta * sample_weight
    out_delta = delta  # kept for info: `delta` is reused for each layer's pre_delta below
    lat_top = lateral_factor(s_top, label, vth[-1], w0, tau_m, tau_s, t_ref)
    trains = list(spikes)
    trains[-1] = revive(s_top, label, desired)

    grads: list[np.ndarray] = [np.empty(0)] * L
    for l in range(L - 1, -1, -1):
        W = np.asarray(weights[l], dtype=np.float64)
        s_o = trains[l]
        s_i = np.asarray(s_in, dtype=bool) if l == 0 else trains[l - 1]
        n_o = s_o.sum(axis=0)
        n_i = s_i.sum(axis=0)
        e = spsp_matrix(s_o, s_i, tau_m, tau_s, t_ref)
        dv = delta / vth[l]
        side = dense.side_term(W, e, n_o, vth[l])
        lat = lat_top if l == L - 1 else np.ones(W.shape[0])
        grads[l] = dv[:, None] * e * (1.0 + side)[:, None] * lat[:, None]
        if l > 0:
            R = effect_ratio(e, n_o, n_i) if use_effect_ratio else np.ones_like(e)
            delta = dense.pre_delta(dv, R, W)  # the delta of the layer below

    info = {
        "spikes": spikes,
        "counts": counts,
        "prediction": int(np.argmax(counts)),
        "cost": cost,
        "delta": out_delta,
        "margin": fire_margin,
    }
    return grads, info
