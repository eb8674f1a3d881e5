"""hm2bp.torch.NetworkOptimizer: the engine's own SPEC-5 step driven from a torch training loop.
After hm2bp_loss(...).backward() its step equals Network.train_step bit for bit; gradients in
another layout step as the loss's own, edited ones as the reference's Adam; its state_dict resumes."""
from __future__ import annotations

import io

import numpy as np
import pytest

import hm2bp
from helpers import random_case
from hm2bp import reference as ref
from hm2bp.layers import Conv2d, Dense, Pool2d

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'hm2bp[torch]')")
import hm2bp.torch as ht  # noqa: E402


def _fc(optimizer: str = "adam", batch: int = 8) -> tuple[dict, np.ndarray, np.ndarray]:
    """An FC case with the output layer's lateral inhibition and SPEC 5's regularization."""
    return random_case(5, [30, 20, 6], 80, batch, rate=0.1, lateral_inhibition=1.0, reg_lambda=10.0,
                       reg_beta=0.04, optimizer=optimizer)


def _cnn() -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    config = dict(input_shape=(2, 8, 8), layers=[Conv2d(4, 3, vth=2.0, padding=1, init_w=0.8), Pool2d(2, vth=1.0),
                                                 Dense(5, vth=3.0)],
                  desired=10, undesired=2, margin=2, seed=3, reg_lambda=10.0, reg_beta=0.04)
    return config, rng.random((8, 80, 128)) < 0.1, rng.integers(0, 5, 8)


CASES = {"fc-adam": _fc, "fc-sgd": lambda: _fc("sgd"), "fc-batch3": lambda: _fc(batch=6), "cnn": _cnn}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["canonical", "stored"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_torch_loop_with_the_network_optimizer_equals_train_step_bit_for_bit(case, dtype, layout, threads):
    config, spikes, labels = CASES[case]()
    half = len(labels) // 2
    native = hm2bp.Network(**config, dtype=dtype, threads=threads)
    model = ht.SpikingNetwork(hm2bp.Network(**config, dtype=dtype, threads=threads), layout=layout)
    opt = ht.NetworkOptimizer(model, lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / np.sqrt(k + 1))
    for k in range(6):
        part = slice(half * (k % 2), half * (k % 2) + half)
        native.train_step(spikes[part], labels[part], lr=opt.param_groups[0]["lr"])  # the scheduler's
        opt.zero_grad()
        ht.hm2bp_loss(model, torch.from_numpy(spikes[part]), torch.from_numpy(labels[part])).backward()
        opt.step()
        sched.step()
    a, b = native.get_state(), model.network.get_state()
    assert a.keys() == b.keys() and int(b["step"]) == 6
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["weights_0"], hm2bp.Network(**config, dtype=dtype).get_weights()[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_in_another_layout_step_as_those_the_loss_wrote(dtype):
    """The copy path (canonical C-contiguous gradients) gives the in-place path's bits."""
    config, spikes, labels = _fc()
    models = [ht.SpikingNetwork(hm2bp.Network(**config, dtype=dtype)) for _ in range(2)]
    opts = [ht.NetworkOptimizer(m, lr=0.01) for m in models]
    for _ in range(3):
        for j, (model, opt) in enumerate(zip(models, opts)):
            opt.zero_grad()
            ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
            if j == 1:
                for p in model.weights:
                    p.grad = p.grad.contiguous()  # (n_out, n_in) row-major: transposed in
                    assert p.grad.is_contiguous()
            opt.step()
    first = models[0].network.get_state()
    for key, value in models[1].network.get_state().items():
        assert np.array_equal(first[key], value), key


def test_one_step_from_edited_gradients_is_the_reference_adam_step():
    """Clipped gradients (clip_grad_norm_ edits .grad in place) go into SPEC 5's Adam as they are:
    float64 against hm2bp.reference's adam_step, no regularization added by the step."""
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config, dtype="float64"))
    opt = ht.NetworkOptimizer(model, lr=0.02)
    for _ in range(2):  # moments and a step counter that are not zero
        opt.zero_grad()
        ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
        opt.step()
    before = model.network.get_state()
    opt.zero_grad()
    ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
    grads = [p.grad.numpy().copy() for p in model.weights]
    opt.step()
    after = model.network.get_state()
    for k, g in enumerate(grads):
        w, m, v = ref.adam_step(before[f"weights_{k}"], g, before[f"moment1_{k}"], before[f"moment2_{k}"], 3, 0.02)
        np.testing.assert_allclose(after[f"weights_{k}"], w, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(after[f"moment1_{k}"], m, rtol=1e-13, atol=1e-20)
        np.testing.assert_allclose(after[f"moment2_{k}"], v, rtol=1e-13, atol=1e-24)


def test_its_state_dict_resumes_exactly_through_torch_save():
    config, spikes, labels = _fc()

    def train(model: ht.SpikingNetwork, opt: ht.NetworkOptimizer, steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
            opt.step()

    model = ht.SpikingNetwork(hm2bp.Network(**config))
    opt = ht.NetworkOptimizer(model, lr=0.01)
    train(model, opt, 3)
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, saved)
    train(model, opt, 2)
    saved.seek(0)
    loaded = torch.load(saved, weights_only=True)
    resumed = ht.SpikingNetwork(hm2bp.Network(**{**config, "seed": 99}))
    resumed_opt = ht.NetworkOptimizer(resumed, lr=0.5)
    resumed.load_state_dict(loaded["model"])
    resumed_opt.load_state_dict(loaded["opt"])
    assert resumed_opt.param_groups[0]["lr"] == 0.01 and resumed.network._engine.step == 3
    train(resumed, resumed_opt, 2)
    for key, value in model.network.get_state().items():
        assert np.array_equal(resumed.network.get_state()[key], value), key


def test_a_diverged_step_is_refused_by_the_next_call():
    """The step leaves the shared weights' column sums to the next run, which refuses a weight the
    step made infinite (as it refuses one a torch optimizer wrote)."""
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config))
    opt = ht.NetworkOptimizer(model, lr=1e39)  # Adam moves each weight by about lr: past float32's range
    ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
    opt.step()
    assert not np.isfinite(model.weights[0].detach().numpy()).all()
    with pytest.raises(ValueError, match=r"weights\[0\] contains NaN or infinite values"):
        ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels))


