"""NumPy float64 reference implementation of HM2-BP (SPEC.md sections 1-5).

This module is the oracle for every engine test: it is written straight from the spec, favours
clarity over speed, and computes everything in float64. Pure functions on arrays form the core
(names follow the paper); `Network` is a thin stateful wrapper with the same constructor and
methods as the compiled `hm2bp.Network`.

Conventions: spike trains are bool arrays of shape (T, n) for one sample (time first), weights
are (n_out, n_in). Counts and predictions reported to callers are always the ones from BEFORE
the output revival (SPEC 4).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

# The trainer still imports these two from here; they live in hm2bp.schedule.
from .schedule import boost_weights, learning_rate

__all__ = [
    "FIRE_EPS",
    "lif_forward",
    "forward_sample",
    "spsp",
    "spsp_matrix",
    "output_delta",
    "revive",
    "lateral_factor",
    "side_term",
    "effect_ratio",
    "sample_gradients",
    "regularization",
    "adam_step",
    "sgd_step",
    "boost_weights",
    "learning_rate",
    "encode_poisson",
    "Network",
]

# Literal slack of the fire test `v > vth - 1e-6` (SPEC 1).
FIRE_EPS = 1e-6


# --------------------------------------------------------------------------------------------
# SPEC 1: neuron
# --------------------------------------------------------------------------------------------


def lif_forward(
    W: np.ndarray,
    s_in: np.ndarray,
    vth: float,
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Simulate one layer for one sample (SPEC 1).

    W: (O, N) weights; s_in: (T, N) bool input spikes. w0 is the lateral inhibition strength
    (L[o, l] = -w0 for l != o); 0 disables it.
    Returns (s_out bool (T, O), margin) where margin is the smallest |v - (vth - 1e-6)| over
    every step and neuron at which the fire test ran (inf if it never ran, i.e. T <= 1).
    """
    W = np.asarray(W, dtype=np.float64)
    x = np.asarray(s_in, dtype=np.float64)
    T = x.shape[0]
    O = W.shape[0]
    threshold = vth - FIRE_EPS
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
        r = W @ x[t - 1]
        if w0 != 0.0:
            # sum_l L[o,l] s_out[t-1,l] with L = -w0 off the diagonal, 0 on it
            prev = s_out[t - 1].astype(np.float64)
            r = r + (-w0) * (prev.sum() - prev)
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


def forward_sample(
    weights: Sequence[np.ndarray],
    s_in: np.ndarray,
    vth: Sequence[float],
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
) -> tuple[list[np.ndarray], float]:
    """Run all layers for one sample. Only the last (output) layer gets lateral inhibition w0.

    Returns (spike trains per layer, each bool (T, n_l); smallest fire-test margin of all layers).
    """
    spikes: list[np.ndarray] = []
    margin = math.inf
    x = s_in
    last = len(weights) - 1
    for l, W in enumerate(weights):
        x, m = lif_forward(W, x, vth[l], tau_m, tau_s, t_ref, w0 if l == last else 0.0)
        spikes.append(x)
        margin = min(margin, m)
    return spikes, margin


# --------------------------------------------------------------------------------------------
# SPEC 4: S-PSP
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# SPEC 3 and 4: loss, revival, backward factors
# --------------------------------------------------------------------------------------------


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


def side_term(W: np.ndarray, e: np.ndarray, n_out: np.ndarray, vth: float) -> np.ndarray:
    """side[o] = (1/vth) * sum_i W[o,i] * (e[o,i]/n_o if n_o > 0 else 0.5)  (SPEC 4)."""
    n_out = np.asarray(n_out, dtype=np.float64)
    safe_n = np.where(n_out > 0, n_out, 1.0)
    ratio = np.where((n_out > 0)[:, None], e / safe_n[:, None], 0.5)
    return (1.0 / vth) * np.sum(W * ratio, axis=1)


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
        side = side_term(W, e, n_o, vth[l])
        lat = lat_top if l == L - 1 else np.ones(W.shape[0])
        grads[l] = dv[:, None] * e * (1.0 + side)[:, None] * lat[:, None]
        if l > 0:
            R = effect_ratio(e, n_o, n_i) if use_effect_ratio else np.ones_like(e)
            delta = np.sum(dv[:, None] * R * W, axis=0)  # pre_delta: delta of layer below

    info = {
        "spikes": spikes,
        "counts": counts,
        "prediction": int(np.argmax(counts)),
        "cost": cost,
        "delta": out_delta,
        "margin": fire_margin,
    }
    return grads, info


