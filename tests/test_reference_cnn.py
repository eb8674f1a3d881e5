"""The spiking CNN in the NumPy reference (python/hm2bp/reference/conv.py, pool.py) against
SPEC_CNN.md: hand-computed cases, conv == dense where they coincide, the fast form of
SPEC_CNN 3.4 as an independent check of the literal per-connection sums, and small CNNs that
train."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hm2bp import reference as ref
from hm2bp.layers import Conv2d, Dense, Pool2d

TAU = dict(tau_m=64.0, tau_s=8.0, t_ref=2)


def times(s: np.ndarray, k: int) -> list[int]:
    return np.flatnonzero(s[:, k]).tolist()


def spsp(post: list[int], pre: list[int]) -> float:
    return ref.spsp(post, pre, TAU["tau_m"], TAU["tau_s"], TAU["t_ref"])


def backward(conn, delta, s_out, s_in, need_pre_delta=True):
    return conn.backward(np.asarray(delta, dtype=float), s_out, s_in, ref.BackwardParams(**TAU), need_pre_delta)


def random_trains(rng, T: int, n: int, rate: float, silent: int = 0) -> np.ndarray:
    s = rng.random((T, n)) < rate
    s[0] = False
    s[:, rng.choice(n, silent, replace=False)] = False
    return s


# ------------------------------------------------------------------------------ forward

def naive_conv_current(W: np.ndarray, s_in: np.ndarray, in_shape, padding: int) -> np.ndarray:
    """SPEC_CNN 1 with np.pad: cross-correlation of the zero-padded input, stride 1."""
    C, H, Wd = in_shape
    O, _, K, _ = W.shape
    x = np.pad(s_in.reshape(-1, C, H, Wd).astype(float), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    Dx, Dy = H - K + 1 + 2 * padding, Wd - K + 1 + 2 * padding
    out = np.zeros((s_in.shape[0], O, Dx, Dy))
    for o in range(O):
        for a in range(Dx):
            for b in range(Dy):
                out[:, o, a, b] = np.einsum("tcij,cij->t", x[:, :, a:a + K, b:b + K], W[o])
    return out.reshape(s_in.shape[0], -1)


def test_conv_current_at_an_edge_with_padding():
    # 2 channels of 3x3, 2 kernels of 3x3, padding 1: neuron (k=1, x=0, y=2), the top-right
    # corner, sees only kernel rows i = 1, 2 and columns j = 0, 1 (h = i - 1, w = j + 1)
    W = np.arange(36, dtype=float).reshape(2, 2, 3, 3) / 4
    conn = ref.ConvConnection(W, (2, 3, 3), padding=1, vth=1.0)
    s = np.zeros((3, 18), dtype=bool)
    s[0] = True  # every input spikes at t = 0
    s[1, (1 * 3 + 0) * 3 + 2] = True  # only q = (c=1, h=0, w=2) at t = 1
    I = conn.current(s)
    o = (1 * 3 + 0) * 3 + 2
    assert I.shape == (3, 18)
    assert I[0, o] == sum(W[1, c, i, j] for c in (0, 1) for i in (1, 2) for j in (0, 1))
    assert I[1, o] == W[1, 1, 1, 1]  # i = h - x + 1 = 1, j = w - y + 1 = 1
    assert I[1, (1 * 3 + 0) * 3 + 0] == 0.0  # q is outside neuron (1, 0, 0)'s window
    assert I[1, (0 * 3 + 1) * 3 + 1] == W[0, 1, 0, 2]  # neuron (0, 1, 1): i = 0, j = 2
    assert not I[2].any()
    # the whole current against the padded cross-correlation, a non-square input
    rng = np.random.default_rng(1)
    for K, P, shape in [(3, 1, (2, 5, 4)), (2, 0, (3, 4, 6)), (3, 2, (1, 3, 3))]:
        W = rng.normal(size=(3, shape[0], K, K))
        s = rng.random((6, math.prod(shape))) < 0.5
        got = ref.ConvConnection(W, shape, P, 1.0).current(s)
        np.testing.assert_allclose(got, naive_conv_current(W, s, shape, P), rtol=1e-14, atol=1e-14)


def test_pool_current_clips_its_window_at_the_border():
    # 5x5 into 2x2 windows every 2: D = ceil(5/2) = 3; the last row and column of windows hold
    # one input row / column only
    conn = ref.PoolConnection((1, 5, 5), size=2, stride=2, vth=1.0)
    s = np.zeros((2, 25), dtype=bool)
    s[0] = True
    I = conn.current(s)
    np.testing.assert_array_equal(I[0].reshape(3, 3), [[4, 4, 2], [4, 4, 2], [2, 2, 1]])
    s[1, 4 * 5 + 4] = s[1, 0 * 5 + 4] = s[1, 1 * 5 + 1] = True
    np.testing.assert_array_equal(I.shape, (2, 9))
    I = conn.current(s)
    np.testing.assert_array_equal(I[1].reshape(3, 3), [[1, 0, 1], [0, 0, 0], [0, 0, 1]])
    # overlapping 3x3 windows every 2, channel-wise: input (c, 2, 2) is in 4 windows of channel c
    conn = ref.PoolConnection((2, 5, 5), size=3, stride=2, vth=1.0)
    s = np.zeros((1, 50), dtype=bool)
    s[0, 25 + 2 * 5 + 2] = True
    np.testing.assert_array_equal(conn.current(s)[0].reshape(2, 3, 3)[1], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    assert not conn.current(s)[0][:9].any()


def test_fire_rule_per_layer_kind():
    # v reaches exactly vth at t = 1 (current 8 vth, tau_s 8): v > vth - 1e-6 fires, v > vth not
    current = np.zeros((2, 1))
    current[0] = 8.0
    fired, margin = ref.lif_scan(current, 1.0, **TAU)
    assert fired[1, 0] and margin == pytest.approx(1e-6)
    assert not ref.lif_scan(current, 1.0, **TAU, fire_eps=0.0)[0].any()
    assert ref.ConvConnection.fire_eps == 0.0  # SPEC_CNN 8.1
    assert ref.PoolConnection.fire_eps == ref.DenseConnection.fire_eps == ref.FIRE_EPS == 1e-6


# ----------------------------------------------------------------------------- backward

def test_pool_backward_scales_by_size_squared_and_the_effect_ratio():
    rng = np.random.default_rng(2)
    T = 60
    for size, stride, in_shape in [(2, 2, (1, 4, 4)), (2, 1, (1, 3, 3)), (3, 2, (2, 5, 5)), (1, 2, (1, 3, 3))]:
        conn = ref.PoolConnection(in_shape, size, stride, vth=3.0)
        s_in = random_trains(rng, T, math.prod(in_shape), 0.2, silent=2)
        s_out = random_trains(rng, T, conn.n_out, 0.2, silent=1)
        delta = rng.normal(size=conn.n_out)
        C, H, W = in_shape
        D = -(-H // stride)
        want = np.zeros(conn.n_in)
        for c in range(C):
            for X in range(D):
                for Y in range(D):
                    p = (c * D + X) * D + Y
                    for h in range(X * stride, min(H, X * stride + size)):
                        for w in range(Y * stride, min(W, Y * stride + size)):
                            q = (c * H + h) * W + w
                            n_p, n_q = s_out[:, p].sum(), s_in[:, q].sum()
                            R = spsp(times(s_out, p), times(s_in, q)) / n_q if n_p and n_q else 1.0
                            want[q] += delta[p] / size**2 * R  # not divided by the pool's vth
        g, got = backward(conn, delta, s_out, s_in)
        assert g is None
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # size 1 every 2: input (1, 1) lies in no window and gets 0
    assert got[4] == 0.0 and np.abs(got).max() > 0
    assert backward(conn, delta, s_out, s_in, need_pre_delta=False) == (None, None)


def test_a_silent_conv_neuron_gets_the_0_1_and_0_5_rules():
    # input 1 x 2 x 2, one 3x3 kernel, padding 1: 2x2 neurons, each sees the 4 inputs through a
    # different 2x2 corner of the kernel. All conv neurons silent, input (0, 1) silent.
    W = np.arange(9, dtype=float).reshape(1, 1, 3, 3) / 10 - 0.3
    vth = 2.0
    conn = ref.ConvConnection(W, (1, 2, 2), padding=1, vth=vth)
    T = 40
    s_in = np.zeros((T, 4), dtype=bool)
    s_in[[3, 9, 20], 0] = s_in[[5, 30], 2] = s_in[[7], 3] = True
    s_out = np.zeros((T, 4), dtype=bool)
    delta = np.array([1.0, -2.0, 3.0, 0.5])
    g, pre = backward(conn, delta, s_out, s_in)
    want = np.zeros((3, 3))
    want_pre = np.zeros(4)
    for x in range(2):
        for y in range(2):
            o = x * 2 + y
            valid = [(i, j) for i in range(3) for j in range(3) if 0 <= x + i - 1 < 2 and 0 <= y + j - 1 < 2]
            side = 0.5 / vth * sum(W[0, 0, i, j] for i, j in valid)  # the 0.5 rule
            for i, j in valid:
                q = (x + i - 1) * 2 + (y + j - 1)
                e = 0.1 if s_in[:, q].any() else 0.0  # the 0.1 rule: e = 0.1 from active inputs
                want[i, j] += e * (1 + side) * delta[o] / vth
                want_pre[q] += delta[o] / vth * W[0, 0, i, j]  # R = 1 for a silent neuron
    np.testing.assert_allclose(g[0, 0], want, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(pre, want_pre, rtol=1e-14, atol=1e-16)
    assert want[1, 1] != 0 and np.count_nonzero(want) == 8  # kernel (0, 0) only meets input (0, 1)
    g1, none = backward(conn, delta, s_out, s_in, need_pre_delta=False)
    assert none is None and np.array_equal(g1, g)


def test_conv_backward_of_one_neuron_by_hand():
    # one kernel covering a 1 x 2 x 2 input (one neuron), firing: e from the S-PSP, the side term
    # over its 4 connections, R = e / n_q, pre_delta = dv W R
    W = np.array([[[[0.5, -1.0], [2.0, 0.25]]]])
    vth = 4.0
    s_in = np.zeros((50, 4), dtype=bool)
    s_in[[2, 10, 11], 0] = s_in[[4], 1] = s_in[[30, 33], 3] = True  # input 2 silent
    s_out = np.zeros((50, 1), dtype=bool)
    s_out[[12, 40], 0] = True
    g, pre = backward(ref.ConvConnection(W, (1, 2, 2), 0, vth), [3.0], s_out, s_in)
    post = times(s_out, 0)
    e = [spsp(post, times(s_in, q)) for q in range(4)]
    w = W.ravel()
    side = 1 / vth * sum(w[q] * e[q] / 2 for q in range(4))
    dv = 3.0 / vth
    np.testing.assert_allclose(g.ravel(), [e[q] * (1 + side) * dv for q in range(4)], rtol=1e-13)
    n_q = s_in.sum(axis=0)
    R = [e[q] / n_q[q] if n_q[q] else 1.0 for q in range(4)]
    np.testing.assert_allclose(pre, [dv * w[q] * R[q] for q in range(4)], rtol=1e-13)
    assert e[2] == 0 and R[2] == 1.0 and min(e[0], e[1], e[3]) > 0


class Recorder:
    """A connection that records what the backward walk asks of it."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log
        self.vth, self.fire_eps = inner.vth, inner.fire_eps
        self.recurrent, self.fixed = inner.recurrent, inner.fixed

    def current(self, s_in):
        return self.inner.current(s_in)

    def backward(self, delta, s_out, s_in, params, need_pre_delta):
        self.log.append((type(self.inner).__name__, need_pre_delta))
        return self.inner.backward(delta, s_out, s_in, params, need_pre_delta)


