"""The layer architecture: forward/backward and the optimizer step as separate operations
(train_step is their composition, bit for bit), the layer API (hm2bp.layers) with its shape
inference and validation, and the one hyperparameter schema (hm2bp.hyper)."""
from __future__ import annotations

import numpy as np
import pytest

import hm2bp
from hm2bp import _core, hyper
from hm2bp.layers import Conv2d, Dense, Pool2d, output_shape, param_shapes, stack_shapes
from hm2bp.model.description import describe
from hm2bp.model.network import _engine_spec
from helpers import random_case


def _same_state(a: hm2bp.Network, b: hm2bp.Network) -> None:
    sa, sb = a.get_state(), b.get_state()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch, threads", [(1, 1), (1, 2), (6, 2), (6, 1)])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("hidden", [25, 80])
def test_train_step_is_forward_backward_plus_apply_gradients(dtype, batch, threads, optimizer, hidden):
    # at batch 1 train_step's step makes a wide layer's gradient rows itself (rows split among
    # two threads, columns on one); forward_backward writes them out
    config, spikes, labels = random_case(3, [40, hidden, 6], 80, batch, optimizer=optimizer)
    fused = hm2bp.Network(**config, dtype=dtype, threads=threads)
    split = hm2bp.Network(**config, dtype=dtype, threads=threads)
    weights = np.linspace(0.5, 1.5, batch)
    for step, lr in enumerate([0.01, 0.004, 0.004]):
        a = fused.train_step(spikes, labels, lr, sample_weights=weights)
        b = split.forward_backward(spikes, labels, sample_weights=weights, reduce="sum")
        split.apply_gradients(b["gradients"], lr, count=batch)
        assert a["loss"] == b["loss"]
        for key in ("counts", "predictions", "layer_spikes"):
            np.testing.assert_array_equal(a[key], b[key])
        assert any(np.abs(g).max() > 0 for g in b["gradients"]), "a case with no gradient tests nothing"
        _same_state(fused, split)
        assert split.get_state()["step"] == step + 1


def test_gradient_sums_of_sub_batches_add_up_to_the_batch():
    # What data-parallel training relies on: the sums of two halves, applied with the full count,
    # give the full batch's step up to the grouping of the float64 sum.
    config, spikes, labels = random_case(5, [40, 25, 6], 80, 8)
    whole = hm2bp.Network(**config, dtype="float64", threads=1)
    parts = hm2bp.Network(**config, dtype="float64", threads=1)
    mean = whole.gradients(spikes, labels)
    total = whole.gradients(spikes, labels, reduce="sum")
    for m, s in zip(mean, total):
        np.testing.assert_allclose(m, s / 8, rtol=1e-15, atol=0)
    halves = [parts.forward_backward(spikes[k:k + 4], labels[k:k + 4])["gradients"] for k in (0, 4)]
    summed = [a + b for a, b in zip(*halves)]
    for s, t in zip(summed, total):
        np.testing.assert_allclose(s, t, rtol=1e-12, atol=1e-12 * np.abs(t).max())
    whole.train_step(spikes, labels, 0.01)
    parts.apply_gradients(summed, 0.01, count=8)
    for a, b in zip(whole.get_weights(), parts.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_forward_backward_images_matches_the_dense_path():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 30), dtype=np.uint8)
    labels = np.array([0, 2, 1])
    net = hm2bp.Network([30, 20, 3], [2.0, 4.0], desired=10, undesired=2, margin=2, dtype="float64")
    spikes = hm2bp.encode_poisson(images, 60, seed=4, sample_index=[7, 8, 9])
    a = net.forward_backward_images(images, labels, T=60, seed=4, sample_index=[7, 8, 9])
    b = net.forward_backward(spikes, labels)
    assert a["loss"] == b["loss"]
    for x, y in zip(a["gradients"], b["gradients"]):
        np.testing.assert_array_equal(x, y)


def test_apply_gradients_is_validated():
    net = hm2bp.Network([12, 8, 3], [2.0, 3.0], desired=10, undesired=2, margin=2)
    grads = [np.zeros_like(w) for w in net.get_weights()]
    with pytest.raises(ValueError, match="expected 2 gradient arrays"):
        net.apply_gradients(grads[:1], 0.01, 4)
    with pytest.raises(ValueError, match=r"gradients\[1\] must have shape \(3, 8\)"):
        net.apply_gradients([grads[0], grads[1].T], 0.01, 4)
    with pytest.raises(ValueError, match="count must be >= 1"):
        net.apply_gradients(grads, 0.01, 0)
    with pytest.raises(ValueError, match="reduce"):
        net.gradients(np.zeros((1, 40, 12), bool), np.array([0]), reduce="max")


