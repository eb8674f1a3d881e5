"""The dense (fully connected) connection: output o sees every input i through W[o, i] (O, N).

The forward and backward sums over a layer's connections live here: the input current, the side
term and pre_delta. The neuron, S-PSP, loss and lateral code only see spike trains, currents
and per-pair values. A convolution or pooling connection (SPEC_CNN 1-3) belongs beside this
one, with its own versions of these functions.
"""

from __future__ import annotations

import numpy as np


def current(W: np.ndarray, s_in: np.ndarray) -> np.ndarray:
    """Input current I[t, o] = sum_i W[o,i] s_in[t,i], float64 (T, O) (SPEC 1's r, undelayed)."""
    W = np.asarray(W, dtype=np.float64)
    x = np.asarray(s_in, dtype=np.float64)
    I = np.empty((x.shape[0], W.shape[0]))
    for t in range(x.shape[0]):
        # One matrix-vector product per step, not one matrix product: keeps the summation
        # order (so every rounding) of the per-step form in SPEC 1.
        I[t] = W @ x[t]
    return I


def side_term(W: np.ndarray, e: np.ndarray, n_out: np.ndarray, vth: float) -> np.ndarray:
    """side[o] = (1/vth) * sum_i W[o,i] * (e[o,i]/n_o if n_o > 0 else 0.5)  (SPEC 4)."""
    n_out = np.asarray(n_out, dtype=np.float64)
    safe_n = np.where(n_out > 0, n_out, 1.0)
    ratio = np.where((n_out > 0)[:, None], e / safe_n[:, None], 0.5)
    return (1.0 / vth) * np.sum(W * ratio, axis=1)


def pre_delta(dv: np.ndarray, R: np.ndarray, W: np.ndarray) -> np.ndarray:
    """pre_delta[i] = sum_o dv[o] * R[o,i] * W[o,i], the delta of the layer below (SPEC 4)."""
    return np.sum(dv[:, None] * R * W, axis=0)