def test_no_pre_delta_below_the_first_conv_layer():
    net = ref.Network(input_shape=(1, 6, 6), layers=[Conv2d(2, 3, 0.5), Pool2d(2, 0.5), Dense(3, 1.0)],
                      desired=10, seed=1)
    log: list = []
    stack = [Recorder(c, log) for c in net.connections()]
    s = random_trains(np.random.default_rng(0), 40, 36, 0.3)
    grads, _ = ref.sample_gradients(stack, s, 1, desired=10, **TAU)
    assert log == [("DenseConnection", True), ("PoolConnection", True), ("ConvConnection", False)]
    assert [g.shape for g in grads] == [(2, 1, 3, 3), (3, 8)]


# ------------------------------------------------------------- conv == dense, fast form

@pytest.mark.parametrize("seed", range(4))
def test_a_conv_covering_its_whole_input_is_a_dense_layer(seed):
    # K = H = W, padding 0: one position per kernel, kernel k sees every input through
    # W[k, c, i, j], which is Dense row k in the flat input order (c*H + i)*W + j
    rng = np.random.default_rng(seed)
    in_shape, O = (2, 4, 4), 6
    Wc = rng.uniform(-1, 1, (O, 2, 4, 4)) * 1.5 + 0.3
    W2 = rng.uniform(-1, 1, (3, O)) * 2 + 0.5
    conv = [ref.ConvConnection(Wc, in_shape, 0, 1.5), ref.DenseConnection(W2, 2.0)]
    dense = [ref.DenseConnection(Wc.reshape(O, 32), 1.5), ref.DenseConnection(W2, 2.0)]
    dense[0].fire_eps = 0.0  # the conv fire rule, so that both see the same spikes
    s = random_trains(rng, 80, 32, 0.15, silent=3)
    label = int(rng.integers(3))
    gc, ic = ref.sample_gradients(conv, s, label, desired=10, undesired=2, margin=2, **TAU)
    gd, id_ = ref.sample_gradients(dense, s, label, desired=10, undesired=2, margin=2, **TAU)
    for a, b in zip(ic["spikes"], id_["spikes"]):
        np.testing.assert_array_equal(a, b)
    assert ic["spikes"][0].any() and ic["spikes"][1].any()
    assert gc[0].shape == (O, 2, 4, 4)
    for a, b in zip([gc[0].reshape(O, 32), gc[1]], gd):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    assert np.abs(gd[0]).max() > 0