# -- layers -----------------------------------------------------------------------------------

def test_layer_form_equals_the_classic_form():
    config, spikes, labels = random_case(2, [30, 20, 6], 60, 3)
    classic = hm2bp.Network(**config, dtype="float64")
    layer_config = {k: v for k, v in config.items() if k not in ("layers", "vth")}
    layered = hm2bp.Network(input_shape=(30, 1, 1), layers=[Dense(20, config["vth"][0]), Dense(6, config["vth"][1])],
                            **layer_config, dtype="float64")
    assert layered.layers == classic.layers == [30, 20, 6] and layered.vth == classic.vth
    _same_state(classic, layered)
    for x, y in zip(classic.forward(spikes), layered.forward(spikes)):
        np.testing.assert_array_equal(x, y)
    classic.train_step(spikes, labels, 0.01)
    layered.train_step(spikes, labels, 0.01)
    _same_state(classic, layered)


def test_a_flat_image_input_feeds_dense_layers_in_flat_order():
    net = hm2bp.Network(input_shape=(1, 4, 5), layers=[Dense(7, 2.0, init_w=0.5), Dense(3, 4.0)], seed=1)
    assert net.shapes == [(1, 4, 5), (7, 1, 1), (3, 1, 1)] and net.layers == [20, 7, 3]
    w0, w1 = net.get_weights()
    assert w0.shape == (7, 20) and np.abs(w0).max() <= 0.5 and np.abs(w1).max() > 0.5
    assert net.forward(np.zeros((2, 10, 20), bool))[0].shape == (2, 10, 7)


def test_mnist_cnn_shapes_and_parameter_layout():
    # SPEC_CNN 0: 28x28-15C5-P2-40C5-P2-300-10, 210375 trainable weights
    layers = [Conv2d(15, 5, vth=5.0, init_w=0.5), Pool2d(2, vth=2.0), Conv2d(40, 5, vth=12.0, init_w=0.5),
              Pool2d(2, vth=4.0), Dense(300, vth=10.0), Dense(10, vth=10.0)]
    shapes = stack_shapes((1, 28, 28), layers)
    assert shapes == [(1, 28, 28), (15, 24, 24), (15, 12, 12), (40, 8, 8), (40, 4, 4), (300, 1, 1), (10, 1, 1)]
    blocks = param_shapes(layers, shapes)
    assert blocks == [(15, 1, 5, 5), (40, 15, 5, 5), (300, 640), (10, 300)]
    assert sum(int(np.prod(b)) for b in blocks) == 210375
    # pooling with stride != size, and padding
    shapes = stack_shapes((2, 9, 9), [Conv2d(3, 3, 1.0, padding=1), Pool2d(3, 1.0, stride=2), Dense(4, 1.0)])
    assert shapes[1:3] == [(3, 9, 9), (3, 5, 5)]


@pytest.mark.parametrize("shape, layer", [
    ((1, 28, 28), Conv2d(15, 5, 1.0)), ((3, 9, 7), Conv2d(2, 3, 1.0, padding=1)), ((2, 5, 6), Conv2d(1, 5, 1.0, padding=2)),
    ((15, 24, 24), Pool2d(2, 1.0)), ((3, 9, 9), Pool2d(3, 1.0, stride=2)), ((2, 7, 5), Pool2d(2, 1.0, stride=3)),
    ((4, 3, 3), Pool2d(3, 1.0, stride=1)), ((40, 4, 4), Dense(300, 1.0)),
])
def test_the_python_shapes_are_the_engines(shape, layer):
    """layers.output_shape and param_shapes (what the NumPy reference runs on, written from
    SPEC_CNN 1-2) against the engine's own shape inference and parameter layout."""
    stack = [layer] + ([] if isinstance(layer, Dense) else [Dense(2, 1.0)])
    description = describe(stack, input_shape=shape)
    spec = _engine_spec(description, threads=1)
    engine_shapes = [shape]
    for entry in spec.layers:
        engine_shapes.append(tuple(_core.output_shape(_core.Shape(*engine_shapes[-1]), entry)))
    assert output_shape(shape, layer) == engine_shapes[1]
    assert list(description.shapes) == engine_shapes
    assert description.param_shapes == [tuple(s) for s in _core.param_shapes(spec)]


def test_cnn_parameter_blocks_skip_pooling_layers():
    net = hm2bp.Network(input_shape=(1, 8, 8), layers=[Conv2d(2, 3, 1.0), Pool2d(2, 1.0), Dense(3, 1.0)])
    assert [w.shape for w in net.get_weights()] == [(2, 1, 3, 3), (3, 18)]


