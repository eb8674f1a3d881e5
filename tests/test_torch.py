"""hm2bp.torch: torch optimizers driving HM2-BP training give hm2bp's own training."""
from __future__ import annotations

import numpy as np
import pytest

import hm2bp
from helpers import random_case

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'hm2bp[torch]')")
import hm2bp.torch as ht  # noqa: E402


def _pair(dtype: str, **kw) -> tuple[hm2bp.Network, hm2bp.Network, np.ndarray, np.ndarray]:
    """Two identical networks (one for hm2bp's own optimizer, one for torch's), spikes, labels."""
    config, spikes, labels = random_case(11, [30, 20, 6], 80, 12, rate=0.1, **kw)
    return hm2bp.Network(**config, dtype=dtype), hm2bp.Network(**config, dtype=dtype), spikes, labels


def _max_rel(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max() / np.abs(y).max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-7), ("float64", 1e-15)])
def test_one_torch_adam_step_equals_hm2bps_adam_step(dtype, tol):
    own, bridged, spikes, labels = _pair(dtype, reg_lambda=10.0, reg_beta=0.04)
    model = ht.SpikingNetwork(bridged)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(own.b1, own.b2), eps=own.eps)
    before = own.get_weights()
    own.train_step(spikes, labels, 0.01)
    opt.zero_grad()
    ht.hm2bp_loss(model, torch.from_numpy(spikes), torch.from_numpy(labels)).backward()
    opt.step()
    moved = [w - b for w, b in zip(own.get_weights(), before)]
    assert min(np.abs(m).max() for m in moved) > 1e-3  # the step did something
    got = [p.detach().numpy().astype(np.float64) for p in model.weights]
    # Same rule (eps outside the bias-corrected square root in both); only rounding differs.
    assert _max_rel(got, own.get_weights()) < tol


def test_gradients_are_hm2bps_and_scale_with_the_loss():
    net, _, spikes, labels = _pair("float64", reg_lambda=0.0)
    model = ht.SpikingNetwork(net)
    (3.0 * ht.hm2bp_loss(model, spikes, labels)).backward()
    want = net.gradients(spikes, labels, reduce="mean")
    for p, g in zip(model.weights, want, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), 3.0 * g, rtol=1e-15, atol=0)
    counts = model(torch.from_numpy(spikes))
    assert counts.shape == (12, 6) and np.array_equal(counts.numpy(), net.infer(spikes)["counts"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_adam_training_with_a_dataloader_equals_hm2bps_own_training(dtype):
    """The issue's done-when: 5 epochs x 3 batches, weights within float rounding."""
    own, bridged, spikes, labels = _pair(dtype, reg_lambda=10.0, reg_beta=0.04)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(spikes), torch.from_numpy(labels)), batch_size=4)
    model = ht.SpikingNetwork(bridged)
    opt = torch.optim.Adam(model.parameters(), lr=0.005, betas=(own.b1, own.b2), eps=own.eps)
    start = own.get_weights()
    for _ in range(5):
        for s, y in loader:
            own.train_step(s.numpy(), y.numpy(), 0.005)
            opt.zero_grad()
            ht.hm2bp_loss(model, s, y).backward()
            opt.step()
    assert own.infer(spikes)["counts"].sum() > 0 and _max_rel(own.get_weights(), start) > 0.01
    got = [p.detach().numpy().astype(np.float64) for p in model.weights]
    assert _max_rel(got, own.get_weights()) < (1e-6 if dtype == "float32" else 1e-14)


def test_refusals():
    with pytest.raises(TypeError, match="wraps an hm2bp.Network"):
        ht.SpikingNetwork([30, 20, 6])
    with pytest.raises(TypeError, match="needs an hm2bp.torch.SpikingNetwork"):
        ht.hm2bp_loss(torch.nn.Linear(2, 2), np.zeros((1, 2, 2)), np.zeros(1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_nan_or_infinite_weight_set_through_torch_is_refused_in_one_line(dtype):
    """The engine takes the parameters as they are and tells their finiteness from the column
    sums it computes of them; the error names the array, and fixing it lets training go on."""
    net, own, spikes, labels = _pair(dtype, reg_lambda=10.0, reg_beta=0.04)
    model = ht.SpikingNetwork(net)
    for k, bad in [(1, float("nan")), (0, float("inf")), (0, -float("inf"))]:
        with torch.no_grad():
            kept = float(model.weights[k][2, 3])
            model.weights[k][2, 3] = bad
        with pytest.raises(ValueError, match=rf"^weights\[{k}\] contains NaN or infinite values$"):
            ht.hm2bp_loss(model, spikes, labels)
        with pytest.raises(ValueError, match=rf"^weights\[{k}\] contains NaN or infinite values$"):
            model(torch.from_numpy(spikes))
        with torch.no_grad():
            model.weights[k][2, 3] = kept
    ht.hm2bp_loss(model, spikes, labels).backward()
    want = own.forward_backward(spikes, labels, reduce="mean", regularize=True)["gradients"]
    for p, g in zip(model.weights, want, strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), g.astype(dtype))


def _ddp_worker(rank: int, world: int, init: str, spikes: np.ndarray, labels: np.ndarray, config: dict,
                out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(ht.SpikingNetwork(hm2bp.Network(**config, dtype="float64")))
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    half = len(labels) // world
    for _ in range(3):
        part = slice(rank * half, (rank + 1) * half)
        opt.zero_grad()
        model(torch.from_numpy(spikes[part]), torch.from_numpy(labels[part])).backward()  # DDP averages grads
        opt.step()
    if rank == 0:
        np.savez(out, *[p.detach().numpy() for p in model.module.weights])
    # both ranks leave together: a rank that tears its gloo group down while the other still
    # holds the connection can abort in gloo's threads ("terminate called without an active
    # exception", a known shutdown race of torch.distributed), which is not what this tests
    dist.barrier()
    dist.destroy_process_group()


def test_distributed_data_parallel_on_two_processes_equals_one_batch(tmp_path):
    """Two gloo processes with half a batch each: DDP's gradient average is the full batch's mean."""
    import torch.multiprocessing as mp

    config, spikes, labels = random_case(11, [30, 20, 6], 80, 12, rate=0.1, reg_lambda=0.0)
    own = hm2bp.Network(**config, dtype="float64")
    for _ in range(3):
        own.train_step(spikes, labels, 0.005)
    out = tmp_path / "w.npz"
    mp.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", spikes, labels, config, str(out)),
             nprocs=2, join=True)
    got = list(np.load(out).values())
    assert _max_rel(got, own.get_weights()) < 1e-14
