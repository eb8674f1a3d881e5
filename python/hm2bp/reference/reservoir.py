"""SPEC_SPEECH 3: the reservoir (liquid state machine) layer: LIF neurons (SPEC 1) driven by the
input through fixed weights W_in (N, n_in) and by their own spikes of the previous step through
fixed recurrent weights W_rec (N, N), W_rec[post, pre]:

    r[o, t] = sum_i W_in[o, i] s_in[t-1, i] + sum_l W_rec[o, l] s_res[t-1, l]

(`neuron.lif_scan` with `recurrent=W_rec`). Fixed: never trained, and the backward pass stops
above it (`fixed`, SPEC_SPEECH 3.6), so the layer above hands it no pre_delta.
"""

from __future__ import annotations

import numpy as np

from .dense import current
from .neuron import FIRE_EPS


class ReservoirConnection:
    """A reservoir: fixed input weights W_in (N, n_in), recurrent W_rec (N, N), threshold vth.
    No `backward`: the walk of `backward.sample_gradients` stops above a fixed layer."""

    fire_eps = FIRE_EPS
    fixed = True  # the backward pass stops above this layer

    def __init__(self, W_in: np.ndarray, W_rec: np.ndarray, vth: float) -> None:  # noqa: N803 (paper's W)
        self.W_in = np.asarray(W_in, dtype=np.float64)
        self.recurrent = np.asarray(W_rec, dtype=np.float64)
        self.vth = float(vth)

    def current(self, s_in: np.ndarray) -> np.ndarray:
        """The feed-forward part of r, sum_i W_in[o, i] s_in[t, i] (T, N), before the delay."""
        return current(self.W_in, s_in)