def k_trace(s_out: np.ndarray) -> np.ndarray:
    """SPEC 6's kernel K[t, o] of every neuron from its own output train (e = K^T s_in)."""
    tau_m, tau_s, t_ref = TAU["tau_m"], TAU["tau_s"], TAU["t_ref"]
    T, O = s_out.shape
    K = np.zeros((T, O))
    for o in range(O):
        last = 1
        for tp in np.flatnonzero(s_out[:, o]):
            for t in range(max(1, tp - 4 * int(tau_m)), tp - t_ref + 1):
                s, u = tp - last, tp - (t + t_ref)
                m = min(s, u)
                K[t, o] += (math.exp(-max(u - s, 0) / tau_s) / (1 - tau_s / tau_m)
                            * (math.exp(-m / tau_m) - math.exp(-m / tau_s)))
            last = tp + t_ref
    return K


def fast_conv_backward(W, in_shape, P, vth, delta, s_out, s_in):
    """SPEC_CNN 3.4: g and pre_delta from traces K and shifted windows of the padded input."""
    C, H, Wd = in_shape
    O, _, Kk, _ = W.shape
    Dx, Dy = H - Kk + 1 + 2 * P, Wd - Kk + 1 + 2 * P
    T = s_in.shape[0]
    K = k_trace(s_out).reshape(T, O, Dx, Dy)
    n_o = s_out.sum(axis=0).reshape(O, Dx, Dy)
    x = np.pad(s_in.reshape(T, C, H, Wd).astype(float), ((0, 0), (0, 0), (P, P), (P, P)))
    active = np.pad((s_in.sum(axis=0) > 0).reshape(C, H, Wd).astype(float), ((0, 0), (P, P), (P, P)))
    valid = np.pad(np.ones((C, H, Wd)), ((0, 0), (P, P), (P, P)))  # 1 on real inputs, 0 on padding
    I = naive_conv_current(W, s_in, in_shape, P).reshape(T, O, Dx, Dy)
    dv = delta.reshape(O, Dx, Dy) / vth
    w_valid = np.zeros((O, Dx, Dy))  # sum of W over each neuron's valid connections
    for i in range(Kk):
        for j in range(Kk):
            w_valid += np.einsum("kc,cxy->kxy", W[:, :, i, j], valid[:, i:i + Dx, j:j + Dy])
    side = np.where(n_o > 0, (K * I).sum(axis=0) / np.maximum(n_o, 1), 0.5 * w_valid) / vth
    A = dv * (1 + side)
    g = np.zeros_like(W)
    for i in range(Kk):
        for j in range(Kk):
            window = x[:, :, i:i + Dx, j:j + Dy]  # s_in[(c, x+i-P, y+j-P), t]
            g[:, :, i, j] = np.einsum("kxy,tkxy,tcxy->kc", A, K, window)
            g[:, :, i, j] += 0.1 * np.einsum("kxy,cxy->kc", A * (n_o == 0), active[:, i:i + Dx, j:j + Dy])
    # pre_delta: Q = the transposed conv of dv K; silent neurons enter with R = 1
    Q = np.zeros((T, C, H + 2 * P, Wd + 2 * P))
    S = np.zeros((C, H + 2 * P, Wd + 2 * P))
    for i in range(Kk):
        for j in range(Kk):
            Q[:, :, i:i + Dx, j:j + Dy] += np.einsum("kxy,tkxy,kc->tcxy", dv, K, W[:, :, i, j])
            S[:, i:i + Dx, j:j + Dy] += np.einsum("kxy,kc->cxy", dv * (n_o == 0), W[:, :, i, j])
            # for n_q = 0 every neuron counts with R = 1
    Q, S = Q[:, :, P:P + H, P:P + Wd], S[:, P:P + H, P:P + Wd]
    every = np.zeros((C, H + 2 * P, Wd + 2 * P))
    for i in range(Kk):
        for j in range(Kk):
            every[:, i:i + Dx, j:j + Dy] += np.einsum("kxy,kc->cxy", dv, W[:, :, i, j])
    every = every[:, P:P + H, P:P + Wd]
    n_q = s_in.sum(axis=0).reshape(C, H, Wd)
    x_in = s_in.reshape(T, C, H, Wd)
    pre = np.where(n_q > 0, (x_in * Q).sum(axis=0) / np.maximum(n_q, 1) + S, every)
    return g, pre.ravel()


