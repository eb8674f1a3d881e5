"""SPEC 4: the spike-train level post-synaptic potential (S-PSP) e of a (post, pre) pair.

`spsp` is the literal pairwise loop of the spec; `spsp_matrix` evaluates it for every pair of
two populations at once (any connection picks the pairs it has). `side_ratio` and `effect_ratio`
are the two normalisations of e that the side term and pre_delta use; `BackwardParams` carries
what every connection's backward reads besides its own trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def spsp(
    post_times: Sequence[int],
    pre_times: Sequence[int],
    tau_m: float,
    tau_s: float,
    t_ref: int,
) -> float:
    """Spike-train level post-synaptic potential e of one (post, pre) pair, literally SPEC 4.

    post_times / pre_times: ascending spike times; their lengths are n_o / n_i for the 0.1 rule.
    """
    post = [int(t) for t in post_times]
    pre = [int(t) for t in pre_times]
    acc = 0.0
    last = 1
    for tp in post:
        lb = max(1, tp - 4 * tau_m)
        for tq in pre:
            if not (lb <= tq < tp):
                continue
            if tq + t_ref > tp:
                continue  # pre spike falls in the refractory window before tp
            s = tp - last
            u = tp - (tq + t_ref)
            m = min(s, u)
            acc += (
                math.exp(-max(u - s, 0) / tau_s)
                / (1.0 - tau_s / tau_m)
                * (math.exp(-m / tau_m) - math.exp(-m / tau_s))
            )
        last = tp + t_ref
    if len(post) == 0 and len(pre) != 0:
        acc = 0.1  # a silent post neuron still gets a small effect from active inputs
    return acc


def spsp_matrix(
    s_out: np.ndarray,
    s_in: np.ndarray,
    tau_m: float,
    tau_s: float,
    t_ref: int,
) -> np.ndarray:
    """e[o, i] = spsp(times of s_out[:, o], times of s_in[:, i]) for all pairs, shape (O, N).

    Same sum as `spsp`, evaluated for all inputs at once: for each post spike tp the terms of
    every candidate pre time tq (which depend only on tp, last and tq) are dotted with the input
    trains. Equal to the pairwise loop up to float64 rounding of the summation order.
    """
    s_out = np.asarray(s_out, dtype=bool)
    x = np.asarray(s_in, dtype=np.float64)
    O = s_out.shape[1]
    N = x.shape[1]
    e = np.zeros((O, N))
    for o in range(O):
        last = 1
        for tp in np.flatnonzero(s_out[:, o]).tolist():
            lb = max(1, tp - 4 * tau_m)
            lo = math.ceil(lb)  # integer tq >= lb
            hi = min(tp - 1, tp - t_ref)  # tq < tp and tq + t_ref <= tp
            if hi >= lo:
                tq = np.arange(lo, hi + 1)
                s = tp - last
                u = tp - (tq + t_ref)
                m = np.minimum(s, u)
                terms = (
                    np.exp(-np.maximum(u - s, 0) / tau_s)
                    / (1.0 - tau_s / tau_m)
                    * (np.exp(-m / tau_m) - np.exp(-m / tau_s))
                )
                e[o] += terms @ x[lo : hi + 1]
            last = tp + t_ref
    n_o = s_out.sum(axis=0)
    n_i = x.sum(axis=0)
    e[np.ix_(n_o == 0, n_i != 0)] = 0.1  # the 0.1 rule of `spsp`
    return e


def side_ratio(e: np.ndarray, n_out: np.ndarray) -> np.ndarray:
    """e[o,i]/n_o, or 0.5 where n_o == 0: the per-pair factor of the side term (SPEC 4)."""
    n_out = np.asarray(n_out, dtype=np.float64)
    safe_n = np.where(n_out > 0, n_out, 1.0)
    return np.where((n_out > 0)[:, None], e / safe_n[:, None], 0.5)


def effect_ratio(e: np.ndarray, n_out: np.ndarray, n_in: np.ndarray) -> np.ndarray:
    """R[o,i] = e[o,i]/n_i, or 1 where n_i == 0 or n_o == 0  (SPEC 4)."""
    n_out = np.asarray(n_out, dtype=np.float64)
    n_in = np.asarray(n_in, dtype=np.float64)
    safe_n_in = np.where(n_in > 0, n_in, 1.0)
    silent = (n_out == 0)[:, None] | (n_in == 0)[None, :]
    return np.where(silent, 1.0, e / safe_n_in[None, :])


@dataclass(frozen=True)
class BackwardParams:
    """SPEC 1's time constants (for the S-PSPs) and whether dense layers use the effect ratio in
    pre_delta (conv and pool always do, SPEC_CNN 8.3)."""

    tau_m: float
    tau_s: float
    t_ref: int
    use_effect_ratio: bool = True

    def spsp_matrix(self, s_out: np.ndarray, s_in: np.ndarray) -> np.ndarray:
        return spsp_matrix(s_out, s_in, self.tau_m, self.tau_s, self.t_ref)
