"""Vectorized NumPy HM2-BP in float64: the in-project speed reference of the benchmark.

This is what a careful Python researcher would write from SPEC.md: no per-sample or per-pair
Python loops, only scans over time vectorized over (batch, neuron), and the "fast form" of
SPEC 6 for the backward pass:
- forward: input currents I = s_in @ W.T for all steps in one matrix product, then the LIF scan
  (SPEC 1) over t, vectorized over batch and neurons;
- K-trace: one backward scan over t per layer (vectorized over batch and neurons) gives
  K[t, o], with e = K.T @ s_in exactly (SPEC 6);
- gradient = (dv * (1 + side) * lat * K) @ s_in as one matrix product over (batch * T) rows;
  side term from sum_t K * I; pre_delta with the effect ratio from ((dv * K)^T @ W) at the
  input spikes; lateral factor from the output-to-output S-PSPs K_out @ s_out;
- update: regularization and bias-corrected Adam (SPEC 5).
tests/test_bench.py checks spikes and gradients against hm2bp.reference (float64, 1e-9), which
is what makes its benchmark row an honest "same algorithm in NumPy" row.

Arrays: spikes are bool (B, T, n) (batch, time, neuron) as in hm2bp.Network; K is (B, T, O).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["lif_forward", "k_trace", "NumpyHM2BP"]


def lif_forward(
    W: np.ndarray,
    s_in: np.ndarray,
    vth: float,
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One layer for a batch (SPEC 1). W (O, N); s_in bool (B, T, N).

    Returns (s_out bool (B, T, O), I float64 (B, T, O)) with I[b, t] = W @ s_in[b, t], the
    feed-forward input current (used again by the side term).
    """
    B, T, N = s_in.shape
    O = W.shape[0]
    I = (s_in.reshape(B * T, N).astype(np.float64) @ W.T).reshape(B, T, O)
    threshold = vth - 1e-6
    v = np.zeros((B, O))
    ep = np.zeros((B, O))
    ref = np.zeros((B, O), dtype=np.int64)
    s_out = np.zeros((B, T, O), dtype=bool)
    for t in range(1, T):  # t = 0 only decays zeros and never fires
        v -= v / tau_m
        ep -= ep / tau_s
        r = I[:, t - 1]  # one-step delay
        if w0 != 0.0:
            prev = s_out[:, t - 1].astype(np.float64)
            r = r + (-w0) * (prev.sum(axis=1, keepdims=True) - prev)
        ep += r
        v += ep / tau_s
        in_ref = ref > 0
        v[in_ref] = 0.0
        ref -= in_ref
        fire = v > threshold
        s_out[:, t] = fire
        ref[fire] = t_ref
        v[fire] = 0.0
    return s_out, I


def k_trace(s_out: np.ndarray, tau_m: float, tau_s: float, t_ref: int) -> np.ndarray:
    """K[b, t, o] of SPEC 6 for post trains s_out bool (B, T, O): e[b] = K[b].T @ s_in[b].

    For pre time t between the previous post spike and the next one (tn), only tn sees t
    without decay: c * (a^u - b^u), u = tn - t_ref - t ("direct" term, a = exp(-1/tau_m),
    b = exp(-1/tau_s), c = 1/(1 - tau_s/tau_m)). Every later post spike j sees t through the
    exp(-(u - s)/tau_s) factor: h_j * b^(t_prev(j) - t), h_j = c * (a^s_j - b^s_j), a sum D
    that decays by b per step backwards; a spike enters D when the scan passes its predecessor
    and leaves it when t falls below its window start tp_j - 4 tau_m.
    Time-major (T, B*O) arrays keep every per-step slice contiguous.
    """
    B, T, O = s_out.shape
    R = B * O
    s = s_out.reshape(B, T, O).transpose(1, 0, 2).reshape(T, R)  # copy, time-major
    dmax = math.floor(4 * tau_m)  # largest tp - tq inside the window lb <= tq
    c = 1.0 / (1.0 - tau_s / tau_m)
    n = np.arange(max(T, dmax) + 2, dtype=np.float64)
    h = c * (np.exp(-n / tau_m) - np.exp(-n / tau_s))  # h[m]: term with min(s, u) = m, no decay
    decay = math.exp(-1.0 / tau_s)
    bpow = np.exp(-n / tau_s)

    # Per spike (dense over t): previous spike time and s = tp - last (last = prev + t_ref or 1).
    tcol = np.arange(T)[:, None]
    last_at = np.maximum.accumulate(np.where(s, tcol, -1), axis=0)  # last spike at or before t
    prev = np.full((T, R), -1, dtype=np.int64)
    prev[1:] = last_at[:-1]
    s_val = np.where(prev >= 0, tcol - (prev + t_ref), tcol - 1)
    # spikes that are ever seen through decay: gap to the previous spike <= dmax - 1
    decays = s & (prev >= 0) & (tcol - prev <= dmax - 1)

    K = np.zeros((T, R))
    D = np.zeros(R)
    tn = np.full(R, -(dmax + 1), dtype=np.int64)  # next post spike after t (far past: none)
    s_tn = np.zeros(R, dtype=np.int64)
    for t in range(T - 2, 0, -1):
        D *= decay
        fired = s[t + 1]
        if fired.any():
            # the spike after the one at t + 1 (old tn) starts being seen through decay
            enter = fired & (tn > t + 1) & (tn - (t + 1) <= dmax - 1)
            D[enter] += decay * h[s_tn[enter]]
            tn = np.where(fired, t + 1, tn)
            s_tn = np.where(fired, s_val[t + 1], s_tn)
        leave_t = t + dmax + 1
        if leave_t < T:
            lv = np.flatnonzero(decays[leave_t])
            if len(lv):
                D[lv] -= bpow[prev[leave_t, lv] - t] * h[s_val[leave_t, lv]]
        u = tn - t_ref - t
        direct = (u >= 0) & (tn - t <= dmax)
        K[t] = np.where(direct, h[np.clip(u, 0, len(h) - 1)], 0.0) + D
    return np.ascontiguousarray(K.reshape(T, B, O).transpose(1, 0, 2))