# --------------------------------------------------------------------------------------------
# SPEC 5: update
# --------------------------------------------------------------------------------------------


def regularization(
    W: np.ndarray, reg_lambda: float, reg_beta: float, weight_limit: float
) -> np.ndarray:
    """reg_lambda*reg_beta*(W/limit)*exp(reg_beta*(q[o]-1)), q[o] = mean_i (W[o,i]/limit)^2."""
    W = np.asarray(W, dtype=np.float64)
    scaled = W / weight_limit
    q = np.mean(scaled**2, axis=1)
    return reg_lambda * reg_beta * scaled * np.exp(reg_beta * (q - 1.0))[:, None]


def adam_step(
    W: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bias-corrected Adam; step counts from 1. Returns new (W, m, v)."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (Adam counts from 1), got {step}")
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1**step)
    v_hat = v / (1.0 - b2**step)
    return W - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def sgd_step(
    W: np.ndarray, g: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """velocity = momentum*velocity + lr*g; W -= velocity (the authors' form, SPEC 5: the learning
    rate inside the velocity). Returns new (W, velocity)."""
    velocity = momentum * velocity + lr * g
    return W - velocity, velocity


# --------------------------------------------------------------------------------------------
# Input encoding (contract RNG, SPEC 2)
# --------------------------------------------------------------------------------------------

_U64_MAX = 2**64 - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays; wrap-around is intended."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _check_u64(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= int(value) <= _U64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return int(value)


def encode_poisson(
    images_uint8: np.ndarray,
    T: int,
    seed: int,
    sample_index: int | np.ndarray,
    epoch: int = 0,
) -> np.ndarray:
    """Poisson-encode uint8 images with the contract's counter-based RNG. Returns bool (B, T, n_in).

    images_uint8: (B, n_in) or (B, H, W) uint8 (flattened row-major). sample_index: index of the
    first image (image b gets sample_index + b) or an int array of length B.
    """
    if not isinstance(images_uint8, np.ndarray) or images_uint8.dtype != np.uint8:
        raise ValueError("images_uint8 must be a numpy uint8 array")
    if images_uint8.ndim not in (2, 3):
        raise ValueError(
            f"images_uint8 must have shape (B, n_in) or (B, H, W), got {images_uint8.shape}"
        )
    T = _check_u64("T", T)
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    seed = _check_u64("seed", seed)
    epoch = _check_u64("epoch", epoch)
    pixels = images_uint8.reshape(images_uint8.shape[0], -1)
    B, n_in = pixels.shape
    if isinstance(sample_index, np.ndarray):
        if sample_index.dtype.kind not in "iu" or sample_index.shape != (B,):
            raise ValueError(
                f"sample_index array must be integer with shape ({B},), "
                f"got {sample_index.dtype} {sample_index.shape}"
            )
        if np.any(sample_index < 0):
            raise ValueError("sample_index values must be >= 0")
        samples = sample_index.astype(np.uint64)
    else:
        first = _check_u64("sample_index", sample_index)
        samples = np.array([(first + b) & _U64_MAX for b in range(B)], dtype=np.uint64)

    keys = _mix(_mix(_mix(np.uint64(seed)) ^ samples) ^ np.uint64(epoch))  # (B,)
    neurons = np.arange(n_in, dtype=np.uint64)
    steps = np.arange(T, dtype=np.uint64)
    rate = pixels.astype(np.float64) / (5.5 * 255.0)
    limit = np.ceil(rate * 2.0**53).astype(np.uint64)  # spike iff u53 < ceil(rate * 2**53)
    out = np.zeros((B, T, n_in), dtype=bool)
    for b in range(B):
        h = _mix(keys[b] ^ neurons)  # (n_in,)
        bits = _mix(h[None, :] ^ steps[:, None])  # (T, n_in)
        out[b] = (bits >> np.uint64(11)) < limit[b][None, :]
    out[:, 0, :] = False  # never at t = 0
    return out


# --------------------------------------------------------------------------------------------
# Network wrapper (same surface as hm2bp.Network)
# --------------------------------------------------------------------------------------------


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {expected}, got {value}")
    return x


def _int_at_least(name: str, value: Any, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


class Network:
    """Stateful float64 reference network with the API of `hm2bp.Network`.

    backend, dtype and threads are validated and otherwise ignored (always float64, one thread).
    """

    def __init__(
        self,
        layers: Sequence[int] = (784, 800, 10),
        vth: float | Sequence[float] = (20.0, 8.0),
        tau_m: float = 64.0,
        tau_s: float = 8.0,
        t_ref: int = 2,
        lateral_inhibition: float = 1.0,
        desired: int = 35,
        undesired: int = 5,
        margin: float = 5,
        effect_ratio: bool = True,
        optimizer: str = "adam",
        reg_lambda: float = 10.0,
        reg_beta: float = 0.04,
        weight_limit: float = 8.0,
        init_w: float = 1.0,
        backend: str = "cpu",
        dtype: str = "float32",
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"layers must list at least 2 sizes (input, output), got {layers}")
        self.layers = [_int_at_least(f"layers[{k}]", n, 1) for k, n in enumerate(layers)]
        L = len(layers) - 1
        if isinstance(vth, (int, float, np.integer, np.floating)):
            vth = [vth] * L
        vth = list(vth)
        if len(vth) != L:
            raise ValueError(f"vth must have one value per weight layer ({L}), got {len(vth)}")
        self.vth = [_positive(f"vth[{k}]", x) for k, x in enumerate(vth)]
        self.tau_m = _positive("tau_m", tau_m)
        self.tau_s = _positive("tau_s", tau_s)
        if self.tau_s == self.tau_m:
            raise ValueError("tau_s must differ from tau_m (the S-PSP divides by 1 - tau_s/tau_m)")
        self.t_ref = _int_at_least("t_ref", t_ref, 0)
        self.lateral_inhibition = _positive("lateral_inhibition", lateral_inhibition, True)
        self.desired = _int_at_least("desired", desired, 1)
        self.undesired = _int_at_least("undesired", undesired, 0)
        self.margin = _positive("margin", margin, True)
        if not isinstance(effect_ratio, (bool, np.bool_)):
            raise TypeError(f"effect_ratio must be a bool, got {type(effect_ratio).__name__}")
        self.effect_ratio = bool(effect_ratio)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.optimizer = optimizer
        self.reg_lambda = _positive("reg_lambda", reg_lambda, True)
        self.reg_beta = _positive("reg_beta", reg_beta, True)
        self.weight_limit = _positive("weight_limit", weight_limit)
        init_w = _positive("init_w", init_w, True)
        if backend not in ("cpu", "cuda"):
            raise ValueError(f"backend must be 'cpu' or 'cuda', got {backend!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if threads is not None:
            _int_at_least("threads", threads, 1)
        self.backend, self.dtype, self.threads = backend, dtype, threads
        seed = _int_at_least("seed", seed, 0)

        rng = np.random.default_rng(seed)
        self._W = [
            init_w * rng.uniform(-1.0, 1.0, size=(n_out, n_in))
            for n_in, n_out in zip(self.layers[:-1], self.layers[1:])
        ]
        self._step = 0
        if optimizer == "adam":
            self._m = [np.zeros_like(W) for W in self._W]
            self._v = [np.zeros_like(W) for W in self._W]
        else:
            self._velocity = [np.zeros_like(W) for W in self._W]

    # ---- weights and state ------------------------------------------------------------

    def _shapes(self) -> list[tuple[int, int]]:
        return [(n_out, n_in) for n_in, n_out in zip(self.layers[:-1], self.layers[1:])]

    def get_weights(self) -> list[np.ndarray]:
        return [W.copy() for W in self._W]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace the weights (optimizer state is kept)."""
        weights = list(weights)
        if len(weights) != len(self._W):
            raise ValueError(f"weights must have {len(self._W)} arrays, got {len(weights)}")
        new = []
        for l, (W, shape) in enumerate(zip(weights, self._shapes())):
            W = np.array(W, dtype=np.float64, copy=True)
            if W.shape != shape:
                raise ValueError(f"weights[{l}] must have shape {shape}, got {W.shape}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"weights[{l}] must be finite")
            new.append(W)
        self._W = new

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights + optimizer state: keys weight.{l}, step, and adam_m.{l}/adam_v.{l} or
        velocity.{l}."""
        state = {f"weight.{l}": W.copy() for l, W in enumerate(self._W)}
        state["step"] = np.array(self._step, dtype=np.int64)
        if self.optimizer == "adam":
            state.update({f"adam_m.{l}": m.copy() for l, m in enumerate(self._m)})
            state.update({f"adam_v.{l}": v.copy() for l, v in enumerate(self._v)})
        else:
            state.update({f"velocity.{l}": u.copy() for l, u in enumerate(self._velocity)})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        expected = self.get_state()
        if set(state) != set(expected):
            raise ValueError(
                f"state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        for key, ref in expected.items():
            if np.shape(state[key]) != ref.shape:
                raise ValueError(f"state[{key!r}] must have shape {ref.shape}, got "
                                 f"{np.shape(state[key])}")
        L = len(self._W)
        self.set_weights([state[f"weight.{l}"] for l in range(L)])
        self._step = int(state["step"])
        if self.optimizer == "adam":
            self._m = [np.array(state[f"adam_m.{l}"], dtype=np.float64) for l in range(L)]
            self._v = [np.array(state[f"adam_v.{l}"], dtype=np.float64) for l in range(L)]
        else:
            self._velocity = [
                np.array(state[f"velocity.{l}"], dtype=np.float64) for l in range(L)
            ]

    # ---- input validation -------------------------------------------------------------

    def _check_spikes(self, spikes: Any) -> np.ndarray:
        if not isinstance(spikes, np.ndarray) or spikes.dtype != np.bool_:
            raise ValueError("spikes must be a numpy bool array of shape (B, T, n_in)")
        if spikes.ndim != 3 or spikes.shape[2] != self.layers[0] or min(spikes.shape[:2]) < 1:
            raise ValueError(
                f"spikes must have shape (B>=1, T>=1, {self.layers[0]}), got {spikes.shape}"
            )
        return spikes

    def _check_labels(self, labels: Any, B: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (B,):
            raise ValueError(f"labels must be an int array of shape ({B},), got "
                             f"{labels.dtype} {labels.shape}")
        n_out = self.layers[-1]
        if np.any(labels < 0) or np.any(labels >= n_out):
            raise ValueError(f"labels must be in [0, {n_out}), got {labels.min()}..{labels.max()}")
        return labels.astype(np.int64)

    def _check_sample_weights(self, sample_weights: Any, B: int) -> np.ndarray:
        if sample_weights is None:
            return np.ones(B)
        w = np.asarray(sample_weights, dtype=np.float64)
        if w.shape != (B,):
            raise ValueError(f"sample_weights must have shape ({B},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("sample_weights must be finite and > 0")
        return w

    # ---- forward / backward -----------------------------------------------------------

    def _forward_one(self, s_in: np.ndarray) -> tuple[list[np.ndarray], float]:
        return forward_sample(
            self._W, s_in, self.vth, self.tau_m, self.tau_s, self.t_ref, self.lateral_inhibition
        )

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Spike trains of every layer: list of bool (B, T, n_l)."""
        spikes = self._check_spikes(spikes)
        per_sample = [self._forward_one(x)[0] for x in spikes]
        return [np.stack([s[l] for s in per_sample]) for l in range(len(self._W))]

    def _batch(
        self, spikes: Any, labels: Any, sample_weights: Any
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        spikes = self._check_spikes(spikes)
        B, T = spikes.shape[:2]
        labels = self._check_labels(labels, B)
        weights = self._check_sample_weights(sample_weights, B)
        if T // self.desired < 1:
            raise ValueError(f"training needs T >= desired for revival (T={T}, "
                             f"desired={self.desired})")
        sums = [np.zeros_like(W) for W in self._W]
        infos = []
        for b in range(B):
            grads, info = sample_gradients(
                self._W, spikes[b], int(labels[b]),
                vth=self.vth, tau_m=self.tau_m, tau_s=self.tau_s, t_ref=self.t_ref,
                w0=self.lateral_inhibition, desired=self.desired, undesired=self.undesired,
                margin=self.margin, use_effect_ratio=self.effect_ratio,
                sample_weight=float(weights[b]),
            )
            for acc, g in zip(sums, grads):
                acc += g
            infos.append(info)
        return [s / B for s in sums], infos

    @staticmethod
    def _report(infos: list[dict[str, Any]]) -> dict[str, Any]:
        counts = np.stack([info["counts"] for info in infos]).astype(np.int64)
        layer_spikes = np.array(
            [sum(int(info["spikes"][l].sum()) for info in infos)
             for l in range(len(infos[0]["spikes"]))],
            dtype=np.int64,
        )
        return {
            "predictions": np.argmax(counts, axis=1).astype(np.int64),
            "counts": counts,
            "layer_spikes": layer_spikes,
        }

    def gradients(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Batch mean of the per-sample SPEC-4 gradients (no regularization)."""
        return self._batch(spikes, labels, sample_weights)[0]

    def train_step(
        self,
        spikes: np.ndarray,
        labels: np.ndarray,
        lr: float,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """One optimizer step on batch-mean gradient + regularization."""
        lr = _positive("lr", lr, allow_zero=True)
        grads, infos = self._batch(spikes, labels, sample_weights)
        self._step += 1
        for l, W in enumerate(self._W):
            g = grads[l] + regularization(W, self.reg_lambda, self.reg_beta, self.weight_limit)
            if self.optimizer == "adam":
                self._W[l], self._m[l], self._v[l] = adam_step(
                    W, g, self._m[l], self._v[l], self._step, lr
                )
            else:
                self._W[l], self._velocity[l] = sgd_step(W, g, self._velocity[l], lr)
        result = self._report(infos)
        result["loss"] = float(np.mean([info["cost"] for info in infos]))
        return result

    def infer(self, spikes: np.ndarray) -> dict[str, Any]:
        spikes = self._check_spikes(spikes)
        infos = []
        for x in spikes:
            trains, _ = self._forward_one(x)
            infos.append({"spikes": trains, "counts": trains[-1].sum(axis=0)})
        return self._report(infos)

    def train_step_images(
        self,
        images_uint8: np.ndarray,
        labels: np.ndarray,
        lr: float,
        *,
        T: int,
        seed: int,
        sample_index: int | np.ndarray,
        epoch: int = 0,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        spikes = encode_poisson(images_uint8, T, seed, sample_index, epoch)
        return self.train_step(spikes, labels, lr, sample_weights)

    def infer_images(
        self,
        images_uint8: np.ndarray,
        *,
        T: int,
        seed: int,
        sample_index: int | np.ndarray,
        epoch: int = 0,
    ) -> dict[str, Any]:
        return self.infer(encode_poisson(images_uint8, T, seed, sample_index, epoch))
