"""SPEC 3 and 4: the macro-level output loss and the revival of a silent label neuron."""

from __future__ import annotations

import numpy as np


def output_delta(
    counts: np.ndarray,
    label: int,
    desired: float,
    undesired: float,
    margin: float,
) -> tuple[np.ndarray, float]:
    """Macro-level error of the output counts (SPEC 3), before any sample weight.

    Returns (delta float (O,), cost) with delta_k = diff_k where |diff_k| > margin else 0 and
    cost = sum of diff_k^2 over those same k.
    """
    counts = np.asarray(counts, dtype=np.float64)
    y = np.full(counts.shape, float(undesired))
    y[label] = float(desired)
    diff = counts - y
    active = np.abs(diff) > margin
    delta = np.where(active, diff, 0.0)
    cost = float(np.sum(diff[active] ** 2))
    return delta, cost


def revive(s_out: np.ndarray, label: int, desired: int) -> np.ndarray:
    """Give a silent label neuron regular spikes at interval, 2*interval, ... < T (SPEC 4).

    Returns a new train; unchanged copy when the label neuron already fired.
    """
    out = np.array(s_out, dtype=bool, copy=True)
    if out[:, label].any():
        return out
    T = out.shape[0]
    interval = T // desired
    if interval < 1:
        raise ValueError(f"revival needs T >= desired (got T={T}, desired={desired})")
    out[interval:T:interval, label] = True
    return out
