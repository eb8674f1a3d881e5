"""hm2bp.torch on the CPU backend: Parameters that are the engine's own weight memory (no copy in,
gradients in the engine's layout) train bit for bit as the copying path does."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import hm2bp
from helpers import random_case
from hm2bp.layers import Conv2d, Dense, Pool2d

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'hm2bp[torch]')")
import hm2bp.torch as ht  # noqa: E402


def _fc() -> tuple[dict, np.ndarray, np.ndarray]:
    """784-style FC case with the output layer's lateral inhibition and SPEC 5's regularization."""
    return random_case(5, [30, 20, 6], 80, 8, rate=0.1, lateral_inhibition=1.0, reg_lambda=10.0, reg_beta=0.04)


def _cnn() -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    config = dict(input_shape=(2, 8, 8), layers=[Conv2d(4, 3, vth=2.0, padding=1, init_w=0.8), Pool2d(2, vth=1.0),
                                                 Dense(5, vth=3.0)],
                  desired=10, undesired=2, margin=2, seed=3)
    return config, rng.random((8, 80, 128)) < 0.1, rng.integers(0, 5, 8)


def _train(model: ht.SpikingNetwork, spikes: np.ndarray, labels: np.ndarray, steps: int, **adam) -> list:
    opt = torch.optim.Adam(model.parameters(), lr=0.01, **adam)
    for k in range(steps):
        part = slice(4 * (k % 2), 4 * (k % 2) + 4)
        opt.zero_grad()
        ht.hm2bp_loss(model, torch.from_numpy(spikes[part]), torch.from_numpy(labels[part])).backward()
        opt.step()
    return [p.grad.numpy().copy() for p in model.weights]


@pytest.mark.parametrize("case", [_fc, _cnn], ids=["fc", "cnn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", [False, True], ids=["adam", "fused"])
@pytest.mark.parametrize("layout", ["canonical", "stored"])
def test_shared_weights_train_bit_for_bit_as_copies(case, dtype, fused, layout):
    config, spikes, labels = case()
    shared = ht.SpikingNetwork(hm2bp.Network(**config, dtype=dtype), layout=layout)
    copied = ht.SpikingNetwork(hm2bp.Network(**config, dtype=dtype), share_weights=False)
    assert shared.weights[0].is_contiguous() == (layout == "stored") and copied.weights[0].is_contiguous()
    start = shared.network.get_weights()
    grads_shared = _train(shared, spikes, labels, 4, fused=fused)
    grads_copied = _train(copied, spikes, labels, 4, fused=fused)
    assert min(float(np.abs(w - s).max()) for w, s in zip(shared.network.get_weights(), start)) > 1e-3
    canonical = [np.moveaxis(p.detach().numpy(), -1, 0) if layout == "stored" else p.detach().numpy()
                 for p in shared.weights]
    if layout == "stored":
        grads_shared = [np.moveaxis(g, -1, 0) for g in grads_shared]
    for a, b, ga, gb in zip(canonical, copied.weights, grads_shared, grads_copied, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b.detach().numpy())
        assert np.array_equal(ga, gb)
    # the engine ran the shared parameters themselves
    for w, p in zip(shared.network.get_weights(), canonical):
        assert np.array_equal(w, p.astype(np.float64))


def _same_memory(model: ht.SpikingNetwork, where: list) -> bool:
    return [(p.data_ptr(), p.stride()) for p in model.weights] == where


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_parameters_stay_the_engines_memory_through_set_weights_set_state_and_load(dtype, tmp_path):
    config, spikes, labels = _fc()
    net = hm2bp.Network(**config, dtype=dtype)
    model = ht.SpikingNetwork(net)
    where = [(p.data_ptr(), p.stride()) for p in model.weights]
    new = [np.full(w.shape, 0.25) + 0.01 * np.arange(w.size).reshape(w.shape) for w in net.get_weights()]
    net.set_weights(new)
    assert _same_memory(model, where)
    for p, w in zip(model.weights, new):
        np.testing.assert_array_equal(p.detach().numpy(), w.astype(dtype))
    other = hm2bp.Network(**{**config, "seed": 9}, dtype=dtype)
    other.train_step(spikes, labels, 0.01)
    other.save(tmp_path / "net.npz")
    loaded = hm2bp.Network.load(tmp_path / "net.npz")
    net.set_state(loaded.get_state())
    assert _same_memory(model, where)
    for p, w in zip(model.weights, other.get_weights()):
        np.testing.assert_array_equal(p.detach().numpy().astype(np.float64), w)
    net.train_step(spikes, labels, 0.01)  # hm2bp's own step writes the same memory
    assert _same_memory(model, where)
    for p, w in zip(model.weights, net.get_weights()):
        np.testing.assert_array_equal(p.detach().numpy().astype(np.float64), w)
    # the memory outlives the network and module that handed it out
    kept, final = model.weights[0], net.get_weights()[0]
    del net, model, loaded
    gc.collect()
    np.testing.assert_array_equal(kept.detach().numpy().astype(np.float64), final)


def test_hm2bps_own_step_after_torchs_sees_the_weights_torch_wrote():
    """torch writes the weights behind the engine's back: its column sums (side term, SPEC 5
    regularization) must be recomputed before hm2bp's own train_step uses them."""
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config, dtype="float64"))
    _train(model, spikes, labels, 2)
    twin = hm2bp.Network(**config, dtype="float64")
    twin.set_state(model.network.get_state())  # the weights and their sums as set_weights computes them
    model.network.train_step(spikes, labels, 0.01)
    twin.train_step(spikes, labels, 0.01)
    for a, b in zip(model.network.get_state().values(), twin.get_state().values()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("move", ["double", "data", "one", "stored double"])
def test_a_parameter_that_left_the_engines_memory_is_copied_in(move):
    """After .double() or an assignment to .data the engine's memory is stale: the parameters are
    copied in, as share_weights=False does, never read from there."""
    config, spikes, labels = _fc()
    layout = "stored" if move.startswith("stored") else "canonical"
    models = [ht.SpikingNetwork(hm2bp.Network(**config, dtype="float32"), share_weights=True, layout=layout),
              ht.SpikingNetwork(hm2bp.Network(**config, dtype="float32"), share_weights=False)]
    move = move.split()[-1]
    for model in models:
        if move == "double":
            model.double()
        for p in model.weights if move == "data" else model.weights[:1] if move == "one" else []:
            p.data = p.data.clone(memory_format=torch.contiguous_format)
    _train(models[0], spikes, labels, 3)
    _train(models[1], spikes, labels, 3)
    for a, b in zip(*(m.weights for m in models), strict=True):
        a = a.detach().numpy()
        assert np.array_equal(np.moveaxis(a, -1, 0) if layout == "stored" else a, b.detach().numpy())
    assert np.array_equal(models[0](torch.from_numpy(spikes)).numpy(), models[1](torch.from_numpy(spikes)).numpy())


@pytest.mark.parametrize("case", [_fc, _cnn], ids=["fc", "cnn"])
def test_forward_backward_writes_gradients_in_the_stored_layout(case):
    config, spikes, labels = case()
    net = hm2bp.Network(**config, dtype="float32")
    want = net.forward_backward(spikes, labels, reduce="mean", regularize=True)["gradients"]
    out = [np.moveaxis(np.empty(w.shape[1:] + w.shape[:1], np.float32), -1, 0) for w in want]
    got = net.forward_backward(spikes, labels, reduce="mean", regularize=True, out=out)["gradients"]
    for g, o, w in zip(got, out, want, strict=True):
        assert g is o and not o.flags.c_contiguous
        np.testing.assert_array_equal(o, w.astype(np.float32))
    with pytest.raises(TypeError, match=r"out\[0\] must be a writable float32 or float64 NumPy array"):
        net.forward_backward(spikes, labels, out=[np.empty(want[0].shape[::-1], np.float32).T[::-1], *out[1:]])


@pytest.mark.parametrize("regularize", [False, True])
def test_stored_gradients_are_the_same_for_any_thread_count_and_with_silent_inputs(regularize):
    """The stored layout is written by rows on the engine's threads, and the gradient rows of
    inputs that no sample used (+0) are not read: the same values as the transposing export."""
    config, spikes, labels = random_case(7, [64, 20, 6], 80, 8, rate=0.1, reg_lambda=10.0, reg_beta=0.04)
    spikes[:, :, ::3] = False
    grads = []
    for threads in (1, 3):
        net = hm2bp.Network(**config, dtype="float32", threads=threads)
        want = net.forward_backward(spikes, labels, reduce="mean", regularize=regularize)["gradients"]
        out = [np.moveaxis(np.empty(w.shape[1:] + w.shape[:1], np.float32), -1, 0) for w in want]
        net.forward_backward(spikes, labels, reduce="mean", regularize=regularize, out=out)
        for o, w in zip(out, want, strict=True):
            np.testing.assert_array_equal(o, w.astype(np.float32))
        grads.append(out)
    for a, b in zip(*grads, strict=True):
        assert np.array_equal(a, b)
    silent = grads[0][0][:, ::3]
    assert silent.any() if regularize else not silent.any()


def test_refusals():
    net = hm2bp.Network([4, 3], vth=[1.0])
    with pytest.raises(ValueError, match="layout must be 'canonical' or 'stored', got 'rows'"):
        ht.SpikingNetwork(net, layout="rows")
    with pytest.raises(ValueError, match="layout='stored' is the engine's own weight memory"):
        ht.SpikingNetwork(net, share_weights=False, layout="stored")


@pytest.mark.parametrize("threads", [1, 2])
def test_the_refresh_refuses_a_non_finite_weight_and_runs_with_a_sum_that_overflowed(threads):
    """With several threads and sample groups the column-sum refresh runs inside the batch's own
    parallel region: it refuses a NaN weight torch wrote as before, and a column sum that
    overflowed from finite weights (no error) gives the one-thread run's gradients, bit for bit."""
    config, spikes, labels = random_case(5, [30, 20, 6], 80, 8, rate=0.1, lateral_inhibition=1.0)
    spikes_t, labels_t = torch.from_numpy(spikes), torch.from_numpy(labels)
    model = ht.SpikingNetwork(hm2bp.Network(**config, threads=threads))
    with torch.no_grad():
        model.weights[0][3, 7] = float("nan")
    with pytest.raises(ValueError, match=r"weights\[0\] contains NaN or infinite values"):
        ht.hm2bp_loss(model, spikes_t, labels_t)
    grads = {}
    for n in (1, threads):
        model = ht.SpikingNetwork(hm2bp.Network(**config, threads=n))
        with torch.no_grad():
            model.weights[0][3, :] = 3e38  # finite float32 weights; their sum is not
        ht.hm2bp_loss(model, spikes_t, labels_t).backward()
        grads[n] = [p.grad.numpy().copy() for p in model.weights]
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(grads[1], grads[threads]))
