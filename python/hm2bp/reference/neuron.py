"""SPEC 1: the discrete LIF neuron with a first-order synapse, and output lateral inhibition."""

from __future__ import annotations

import math

import numpy as np

# Literal slack of the fire test `v > vth - 1e-6` (SPEC 1): pool and dense layers use it, conv
# layers fire on `v > vth` (SPEC_CNN 8.1).
FIRE_EPS = 1e-6


def lif_scan(
    current: np.ndarray,
    vth: float,
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
    fire_eps: float = FIRE_EPS,
    recurrent: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Simulate one population for one sample from its input current (SPEC 1).

    current: float (T, O), current[t] = input current from the spikes of step t (it reaches the
    neuron at t + 1, the one-step delay). w0 is the lateral inhibition strength (L[o, l] = -w0
    for l != o); 0 disables it. recurrent: a reservoir's W_rec (O, O), [post, pre], whose input
    sum_l W_rec[o, l] s_out[t-1, l] has the same one-step delay (SPEC_SPEECH 3.2). The neuron
    fires on v > vth - fire_eps.
    Returns (s_out bool (T, O), margin) where margin is the smallest |v - (vth - fire_eps)| over
    every step and neuron at which the fire test ran (inf if it never ran, i.e. T <= 1).
    """
    T, O = current.shape
    threshold = vth - fire_eps
    v = np.zeros(O)
    ep = np.zeros(O)
    ref = np.zeros(O, dtype=np.int64)
    s_out = np.zeros((T, O), dtype=bool)
    margin = math.inf
    for t in range(T):
        v -= v / tau_m
        ep -= ep / tau_s
        if t == 0:
            continue  # s_out[0] = 0: no input has arrived yet (one-step delay)
        r = current[t - 1]
        if w0 != 0.0:
            # sum_l L[o,l] s_out[t-1,l] with L = -w0 off the diagonal, 0 on it
            prev = s_out[t - 1].astype(np.float64)
            r = r + (-w0) * (prev.sum() - prev)
        if recurrent is not None:
            r = r + recurrent @ s_out[t - 1].astype(np.float64)
        ep += r
        v += ep / tau_s
        in_ref = ref > 0
        v[in_ref] = 0.0
        ref[in_ref] -= 1
        fire = v > threshold
        margin = min(margin, float(np.min(np.abs(v - threshold))))
        s_out[t] = fire
        ref[fire] = t_ref
        v[fire] = 0.0
    return s_out, margin