def test_no_gradient_no_step():
    config, _, _ = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config))
    start = model.network.get_state()
    ht.NetworkOptimizer(model, lr=0.01).step()
    assert all(np.array_equal(start[k], v) for k, v in model.network.get_state().items())


def test_zero_grad_sets_none_or_zeros_as_torch_does():
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config))
    opt = ht.NetworkOptimizer(model, lr=0.01)
    for set_to_none in (False, True):
        ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.weights)
        opt.zero_grad(set_to_none=set_to_none)
        for p in model.weights:
            assert p.grad is None if set_to_none else (p.grad.shape == p.shape and not p.grad.any())


def test_what_it_refuses_says_what_to_do_instead():
    config, spikes, labels = _fc()
    with pytest.raises(ValueError, match="needs a SpikingNetwork with shared weights"):
        ht.NetworkOptimizer(ht.SpikingNetwork(hm2bp.Network(**config), share_weights=False), lr=0.01)
    with pytest.raises(TypeError, match="steps an hm2bp.torch.SpikingNetwork"):
        ht.NetworkOptimizer(torch.nn.Linear(2, 2), lr=0.01)
    model = ht.SpikingNetwork(hm2bp.Network(**config))
    with pytest.raises(ValueError, match="lr must be"):
        ht.NetworkOptimizer(model, lr=-1.0)
    opt = ht.NetworkOptimizer(model, lr=0.01)
    with pytest.raises(ValueError, match="one parameter group"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})
    with pytest.raises(ValueError, match="no 'hm2bp' entry"):
        opt.load_state_dict(torch.optim.Adam(model.parameters(), lr=0.01).state_dict())
    ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
    model.weights[1].grad = None
    with pytest.raises(ValueError, match="each parameter needs a .grad"):
        opt.step()
    ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
    model.weights[0].data = model.weights[0].data.clone()  # no longer the engine's memory
    with pytest.raises(RuntimeError, match="no longer lies in the engine's memory"):
        opt.step()


def test_it_needs_the_cpu_engine_for_shared_weights():
    if not hm2bp.cuda_available():
        pytest.skip("no CUDA device: the CUDA backend's refusal is checked where one is")
    with pytest.raises(ValueError, match="need the CPU backend"):
        ht.SpikingNetwork(hm2bp.Network([4, 3], vth=[2.0], backend="cuda"), share_weights=True)


@pytest.mark.parametrize("layout", ["canonical", "stored"])
def test_a_gradient_kept_from_an_earlier_step_is_never_written(layout):
    """The loss reuses its gradient memory only when nothing refers to it any more: a .grad kept
    (or a view of one, torch's or NumPy's) keeps its values while training goes on; memory that
    nobody holds is taken again (the point of the reuse: no fresh pages every step)."""
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config), layout=layout)
    opt = ht.NetworkOptimizer(model, lr=0.01)
    kept, copies, addresses = [], [], []
    for k in range(4):
        opt.zero_grad()
        ht.hm2bp_loss(model, spikes[k % 2::2], labels[k % 2::2]).backward()
        addresses.append([p.grad.data_ptr() for p in model.weights])
        if k == 0:
            kept = [p.grad for p in model.weights]
        elif k == 1:
            kept.append(model.weights[0].grad.t()[1:].numpy())
        copies.append([np.array(g.numpy() if isinstance(g, torch.Tensor) else g) for g in kept])
        opt.step()
    for a, b in zip(copies[0], copies[-1]):
        assert np.array_equal(a, b)
    assert np.array_equal(copies[1][-1], copies[-1][-1])
    assert addresses[2] != addresses[0] and addresses[2] != addresses[1]
    assert addresses[3][1] == addresses[2][1]  # the output layer's of step 3: nobody kept it


def test_torch_step_hooks_and_the_profiler_range_run_once_per_step():
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    config, spikes, labels = _fc()
    model = ht.SpikingNetwork(hm2bp.Network(**config))
    opt = ht.NetworkOptimizer(model, lr=0.01)
    calls = []
    opt.register_step_pre_hook(lambda *args: calls.append("pre"))
    opt.register_step_post_hook(lambda *args: calls.append("post"))
    handle = register_optimizer_step_pre_hook(lambda *args: calls.append("global pre"))
    try:
        ht.hm2bp_loss(model, spikes, labels).backward()
        opt.step()
    finally:
        handle.remove()
    assert calls == ["global pre", "pre", "post"]
    with torch.profiler.profile() as prof:
        ht.hm2bp_loss(model, spikes, labels).backward()
        opt.step()
    assert [e.name for e in prof.events()].count("Optimizer.step#NetworkOptimizer.step") == 1
