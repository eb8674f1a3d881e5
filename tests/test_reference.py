"""Hand-computed checks of the NumPy reference (python/hm2bp/reference/) against SPEC.md.

Unless a test says otherwise: tau_m = 64, tau_s = 8, t_ref = 2, so the S-PSP prefactor
1 / (1 - tau_s/tau_m) = 1 / (1 - 1/8) = 8/7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

TAU_M, TAU_S, T_REF = 64.0, 8.0, 2
K = 8.0 / 7.0  # 1 / (1 - tau_s/tau_m)


@pytest.fixture(scope="module")
def ref():
    from hm2bp import reference

    return reference


def spsp(ref, post, pre):
    return ref.spsp(post, pre, TAU_M, TAU_S, T_REF)


def train(T, *columns):
    """Bool (T, len(columns)) spike train; each column is a list of spike times."""
    s = np.zeros((T, len(columns)), dtype=bool)
    for k, times in enumerate(columns):
        s[list(times), k] = True
    return s


# ------------------------------------------------------------------------------- S-PSP


def test_spsp_single_pair(ref):
    # post at 10, pre at 3: lb = max(1, 10-256) = 1, 3+2 <= 10.
    # s = 10 - last(1) = 9, u = 10 - (3+2) = 5, m = 5, max(u-s, 0) = 0
    # e = 8/7 * (exp(-5/64) - exp(-5/8)) = 8/7 * (0.924848 - 0.535261) = 0.4452427...
    expected = K * (math.exp(-5 / 64) - math.exp(-5 / 8))
    assert spsp(ref, [10], [3]) == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(0.44524272536824516, rel=1e-14)


def test_spsp_refractory_shift(ref):
    # pre at 9, post at 10: 9 + t_ref = 11 > 10 -> skipped -> 0 (n_o = n_i = 1: no 0.1 rule)
    assert spsp(ref, [10], [9]) == 0.0
    # pre at 8: u = 10 - 10 = 0 -> m = 0 -> exp(0) - exp(0) = 0
    assert spsp(ref, [10], [8]) == 0.0
    # pre at 7: s = 9, u = 1, m = 1 -> 8/7 * (exp(-1/64) - exp(-1/8)) = 0.1165709...
    assert spsp(ref, [10], [7]) == pytest.approx(
        K * (math.exp(-1 / 64) - math.exp(-1 / 8)), rel=1e-14
    )


def test_spsp_second_post_spike_after_reset(ref):
    # post at 10 and 20, pre at 5.
    # tp = 10: s = 10 - 1 = 9, u = 10 - 7 = 3, m = 3      -> a = 8/7 (e^-3/64 - e^-3/8)
    # last = 10 + t_ref = 12
    # tp = 20: s = 20 - 12 = 8, u = 20 - 7 = 13, m = s = 8 (s < u)
    #          factor exp(-(13-8)/8) = e^-5/8            -> b = e^-5/8 * 8/7 (e^-8/64 - e^-1)
    a = K * (math.exp(-3 / 64) - math.exp(-3 / 8))
    b = math.exp(-5 / 8) * K * (math.exp(-8 / 64) - math.exp(-1))
    assert spsp(ref, [10, 20], [5]) == pytest.approx(a + b, rel=1e-14)
    assert a + b == pytest.approx(0.6198540168171849, rel=1e-14)
    # with last = tp (no t_ref shift) the second term would use s = 10: make sure it is not that
    wrong_b = math.exp(-3 / 8) * K * (math.exp(-10 / 64) - math.exp(-10 / 8))
    assert spsp(ref, [10, 20], [5]) != pytest.approx(a + wrong_b, rel=1e-6)
    # pre at 15 only counts for tp = 20: s = 8, u = 3, m = 3 -> a again
    assert spsp(ref, [10, 20], [15]) == pytest.approx(a, rel=1e-14)


def test_spsp_window_edge(ref):
    # post at 300: lb = max(1, 300 - 4*64) = 44.
    # pre at 44 is inside: s = 299, u = 300 - 46 = 254, m = 254
    #   e = 8/7 * (exp(-254/64) - exp(-254/8)) = 0.0215966...
    inside = K * (math.exp(-254 / 64) - math.exp(-254 / 8))
    assert spsp(ref, [300], [44]) == pytest.approx(inside, rel=1e-14)
    # pre at 43 = lb - 1 is outside the window -> 0
    assert spsp(ref, [300], [43]) == 0.0
    assert spsp(ref, [300], [43, 44]) == pytest.approx(inside, rel=1e-14)
    # lb is at least 1: a pre spike at t = 0 never counts
    assert spsp(ref, [10], [0]) == 0.0
    assert spsp(ref, [10], [0, 3]) == spsp(ref, [10], [3])


def test_spsp_point_one_rule(ref):
    assert spsp(ref, [], [3]) == 0.1  # silent post, active pre
    assert spsp(ref, [], []) == 0.0
    assert spsp(ref, [5], []) == 0.0
    assert spsp(ref, [5], [7]) == 0.0  # both active but pre after post: a real 0


def test_spsp_matrix_matches_pairwise(ref):
    rng = np.random.default_rng(1)
    T = 330  # longer than 4*tau_m so the window matters
    s_out = rng.random((T, 4)) < 0.05
    s_in = rng.random((T, 5)) < 0.1
    s_out[0] = s_in[0] = False
    s_out[:, 1] = False  # silent post -> 0.1 row
    s_in[:, 3] = False  # silent pre -> 0 column
    e = ref.spsp_matrix(s_out, s_in, TAU_M, TAU_S, T_REF)
    expected = np.array(
        [
            [spsp(ref, np.flatnonzero(s_out[:, o]), np.flatnonzero(s_in[:, i])) for i in range(5)]
            for o in range(4)
        ]
    )
    np.testing.assert_allclose(e, expected, rtol=1e-12, atol=1e-15)
    assert np.all(e[1, [0, 1, 2, 4]] == 0.1) and np.all(e[:, 3] == 0.0)


# --------------------------------------------------------------------------------- LIF


def lif(ref, W, s_in, vth, t_ref=T_REF, w0=0.0):
    return ref.lif_forward(np.array(W, dtype=float), s_in, vth, TAU_M, TAU_S, t_ref, w0)


def test_lif_reaches_threshold_at_hand_computed_step(ref):
    # one input with w = 8 spiking at t = 1 (arrives at t = 2), vth = 2.5:
    # t=2: ep = 8,               v = 8/8 = 1
    # t=3: ep = 8*7/8 = 7,       v = 1*63/64 + 7/8 = 1.859375
    # t=4: ep = 7*7/8 = 6.125,   v = 1.859375*63/64 + 6.125/8 = 1.830322265625 + 0.765625
    #                              = 2.595947265625 > 2.5 - 1e-6 -> spike at 4, v = 0, ref = 2
    # t=5: refractory, v = 0
    s_out, margin = lif(ref, [[8.0]], train(6, [1]), 2.5)
    assert np.flatnonzero(s_out[:, 0]).tolist() == [4]
    # margins |v - 2.499999| at t=1..5: 2.499999, 1.499999, 0.640624, 0.095948265625, 2.499999
    assert margin == pytest.approx(2.595947265625 - (2.5 - 1e-6), rel=1e-12)
    # vth = 2.6: no spike at 4; t=5: v = 2.595947265625*63/64 + 8*(7/8)^3/8
    #                               = 2.555385... + 0.669921875 = 3.2253... -> spike at 5
    s_out, _ = lif(ref, [[8.0]], train(6, [1]), 2.6)
    assert np.flatnonzero(s_out[:, 0]).tolist() == [5]


def test_lif_no_spike_at_t0_and_literal_eps(ref):
    # no input: v stays 0. vth = 5e-7 -> fire test 0 > 5e-7 - 1e-6 = -5e-7 is true at every step
    # t >= 1 (even while refractory, where v is forced to 0), but never at t = 0.
    s_out, _ = lif(ref, [[0.0]], train(5, []), 5e-7)
    assert s_out[:, 0].tolist() == [False, True, True, True, True]
    # vth = 2e-6 -> 0 > 1e-6 is false: silent; margin = |0 - 1e-6|
    s_out, margin = lif(ref, [[0.0]], train(5, []), 2e-6)
    assert not s_out.any()
    assert margin == pytest.approx(1e-6, rel=1e-9)


def test_lif_one_step_delay(ref):
    # input at t=1 with w=1000: nothing at t=1 (it sees s_in[0] = 0); t=2: v = 125 -> spike
    s_out, _ = lif(ref, [[1000.0]], train(4, [1]), 1.0)
    assert np.flatnonzero(s_out[:, 0]).tolist() == [2]
    s_out, _ = lif(ref, [[1000.0]], train(4, [0]), 1.0)
    assert np.flatnonzero(s_out[:, 0]).tolist() == [1]


@pytest.mark.parametrize(
    "t_ref, expected",
    [
        # strong drive every step from t=1: first spike at 2, then t_ref forced-zero steps
        (2, [2, 5, 8, 11]),
        (1, [2, 4, 6, 8, 10]),
        (0, list(range(2, 12))),
    ],
)
def test_lif_refractory_period(ref, t_ref, expected):
    s_out, _ = lif(ref, [[1000.0]], train(12, range(1, 12)), 1.0, t_ref=t_ref)
    assert np.flatnonzero(s_out[:, 0]).tolist() == expected


def test_lif_lateral_inhibition(ref):
    # two outputs, one input spike at t=1, W = [[1000], [8]], vth = 2.5.
    # neuron 0: t=2: v = 125 -> spike; refractory at 3, 4; t=5: v = 1000*(7/8)^3/8 = 83.7 -> spike
    # neuron 1 without inhibition: the hand case above -> spike at 4.
    # neuron 1 with w0 = 1 (neuron 0's spike at t=2 arrives at t=3):
    # t=3: ep = 7 - 1 = 6,          v = 63/64 + 6/8 = 1.734375
    # t=4: ep = 5.25,               v = 1.734375*63/64 + 5.25/8 = 1.70727539 + 0.65625
    #                                 = 2.36352539 < 2.5 -> no spike
    # t=5: ep = 4.59375,            v = 2.36352539*63/64 + 4.59375/8 = 2.32659531 + 0.57421875
    #                                 = 2.90081406 -> spike at 5
    W = [[1000.0], [8.0]]
    s_free, _ = lif(ref, W, train(6, [1]), 2.5, w0=0.0)
    s_inh, _ = lif(ref, W, train(6, [1]), 2.5, w0=1.0)
    assert np.flatnonzero(s_free[:, 0]).tolist() == [2, 5]
    assert np.flatnonzero(s_free[:, 1]).tolist() == [4]
    assert np.flatnonzero(s_inh[:, 0]).tolist() == [2, 5]
    assert np.flatnonzero(s_inh[:, 1]).tolist() == [5]


def test_lif_lateral_inhibition_has_zero_diagonal(ref):
    # L[o,o] = 0: a lone neuron is never inhibited by its own spikes, whatever w0 is
    drive = train(40, range(1, 40))
    s_free, _ = lif(ref, [[1.5]], drive, 2.0, w0=0.0)
    s_inh, _ = lif(ref, [[1.5]], drive, 2.0, w0=5.0)
    assert s_free[:, 0].sum() >= 3
    np.testing.assert_array_equal(s_inh, s_free)


# ---------------------------------------------------------------- loss, revival, factors


def test_output_delta_and_cost(ref):
    # label 0 (y = 35), others y = 5, margin 5:
    # diffs = [40-35, 3-5, 12-5, 5-5] = [5, -2, 7, 0]; only |7| > 5 -> delta [0,0,7,0], cost 49
    delta, cost = ref.output_delta(np.array([40, 3, 12, 5]), 0, 35, 5, 5)
    np.testing.assert_array_equal(delta, [0.0, 0.0, 7.0, 0.0])
    assert cost == 49.0
    # diffs = [0-35, 11-5, 5-5] = [-35, 6, 0] -> delta [-35, 6, 0], cost 1225 + 36 = 1261
    delta, cost = ref.output_delta(np.array([0, 11, 5]), 0, 35, 5, 5)
    np.testing.assert_array_equal(delta, [-35.0, 6.0, 0.0])
    assert cost == 1261.0


def test_revival_spike_times(ref):
    # T = 400, desired = 35 -> interval 400 // 35 = 11: spikes at 11, 22, ..., 396 (36 spikes)
    s = np.zeros((400, 3), dtype=bool)
    s[[5, 9], 0] = True
    out = ref.revive(s, 1, 35)
    assert np.flatnonzero(out[:, 1]).tolist() == list(range(11, 400, 11))
    assert out[:, 1].sum() == 36 and out[-4, 1]  # t = 396
    np.testing.assert_array_equal(out[:, [0, 2]], s[:, [0, 2]])
    assert not s[:, 1].any()  # input untouched
    # label that already fired is left alone
    np.testing.assert_array_equal(ref.revive(s, 0, 35), s)
    with pytest.raises(ValueError, match="desired"):
        ref.revive(np.zeros((20, 2), dtype=bool), 0, 35)


def test_lateral_factor_by_hand(ref):
    # outputs: 0 spikes at [5, 20], 1 at [10], 2 silent; vth = 2 -> d = 1/2 for firing neurons.
    # e_{1|0} (post 1 @10, pre 0 @5,20): only tq=5: s=9, u=3 -> a = 8/7 (e^-3/64 - e^-3/8)
    # e_{0|1} (post 0 @5,20, pre 1 @10): tp=5 nothing, last=7; tp=20: s=13, u=8, m=8
    #         -> b = 8/7 (e^-8/64 - e^-1)
    # j=0, l=1: r_01 = e_{1|0}/n_0 = a/2, r_10 = e_{0|1}/n_1 = b -> (a/2)(1/2)(b)(1/2) = ab/8
    # j=1 gives the same product; neuron 2 (silent, not the label) has d = 0 -> adds nothing.
    a = K * (math.exp(-3 / 64) - math.exp(-3 / 8))
    b = K * (math.exp(-8 / 64) - math.exp(-1))
    s = train(30, [5, 20], [10], [])
    lat = ref.lateral_factor(s, 0, 2.0, 1.0, TAU_M, TAU_S, T_REF)
    np.testing.assert_allclose(lat, [1 / (1 - a * b / 8), 1 / (1 - a * b / 8), 1.0], rtol=1e-13)
    # silent neuron 2 as the label: d_2 = 1/2 and both ratios with it are 1:
    # lat[0] = 1/(1 - (ab/8 + 1*(1/2)*1*(1/2))), lat[2] = 1/(1 - (1/4 + 1/4)) = 2
    lat = ref.lateral_factor(s, 2, 2.0, 1.0, TAU_M, TAU_S, T_REF)
    np.testing.assert_allclose(lat, [1 / (1 - a * b / 8 - 0.25)] * 2 + [2.0], rtol=1e-13)
    # w0 = 0.5 scales the sum by w0^2 = 0.25; w0 = 0 switches it off
    lat = ref.lateral_factor(s, 2, 2.0, 0.5, TAU_M, TAU_S, T_REF)
    assert lat[2] == pytest.approx(1 / (1 - 0.25 * 0.5))
    np.testing.assert_array_equal(ref.lateral_factor(s, 2, 2.0, 0.0, TAU_M, TAU_S, T_REF), 1.0)


def test_side_term_and_effect_ratio_by_hand(ref):
    W = np.array([[1.0, 2.0], [3.0, -1.0]])
    e = np.array([[0.4, 0.2], [0.1, 0.1]])
    # side[0] = (1/4) * (1*0.4/2 + 2*0.2/2) = 0.1 ; side[1] (n_o = 0) = (1/4)*(3*0.5 - 1*0.5) = 0.25
    np.testing.assert_allclose(ref.side_term(W, e, np.array([2, 0]), 4.0), [0.1, 0.25])
    # R = e/n_i, 1 where n_i == 0 or n_o == 0
    e = np.array([[0.4, 0.2, 0.1], [0.3, 0.6, 0.1]])
    R = ref.effect_ratio(e, np.array([2, 0]), np.array([2, 4, 0]))
    np.testing.assert_allclose(R, [[0.2, 0.05, 1.0], [1.0, 1.0, 1.0]])


# ---------------------------------------------------------------------------- updates


def test_regularization_by_hand(ref):
    # limit 8, lambda 10, beta 0.04 -> lambda*beta = 0.4
    # row 0: W/8 = [1, 0], q = 0.5   -> 0.4*[1, 0]*exp(0.04*(0.5-1)) = [0.4 e^-0.02, 0]
    # row 1: W/8 = [.5,.5], q = 0.25 -> 0.4*[.5,.5]*exp(0.04*(0.25-1)) = 0.2 e^-0.03 each
    reg = ref.regularization(np.array([[8.0, 0.0], [4.0, 4.0]]), 10.0, 0.04, 8.0)
    np.testing.assert_allclose(
        reg, [[0.4 * math.exp(-0.02), 0.0], [0.2 * math.exp(-0.03)] * 2], rtol=1e-14
    )
    np.testing.assert_array_equal(ref.regularization(np.ones((2, 2)), 0.0, 0.04, 8.0), 0.0)


def test_adam_two_steps_by_hand(ref):
    # step 1, g = 0.5: m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 0.00025
    #   m_hat = 0.05/0.1 = 0.5, v_hat = 0.00025/0.001 = 0.25 -> W = 1 - 0.1*0.5/(0.5 + 1e-8)
    W, m, v = ref.adam_step(np.array([1.0]), np.array([0.5]), np.zeros(1), np.zeros(1), 1, 0.1)
    assert m[0] == pytest.approx(0.05) and v[0] == pytest.approx(0.00025)
    assert W[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-14)
    # step 2, same g: m = 0.045 + 0.05 = 0.095, v = 0.00024975 + 0.00025 = 0.00049975
    #   m_hat = 0.095/0.19 = 0.5, v_hat = 0.00049975/0.001999 = 0.25 -> another 0.1*0.5/0.50000001
    W, m, v = ref.adam_step(W, np.array([0.5]), m, v, 2, 0.1)
    assert m[0] == pytest.approx(0.095) and v[0] == pytest.approx(0.00049975)
    assert W[0] == pytest.approx(1 - 2 * 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-12)
    with pytest.raises(ValueError, match="step"):
        ref.adam_step(W, W, m, v, 0, 0.1)


def test_sgd_momentum_by_hand(ref):
    # velocity = 0.9*0.2 + 0.1*0.5 = 0.23; W = 1 - 0.23 = 0.77
    W, vel = ref.sgd_step(np.array([1.0]), np.array([0.5]), np.array([0.2]), 0.1)
    assert vel[0] == pytest.approx(0.23) and W[0] == pytest.approx(0.77)


def test_sgd_learning_rate_change_acts_on_new_gradients_only(ref):
    # SPEC 5: after a step at lr 0.1, a step at lr 0.01 with zero gradient moves W by 0.9 * the
    # old velocity (0.1 * g), not by 0.01 * 0.9 * g as with W -= lr * velocity.
    W, vel = ref.sgd_step(np.array([1.0]), np.array([2.0]), np.array([0.0]), 0.1)
    W2, _ = ref.sgd_step(W, np.array([0.0]), vel, 0.01)
    assert W[0] == pytest.approx(0.8) and W2[0] == pytest.approx(0.8 - 0.9 * 0.2)


# -------------------------------------------------------------------------- encoding

M64 = 2**64 - 1


def mix_int(x: int) -> int:
    """The contract's mix with plain Python ints (independent of the numpy version)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def spike_int(p: int, seed: int, sample: int, epoch: int, neuron: int, t: int) -> bool:
    key = mix_int(mix_int(mix_int(seed) ^ sample) ^ epoch)
    bits = mix_int(mix_int(key ^ neuron) ^ t)
    return t >= 1 and (bits >> 11) < math.ceil(p / (5.5 * 255.0) * 2**53)


