"""SPEC_SPEECH 2: Ben's Spiker Algorithm (BSA), the spike encoder of the speech samples, literally:
the whole signal array, the kernel subtracted from it in place."""

from __future__ import annotations

import numpy as np

L = 24  # kernel length
STEP_ANALOG = 10  # steps each analog value is held
SCALE = 2e3
THRESHOLD = 0.6


def bsa_kernel() -> np.ndarray:
    """k[j] = exp(-(j - L/2)^2 / 25) / S, S their sequential double sum (centre j = 12)."""
    k = np.array([np.exp(-((j - L / 2) ** 2) / 25.0) for j in range(L)])
    total = 0.0
    for value in k:
        total += value
    return k / total


def bsa_channels(a: np.ndarray, end_time: int) -> np.ndarray:
    """Spike trains bool (end_time, C) of C channels' analog values a (C, n). The channels are
    independent: each NumPy operation below acts on all of them, the steps i and the kernel
    taps j run in sequence as in the authors' loop."""
    k = bsa_kernel()
    C, n = a.shape
    sig = np.zeros((C, n * STEP_ANALOG + L))
    for i in range(n):
        sig[:, i * STEP_ANALOG:(i + 1) * STEP_ANALOG] = a[:, i:i + 1].astype(np.float64) * SCALE
    out = np.zeros((end_time, C), dtype=bool)
    for i in range(sig.shape[1] - L):
        e1 = np.zeros(C)
        e2 = np.zeros(C)
        for j in range(L):
            e1 += np.abs(sig[:, i + j] - k[j])
            e2 += np.abs(sig[:, i + j])
        fire = e1 < e2 - THRESHOLD
        if i + 1 < end_time:
            out[i + 1] = fire
        sig[fire, i:i + L] -= k
    return out


def encode_bsa(analog: np.ndarray, T: int) -> np.ndarray:
    """BSA spike trains of analog samples: (C, frames) -> bool (T, C), (B, C, frames) -> (B, T, C).
    Spike times are 1..10 * frames; those >= T are dropped."""
    analog = np.asarray(analog, dtype=np.float64)
    if analog.ndim == 2:
        return bsa_channels(analog, T)
    return np.stack([bsa_channels(x, T) for x in analog])
