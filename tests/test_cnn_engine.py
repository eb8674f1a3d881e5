"""The CPU engine's Conv2d and Pool2d layers (SPEC_CNN 1-3): identities that hold whatever the
oracle, and the float32 engine against the float64 one."""
from __future__ import annotations

import numpy as np
import pytest

import hm2bp
from hm2bp.layers import Conv2d, Dense, Pool2d

HYPER = dict(desired=10, undesired=2, margin=2)


def _spikes(seed: int, batch: int, T: int, n: int, rate: float = 0.1):
    rng = np.random.default_rng(seed)
    return rng.random((batch, T, n)) < rate, rng.integers(0, 4, batch)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_kernel_covering_the_whole_input_is_a_dense_layer(dtype):
    # Conv2d(3, 5) on (2, 5, 5): one position per channel, W[k] over all 50 inputs = Dense(3).
    spikes, labels = _spikes(0, 3, 80, 50, 0.15)
    conv = hm2bp.Network(input_shape=(2, 5, 5), layers=[Conv2d(3, 5, vth=1.5), Dense(4, vth=3.0)], **HYPER,
                         dtype=dtype, seed=2)
    dense = hm2bp.Network(layers=[50, 3, 4], vth=[1.5, 3.0], **HYPER, dtype=dtype, seed=2)
    w_conv, w_out = conv.get_weights()
    dense.set_weights([w_conv.reshape(3, 50), w_out])
    for a, b in zip(conv.forward(spikes), dense.forward(spikes)):
        np.testing.assert_array_equal(a, b)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(conv.gradients(spikes, labels), dense.gradients(spikes, labels)):
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=tol, atol=tol * np.abs(b).max())
    for _ in range(3):
        conv.train_step(spikes, labels, 0.01)
        dense.train_step(spikes, labels, 0.01)
    for a, b in zip(conv.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=tol, atol=tol)


def _cnn(**kw):
    layers = [Conv2d(3, 3, vth=1.0, padding=1), Pool2d(2, vth=1.0), Conv2d(4, 3, vth=2.0), Pool2d(3, vth=1.0, stride=2),
              Dense(6, vth=2.0), Dense(4, vth=3.0)]
    return hm2bp.Network(input_shape=(1, 10, 10), layers=layers, **HYPER, seed=5, **kw)


def test_small_cnn_trains_and_float32_follows_float64():
    spikes, labels = _spikes(1, 4, 90, 100, 0.2)
    a, b = _cnn(dtype="float64", threads=1), _cnn(dtype="float32", threads=2)
    assert a.shapes == [(1, 10, 10), (3, 10, 10), (3, 5, 5), (4, 3, 3), (4, 2, 2), (6, 1, 1), (4, 1, 1)]
    trains = a.forward(spikes)
    assert all(t.any() for t in trains), [t.sum() for t in trains]  # every layer spikes
    ga, gb = a.gradients(spikes, labels), b.gradients(spikes, labels)
    assert all(np.abs(g).max() > 0 for g in ga)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-4 * np.abs(x).max())
    for _ in range(2):
        out = a.train_step(spikes, labels, 0.01)
    assert np.isfinite(out["loss"]) and all(np.isfinite(w).all() for w in a.get_weights())