@pytest.mark.parametrize("input_shape, layers, match", [
    ((1, 4, 4), [Conv2d(2, 5, 1.0), Dense(3, 1.0)], r"layers\[0\] \(Conv2d\): window 5 is larger than its input map 4x4"),
    ((1, 8, 8), [Dense(5, 1.0), Conv2d(2, 3, 1.0), Dense(3, 1.0)], r"layers\[1\] \(Conv2d\) follows a Dense layer"),
    ((1, 8, 8), [Conv2d(2, 3, 1.0)], "the output layer must be Dense"),
    ((1, 8), [Dense(3, 1.0)], "input_shape must be"),
    ((1, 8, 8), [], "at least one layer"),
    ((1, 8, 8), [Dense(3, 1.0), 4], r"layers\[1\] must be hm2bp.layers"),
])
def test_layer_stacks_are_validated(input_shape, layers, match):
    with pytest.raises((ValueError, TypeError), match=match):
        stack_shapes(input_shape, layers)


@pytest.mark.parametrize("make, match", [
    (lambda: Conv2d(0, 3, 1.0), "Conv2d channels must be >= 1"),
    (lambda: Conv2d(2, 3, 1.0, padding=-1), "Conv2d padding must be >= 0"),
    (lambda: Pool2d(2, 0.0), "Pool2d vth must be a finite number > 0"),
    (lambda: Dense(3, 1.0, init_w=-1.0), "Dense init_w"),
])
def test_layers_check_their_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_network_form_arguments_are_checked():
    with pytest.raises(ValueError, match="vth is required"):
        hm2bp.Network([12, 3])
    with pytest.raises(ValueError, match="give each layer its own vth"):
        hm2bp.Network(input_shape=(12, 1, 1), layers=[Dense(3, 1.0)], vth=[1.0])


# -- hyperparameter schema ----------------------------------------------------------------------

def test_schema_defaults_are_the_engines_and_the_papers():
    # hm2bp.hyper declares the defaults from the specs, the engine's Hyper struct its own
    engine = {("optimizer" if k == "adam" else k): (("adam" if v else "sgd") if k == "adam" else v)
              for k, v in _core.hyper_defaults().items() if k != "threads"}
    assert engine == hyper.DEFAULTS
    assert hyper.DEFAULTS == {**hyper.DEFAULTS, "tau_m": 64.0, "tau_s": 8.0, "t_ref": 2, "lateral_inhibition": 1.0,
                              "desired": 35, "undesired": 5, "margin": 5, "reg_lambda": 10.0, "reg_beta": 0.04,
                              "weight_limit": 8.0, "optimizer": "adam"}


def test_the_reference_takes_the_same_defaults_as_the_engine():
    """The reference's defaults come from hm2bp.hyper (written from the specs), not from the
    engine; both networks must still start from the same hyperparameters."""
    import inspect

    from hm2bp import reference as ref

    engine = hm2bp.Network([6, 4, 3], vth=[1.0, 1.0])
    oracle = ref.Network([6, 4, 3], vth=[1.0, 1.0])
    params = inspect.signature(ref.Network).parameters
    for name in hyper.HYPERPARAMETERS:
        assert getattr(oracle, name) == getattr(engine, name) == params[name].default, name
    assert inspect.signature(ref.Network) == inspect.signature(hm2bp.Network)


def test_schema_checks():
    assert hyper.check_all({})["tau_m"] == 64.0
    with pytest.raises(ValueError, match="unknown hyperparameter 'tau'"):
        hyper.check_all({"tau": 1.0})
    with pytest.raises(ValueError, match="tau_s must differ"):
        hyper.check_all({"tau_s": 64.0})
    with pytest.raises(TypeError, match="effect_ratio must be True or False"):
        hyper.check("effect_ratio", 1)
    with pytest.raises(TypeError, match="t_ref must be an integer"):
        hyper.check("t_ref", 2.0)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        hyper.check("optimizer", "rmsprop")


def test_engine_and_reference_agree_on_gradient_sums_and_apply_gradients():
    from hm2bp import reference as ref

    config, spikes, labels = random_case(9, [30, 20, 6], 70, 4)
    engine, oracle = hm2bp.Network(**config, dtype="float64"), ref.Network(**config)
    a, b = engine.forward_backward(spikes, labels), oracle.forward_backward(spikes, labels)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
    for got, want in zip(a["gradients"], b["gradients"]):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    engine.apply_gradients(a["gradients"], 0.01, count=4)
    oracle.apply_gradients(b["gradients"], 0.01, count=4)
    for got, want in zip(engine.get_weights(), oracle.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