@pytest.mark.parametrize("K, P, in_shape, rate_out", [
    (3, 0, (2, 6, 6), 0.1), (3, 1, (2, 5, 5), 0.08), (5, 2, (1, 6, 7), 0.05), (2, 1, (3, 4, 4), 0.15),
])
def test_the_fast_form_of_spec_cnn_3_4_equals_the_per_connection_sums(K, P, in_shape, rate_out):
    rng = np.random.default_rng(K * 10 + P)
    O, T = 3, 90
    W = rng.normal(size=(O, in_shape[0], K, K))
    conn = ref.ConvConnection(W, in_shape, P, vth=1.7)
    s_in = random_trains(rng, T, conn.n_in, 0.1, silent=3)
    s_out = random_trains(rng, T, conn.n_out, rate_out, silent=4)
    delta = rng.normal(size=conn.n_out)
    g, pre = backward(conn, delta, s_out, s_in)
    g_fast, pre_fast = fast_conv_backward(W, in_shape, P, 1.7, delta, s_out, s_in)
    assert (s_out.sum(axis=0) == 0).any() and (s_in.sum(axis=0) == 0).any()
    np.testing.assert_allclose(g, g_fast, rtol=0, atol=1e-12 * np.abs(g_fast).max())
    np.testing.assert_allclose(pre, pre_fast, rtol=0, atol=1e-12 * np.abs(pre_fast).max())