def test_cnn_train_step_is_forward_backward_plus_apply_gradients():
    spikes, labels = _spikes(3, 3, 90, 100, 0.2)
    fused, split = _cnn(dtype="float32"), _cnn(dtype="float32")
    for lr in (0.01, 0.003):
        fused.train_step(spikes, labels, lr)
        out = split.forward_backward(spikes, labels)
        split.apply_gradients(out["gradients"], lr, count=3)
    for x, y in zip(fused.get_weights(), split.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_cnn_batches_repeat_bit_for_bit_and_split_like_single_samples():
    spikes, labels = _spikes(4, 4, 90, 100, 0.2)
    one = _cnn(dtype="float64", threads=1)
    per_sample = [one.gradients(spikes[b:b + 1], labels[b:b + 1], reduce="sum") for b in range(4)]
    two = _cnn(dtype="float64", threads=2)
    total = two.gradients(spikes, labels, reduce="sum")
    for k, g in enumerate(total):
        np.testing.assert_allclose(g, sum(p[k] for p in per_sample), rtol=1e-12, atol=1e-12)
    again = _cnn(dtype="float64", threads=2).gradients(spikes, labels, reduce="sum")
    for x, y in zip(total, again):
        np.testing.assert_array_equal(x, y)


def test_cnn_training_at_batch_1_is_the_same_bit_for_bit_on_any_thread_count():
    # One sample's conv backward splits its output rows into a fixed number of parts with sums
    # of their own, added in part order: the threads only take parts.
    spikes, labels = _spikes(6, 3, 90, 100, 0.2)
    weights = {}
    for threads in (1, 2, 3):
        net = _cnn(dtype="float32", threads=threads)
        for b in range(3):
            net.train_step(spikes[b:b + 1], labels[b:b + 1], 0.01)
        weights[threads] = net.get_weights()
    assert all(np.abs(w).max() > 0 for w in weights[1])
    for threads in (2, 3):
        for got, want in zip(weights[threads], weights[1]):
            np.testing.assert_array_equal(got, want)


# -- the engine against the float64 reference (hm2bp.reference, SPEC_CNN written out literally) --

REF_CASES = [
    # (input_shape, layers, T, batch)
    ((1, 8, 8), [Conv2d(3, 3, 1.0), Pool2d(2, 1.0), Dense(5, 2.0), Dense(4, 3.0)], 70, 1),
    ((1, 9, 9), [Conv2d(2, 5, 1.5, padding=1), Pool2d(3, 1.0, stride=2), Dense(4, 3.0)], 80, 3),
    ((2, 7, 7), [Conv2d(3, 3, 1.0, padding=1), Pool2d(2, 1.0), Conv2d(4, 2, 2.0), Pool2d(2, 1.0, stride=1),
                 Dense(4, 3.0)], 60, 2),
    ((1, 10, 10), [Conv2d(3, 3, 1.0, padding=1), Pool2d(2, 1.0), Conv2d(4, 3, 2.0), Pool2d(3, 1.0, stride=2),
                   Dense(6, 2.0), Dense(4, 3.0)], 90, 2),
]


@pytest.mark.parametrize("case", range(len(REF_CASES)))
def test_float64_cnn_matches_the_reference(case):
    from hm2bp import reference as ref

    shape, layers, T, batch = REF_CASES[case]
    kw = dict(input_shape=shape, layers=layers, **HYPER, seed=case, reg_lambda=10.0, reg_beta=0.4)
    engine, oracle = hm2bp.Network(**kw, dtype="float64", threads=2), ref.Network(**kw)
    spikes, labels = _spikes(case, batch, T, int(np.prod(shape)), 0.25)
    for got, want in zip(engine.forward(spikes), oracle.forward(spikes)):
        np.testing.assert_array_equal(got, want)
    weights = np.linspace(0.5, 1.5, batch)
    for got, want in zip(engine.gradients(spikes, labels, weights), oracle.gradients(spikes, labels, weights)):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    for _ in range(3):
        a = engine.train_step(spikes, labels, 0.01)
        b = oracle.train_step(spikes, labels, 0.01)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
        np.testing.assert_array_equal(a["counts"], b["counts"])
    for got, want in zip(engine.get_weights(), oracle.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", range(len(REF_CASES)))
def test_float32_cnn_follows_the_reference(case):
    from hm2bp import reference as ref

    shape, layers, T, batch = REF_CASES[case]
    kw = dict(input_shape=shape, layers=layers, **HYPER, seed=case)
    engine, oracle = hm2bp.Network(**kw, dtype="float32"), ref.Network(**kw)
    spikes, labels = _spikes(case, batch, T, int(np.prod(shape)), 0.25)
    if any((a != b).any() for a, b in zip(engine.forward(spikes), oracle.forward(spikes))):
        pytest.skip("a float32 potential sits on a threshold tie in this case")
    for got, want in zip(engine.gradients(spikes, labels), oracle.gradients(spikes, labels)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_a_cnn_trains_on_augmented_digits_and_resumes_exactly(tmp_path):
    from hm2bp.config import preset
    from hm2bp.train.trainer import Trainer

    stack = [{"type": "conv2d", "channels": 4, "kernel": 5, "vth": 3.0, "init_w": 0.5},
             {"type": "pool2d", "size": 4, "vth": 1.0}, {"type": "dense", "n": 10, "vth": 5.0}]
    kw = dict(input_shape=[1, 28, 28], layer=stack, T=60, desired=10, undesired=2, margin=2, train_size=60,
              test_size=40, batch_size=1, epochs=2, lr=0.005, reg_lambda=0.0, reg_beta=0.0,
              lr_rule="sqrt_plus1", order="authors", augment_distortion=3.4, augment_scale=12.0,
              augment_rotation=12.0, backend="cpu", threads=1)
    whole = Trainer(preset("mnist-mini", **kw), tmp_path / "a").fit()
    assert whole.epochs_completed == 2 and 0.0 <= whole.final_test_accuracy <= 1.0
    Trainer(preset("mnist-mini", **{**kw, "epochs": 1}), tmp_path / "b").fit()
    resumed = Trainer.resume(tmp_path / "b", epochs=2).fit()
    assert resumed.history[-1]["test_accuracy"] == whole.history[-1]["test_accuracy"]
    assert resumed.history[-1]["train_loss"] == whole.history[-1]["train_loss"]
