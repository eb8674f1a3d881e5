"""The dense (fully connected) connection: output o sees every input i through W[o, i] (O, N).

The forward and backward sums over a layer's connections live here: the input current, the side
term and pre_delta, and `DenseConnection`, the layer object of `connection.Connection`. The
neuron, S-PSP, loss and lateral code only see spike trains, currents and per-pair values; the
convolution and pooling connections (SPEC_CNN 1-3) are `conv` and `pool`.
"""

from __future__ import annotations

import numpy as np

from .neuron import FIRE_EPS, lif_scan
from .spsp import BackwardParams, effect_ratio, side_ratio


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


def lif_forward(
    W: np.ndarray,
    s_in: np.ndarray,
    vth: float,
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Simulate one dense layer for one sample (SPEC 1): `lif_scan` of the dense current.

    W: (O, N) weights; s_in: (T, N) bool input spikes. Returns (s_out bool (T, O), margin).
    """
    return lif_scan(current(W, s_in), vth, tau_m, tau_s, t_ref, w0)


def side_term(W: np.ndarray, e: np.ndarray, n_out: np.ndarray, vth: float) -> np.ndarray:
    """side[o] = (1/vth) * sum_i W[o,i] * (e[o,i]/n_o if n_o > 0 else 0.5)  (SPEC 4)."""
    return (1.0 / vth) * np.sum(W * side_ratio(e, n_out), axis=1)


def pre_delta(dv: np.ndarray, R: np.ndarray, W: np.ndarray) -> np.ndarray:
    """pre_delta[i] = sum_o dv[o] * R[o,i] * W[o,i], the delta of the layer below (SPEC 4)."""
    return np.sum(dv[:, None] * R * W, axis=0)


class DenseConnection:
    """A fully connected layer: weights W (O, N), threshold vth, fire test v > vth - 1e-6."""

    fire_eps = FIRE_EPS
    recurrent = None
    fixed = False

    def __init__(self, W: np.ndarray, vth: float) -> None:
        self.W = np.asarray(W, dtype=np.float64)
        self.vth = float(vth)

    def current(self, s_in: np.ndarray) -> np.ndarray:
        return current(self.W, s_in)

    def backward(self, delta: np.ndarray, s_out: np.ndarray, s_in: np.ndarray,
                 params: BackwardParams, need_pre_delta: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """SPEC 4: g[o,i] = dv[o] e[o,i] (1 + side[o]) (times the lateral factor, which the
        caller applies to the output layer), and pre_delta when the layer below needs it."""
        n_o = s_out.sum(axis=0)
        e = params.spsp_matrix(s_out, s_in)
        dv = delta / self.vth
        side = side_term(self.W, e, n_o, self.vth)
        g = dv[:, None] * e * (1.0 + side)[:, None]
        if not need_pre_delta:
            return g, None
        R = effect_ratio(e, n_o, s_in.sum(axis=0)) if params.use_effect_ratio else np.ones_like(e)
        return g, pre_delta(dv, R, self.W)
