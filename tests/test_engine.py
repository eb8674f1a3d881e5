"""The compiled engine against hm2bp.reference (SPEC.md written out in NumPy, float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hm2bp
from hm2bp import reference as ref
from helpers import CASES, assert_rel_close, random_case, tie_margin


@pytest.mark.parametrize("case", range(len(CASES)))
def test_float64_matches_reference(case):
    layers, T, batch, lateral, er = CASES[case]
    config, spikes, labels = random_case(case, layers, T, batch, lateral_inhibition=lateral, effect_ratio=er)
    engine = hm2bp.Network(**config, dtype="float64", threads=2)
    oracle = ref.Network(**config)
    for got, want in zip(engine.forward(spikes), oracle.forward(spikes)):
        np.testing.assert_array_equal(got, want)
    weights = np.random.default_rng(case).uniform(0.5, 1.5, size=batch)
    for got, want in zip(engine.gradients(spikes, labels, weights), oracle.gradients(spikes, labels, weights)):
        assert_rel_close(got, want, 1e-9)
    for step in range(2):
        a = engine.train_step(spikes, labels, 0.01)
        b = oracle.train_step(spikes, labels, 0.01)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
        np.testing.assert_array_equal(a["counts"], b["counts"])
        np.testing.assert_array_equal(a["predictions"], b["predictions"])
        np.testing.assert_array_equal(a["layer_spikes"], b["layer_spikes"])
        for got, want in zip(engine.get_weights(), oracle.get_weights()):
            assert_rel_close(got, want, 1e-9)


def test_silent_hidden_neurons_and_revived_label():
    # High output threshold: the label neuron stays silent and is revived; a high hidden
    # threshold leaves some hidden neurons silent (the 0.1 and 0.5 rules of SPEC 4).
    config, spikes, labels = random_case(7, [30, 20, 4], 70, 3, vth=[3.0, 50.0])
    engine = hm2bp.Network(**config, dtype="float64")
    oracle = ref.Network(**config)
    hidden, out = engine.forward(spikes)
    assert (hidden.sum(axis=1) == 0).any() and (hidden.sum(axis=1) > 0).any()
    assert out[np.arange(3), :, labels].sum() == 0
    for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
        assert np.abs(want).max() > 0
        assert_rel_close(got, want, 1e-9)


def test_silent_neurons_leave_no_trace_between_samples():
    # The CPU builds S-PSP traces and rows only for post neurons that fired; a silent neuron's
    # row entries keep whatever the previous sample left there, and must not be used. So a
    # sample's gradient must not depend on the sample processed before it.
    config, spikes, labels = random_case(7, [30, 20, 4], 70, 2, vth=[3.0, 50.0])
    hidden = hm2bp.Network(**config, dtype="float64").forward(spikes)[0].sum(axis=1)
    assert ((hidden[0] > 0) & (hidden[1] == 0)).any()  # fires in sample 0, silent in sample 1
    for dtype in ("float64", "float32"):
        after = hm2bp.Network(**config, dtype=dtype, threads=1)
        after.gradients(spikes[:1], labels[:1])
        alone = hm2bp.Network(**config, dtype=dtype, threads=1)
        for got, want in zip(after.gradients(spikes[1:], labels[1:]), alone.gradients(spikes[1:], labels[1:])):
            assert np.abs(want).max() > 0
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("T", [40, 70])
def test_revival_spacing_shorter_than_refractory_period(T):
    # desired = 35: T // desired is 1 (T = 40) or 2 (T = 70), below t_ref + 1, so the revived
    # train has s = tp - last < 1 and the S-PSP kernel is read at m = min(s, u) <= 0.
    config, spikes, labels = random_case(7, [30, 20, 4], T, 3, vth=[3.0, 50.0])
    config.update(desired=35, margin=0)  # margin 0: the revived label's delta is not zero
    engine = hm2bp.Network(**config, dtype="float64")
    oracle = ref.Network(**config)
    assert engine.forward(spikes)[1][np.arange(3), :, labels].sum() == 0
    for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
        assert np.abs(want).max() > 0
        assert_rel_close(got, want, 1e-9)


@pytest.mark.parametrize("tau_m, tau_s, t_ref, T", [(8.0, 2.0, 1, 150), (10.0, 4.0, 4, 120), (64.0, 8.0, 2, 300)])
def test_trace_windows_refractory_periods_and_wide_output(tau_m, tau_s, t_ref, T):
    # The CPU builds S-PSP traces 16 neurons at a time in O(T) (csrc/cpu/spsp_trace_rows.hpp):
    # short windows (4 tau_m < inter-spike gaps), other t_ref, taus that are not powers of two,
    # and an output layer wider than 16 with lateral inhibition, against the literal SPEC sums.
    config, spikes, labels = random_case(11, [40, 35, 20], T, 2, rate=0.05, vth=[1.0, 1.5],
                                         tau_m=tau_m, tau_s=tau_s, t_ref=t_ref)
    engine = hm2bp.Network(**config, dtype="float64")
    oracle = ref.Network(**config)
    hidden, out = engine.forward(spikes)
    assert hidden.sum() > 0 and out.sum() > 0
    for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
        assert np.abs(want).max() > 0
        assert_rel_close(got, want, 1e-9)


def test_samples_without_output_delta_are_skipped_exactly():
    # A sample whose output counts are all within the margin has zero output deltas; the engine
    # skips its backward pass, which must change nothing (SPEC 4: g = 0). The margin is set so
    # that some samples of the batch are within it and some are not.
    config, spikes, labels = random_case(5, [30, 20, 6], 80, 6, rate=0.15, vth=[1.0, 0.5], lateral_inhibition=0.0)
    counts = ref.Network(**config).forward(spikes)[-1].sum(axis=1)
    targets = np.full_like(counts, config["undesired"])
    targets[np.arange(len(labels)), labels] = config["desired"]
    worst = np.abs(counts - targets).max(axis=1)
    config["margin"] = int(np.sort(worst)[len(worst) // 2])
    assert (worst <= config["margin"]).any() and (worst > config["margin"]).any()
    engine = hm2bp.Network(**config, dtype="float64")
    oracle = ref.Network(**config)
    for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
        assert np.abs(want).max() > 0
        assert_rel_close(got, want, 1e-9)
    config["margin"] = 10_000
    engine, oracle = hm2bp.Network(**config, dtype="float64"), ref.Network(**config)
    for got in engine.gradients(spikes, labels):
        assert not got.any()
    engine.train_step(spikes, labels, 0.01)  # regularization alone still moves the weights
    oracle.train_step(spikes, labels, 0.01)
    for got, want in zip(engine.get_weights(), oracle.get_weights()):
        assert_rel_close(got, want, 1e-9)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizers_and_regularization(optimizer):
    config, spikes, labels = random_case(3, [25, 15, 5], 60, 2, optimizer=optimizer, reg_lambda=10.0, reg_beta=0.5)
    engine = hm2bp.Network(**config, dtype="float64")
    oracle = ref.Network(**config)
    for lr in (0.05, 0.02, 0.01):
        engine.train_step(spikes, labels, lr)
        oracle.train_step(spikes, labels, lr)
    for got, want in zip(engine.get_weights(), oracle.get_weights()):
        assert_rel_close(got, want, 1e-9)


@pytest.mark.parametrize("layers", [[30, 20, 6], [30, 20, 40]])  # one vector of output neurons, and three
def test_float32_matches_reference_away_from_ties(layers):
    checked = 0
    for seed in range(12):
        config, spikes, labels = random_case(100 + seed, layers, 80, 2)
        engine = hm2bp.Network(**config, dtype="float32")
        weights = [w.astype(np.float32).astype(np.float64) for w in engine.get_weights()]
        if tie_margin(config, weights, spikes) < 1e-3:
            continue  # float32 rounding may legitimately flip a spike this close to threshold
        oracle = ref.Network(**config)
        oracle.set_weights(weights)
        for got, want in zip(engine.forward(spikes), oracle.forward(spikes)):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
            assert_rel_close(got, want, 1e-4)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_is_the_same_bit_for_bit_on_any_thread_count(dtype):
    # A batch's samples are grouped by the batch size alone (never by the thread count) and the
    # groups' gradient sums are added in group order, so 1, 2 and 3 threads train identically.
    config, spikes, labels = random_case(11, [64, 48, 10], 100, 8)
    runs = {}
    for threads in (1, 2, 3):
        net = hm2bp.Network(**config, dtype=dtype, threads=threads)
        losses = [net.train_step(spikes, labels, 0.01)["loss"] for _ in range(3)]
        runs[threads] = (losses, net.get_state())  # weights and Adam moments
    assert runs[1][1]["weights_0"].any()
    for threads in (2, 3):
        assert runs[threads][0] == runs[1][0]
        assert runs[threads][1].keys() == runs[1][1].keys()
        for key, want in runs[1][1].items():
            np.testing.assert_array_equal(runs[threads][1][key], want, err_msg=key)


@pytest.mark.parametrize("path, layers", [("spikes", [600, 320, 10]), ("images", [600, 320, 10]),
                                          ("spikes", [600, 320, 96, 10])])
def test_batch_one_trains_the_same_when_the_threads_share_a_sample(path, layers):
    # At batch 1 the threads split the sample itself: the encoding (steps of a spike array,
    # pixels of an image), each layer's neurons and spike lists, the S-PSP rows of the layer
    # under the output (taken in ranges while the first thread runs the output layer), the
    # step's rows; every list is joined and every sum taken in a fixed order, so 1, 2 and 3
    # threads train identically. 600 inputs and 320 hidden neurons over T = 400 are enough for
    # each piece to be split; the deeper network has a hidden layer under that one.
    config, _, _ = random_case(5, layers, 400, 1, vth=[6.0] * (len(layers) - 2) + [8.0])
    rng = np.random.default_rng(5)
    images = rng.integers(0, 160, size=(3, 600), dtype=np.uint8)
    labels = np.array([2, 7, 4])
    states = []
    for threads in (1, 2, 3):
        net = hm2bp.Network(**config, threads=threads)
        before = net.get_weights()[0].copy()
        for k in range(3):
            if path == "images":
                out = net.train_step_images(images[k:k + 1], labels[k:k + 1], 0.01, T=400, seed=1, sample_index=k)
            else:
                out = net.train_step(hm2bp.encode_poisson(images[k:k + 1], 400, 1, k), labels[k:k + 1], 0.01)
        assert out["layer_spikes"][0] > 0 and not np.array_equal(net.get_weights()[0], before)
        states.append(net.get_state())
    for state in states[1:]:
        for key, want in states[0].items():
            np.testing.assert_array_equal(state[key], want, err_msg=key)


def test_poisson_encoding_matches_reference_bit_for_bit():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 7, 9), dtype=np.uint8)
    images[0, :2] = 0
    index = np.array([4, 17, 2])
    for epoch in (0, 5):
        got = hm2bp.encode_poisson(images, 50, seed=9, sample_index=index, epoch=epoch)
        want = ref.encode_poisson(images, 50, 9, index, epoch)
        np.testing.assert_array_equal(got, want)
    assert not got[:, 0].any()


def test_image_path_equals_dense_path():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 36), dtype=np.uint8)
    config = dict(layers=[36, 20, 5], vth=[3.0, 4.0], desired=10, undesired=2, margin=2, seed=2)
    a, b = hm2bp.Network(**config), hm2bp.Network(**config)
    labels = np.array([0, 1, 2, 3])
    ra = a.train_step_images(images, labels, 0.01, T=60, seed=5, sample_index=10, epoch=1)
    rb = b.train_step(hm2bp.encode_poisson(images, 60, 5, 10, epoch=1), labels, 0.01)
    np.testing.assert_array_equal(ra["counts"], rb["counts"])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    ia = a.infer_images(images, T=60, seed=5, sample_index=10, epoch=1)
    ib = a.infer(hm2bp.encode_poisson(images, 60, 5, 10, epoch=1))
    np.testing.assert_array_equal(ia["predictions"], ib["predictions"])


def test_state_round_trip_resumes_exactly():
    config, spikes, labels = random_case(4, [20, 12, 4], 50, 2)
    a = hm2bp.Network(**config)
    a.train_step(spikes, labels, 0.01)
    b = hm2bp.Network(**{**config, "seed": 99})
    b.train_step(spikes, labels, 0.01)  # its own weights' column sums, cached by the CPU engine
    b.set_state(a.get_state())
    for net in (a, b):
        net.train_step(spikes, labels, 0.01)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_real_mnist_digits_through_fc800(shared_data):
    from hm2bp import data

    ds = data.load("mnist", "test", data_dir=shared_data / "mnist-10k")
    images, labels = ds.images[:3], ds.labels[:3]
    spikes = hm2bp.encode_poisson(images, 400, seed=0, sample_index=0)
    config = dict(layers=[784, 800, 10], vth=[20.0, 8.0], seed=0)
    engine = hm2bp.Network(**config, dtype="float64")
    hidden, out = engine.forward(spikes)
    assert hidden.sum() > 1000 and out.sum() > 0
    oracle = ref.Network(**config)
    one = spikes[:1]
    for got, want in zip(engine.forward(one), oracle.forward(one)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(engine.gradients(one, labels[:1]), oracle.gradients(one, labels[:1])):
        assert_rel_close(got, want, 1e-9)
    engine32 = hm2bp.Network(**config, dtype="float32")
    for got, want in zip(engine32.gradients(one, labels[:1]), oracle.gradients(one, labels[:1])):
        if np.array_equal(engine32.forward(one)[1], oracle.forward(one)[1]):
            assert_rel_close(got, want, 1e-4)


def _regularized_case(dtype: str, conv: bool):
    """A network with SPEC 5's regularization on, its spikes, labels and boosting weights."""
    config, spikes, labels = random_case(3, [64, 12, 5], 60, 6, rate=0.15, reg_lambda=10.0, reg_beta=0.04)
    if conv:  # the regularization's mean runs over an output channel's (c, i, j) (SPEC_CNN 4)
        config.update(layers=[hm2bp.layers.Conv2d(4, 3, vth=2.0, init_w=2.0), hm2bp.layers.Dense(5, vth=4.0)],
                      input_shape=(1, 8, 8))
        del config["vth"]
    sample_weights = np.random.default_rng(3).uniform(0.5, 1.5, len(labels))
    return hm2bp.Network(**config, dtype=dtype), spikes, labels, sample_weights


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-15)])
def test_regularized_gradients_add_spec5_regularization_to_the_mean(dtype, rtol, conv) -> None:
    # what hm2bp.torch puts in .grad: what the engine's own step feeds its optimizer
    from hm2bp.reference.optimizer import regularization

    net, spikes, labels, sample_weights = _regularized_case(dtype, conv)
    mean = net.forward_backward(spikes, labels, sample_weights, reduce="mean")["gradients"]
    got = net.forward_backward(spikes, labels, sample_weights, reduce="mean", regularize=True)["gradients"]
    for g, m, w in zip(got, mean, net.get_weights(), strict=True):
        reg = regularization(w, 10.0, 0.04, 8.0)
        assert np.abs(reg).max() > 1e-4  # the term is there to see
        np.testing.assert_allclose(g - m, reg, rtol=rtol, atol=rtol * np.abs(g).max())
    with pytest.raises(ValueError, match="regularize=True needs reduce='mean'"):
        net.forward_backward(spikes, labels, regularize=True)


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_into_arrays_of_the_network_dtype_equal_the_float64_export_bit_for_bit(dtype, conv) -> None:
    """hm2bp.torch's fast path (gradients written in the network's dtype into its arrays, the
    regularization added by the engine) gives what its float64 path gave: the float64 export
    cast to the dtype, plus the regularization computed in that dtype with the same operations."""
    net, spikes, labels, sample_weights = _regularized_case(dtype, conv)
    want = net.forward_backward(spikes, labels, sample_weights, reduce="mean")["gradients"]
    out = [np.full(w.shape, np.nan, dtype) for w in want]
    got = net.forward_backward(spikes, labels, sample_weights, reduce="mean", out=out)["gradients"]
    assert all(g is o for g, o in zip(got, out, strict=True))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.astype(dtype))
    got = net.forward_backward(spikes, labels, sample_weights, reduce="mean", regularize=True, out=out)["gradients"]
    if dtype == "float64":  # SPEC 5 step by step in the engine's order (q in ascending i; libm's exp)
        for g, m, w in zip(got, want, net.get_weights()):
            x = w.reshape(len(w), -1) / 8.0
            q = np.cumsum(x * x, axis=1)[:, -1] / x.shape[1]
            scale = np.array([10.0 * 0.04 * math.exp(0.04 * (v - 1.0)) for v in q])
            np.testing.assert_array_equal(g, m + (scale[:, None] * x).reshape(m.shape))
    as64 = [np.empty(w.shape) for w in want]
    net.forward_backward(spikes, labels, sample_weights, reduce="mean", regularize=True, out=as64)
    for g, w in zip(got, as64):  # the engine's numbers, only widened
        np.testing.assert_array_equal(g, w.astype(dtype))


def test_gradient_arrays_are_checked() -> None:
    net, spikes, labels, _ = _regularized_case("float32", False)
    shapes = [w.shape for w in net.get_weights()]
    bad = [([np.empty(shapes[0], np.float32)], r"out needs 2 arrays"),
           ([np.empty(shapes[0], np.float32), np.empty(shapes[1], np.int32)], r"out\[1\] must be a writable float32"),
           # neither C-contiguous nor the engine's stored layout (a transpose, which out= also takes)
           ([np.empty(shapes[0], np.float32), np.empty((2 * shapes[1][0], shapes[1][1]), np.float32)[::2]],
            r"out\[1\] must be a writable float32 or float64 NumPy array, C-contiguous or in the engine's stored"),
           ([np.empty(shapes[0], np.float32), np.empty((3, 3), np.float32)], r"out\[1\] must have shape")]
    for out, message in bad:
        with pytest.raises((ValueError, TypeError), match=message):
            net.forward_backward(spikes, labels, reduce="mean", out=out)
