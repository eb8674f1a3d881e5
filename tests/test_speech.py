"""The speech front end (SPEC_SPEECH 2-3.5): BSA encoding, the glibc rand() clone, the reservoir
wiring generator, each against hand-derived cases and the authors' golden files."""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

import numpy as np
import pytest

import hm2bp
from hm2bp.model import bsa, reservoir
from hm2bp import reference as ref
from hm2bp.model.layers import Dense, Reservoir, from_dict, to_dict
from hm2bp.reference import bsa as ref_bsa
from helpers import assert_rel_close, fire_margin, random_reservoir_case

T_GOLDEN = 659  # the authors' CPU run simulated t = 0..658 (SPEC_SPEECH 4.2)


def read_dat(path: Path) -> np.ndarray:
    """A .dat sample (one line of frames per channel) as float32 values, as the authors parse it."""
    return np.array([[np.float32(x) for x in line.split()] for line in path.read_text().splitlines()])


def read_weight_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """An authors' weight file (SPEC_SPEECH 4.1): pre and post indices, weights, the printed weights."""
    rows = [line.split() for line in path.read_text().splitlines()]
    index = [lambda s: int(s.rsplit("_", 1)[1])] * 2
    pre = np.array([index[0](r[1]) for r in rows])
    post = np.array([index[1](r[2]) for r in rows])
    return pre, post, np.array([float(r[3]) for r in rows]), [r[3] for r in rows]


@pytest.fixture(scope="module")
def speech(shared_data: Path) -> Path:
    return shared_data / "authors" / "speech"


# ---- BSA (SPEC_SPEECH 2) ------------------------------------------------------------------

def first_signal_taps_above(level: float) -> int:
    """The fewest leading taps m of the kernel with k[0] + ... + k[m-1] > level."""
    k = ref_bsa.bsa_kernel()
    return int(np.argmax(np.cumsum(k) > level)) + 1


def test_bsa_kernel_is_the_normalised_gaussian_centred_at_12():
    k = ref_bsa.bsa_kernel()
    assert k.shape == (24,) and abs(k.sum() - 1) < 1e-15 and np.argmax(k) == 12
    assert k[11] == k[13] and k[0] < k[23]  # centre at L/2 = 12: asymmetric


@pytest.mark.parametrize("encode", [hm2bp.encode_bsa, ref.encode_bsa], ids=["engine", "reference"])
def test_bsa_hand_derived_cases(encode):
    # Zeros and negative values never fire: |s - k_j| - |s| = k_j for s <= 0, so e1 = e2 + 1.
    assert not encode(np.zeros((3, 20)), 300).any()
    assert not encode(-np.ones((2, 5)), 100).any()
    # One frame never fires: with m signal taps in the window, e1 - e2 >= 1 - 2 (k_0 + .. + k_{m-1})
    # and m <= 10 taps sum to about 0.35, so e1 - e2 > -0.6.
    assert not encode(np.full((4, 1), 1.0), 100).any()
    # A loud constant (s = 2e3 per step, far above the kernel) fires at every step whose window is
    # all signal (e1 = e2 - 1), then, with m signal taps left before the zero padding, while
    # k_0 + .. + k_{m-1} > 0.8: steps i = 0 .. 10n - m*, spike times t = i + 1.
    n = 5
    last = 10 * n - first_signal_taps_above(0.8) + 1
    spikes = encode(np.ones((1, n)), 200)
    np.testing.assert_array_equal(np.nonzero(spikes[:, 0])[0], np.arange(1, last + 1))
    # T clips: times >= T are dropped, earlier ones unchanged; t = 0 never fires.
    np.testing.assert_array_equal(encode(np.ones((1, n)), 20), spikes[:20])


def test_bsa_batches_channels_and_zero_padded_frames():
    rng = np.random.default_rng(3)
    analog = rng.uniform(0, 2.5e-4, size=(3, 6, 30))
    analog[1, :, 20:] = 0.0  # a shorter sample padded with zero frames: the same spikes as unpadded
    batch = bsa.encode_bsa(analog, 400)
    assert batch.shape == (3, 400, 6) and batch.dtype == np.bool_
    np.testing.assert_array_equal(batch, ref_bsa.encode_bsa(analog, 400))
    for b in range(3):
        np.testing.assert_array_equal(batch[b], bsa.encode_bsa(analog[b], 400, threads=1))
    np.testing.assert_array_equal(batch[1], bsa.encode_bsa(analog[1, :, :20], 400))