# ------------------------------------------------------------- regularization, network

def test_regularization_is_per_output_channel():
    lam, beta, limit = 10.0, 0.4, 8.0
    W = np.zeros((2, 2, 1, 2))
    W[0] = [[[8.0, 0.0]], [[0.0, 0.0]]]  # q0 = mean(1, 0, 0, 0) = 0.25
    W[1] = [[[4.0, 4.0]], [[-4.0, 8.0]]]  # q1 = mean(.25, .25, .25, 1) = 0.4375
    reg = ref.regularization(W, lam, beta, limit)
    for k, q in [(0, 0.25), (1, 0.4375)]:
        np.testing.assert_allclose(reg[k], lam * beta * W[k] / limit * math.exp(beta * (q - 1)), rtol=1e-15)
    # a network applies it to its conv kernels: SGD with zero gradient moves W by lr * reg
    net = ref.Network(input_shape=(2, 3, 3), layers=[Conv2d(2, (1), 1.0), Dense(3, 1.0)], optimizer="sgd",
                      reg_lambda=lam, reg_beta=beta, seed=3)
    before = net.get_weights()
    net.apply_gradients([np.zeros_like(w) for w in before], 0.1, count=1)
    for a, b in zip(net.get_weights(), before):
        np.testing.assert_allclose(a, b - 0.1 * ref.regularization(b, lam, beta, limit), rtol=1e-15)