def test_mix_matches_splitmix64(ref):
    # splitmix64 from state 0 first outputs 0xE220A8397B1DCDAF
    assert mix_int(0) == 0xE220A8397B1DCDAF
    xs = np.array([0, 1, 12345, 2**63, M64], dtype=np.uint64)
    assert [int(y) for y in ref.encoding._mix(xs)] == [mix_int(int(x)) for x in xs]


def test_encode_poisson_matches_contract_bitwise(ref):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 12), dtype=np.uint8)
    images[0, :3] = 255
    s = ref.encode_poisson(images, 30, seed=7, sample_index=5, epoch=3)
    assert s.shape == (2, 30, 12) and s.dtype == np.bool_
    expected = np.array(
        [
            [[spike_int(int(images[b, n]), 7, 5 + b, 3, n, t) for n in range(12)]
             for t in range(30)]
            for b in range(2)
        ]
    )
    np.testing.assert_array_equal(s, expected)


def test_encode_poisson_determinism_and_keys(ref):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    a = ref.encode_poisson(images, 50, seed=1, sample_index=10)
    np.testing.assert_array_equal(a, ref.encode_poisson(images, 50, seed=1, sample_index=10))
    assert not np.array_equal(a, ref.encode_poisson(images, 50, 1, 10, epoch=1))
    assert not np.array_equal(a, ref.encode_poisson(images, 50, 2, 10))
    # (B, H, W) is flattened row-major; an index array equals the int form
    np.testing.assert_array_equal(a, ref.encode_poisson(images.reshape(3, 20), 50, 1, 10))
    np.testing.assert_array_equal(
        a, ref.encode_poisson(images, 50, 1, np.array([10, 11, 12]))
    )
    # image b of a batch is keyed by sample_index + b alone
    np.testing.assert_array_equal(a[2], ref.encode_poisson(images[2:], 50, 1, 12)[0])
    assert not a[:, 0].any()  # never at t = 0