def test_bsa_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        bsa.encode_bsa(np.zeros(5), 10)
    with pytest.raises(ValueError, match="finite"):
        bsa.encode_bsa(np.array([[0.0, np.nan]]), 10)
    with pytest.raises(ValueError, match="T"):
        bsa.encode_bsa(np.zeros((2, 3)), 0)
    with pytest.raises(TypeError, match="real"):
        bsa.encode_bsa(np.array([["a"]]), 10)


def test_bsa_of_the_golden_sample(speech):
    # SPEC_SPEECH 4.2 / 6: 5065 input spikes, t = 1..658, channels 1-4, 46, 47, 76, 77 silent.
    analog = read_dat(speech / "f1_u10_c0.dat")
    assert analog.shape == (78, 68)
    spikes = bsa.encode_bsa(analog, T_GOLDEN)
    assert spikes.sum() == 5065
    np.testing.assert_array_equal(np.nonzero(~spikes.any(axis=0))[0], [1, 2, 3, 4, 46, 47, 76, 77])
    times = np.nonzero(spikes.any(axis=1))[0]
    assert times.min() == 1 and times.max() == 658
    np.testing.assert_array_equal(spikes, ref_bsa.encode_bsa(analog, T_GOLDEN))
    # float64 values of the same text: the same spikes (SPEC_SPEECH 2)
    text = [line.split() for line in (speech / "f1_u10_c0.dat").read_text().splitlines()]
    np.testing.assert_array_equal(bsa.encode_bsa(np.array(text, dtype=np.float64), T_GOLDEN), spikes)
    # the preset's T = 1000 adds nothing (the signal ends at 680 + 24)
    assert bsa.encode_bsa(analog, 1000).sum() == 5065


# ---- glibc rand() and the generator (SPEC_SPEECH 3.3-3.5) ---------------------------------------

def glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("the C library here is not glibc")
    return ctypes.CDLL(ctypes.util.find_library("c"))


@pytest.mark.parametrize("seed", [0, 1, 5, 12345, 2**31 - 1, 2**31 + 7, 2**32 - 1])
def test_glibc_rand_clone_equals_the_c_library(seed):
    libc = glibc()
    libc.srand(ctypes.c_uint(seed))
    ours = reservoir.GlibcRand(seed)
    assert [ours.rand() for _ in range(3000)] == [libc.rand() for _ in range(3000)]


def test_glibc_rand_refuses_bad_seeds():
    for seed in (-1, 2**32, 1.5):
        with pytest.raises(ValueError, match="seed"):
            reservoir.GlibcRand(seed)