def test_layer_form_draws_weights_like_the_engine():
    layers = [Conv2d(3, 3, 1.0, padding=1, init_w=0.5), Pool2d(2, 1.0), Dense(4, 2.0), Dense(3, 2.0, init_w=2.0)]
    net = ref.Network(input_shape=(2, 6, 6), layers=layers, init_w=1.5, seed=7)
    assert net.shapes == [(2, 6, 6), (3, 6, 6), (3, 3, 3), (4, 1, 1), (3, 1, 1)]
    assert net.layers == [72, 108, 27, 4, 3] and net.vth == [1.0, 1.0, 2.0, 2.0]
    rng = np.random.default_rng(7)
    want = [0.5 * rng.uniform(-1, 1, (3, 2, 3, 3)), 1.5 * rng.uniform(-1, 1, (4, 27)),
            2.0 * rng.uniform(-1, 1, (3, 4))]
    for got, w in zip(net.get_weights(), want):
        np.testing.assert_array_equal(got, w)
    with pytest.raises(ValueError, match="give each layer its own vth"):
        ref.Network(input_shape=(2, 6, 6), layers=layers, vth=[1.0])
    with pytest.raises(ValueError, match="vth is required"):
        ref.Network([4, 3])
    with pytest.raises(ValueError, match="the output layer must be Dense"):
        ref.Network(input_shape=(2, 6, 6), layers=layers[:2])


CNNS = [  # (input shape, kernel, padding, pool size, pool stride, batch)
    ((1, 9, 9), 3, 0, 2, 2, 1),
    ((2, 9, 9), 3, 1, 3, 2, 3),
    ((1, 10, 10), 5, 0, 2, 2, 3),
    ((1, 8, 8), 5, 1, 2, 1, 1),
]


@pytest.mark.parametrize("case", range(len(CNNS)))
def test_small_cnns_train(case):
    in_shape, K, P, size, stride, batch = CNNS[case]
    layers = [Conv2d(3, K, 0.6, padding=P, init_w=1.0), Pool2d(size, 0.5, stride=stride),
              Conv2d(4, 3, 0.8, padding=1), Pool2d(2, 0.6), Dense(4, 4.0)]
    net = ref.Network(input_shape=in_shape, layers=layers, desired=12, undesired=2, margin=2, seed=case,
                      init_w=0.8, reg_lambda=1.0, reg_beta=0.1)
    rng = np.random.default_rng(case)
    spikes = rng.random((batch, 60, net.layers[0])) < 0.15
    spikes[:, 0] = False
    labels = rng.integers(0, 4, batch)
    out = net.forward_backward(spikes, labels)
    grads = out["gradients"]
    assert [g.shape for g in grads] == [w.shape for w in net.get_weights()]
    assert all(np.isfinite(g).all() for g in grads) and all(np.abs(g).max() > 0 for g in grads)
    assert (out["layer_spikes"] > 0).all()
    forward = net.forward(spikes)
    assert [f.shape for f in forward] == [(batch, 60, n) for n in net.layers[1:]]
    np.testing.assert_array_equal(out["counts"], forward[-1].sum(axis=1))
    state = net.get_state()
    for _ in range(3):
        result = net.train_step(spikes, labels, 0.01)
        assert np.isfinite(result["loss"])
    assert all(np.isfinite(w).all() for w in net.get_weights())
    # the state round trip resumes identically
    other = ref.Network(input_shape=in_shape, layers=layers, desired=12, undesired=2, margin=2, seed=99,
                        init_w=0.8, reg_lambda=1.0, reg_beta=0.1)
    other.set_state(state)
    for _ in range(3):
        other.train_step(spikes, labels, 0.01)
    for a, b in zip(net.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert net.infer(spikes)["predictions"].shape == (batch,)