def _lateral_factor(
    s_out: np.ndarray, K: np.ndarray, labels: np.ndarray, vth: float, w0: float
) -> np.ndarray:
    """lat (B, O) of SPEC 4 from pre-revival output trains and their K-trace."""
    B, T, O = s_out.shape
    n = s_out.sum(axis=1).astype(np.float64)  # (B, O)
    E = K.transpose(0, 2, 1) @ s_out.astype(np.float64)  # E[b, l, j] = e_{l|j}
    d = np.where((n > 0) | (np.arange(O) == labels[:, None]), 1.0 / vth, 0.0)
    safe = np.where(n > 0, n, 1.0)
    one = (n == 0)[:, :, None] | (n == 0)[:, None, :]  # [b, j, l]: n_j == 0 or n_l == 0
    r_jl = np.where(one, 1.0, E.transpose(0, 2, 1) / safe[:, :, None])
    r_lj = np.where(one, 1.0, E / safe[:, None, :])
    terms = r_jl * d[:, None, :] * r_lj * d[:, :, None]
    terms[:, np.arange(O), np.arange(O)] = 0.0  # l != j
    return 1.0 / (1.0 - w0**2 * terms.sum(axis=2))


class NumpyHM2BP:
    """Batched HM2-BP network in float64 NumPy with the Adam update (SPEC 1-5).

    Same constructor defaults and method names as hm2bp.Network (the subset the benchmark
    uses): forward, gradients, train_step, infer, get_weights, set_weights.
    """

    def __init__(
        self,
        layers: Sequence[int] = (784, 800, 10),
        vth: Sequence[float] = (20.0, 8.0),
        tau_m: float = 64.0,
        tau_s: float = 8.0,
        t_ref: int = 2,
        lateral_inhibition: float = 1.0,
        desired: int = 35,
        undesired: int = 5,
        margin: float = 5,
        effect_ratio: bool = True,
        reg_lambda: float = 10.0,
        reg_beta: float = 0.04,
        weight_limit: float = 8.0,
        init_w: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.layers = [int(x) for x in layers]
        if len(vth) != len(self.layers) - 1:
            raise ValueError(f"vth must have {len(self.layers) - 1} values, got {len(vth)}")
        self.vth = [float(x) for x in vth]
        self.tau_m, self.tau_s, self.t_ref = float(tau_m), float(tau_s), int(t_ref)
        self.w0 = float(lateral_inhibition)
        self.desired, self.undesired, self.margin = desired, undesired, float(margin)
        self.effect_ratio = bool(effect_ratio)
        self.reg_lambda, self.reg_beta = float(reg_lambda), float(reg_beta)
        self.weight_limit = float(weight_limit)
        rng = np.random.default_rng(seed)  # same init as hm2bp.reference.Network
        self._W = [init_w * rng.uniform(-1.0, 1.0, size=(o, i))
                   for i, o in zip(self.layers[:-1], self.layers[1:])]
        self._m = [np.zeros_like(W) for W in self._W]
        self._v = [np.zeros_like(W) for W in self._W]
        self._step = 0

    def get_weights(self) -> list[np.ndarray]:
        return [W.copy() for W in self._W]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        shapes = [W.shape for W in self._W]
        new = [np.array(W, dtype=np.float64) for W in weights]
        if [W.shape for W in new] != shapes:
            raise ValueError(f"weights must have shapes {shapes}, got {[W.shape for W in new]}")
        self._W = new

    def _forward(self, spikes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if spikes.dtype != np.bool_ or spikes.ndim != 3 or spikes.shape[2] != self.layers[0]:
            raise ValueError(f"spikes must be bool (B, T, {self.layers[0]}), got "
                             f"{spikes.dtype} {spikes.shape}")
        trains, currents = [], []
        x = spikes
        for l, W in enumerate(self._W):
            w0 = self.w0 if l == len(self._W) - 1 else 0.0
            x, I = lif_forward(W, x, self.vth[l], self.tau_m, self.tau_s, self.t_ref, w0)
            trains.append(x)
            currents.append(I)
        return trains, currents

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Spike trains of every layer: list of bool (B, T, n_l)."""
        return self._forward(spikes)[0]

    def _backward(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """(batch-mean gradients, pre-revival trains, per-sample cost)."""
        trains, currents = self._forward(spikes)
        B, T, _ = spikes.shape
        labels = np.asarray(labels, dtype=np.int64)
        top = trains[-1]
        O = top.shape[2]
        counts = top.sum(axis=1).astype(np.float64)
        target = np.where(np.arange(O) == labels[:, None], float(self.desired),
                          float(self.undesired))
        diff = counts - target
        active = np.abs(diff) > self.margin
        delta = np.where(active, diff, 0.0)
        cost = np.where(active, diff**2, 0.0).sum(axis=1)
        if sample_weights is not None:
            delta = delta * np.asarray(sample_weights, dtype=np.float64)[:, None]

        K_top = k_trace(top, self.tau_m, self.tau_s, self.t_ref)
        if self.w0 != 0.0:
            lat_top = _lateral_factor(top, K_top, labels, self.vth[-1], self.w0)
        else:
            lat_top = np.ones((B, O))
        # revival: a silent label neuron gets regular spikes (after delta and lat, SPEC 4)
        silent = counts[np.arange(B), labels] == 0
        revived = top
        if silent.any():
            interval = T // self.desired
            revived = top.copy()
            for b in np.flatnonzero(silent):
                revived[b, interval:T:interval, labels[b]] = True
            K_top = k_trace(revived, self.tau_m, self.tau_s, self.t_ref)

        grads: list[np.ndarray] = [np.empty(0)] * len(self._W)
        for l in range(len(self._W) - 1, -1, -1):
            W = self._W[l]
            vth = self.vth[l]
            s_o = revived if l == len(self._W) - 1 else trains[l]
            s_i = spikes if l == 0 else trains[l - 1]
            K = K_top if l == len(self._W) - 1 else k_trace(s_o, self.tau_m, self.tau_s,
                                                            self.t_ref)
            n_o = s_o.sum(axis=1).astype(np.float64)  # (B, O)
            n_i = s_i.sum(axis=1).astype(np.float64)  # (B, N)
            x = s_i.astype(np.float64)
            dv = delta / vth
            # side: sum_i W e / n_o = sum_t K * I / n_o (no O x N work); 0.5 rule when silent
            KI = (K * currents[l]).sum(axis=1)
            side = np.where(n_o > 0, KI / np.where(n_o > 0, n_o, 1.0),
                            0.5 * W.sum(axis=1)) / vth
            lat = lat_top if l == len(self._W) - 1 else 1.0
            coef = dv * (1.0 + side) * lat
            O_l, N_l = W.shape
            G = (K * coef[:, None, :]).reshape(B * T, O_l).T @ x.reshape(B * T, N_l)
            # 0.1 rule: silent post neuron, active input
            G += 0.1 * (coef * (n_o == 0)).T @ (n_i > 0).astype(np.float64)
            grads[l] = G / B
            if l > 0:
                if self.effect_ratio:
                    # sum_o dv e W / n_i at the input spikes: ((dv K)^T @ W)[t, i] where s_in
                    M = (K * dv[:, None, :]) @ W  # (B, T, N)
                    A = (M * x).sum(axis=1)
                    delta = np.where(n_i > 0, A / np.where(n_i > 0, n_i, 1.0)
                                     + (dv * (n_o == 0)) @ W, dv @ W)
                else:
                    delta = dv @ W
        return grads, trains, cost

    def gradients(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Batch mean of the per-sample SPEC-4 gradients (no regularization)."""
        return self._backward(spikes, labels, sample_weights)[0]

    @staticmethod
    def _report(trains: list[np.ndarray]) -> dict[str, Any]:
        counts = trains[-1].sum(axis=1).astype(np.int64)
        return {
            "predictions": np.argmax(counts, axis=1).astype(np.int64),
            "counts": counts,
            "layer_spikes": np.array([int(s.sum()) for s in trains], dtype=np.int64),
        }

    def train_step(
        self,
        spikes: np.ndarray,
        labels: np.ndarray,
        lr: float,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """One Adam step on the batch-mean gradient plus regularization (SPEC 5)."""
        grads, trains, cost = self._backward(spikes, labels, sample_weights)
        self._step += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for l, W in enumerate(self._W):
            scaled = W / self.weight_limit
            q = np.mean(scaled**2, axis=1)
            g = grads[l] + self.reg_lambda * self.reg_beta * scaled * np.exp(
                self.reg_beta * (q - 1.0))[:, None]
            self._m[l] = b1 * self._m[l] + (1.0 - b1) * g
            self._v[l] = b2 * self._v[l] + (1.0 - b2) * g * g
            m_hat = self._m[l] / (1.0 - b1**self._step)
            v_hat = self._v[l] / (1.0 - b2**self._step)
            self._W[l] = W - lr * m_hat / (np.sqrt(v_hat) + eps)
        result = self._report(trains)
        result["loss"] = float(np.mean(cost))
        return result

    def infer(self, spikes: np.ndarray) -> dict[str, Any]:
        """Forward pass only: predictions, counts, layer_spikes."""
        return self._report(self.forward(spikes))