def test_generator_statistics_of_seed_5():
    # SPEC_SPEECH 3.3-3.4: the golden reservoir's counts
    w = reservoir.generate()
    np.testing.assert_array_equal(np.nonzero(w.inhibitory)[0],
                                  [2, 14, 20, 21, 33, 38, 42, 47, 48, 51, 62, 73, 89, 96, 97, 98, 99, 103, 105,
                                   110, 114, 115, 117, 124])
    assert (w.recurrent == 1).sum() == 745 and (w.recurrent == -1).sum() == 213
    assert np.count_nonzero(np.diag(w.recurrent)) == 57
    # the sign of a recurrent synapse is the pre-synaptic neuron's type (columns are pre)
    assert (w.recurrent[:, w.inhibitory] <= 0).all() and (w.recurrent[:, ~w.inhibitory] >= 0).all()
    values, counts = np.unique(w.input, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {-24: 3, -16: 54, -8: 987, 0: 135 * 78 - 2101, 8: 992,
                                                           16: 63, 24: 2}
    assert len(w.input_synapses.pre) == 78 * 32
    assert [m.shape for m in w.trained] == [(64, 135), (26, 64)]
    assert all((-1 <= m).all() and (m <= 1).all() for m in w.trained)


def test_generator_reproduces_the_authors_weight_files(speech):
    w = reservoir.generate(seed=5)
    for name, synapses in [("r_weights_info.txt", w.input_synapses),
                           ("r_weights_recurrent_info.txt", w.recurrent_synapses)]:
        pre, post, weight, _ = read_weight_file(speech / name)
        np.testing.assert_array_equal(pre, synapses.pre, err_msg=name)
        np.testing.assert_array_equal(post, synapses.post, err_msg=name)
        np.testing.assert_array_equal(weight, synapses.weight, err_msg=name)
    for name, matrix in [("h_weights_info.txt", w.trained[0]), ("o_weights_info.txt", w.trained[1])]:
        pre, post, weight, printed = read_weight_file(speech / name)
        n_pre, n_post = matrix.shape[1], matrix.shape[0]
        np.testing.assert_array_equal(pre, np.repeat(np.arange(n_pre), n_post), err_msg=name)  # pre-major
        np.testing.assert_array_equal(post, np.tile(np.arange(n_post), n_pre), err_msg=name)
        # printed like C++ `ostream << double` (6 significant digits): every line, character for character
        assert [f"{x:.6g}" for x in matrix.T.ravel()] == printed, name
    # the summed matrices of the two reservoir files
    pre, post, weight, _ = read_weight_file(speech / "r_weights_info.txt")
    w_in = np.zeros((135, 78))
    np.add.at(w_in, (post, pre), weight)
    np.testing.assert_array_equal(w_in, w.input)
    pre, post, weight, _ = read_weight_file(speech / "r_weights_recurrent_info.txt")
    w_rec = np.zeros((135, 135))
    w_rec[post, pre] = weight
    np.testing.assert_array_equal(w_rec, w.recurrent)


def test_generator_other_seeds_and_shapes():
    a, b = reservoir.generate(seed=6), reservoir.generate(seed=5)
    assert not np.array_equal(a.recurrent, b.recurrent)
    small = reservoir.generate(n_in=4, trained=(3,), seed=9, grid=(2, 2, 2), inhibitory=0.5, fan_out=3,
                               input_weight=2.0, recurrent_weight=0.5)
    assert small.input.shape == (8, 4) and small.recurrent.shape == (8, 8) and small.trained[0].shape == (3, 8)
    assert np.abs(small.input).sum() <= 4 * 3 * 2.0 and set(np.unique(small.recurrent)) <= {-0.5, 0.0, 0.5}
    np.testing.assert_array_equal(reservoir.grid_coordinates((2, 2, 3))[7], [1, 0, 1])  # (x*2 + y)*3 + z = 7


# ---- the reservoir layer (SPEC_SPEECH 3) ----------------------------------------------------------

# the authors' speech network as committed (SPEC_SPEECH 5), for the golden checks
SPEECH = dict(input_shape=(78, 1, 1), layers=[Reservoir(), Dense(64, 20.0), Dense(26, 5.0)], lateral_inhibition=0.0,
              optimizer="sgd", effect_ratio=False, reg_lambda=0.0, desired=45, undesired=15, margin=5)


def tiny(n_in: int, n: int, **kw) -> dict:
    """A network config: a reservoir of n neurons (grid 1 x 1 x n) under one output neuron."""
    return dict(input_shape=(n_in, 1, 1), layers=[Reservoir(n, 20.0, grid=(1, 1, n), **kw), Dense(1, 1.0)],
                lateral_inhibition=0.0)


def reservoir_trains(net, spikes):
    return net.forward(spikes)[0]


@pytest.mark.parametrize("make", [ref.Network, hm2bp.Network], ids=["reference", "engine"])
def test_reservoir_hand_checked_single_neuron(make):
    # One neuron, input weight 200, one input spike at t = 0, self-connection w. By hand (SPEC 1,
    # tau_s 8, tau_m 64, t_ref 2): t = 1: ep = 200, v = 25 > 20: fires (every w).
    # w = 0: t = 2, 3 refractory (ep 175, 153.1); t = 4: ep 133.98, v 16.75; t = 5: v 16.49 + 14.65 = 31.1: fires.
    # w = +100: its spike of t = 1 adds 100 at t = 2 (ep 275), t = 3 refractory (ep 240.6); t = 4: v 26.3: fires.
    # w = -100: t = 2: ep 75; t = 3: ep 65.6 (refractory); t = 4: v 7.18; t = 5: 13.35; t = 6: 18.63;
    # t = 7: 23.15: fires.
    spikes = np.zeros((1, 12, 1), dtype=bool)
    spikes[0, 0, 0] = True
    for w, second in [(0.0, 5), (100.0, 4), (-100.0, 7)]:
        net = make(**tiny(1, 1), dtype="float64")
        net.set_reservoir_weights([(np.array([[200.0]]), np.array([[w]]))])
        times = np.nonzero(reservoir_trains(net, spikes)[0, :, 0])[0]
        assert list(times[:2]) == [1, second], w


@pytest.mark.parametrize("make", [ref.Network, hm2bp.Network], ids=["reference", "engine"])
def test_reservoir_recurrent_delay_and_inhibitory_sign(make):
    # Neuron 0 is driven by the input; neuron 1 only through W_rec[1, 0]. Its current arrives one
    # step after neuron 0's spike: an excitatory synapse strong enough to fire at once makes
    # neuron 1 fire exactly one step after each first spike (a delay of 0 or 2 would not).
    spikes = np.zeros((1, 30, 1), dtype=bool)
    spikes[0, [3, 15], 0] = True
    w_in = np.array([[400.0], [0.0]])
    net = make(**tiny(1, 2), dtype="float64")
    net.set_reservoir_weights([(w_in, np.array([[0.0, 0.0], [400.0, 0.0]]))])
    s = reservoir_trains(net, spikes)[0]
    first0, first1 = np.nonzero(s[:, 0])[0][0], np.nonzero(s[:, 1])[0][0]
    assert first0 == 4 and first1 == 5
    # inhibitory: the same pair with neuron 1 also driven by the input; a negative W_rec[1, 0]
    # (neuron 0 inhibitory: its column is negative) silences neuron 1 after neuron 0 fires
    w_in = np.array([[400.0], [160.0]])
    counts = {}
    for w in (0.0, -400.0):
        net.set_reservoir_weights([(w_in, np.array([[0.0, 0.0], [w, 0.0]]))])
        counts[w] = reservoir_trains(net, spikes)[0].sum(axis=0)
    assert counts[0.0][1] > counts[-400.0][1] and counts[0.0][0] == counts[-400.0][0]


def test_duplicate_input_synapses_add_up():
    # SPEC_SPEECH 3.3: fan_out draws with replacement; duplicates sum (+-16, +-24, 0), and the
    # layer's W_in is exactly the sum of its synapses
    w = reservoir.generate(n_in=3, trained=(), seed=11, grid=(1, 1, 2), fan_out=20, input_weight=8.0)
    summed = np.zeros((2, 3))
    for i, o, x in zip(*w.input_synapses):
        summed[o, i] += x
    np.testing.assert_array_equal(w.input, summed)
    assert (np.abs(w.input) > 8).any()  # 20 draws onto 2 neurons: duplicates
    layer = Reservoir(2, 20.0, grid=(1, 1, 2), fan_out=20, seed=11)
    net = hm2bp.Network(input_shape=(3, 1, 1), layers=[layer, Dense(2, 1.0)])
    np.testing.assert_array_equal(net.reservoir_weights()[0][0], w.input)
    np.testing.assert_array_equal(ref.Network(input_shape=(3, 1, 1), layers=[layer, Dense(2, 1.0)])
                                  .reservoir_weights()[0][0], w.input)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_engine_equals_reference_on_random_reservoirs(seed, dtype, rtol):
    config, fixed, spikes, labels = random_reservoir_case(seed)
    oracle = ref.Network(**config)
    oracle.set_reservoir_weights(fixed)
    if dtype == "float32" and fire_margin(oracle, spikes) < 1e-4:
        pytest.skip("a membrane potential this close to the threshold may round to the other side in float32")
    engine = hm2bp.Network(**config, dtype=dtype, threads=2)
    engine.set_reservoir_weights(fixed)
    engine.set_weights(oracle.get_weights())
    got, want = engine.forward(spikes), oracle.forward(spikes)
    assert want[0].sum() > 50 and want[1].sum() > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    grads = engine.gradients(spikes, labels)
    assert len(grads) == 2  # the two Dense layers; the reservoir has none
    for g, w in zip(grads, oracle.gradients(spikes, labels)):
        assert np.abs(w).max() > 0
        assert_rel_close(g, w, rtol)
    for _ in range(3):
        a, b = engine.train_step(spikes, labels, 0.05), oracle.train_step(spikes, labels, 0.05)
        np.testing.assert_array_equal(a["counts"], b["counts"])
        np.testing.assert_array_equal(a["layer_spikes"], b["layer_spikes"])
        for g, w in zip(engine.get_weights(), oracle.get_weights()):
            assert_rel_close(g, w, rtol)
    # fixed: training never changed the reservoir (float32 stores the given weights rounded)
    for (g_in, g_rec), (w_in, w_rec) in zip(engine.reservoir_weights(), fixed):
        np.testing.assert_array_equal(g_in, w_in.astype(dtype))
        np.testing.assert_array_equal(g_rec, w_rec.astype(dtype))


def test_bsa_inside_the_engine_equals_encoding_first():
    rng = np.random.default_rng(5)
    analog = rng.uniform(0, 3e-4, size=(3, 10, 12))
    config, fixed, _, labels = random_reservoir_case(2)
    engine = hm2bp.Network(**config, dtype="float64")
    engine.set_reservoir_weights(fixed)
    spikes = bsa.encode_bsa(analog, 150)
    a = engine.forward_backward_bsa(analog, labels, T=150)
    b = engine.forward_backward(spikes, labels)
    for key in ("counts", "layer_spikes", "predictions"):
        np.testing.assert_array_equal(a[key], b[key])
    for g, w in zip(a["gradients"], b["gradients"]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(engine.infer_bsa(analog, T=150)["counts"], engine.infer(spikes)["counts"])
    oracle = ref.Network(**config)
    oracle.set_reservoir_weights(fixed)
    oracle.set_weights(engine.get_weights())
    np.testing.assert_array_equal(oracle.infer_bsa(analog, T=150)["counts"], b["counts"])
    with pytest.raises(ValueError, match="analog"):
        engine.infer_bsa(analog[:, :5], T=150)
    with pytest.raises(ValueError, match="finite"):
        engine.infer_bsa(np.full((1, 10, 3), np.inf), T=150)


def test_the_golden_sample_through_the_authors_reservoir(speech):
    # SPEC_SPEECH 4.2 / 6 ("chain" and "readout"): our BSA + our regenerated seed-5 weights give the
    # authors' 4901 reservoir spikes (99 of 135 neurons, t 6..658) and, with the initial hidden
    # and output weights, their 344 hidden and 38 output spikes, over t = 0..658.
    analog = read_dat(speech / "f1_u10_c0.dat")
    w = reservoir.generate()
    for net in (hm2bp.Network(**SPEECH, dtype="float64"), hm2bp.Network(**SPEECH, dtype="float32"),
                ref.Network(**SPEECH)):
        net.set_weights(w.trained)
        res, hidden, out = net.forward(bsa.encode_bsa(analog, T_GOLDEN)[None])
        assert res.sum() == 4901 and (res[0].sum(axis=0) > 0).sum() == 99
        times = np.nonzero(res[0].any(axis=1))[0]
        assert times.min() == 6 and times.max() == 658
        assert hidden.sum() == 344 and out.sum() == 38


def test_reservoir_is_fixed_and_checkpointed():
    config, fixed, spikes, labels = random_reservoir_case(3)
    net = hm2bp.Network(**config, dtype="float64")
    assert net.n_param_layers == 2 and [w.shape for w in net.get_weights()] == [(9, 18), (4, 9)]
    generated = net.reservoir_weights()
    np.testing.assert_array_equal(generated[0][1], Reservoir(18, 6.0, grid=(2, 3, 3), seed=3).generate(10)[1])
    net.set_reservoir_weights(fixed)
    state = net.get_state()
    assert {"reservoir_input_0", "reservoir_recurrent_0"} <= set(state)
    before = net.forward(spikes)
    other = hm2bp.Network(**config, dtype="float64")
    other.set_state(state)
    for a, b in zip(other.forward(spikes), before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="W_rec"):
        net.set_reservoir_weights([(fixed[0][0], fixed[0][1][:3])])
    with pytest.raises(ValueError, match="pairs"):
        net.set_reservoir_weights([])


def test_reservoir_layer_config_and_refusals():
    layer = Reservoir()
    assert (layer.n, layer.grid, layer.seed) == (135, (3, 3, 15), 5)
    table = to_dict(layer)
    assert table["type"] == "reservoir" and table["grid"] == [3, 3, 15]
    assert from_dict(table) == layer
    with pytest.raises(ValueError, match="holds 12 neurons"):
        Reservoir(10, 20.0, grid=(2, 2, 3))
    with pytest.raises(ValueError, match=r"inhibitory must lie in \[0, 1\]"):
        Reservoir(inhibitory=1.5)
    with pytest.raises(ValueError, match="connect"):
        Reservoir(connect=(0.1, 0.2))
    # no trainable layer below a reservoir; a reservoir is not an output layer
    with pytest.raises(ValueError, match="nothing below it would learn"):
        hm2bp.Network(input_shape=(4, 1, 1), layers=[Dense(3, 1.0), Reservoir(2, 1.0, grid=(1, 1, 2)), Dense(2, 1.0)])
    with pytest.raises(ValueError, match="output layer must be Dense"):
        hm2bp.Network(input_shape=(4, 1, 1), layers=[Reservoir(2, 1.0, grid=(1, 1, 2))])


def test_raster_names_the_reservoir_panel(tmp_path):
    pytest.importorskip("matplotlib")
    from hm2bp.cli import plot

    res = np.zeros((30, 8), dtype=bool)
    res[[3, 7], [1, 5]] = True
    path = plot.plot_raster(np.zeros((30, 4), bool), [res, np.zeros((30, 3), bool)], tmp_path / "r.svg", "t",
                            layer_names=["reservoir", None])
    assert "reservoir" in path.read_text() and "(2 spikes)" in path.read_text()