def test_encode_poisson_rates(ref):
    images = np.zeros((2, 64), dtype=np.uint8)
    images[0] = 255
    s = ref.encode_poisson(images, 20001, seed=3, sample_index=0)
    assert not s[1].any()  # p = 0 never spikes
    # p = 255: rate 255/(5.5*255) = 1/5.5 = 0.181818; 20000*64 draws -> sd 3.4e-4
    rate = s[0, 1:].mean()
    assert abs(rate - 1 / 5.5) < 2e-3
    with pytest.raises(ValueError, match="uint8"):
        ref.encode_poisson(images.astype(np.int64), 10, 0, 0)


# ------------------------------------------------------------- assembled gradients


def tiny_problem():
    """6 inputs (input 5 silent) -> 4 hidden (hidden 3 silent) -> 3 outputs (output 1 silent)."""
    rng = np.random.default_rng(3)
    T = 80
    W1 = rng.uniform(-1, 1, (4, 6)) * 3 + 1.0
    W2 = rng.uniform(-1, 1, (3, 4)) * 3 + 0.5
    W1[3] = -1.0
    s = rng.random((T, 6)) < 0.3
    s[0] = False
    s[:, 5] = False
    return [W1, W2], s


def hand_gradients(ref, weights, s_in, label, vth, w0, desired, use_er, sample_weight):
    """SPEC 4 assembled entry by entry with scalar spsp and plain loops."""
    W1, W2 = weights
    (h_spk, o_spk), _ = ref.forward_sample(weights, s_in, vth, TAU_M, TAU_S, T_REF, w0)
    T = s_in.shape[0]
    times = lambda s, k: np.flatnonzero(s[:, k]).tolist()  # noqa: E731
    n_in_, n_hid, n_out = W1.shape[1], W1.shape[0], W2.shape[0]
    in_t = [times(s_in, i) for i in range(n_in_)]
    hid_t = [times(h_spk, h) for h in range(n_hid)]
    out_t = [times(o_spk, o) for o in range(n_out)]  # pre-revival
    # delta from pre-revival counts, times the sample weight
    delta = []
    for k in range(n_out):
        diff = len(out_t[k]) - (desired if k == label else 5)
        delta.append((diff if abs(diff) > 5 else 0) * sample_weight)
    # lateral factor from pre-revival trains
    n = [len(t) for t in out_t]
    d = [1 / vth[1] if (n[j] > 0 or j == label) else 0.0 for j in range(n_out)]
    lat = []
    for j in range(n_out):
        acc = 0.0
        for l in range(n_out):
            if l == j:
                continue
            if n[j] == 0 or n[l] == 0:
                r_jl = r_lj = 1.0
            else:
                r_jl = spsp(ref, out_t[l], out_t[j]) / n[j]
                r_lj = spsp(ref, out_t[j], out_t[l]) / n[l]
            acc += r_jl * d[l] * r_lj * d[j]
        lat.append(1 / (1 - w0**2 * acc))
    # revival of the label neuron
    if not out_t[label]:
        out_t[label] = list(range(T // desired, T, T // desired))

    def layer(W, post_t, pre_t, dlt, vth_l, lat_l):
        g = np.zeros(W.shape)
        pre_delta = np.zeros(W.shape[1])
        for o in range(W.shape[0]):
            n_o = len(post_t[o])
            e = [spsp(ref, post_t[o], pre_t[i]) for i in range(W.shape[1])]
            side = (1 / vth_l) * sum(
                W[o, i] * (e[i] / n_o if n_o > 0 else 0.5) for i in range(W.shape[1])
            )
            dv = dlt[o] / vth_l
            for i in range(W.shape[1]):
                n_i = len(pre_t[i])
                g[o, i] = dv * e[i] * (1 + side) * lat_l[o]
                R = 1.0 if (n_i == 0 or n_o == 0 or not use_er) else e[i] / n_i
                pre_delta[i] += dv * R * W[o, i]
        return g, pre_delta

    g2, pre = layer(W2, out_t, hid_t, delta, vth[1], lat)
    g1, _ = layer(W1, hid_t, in_t, pre, vth[0], [1.0] * n_hid)
    return [g1, g2]


@pytest.mark.parametrize(
    "label, w0, use_er, sample_weight",
    [(1, 1.0, True, 1.0), (1, 1.0, False, 2.0), (1, 0.0, True, 1.0), (2, 0.5, True, 0.7)],
)
def test_sample_gradients_equal_hand_assembled(ref, label, w0, use_er, sample_weight):
    weights, s = tiny_problem()
    vth = [1.0, 1.0]
    grads, info = ref.sample_gradients(
        weights, s, label, vth=vth, w0=w0, desired=10, undesired=5, margin=5,
        use_effect_ratio=use_er, sample_weight=sample_weight,
    )
    expected = hand_gradients(ref, weights, s, label, vth, w0, 10, use_er, sample_weight)
    for g, h in zip(grads, expected):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-12)
    assert any(np.abs(g).max() > 1 for g in grads)  # a non-trivial case
    # reported counts are pre-revival
    assert info["counts"].tolist() == info["spikes"][1].sum(axis=0).tolist()


def test_silent_label_is_revived_in_backward_pass(ref):
    weights, s = tiny_problem()
    # output 1 is silent: its S-PSPs come from the revived train (interval 80 // 10 = 8),
    # so its gradient row is non-zero although the neuron never fired
    grads, info = ref.sample_gradients(weights, s, 1, vth=[1.0, 1.0], desired=10)
    assert info["counts"][1] == 0 and info["delta"][1] == -10.0
    assert np.abs(grads[1][1]).max() > 0


# ---------------------------------------------------------------------------- Network


def small_net(ref, **kw):
    args = dict(layers=[6, 4, 3], vth=[1.0, 1.0], desired=10, seed=5, init_w=2.0)
    args.update(kw)
    return ref.Network(**args)


def test_network_init_follows_rng(ref):
    net = small_net(ref)
    rng = np.random.default_rng(5)
    expected = [2.0 * rng.uniform(-1.0, 1.0, size=(4, 6)), 2.0 * rng.uniform(-1.0, 1.0, (3, 4))]
    for W, E in zip(net.get_weights(), expected):
        np.testing.assert_array_equal(W, E)


def test_network_gradients_and_train_step(ref):
    weights, s = tiny_problem()
    batch = np.stack([s, np.roll(s, 3, axis=0)])
    batch[:, 0] = False
    labels = np.array([1, 0])
    sw = np.array([1.0, 1.5])
    net = small_net(ref)
    net.set_weights(weights)
    per = [
        ref.sample_gradients(weights, batch[b], labels[b], vth=[1.0, 1.0], desired=10,
                             sample_weight=sw[b])
        for b in range(2)
    ]
    grads = net.gradients(batch, labels, sw)
    for l in range(2):
        np.testing.assert_allclose(grads[l], (per[0][0][l] + per[1][0][l]) / 2, rtol=1e-14)

    out = net.train_step(batch, labels, 0.01, sw)
    for l in range(2):
        g = grads[l] + ref.regularization(weights[l], 10.0, 0.04, 8.0)
        W, _, _ = ref.adam_step(weights[l], g, np.zeros_like(g), np.zeros_like(g), 1, 0.01)
        np.testing.assert_allclose(net.get_weights()[l], W, rtol=1e-14)
    counts = np.stack([p[1]["counts"] for p in per])
    np.testing.assert_array_equal(out["counts"], counts)
    np.testing.assert_array_equal(out["predictions"], counts.argmax(axis=1))
    assert out["loss"] == pytest.approx((per[0][1]["cost"] + per[1][1]["cost"]) / 2)
    assert out["layer_spikes"].tolist() == [
        sum(int(p[1]["spikes"][l].sum()) for p in per) for l in range(2)
    ]
    assert out["counts"].dtype == np.int64 and out["predictions"].dtype == np.int64


def test_network_state_roundtrip_resumes_identically(ref):
    weights, s = tiny_problem()
    batch, labels = s[None], np.array([1])
    for optimizer in ("adam", "sgd"):
        a = small_net(ref, optimizer=optimizer)
        a.set_weights(weights)
        a.train_step(batch, labels, 0.01)
        b = small_net(ref, optimizer=optimizer, seed=9)
        b.set_state(a.get_state())
        a.train_step(batch, labels, 0.01)
        b.train_step(batch, labels, 0.01)
        for Wa, Wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(Wa, Wb)


def test_network_infer_and_forward(ref):
    weights, s = tiny_problem()
    net = small_net(ref)
    net.set_weights(weights)
    layers = net.forward(s[None])
    assert [x.shape for x in layers] == [(1, 80, 4), (1, 80, 3)]
    out = net.infer(s[None])
    np.testing.assert_array_equal(out["counts"][0], layers[1][0].sum(axis=0))
    # infer_images is infer on the contract encoding
    img = np.full((1, 6), 200, dtype=np.uint8)
    enc = ref.encode_poisson(img, 40, 1, 0)
    assert net.infer_images(img, T=40, seed=1, sample_index=0)["counts"].tolist() == \
        net.infer(enc)["counts"].tolist()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda net, s: net.forward(s.astype(np.uint8)), "bool"),
        (lambda net, s: net.forward(s[:, :, :5]), "shape"),
        (lambda net, s: net.gradients(s, np.array([3])), r"labels must be in \[0, 3\)"),
        (lambda net, s: net.gradients(s, np.array([0, 1])), "labels"),
        (lambda net, s: net.gradients(s, np.array([0]), np.array([0.0])), "sample_weights"),
        (lambda net, s: net.gradients(s[:, :5], np.array([0])), "T >= desired"),
        (lambda net, s: net.set_weights([np.zeros((4, 6))]), "weights"),
        (lambda net, s: net.set_weights([np.zeros((4, 6)), np.full((3, 4), np.nan)]), "finite"),
    ],
)
def test_network_validation(ref, call, match):
    _, s = tiny_problem()
    with pytest.raises(ValueError, match=match):
        call(small_net(ref), s[None])


def test_network_constructor_validation(ref):
    with pytest.raises(ValueError, match="vth"):
        small_net(ref, vth=[1.0])
    with pytest.raises(ValueError, match="optimizer"):
        small_net(ref, optimizer="rmsprop")
    with pytest.raises(ValueError, match="dtype"):
        small_net(ref, dtype="float16")
    with pytest.raises(ValueError, match="tau_m"):
        small_net(ref, tau_m=-1.0)
