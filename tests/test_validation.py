"""Bad input gives a clear Python exception naming the argument, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

import hm2bp

SMALL = dict(layers=[12, 8, 3], vth=[2.0, 3.0], desired=10, undesired=2, margin=2)


@pytest.fixture
def net():
    return hm2bp.Network(**SMALL)


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=[12]), "layers"),
    (dict(layers=[12, 0, 3]), r"layers\[1\]"),
    (dict(vth=[2.0]), "vth needs one threshold"),
    (dict(vth=[2.0, 0.0]), r"vth\[1\]"),
    (dict(vth=[2.0, float("nan")]), r"vth\[1\]"),
    (dict(tau_m=-1.0), "tau_m"),
    (dict(tau_s=64.0), "tau_s must differ"),
    (dict(t_ref=-1), "t_ref"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(dtype="float16"), "dtype"),
    (dict(backend="tpu"), "backend"),
    (dict(threads=0), "threads"),
    (dict(weight_limit=0.0), "weight_limit"),
    (dict(lateral_inhibition=-1.0), "lateral_inhibition"),
])
def test_constructor_rejects(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hm2bp.Network(**{**SMALL, **kwargs})


def test_cuda_backend_without_gpu_is_a_clear_error():
    if hm2bp.cuda_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(RuntimeError, match="backend='cuda' is not available"):
        hm2bp.Network(**SMALL, backend="cuda")
    assert hm2bp.Network(**SMALL, backend="auto").backend == "cpu"


def test_weights_are_validated(net):
    good = net.get_weights()
    with pytest.raises(ValueError, match="expected 2 weight arrays"):
        net.set_weights(good[:1])
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(8, 12\)"):
        net.set_weights([good[0].T, good[1]])
    bad = good[1].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        net.set_weights([good[0], bad])
    np.testing.assert_array_equal(net.get_weights()[1], good[1])  # unchanged after a rejected call


def test_spikes_and_labels_are_validated(net):
    spikes = np.zeros((2, 20, 12), dtype=bool)
    labels = np.array([0, 2])
    with pytest.raises(ValueError, match="shape"):
        net.forward(spikes[0])
    with pytest.raises(ValueError, match="12 inputs|has 12"):
        net.forward(np.zeros((2, 20, 5), dtype=bool))
    with pytest.raises(ValueError, match="T >= 2"):
        net.forward(np.zeros((2, 1, 12), dtype=bool))
    with pytest.raises(TypeError, match="bool"):
        net.forward(np.full((2, 20, 12), 0.5))
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        net.gradients(spikes, np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        net.gradients(spikes, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="T >= desired"):
        net.gradients(np.zeros((2, 5, 12), dtype=bool), labels)
    with pytest.raises(ValueError, match="sample_weights"):
        net.train_step(spikes, labels, 0.01, sample_weights=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="lr"):
        net.train_step(spikes, labels, float("nan"))
    assert net.forward(spikes.astype(np.uint8))[0].dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.uint16, np.float32, np.float64])
def test_spikes_of_any_numeric_dtype_are_0_or_1(net, dtype):
    """0/1 spikes in any integer or float dtype run as the bool array; any other value (2, -1,
    0.5, NaN, inf) is refused, whichever dtype holds it."""
    spikes = np.random.default_rng(3).random((2, 20, 12)) < 0.3
    expected = net.forward(spikes)
    for got, want in zip(net.forward(spikes.astype(dtype)), expected):
        np.testing.assert_array_equal(got, want)
    bad_values = [2] + ([-1] if np.dtype(dtype).kind != "u" else []) + \
        ([0.5, np.nan, np.inf] if np.dtype(dtype).kind == "f" else [])
    for bad in bad_values:
        x = spikes.astype(dtype)
        x[1, 7, 3] = bad
        with pytest.raises(TypeError, match=f"spikes must be 0 or 1 .* {np.dtype(dtype).name} array holds other"):
            net.forward(x)
    with pytest.raises(TypeError, match="bool array .*got dtype complex128"):
        net.forward(spikes.astype(np.complex128))


def test_images_are_validated(net):
    with pytest.raises(TypeError, match="uint8"):
        hm2bp.encode_poisson(np.zeros((2, 12), dtype=np.float32), 20, 0, 0)
    with pytest.raises(ValueError, match="sample_index"):
        hm2bp.encode_poisson(np.zeros((2, 12), dtype=np.uint8), 20, 0, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="T must be >= 2"):
        hm2bp.encode_poisson(np.zeros((2, 12), dtype=np.uint8), 1, 0, 0)
    with pytest.raises(ValueError, match="12 inputs"):
        net.infer_images(np.zeros((2, 5), dtype=np.uint8), T=20, seed=0, sample_index=0)


def test_state_is_validated(net):
    state = net.get_state()
    del state["moment1_0"]
    with pytest.raises(ValueError, match="moment1_0"):
        net.set_state(state)
