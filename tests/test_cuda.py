"""The CUDA engine against the CPU engine and hm2bp.reference (SPEC.md in NumPy, float64).

The GPU runs the same formulas (csrc/hm2bp) as the CPU: spike trains must be identical in
float64 and, away from threshold ties, in float32; gradients and optimizer steps agree to 1e-9
(float64) and 1e-4 (float32) relative with the reference. The GPU sums the S-PSP terms one by
one where the CPU carries part of that sum in O(T), so GPU and CPU differ by rounding only. Skipped when this build has no CUDA or
no usable GPU is present.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
import pytest

import hm2bp
from hm2bp import reference as ref
from hm2bp.layers import Conv2d, Dense, Pool2d
from helpers import CASES, assert_rel_close, fire_margin, random_case, random_reservoir_case, tie_margin


def _skip_reason() -> str:
    if not hm2bp.build_info()["cuda_compiled"]:
        return "hm2bp was built without CUDA (no nvcc when it was installed)"
    return "no usable CUDA GPU"


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not hm2bp.cuda_available(), reason=_skip_reason())]


def pair(config: dict, dtype: str) -> tuple[hm2bp.Network, hm2bp.Network]:
    """The same network (same seed, so the same initial weights) on the GPU and the CPU. One CPU
    thread sums the batch gradient in sample order, as the GPU does for batches of up to a few
    hundred samples."""
    return (hm2bp.Network(**config, dtype=dtype, backend="cuda"),
            hm2bp.Network(**config, dtype=dtype, backend="cpu", threads=1))


def assert_same_step(a: dict, b: dict, loss_rel: float = 1e-12):
    assert a["loss"] == pytest.approx(b["loss"], rel=loss_rel)
    for key in ("counts", "predictions", "layer_spikes"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def assert_same_weights(a: hm2bp.Network, b: hm2bp.Network, rtol: float):
    for got, want in zip(a.get_weights(), b.get_weights()):
        assert_rel_close(got, want, rtol)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_float64_matches_cpu_and_reference(case):
    layers, T, batch, lateral, er = CASES[case]
    config, spikes, labels = random_case(case, layers, T, batch, lateral_inhibition=lateral, effect_ratio=er)
    weights = np.random.default_rng(case).uniform(0.5, 1.5, size=batch)
    assert_float64_matches_cpu_and_reference(config, spikes, labels, weights)


def assert_float64_matches_cpu_and_reference(config, spikes, labels, weights):
    """Spikes identical to the CPU's and the reference's, gradients and two train steps within
    1e-12 of the CPU and 1e-9 of the reference."""
    gpu, cpu = pair(config, "float64")
    oracle = ref.Network(**config)
    assert gpu._engine.device.startswith("cuda:")
    for got, want, exact in zip(gpu.forward(spikes), cpu.forward(spikes), oracle.forward(spikes)):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, exact)
    for got, want, exact in zip(gpu.gradients(spikes, labels, weights), cpu.gradients(spikes, labels, weights),
                                oracle.gradients(spikes, labels, weights)):
        assert_rel_close(got, want, 1e-12)
        assert_rel_close(got, exact, 1e-9)
    for _ in range(2):
        a = gpu.train_step(spikes, labels, 0.01)
        assert_same_step(a, cpu.train_step(spikes, labels, 0.01))
        assert_same_step(a, oracle.train_step(spikes, labels, 0.01))
        assert_same_weights(gpu, cpu, 1e-12)
        assert_same_weights(gpu, oracle, 1e-9)


def test_silent_hidden_neurons_and_revived_label():
    # As in test_engine: silent hidden neurons (the 0.1 and 0.5 rules) and a revived label neuron.
    config, spikes, labels = random_case(7, [30, 20, 4], 70, 3, vth=[3.0, 50.0])
    gpu, cpu = pair(config, "float64")
    oracle = ref.Network(**config)
    hidden, out = gpu.forward(spikes)
    assert (hidden.sum(axis=1) == 0).any() and (hidden.sum(axis=1) > 0).any()
    assert out[np.arange(3), :, labels].sum() == 0
    for got, want, exact in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels),
                                oracle.gradients(spikes, labels)):
        assert np.abs(exact).max() > 0
        assert_rel_close(got, want, 1e-12)
        assert_rel_close(got, exact, 1e-9)


def test_revival_spacing_shorter_than_refractory_period():
    # T // desired = 1: the revived train has s = tp - last < 0 and reads the S-PSP kernel at
    # negative m (as in test_engine).
    config, spikes, labels = random_case(7, [30, 20, 4], 40, 3, vth=[3.0, 50.0])
    config.update(desired=35, margin=0)
    gpu, cpu = pair(config, "float64")
    oracle = ref.Network(**config)
    for got, want, exact in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels),
                                oracle.gradients(spikes, labels)):
        assert np.abs(exact).max() > 0
        assert_rel_close(got, want, 1e-12)
        assert_rel_close(got, exact, 1e-9)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizers_and_regularization(optimizer):
    config, spikes, labels = random_case(3, [25, 15, 5], 60, 2, optimizer=optimizer, reg_lambda=10.0, reg_beta=0.5)
    gpu, cpu = pair(config, "float64")
    oracle = ref.Network(**config)
    for lr in (0.05, 0.02, 0.01):
        assert_same_step(gpu.train_step(spikes, labels, lr), cpu.train_step(spikes, labels, lr))
        oracle.train_step(spikes, labels, lr)
    assert_same_weights(gpu, cpu, 1e-12)
    assert_same_weights(gpu, oracle, 1e-9)
    for kind in ("moment1", "moment2"):
        for l in range(2):
            assert_rel_close(gpu._engine.get_param(kind, l), cpu._engine.get_param(kind, l), 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regularized_gradients_written_into_the_callers_arrays(dtype):
    """hm2bp.torch's path: the batch mean written in the network's dtype into given arrays (the
    float64 export's numbers), then with SPEC 5's regularization of the current weights added."""
    config, spikes, labels = random_case(3, [25, 15, 5], 60, 4, reg_lambda=10.0, reg_beta=0.5)
    gpu = hm2bp.Network(**config, dtype=dtype, backend="cuda")
    mean = gpu.gradients(spikes, labels)
    out = [np.full(m.shape, np.nan, dtype) for m in mean]
    got = gpu.forward_backward(spikes, labels, reduce="mean", out=out)["gradients"]
    assert all(g is o for g, o in zip(got, out))
    for g, m in zip(got, mean):
        np.testing.assert_array_equal(g, m.astype(dtype))
    got = gpu.forward_backward(spikes, labels, reduce="mean", regularize=True, out=out)["gradients"]
    for g, m, w in zip(got, mean, gpu.get_weights()):
        reg = ref.regularization(w, 10.0, 0.5, 8.0)
        assert np.abs(reg).max() > 1e-3
        assert_rel_close(g, m + reg, 1e-6 if dtype == "float32" else 1e-13)


def test_float32_matches_cpu_away_from_ties():
    checked = 0
    for seed in range(10):
        config, spikes, labels = random_case(100 + seed, [30, 20, 6], 80, 3)
        gpu, cpu = pair(config, "float32")
        weights = [w.astype(np.float32).astype(np.float64) for w in gpu.get_weights()]
        if tie_margin(config, weights, spikes) < 1e-3:
            continue  # float32 rounding may legitimately flip a spike this close to threshold
        for got, want in zip(gpu.forward(spikes), cpu.forward(spikes)):
            np.testing.assert_array_equal(got, want)
        oracle = ref.Network(**config)
        oracle.set_weights(weights)
        # The GPU sums S-PSP terms one by one, the CPU carries part of the sum in O(T): in float32
        # each is ~2e-7 from the reference (measured on these cases), hence 2e-6 between them.
        for got, want, exact in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels),
                                    oracle.gradients(spikes, labels)):
            assert_rel_close(got, want, 2e-6)
            assert_rel_close(got, exact, 1e-4)
        assert_same_step(gpu.train_step(spikes, labels, 0.01), cpu.train_step(spikes, labels, 0.01), loss_rel=1e-6)
        assert_same_weights(gpu, cpu, 1e-4)
        checked += 1
    assert checked >= 5


# Sizes that take the GPU paths the small cases cannot: several column tiles per layer, sample
# groups of more than one sample (big batch), and masked sums split into shared-memory chunks
# (n_in and T over the tile budget of 416 float64 rows).
WIDE_CASES = [
    # (layers, T, batch, dtype)
    ([100, 300, 10], 80, 96, "float64"),
    ([100, 300, 10], 80, 96, "float32"),
    ([500, 64, 40, 10], 450, 3, "float64"),
    ([900, 40, 10], 100, 2, "float32"),
]


@pytest.mark.parametrize("case", range(len(WIDE_CASES)))
def test_wide_layers_big_batches_and_chunked_tiles_match_cpu(case):
    layers, T, batch, dtype = WIDE_CASES[case]
    config, spikes, labels = random_case(200 + case, layers, T, batch, rate=0.05,
                                         vth=[4.0] * (len(layers) - 1))
    gpu, cpu = pair(config, dtype)
    rtol = 1e-9 if dtype == "float64" else 1e-4
    fwd_gpu, fwd_cpu = gpu.forward(spikes), cpu.forward(spikes)
    assert fwd_gpu[0].any() and fwd_gpu[-1].any()
    for got, want in zip(fwd_gpu, fwd_cpu):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels)):
        assert np.abs(want).max() > 0
        assert_rel_close(got, want, rtol)
    assert_same_step(gpu.train_step(spikes, labels, 0.01), cpu.train_step(spikes, labels, 0.01),
                     loss_rel=1e-12 if dtype == "float64" else 1e-6)
    assert_same_weights(gpu, cpu, rtol)


def test_every_output_element_is_written():
    # Device buffers are reused across calls: a call after a larger batch (and another T) must
    # not see stale data, so alternate sizes and modes and compare each call with the CPU.
    config, _, _ = random_case(5, [30, 20, 6], 60, 1)
    gpu, cpu = pair(config, "float64")
    rng = np.random.default_rng(5)
    for batch, T in ((6, 90), (2, 60), (5, 75), (1, 60), (6, 90)):
        spikes = rng.random((batch, T, 30)) < 0.1
        labels = rng.integers(0, 6, batch)
        for got, want in zip(gpu.forward(spikes), cpu.forward(spikes)):
            np.testing.assert_array_equal(got, want)
        a, b = gpu.infer(spikes), cpu.infer(spikes)
        assert_same_step(a, b)
        for got, want in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels)):
            assert_rel_close(got, want, 1e-12)
        assert_same_step(gpu.train_step(spikes, labels, 0.01), cpu.train_step(spikes, labels, 0.01))
        assert_same_weights(gpu, cpu, 1e-12)


def test_runs_are_reproducible():
    # No float atomics: the same step from the same state gives bit-identical weights.
    config, spikes, labels = random_case(9, [100, 300, 10], 80, 96, rate=0.05, vth=[4.0, 4.0])
    a = hm2bp.Network(**config, dtype="float32", backend="cuda")
    state = a.get_state()
    first = a.train_step(spikes, labels, 0.01)
    w_first = a.get_weights()
    a.set_state(state)
    second = a.train_step(spikes, labels, 0.01)
    assert_same_step(first, second, loss_rel=0)
    for x, y in zip(w_first, a.get_weights()):
        np.testing.assert_array_equal(x, y)


@pytest.mark.skipif(hm2bp.build_info()["cuda_device"] != "SIMT emulator",
                    reason="the emulator stands in for GPUs of any multiprocessor count (SIMT_SMS)")
def test_results_do_not_depend_on_the_gpus_multiprocessor_count(monkeypatch):
    # The weight gradient is summed in sample groups; were the groups sized by the SM count,
    # an H100 PCIe (114 SMs), an H100 SXM (132) and a MIG slice would round it differently.
    config, spikes, labels = random_case(11, [20, 40, 4], 30, 12, rate=0.2, vth=[2.0, 2.0])
    results = []
    for sms in ("1", "114", "132"):
        monkeypatch.setenv("SIMT_SMS", sms)  # read by the emulator's cudaGetDeviceProperties
        net = hm2bp.Network(**config, dtype="float32", backend="cuda")
        results.append(net.gradients(spikes, labels))
    assert all(np.abs(g).max() > 0 for g in results[0])
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


def test_poisson_image_path_matches_encode_poisson_and_cpu():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 36), dtype=np.uint8)
    images[0, :10] = 0
    config = dict(layers=[36, 20, 5], vth=[3.0, 4.0], desired=10, undesired=2, margin=2, seed=2)
    labels = np.array([0, 1, 2, 3])
    index = np.array([10, 3, 99, 4])
    for dtype in ("float64", "float32"):
        gpu, cpu = pair(config, dtype)
        dense = hm2bp.encode_poisson(images, 60, 5, index, epoch=1)
        # every layer's spikes from the engine's own encoder equal those from encode_poisson
        via_images = gpu._engine.run_images(images, 60, 5, index, 1, "infer", None, None, 0.0, True)["spikes"]
        for got, want in zip(via_images, gpu.forward(dense)):
            np.testing.assert_array_equal(got, want)
        ra = gpu.train_step_images(images, labels, 0.01, T=60, seed=5, sample_index=index, epoch=1)
        rb = cpu.train_step_images(images, labels, 0.01, T=60, seed=5, sample_index=index, epoch=1)
        assert_same_step(ra, rb, loss_rel=1e-12 if dtype == "float64" else 1e-6)
        assert_same_weights(gpu, cpu, 1e-12 if dtype == "float64" else 1e-4)
        ia = gpu.infer_images(images, T=60, seed=5, sample_index=index, epoch=1)
        ib = gpu.infer(dense)
        np.testing.assert_array_equal(ia["counts"], ib["counts"])
        np.testing.assert_array_equal(ia["predictions"], ib["predictions"])


def test_image_path_equals_dense_path():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 36), dtype=np.uint8)
    config = dict(layers=[36, 20, 5], vth=[3.0, 4.0], desired=10, undesired=2, margin=2, seed=2)
    a = hm2bp.Network(**config, backend="cuda")
    b = hm2bp.Network(**config, backend="cuda")
    labels = np.array([0, 1, 2, 3])
    ra = a.train_step_images(images, labels, 0.01, T=60, seed=5, sample_index=10, epoch=1)
    rb = b.train_step(hm2bp.encode_poisson(images, 60, 5, 10, epoch=1), labels, 0.01)
    assert_same_step(ra, rb, loss_rel=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_state_round_trip_and_cross_backend_resume():
    config, spikes, labels = random_case(4, [20, 12, 4], 50, 2)
    cpu = hm2bp.Network(**config, dtype="float64")
    cpu.train_step(spikes, labels, 0.01)
    gpu = hm2bp.Network(**{**config, "seed": 99}, dtype="float64", backend="cuda")
    gpu.set_state(cpu.get_state())
    for key, value in cpu.get_state().items():
        np.testing.assert_array_equal(gpu.get_state()[key], value, err_msg=key)
    assert_same_step(gpu.train_step(spikes, labels, 0.01), cpu.train_step(spikes, labels, 0.01))
    assert_same_weights(gpu, cpu, 1e-12)
    again = hm2bp.Network(**config, dtype="float64", backend="cuda")
    again.set_state(gpu.get_state())
    for net in (gpu, again):
        net.train_step(spikes, labels, 0.01)
    for wa, wb in zip(gpu.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_mnist_digits_through_fc800():
    from hm2bp import data

    ds = data.load("mnist-mini", "test")
    images, labels = ds.images[:4], ds.labels[:4].astype(np.int64)
    spikes = hm2bp.encode_poisson(images, 400, seed=0, sample_index=0)
    config = dict(layers=[784, 800, 10], vth=[20.0, 8.0], seed=0)
    gpu, cpu = pair(config, "float64")
    hidden, out = gpu.forward(spikes)
    assert hidden.sum() > 1000 and out.sum() > 0
    for got, want in zip((hidden, out), cpu.forward(spikes)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels)):
        assert_rel_close(got, want, 1e-9)
    assert_same_step(gpu.train_step(spikes, labels, 1e-3), cpu.train_step(spikes, labels, 1e-3))
    assert_same_weights(gpu, cpu, 1e-9)
    gpu32, cpu32 = pair(config, "float32")
    r32 = gpu32.train_step_images(images, labels, 1e-3, T=400, seed=0, sample_index=0)
    c32 = cpu32.train_step_images(images, labels, 1e-3, T=400, seed=0, sample_index=0)
    if np.array_equal(r32["counts"], c32["counts"]):  # else a float32 tie flipped a spike
        assert_same_weights(gpu32, cpu32, 1e-4)


def test_errors_are_clear():
    config, spikes, labels = random_case(2, [30, 20, 6], 60, 2)
    gpu = hm2bp.Network(**config, backend="cuda")
    with pytest.raises(ValueError, match="labels"):
        gpu.train_step(spikes, labels + 100, 0.01)
    with pytest.raises(ValueError, match="T >= desired"):
        gpu.train_step(spikes[:, :5], labels, 0.01)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_step_is_forward_backward_plus_apply_gradients(dtype, optimizer):
    config, spikes, labels = random_case(3, [40, 25, 6], 80, 5, optimizer=optimizer)
    split = assert_fused_equals_split(config, spikes, labels, dtype)
    mean = split.gradients(spikes, labels)
    total = split.gradients(spikes, labels, reduce="sum")
    for m, s in zip(mean, total):
        assert_rel_close(m, s / len(labels), 1e-6 if dtype == "float32" else 1e-15)


def assert_fused_equals_split(config, spikes, labels, dtype) -> hm2bp.Network:
    """train_step == forward_backward + apply_gradients, bit for bit, over two steps; returns
    the split network."""
    fused = hm2bp.Network(**config, dtype=dtype, backend="cuda")
    split = hm2bp.Network(**config, dtype=dtype, backend="cuda")
    for lr in (0.01, 0.004):
        a = fused.train_step(spikes, labels, lr)
        b = split.forward_backward(spikes, labels, reduce="sum")
        split.apply_gradients(b["gradients"], lr, count=len(labels))
        assert_same_step(a, b, loss_rel=0)
        assert any(np.abs(g).max() > 0 for g in b["gradients"])
        sa, sb = fused.get_state(), split.get_state()
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    return split


# -- Conv2d and Pool2d (SPEC_CNN 1-3) --

CNN_HYPER = dict(desired=10, undesired=2, margin=2)
CNN_CASES = [
    # (input_shape, layers, T, batch): padding 0 and 1, pool size == stride and != stride,
    # conv above the data layer and above a pool (pre-deltas through both), pooling the data
    # layer (nothing handed down), non-square maps
    ((1, 8, 8), [Conv2d(3, 3, 1.0), Pool2d(2, 1.0), Dense(5, 2.0), Dense(4, 3.0)], 70, 1),
    ((1, 9, 9), [Conv2d(2, 5, 1.5, padding=1), Pool2d(3, 1.0, stride=2), Dense(4, 3.0)], 80, 3),
    ((2, 7, 7), [Conv2d(3, 3, 1.0, padding=1), Pool2d(2, 1.0), Conv2d(4, 2, 2.0), Pool2d(2, 1.0, stride=1),
                 Dense(4, 3.0)], 60, 3),
    ((1, 7, 9), [Pool2d(2, 0.5), Conv2d(2, 2, 1.0, padding=1), Dense(4, 2.0)], 60, 2),
]


def cnn_case(case: int, **kw):
    shape, layers, T, batch = CNN_CASES[case]
    config = dict(input_shape=shape, layers=layers, **CNN_HYPER, seed=case, reg_lambda=10.0, reg_beta=0.4, **kw)
    rng = np.random.default_rng(case)
    return config, rng.random((batch, T, int(np.prod(shape)))) < 0.25, rng.integers(0, 4, batch)


@pytest.mark.parametrize("case", range(len(CNN_CASES)))
def test_cnn_float64_matches_cpu_and_reference(case):
    config, spikes, labels = cnn_case(case)
    oracle = ref.Network(**config)  # every layer spikes, every gradient is nonzero
    assert all(train.any() for train in oracle.forward(spikes))
    assert all(np.abs(g).max() > 0 for g in oracle.gradients(spikes, labels))
    assert_float64_matches_cpu_and_reference(config, spikes, labels, np.linspace(0.5, 1.5, len(labels)))


def test_cnn_float32_follows_cpu():
    config, spikes, labels = cnn_case(1)
    gpu, cpu = pair(config, "float32")
    if any((a != b).any() for a, b in zip(gpu.forward(spikes), cpu.forward(spikes))):
        pytest.skip("a float32 potential sits on a threshold tie in this case")
    for got, want in zip(gpu.gradients(spikes, labels), cpu.gradients(spikes, labels)):
        assert_rel_close(got, want, 1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn_train_step_is_forward_backward_plus_apply_gradients(dtype):
    assert_fused_equals_split(*cnn_case(2), dtype)


# ---------------------------------------------------------------------------------------------
# CUDA arrays as inputs (hm2bp.arrays): read in place, no host round trip


EMULATED = hm2bp.build_info()["cuda_device"] == "SIMT emulator"
emulator_only = pytest.mark.skipif(not EMULATED,
                                   reason="host memory stands in for device memory only under the SIMT emulator")


@functools.cache
def _emulator() -> ctypes.CDLL:
    """The SIMT emulator's test hooks (tools/cuda_emulator/fake/cuda_runtime.h) in hm2bp._core."""
    lib = ctypes.CDLL(hm2bp._core.__file__)
    lib.simt_register_memory.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    lib.simt_unregister_memory.argtypes = [ctypes.c_void_p]
    lib.simt_last_waited_stream.restype = ctypes.c_size_t
    return lib


class HostBackedCudaArray:
    """__cuda_array_interface__ over host memory that the SIMT emulator's runtime is told to
    count as device memory (`device`, `memory_type` as cudaMemoryType: 2 device, 3 managed; None:
    left unregistered, i.e. plain host memory). Under the emulator device memory is host memory,
    so this checks the in-place read of CUDA spikes without a GPU; on a GPU it would be an
    invalid device pointer, hence only there. `stream`: the interface's stream entry ({} for
    none)."""

    def __init__(self, a: np.ndarray, stream: dict | None = None, device: int = 0, memory_type: int | None = 2,
                 registered_bytes: int | None = None):
        self.a = np.array(a, order="C")  # a copy: each instance registers its own memory
        self.stream = {"stream": 1} if stream is None else stream
        if memory_type is not None:
            size = self.a.nbytes if registered_bytes is None else registered_bytes
            _emulator().simt_register_memory(self.a.ctypes.data, size, device, memory_type)

    def __del__(self):
        _emulator().simt_unregister_memory(self.a.ctypes.data)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.a.shape, "typestr": self.a.dtype.str, "data": (self.a.ctypes.data, False),
                "version": 3, "strides": None, **self.stream}


def assert_device_spikes_match_host(make):
    """Every spike-taking method on device spikes (make(numpy) -> device array) equals the same
    call on host spikes."""
    config, spikes, labels = random_case(4, [30, 20, 6], 60, 3)
    host, device = (hm2bp.Network(**config, backend="cuda") for _ in range(2))
    on_gpu = make(spikes)
    for a, b in zip(device.forward(on_gpu), host.forward(spikes)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(device.infer(on_gpu)["counts"], host.infer(spikes)["counts"])
    for a, b in zip(device.gradients(on_gpu, labels), host.gradients(spikes, labels)):
        np.testing.assert_array_equal(a, b)
    assert_same_step(device.train_step(on_gpu, labels, 0.01), host.train_step(spikes, labels, 0.01))
    for a, b in zip(device.get_weights(), host.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="CUDA spikes must be a bool array"):
        device.infer(make(spikes.astype(np.uint8)))


@emulator_only
def test_cuda_spikes_are_read_in_place_under_the_emulator():
    assert_device_spikes_match_host(HostBackedCudaArray)
    assert_device_spikes_match_host(lambda a: HostBackedCudaArray(a, memory_type=3))  # managed memory


@emulator_only
@pytest.mark.parametrize("entry, stream", [({}, 1), ({"stream": None}, 1), ({"stream": 2}, 2),
                                           ({"stream": 0x5a5a10}, 0x5a5a10)])
def test_cuda_spikes_are_ordered_after_their_producer_stream(entry, stream):
    # The engine waits (on the device) for an event recorded on the producer's stream, which
    # is the legacy default stream when the array names none (hm2bp.arrays).
    config, spikes, _ = random_case(4, [30, 20, 6], 60, 3)
    net = hm2bp.Network(**config, backend="cuda")
    net.infer(spikes)  # host spikes: nothing to wait for
    net.infer(HostBackedCudaArray(spikes, stream=entry))
    assert _emulator().simt_last_waited_stream() == stream


@emulator_only
def test_cuda_spikes_outside_this_gpus_memory_are_refused_in_one_line():
    config, spikes, _ = random_case(4, [30, 20, 6], 60, 3)
    net = hm2bp.Network(**config, backend="cuda")
    for bad, message in ((HostBackedCudaArray(spikes, memory_type=None), "not all in GPU memory; pass a CUDA array"),
                         (HostBackedCudaArray(spikes, memory_type=1), r"not all in GPU memory \(pinned host"),
                         (HostBackedCudaArray(spikes, registered_bytes=spikes.size - 1), "not all in GPU memory"),
                         (HostBackedCudaArray(spikes, device=1), "the device spikes are on cuda:1, the network on cuda:0")):
        with pytest.raises(ValueError, match=message) as err:
            net.infer(bad)
        assert "\n" not in str(err.value)
    np.testing.assert_array_equal(net.infer(HostBackedCudaArray(spikes))["counts"], net.infer(spikes)["counts"])


@pytest.mark.parametrize("library", ["cupy", "torch"])
def test_cuda_spikes_from_cupy_and_torch(library):
    if EMULATED:
        pytest.skip("real device arrays need a GPU")
    lib = pytest.importorskip(library, reason=f"{library} not installed")
    if library == "torch" and not lib.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    make = (lambda a: lib.asarray(a)) if library == "cupy" else (lambda a: lib.from_numpy(a).cuda())
    assert_device_spikes_match_host(make)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-4)])
def test_reservoir_and_bsa_input_match_cpu(dtype, rtol):
    # SPEC_SPEECH 2-3 on the GPU: BSA encoding of analog input and the reservoir's recurrent scan
    # (the same formulas as the CPU's); its fixed weights stay as set through training.
    config, fixed, _, labels = random_reservoir_case(4)
    analog = np.random.default_rng(4).uniform(0, 3e-4, size=(3, 10, 9))
    oracle = ref.Network(**config)
    oracle.set_reservoir_weights(fixed)
    if dtype == "float32" and fire_margin(oracle, hm2bp.encode_bsa(analog, 90)) < 1e-4:
        pytest.skip("a membrane potential this close to the threshold may round to the other side in float32")
    gpu, cpu = pair(config, dtype)
    for net in (gpu, cpu):
        net.set_reservoir_weights(fixed)
    np.testing.assert_array_equal(gpu.reservoir_weights()[0][1], fixed[0][1].astype(dtype))
    spikes = hm2bp.encode_bsa(analog, 90)
    for a, b in zip(gpu.forward(spikes), cpu.forward(spikes)):
        np.testing.assert_array_equal(a, b)
    a, b = gpu.forward_backward_bsa(analog, labels, T=90), cpu.forward_backward_bsa(analog, labels, T=90)
    assert_same_step(a, b, 1e-6 if dtype == "float32" else 1e-12)
    for got, want in zip(a["gradients"], b["gradients"]):
        assert_rel_close(got, want, rtol)
    for _ in range(2):
        assert_same_step(gpu.train_step_bsa(analog, labels, 0.05, T=90), cpu.train_step_bsa(analog, labels, 0.05, T=90),
                         1e-6 if dtype == "float32" else 1e-12)
    assert_same_weights(gpu, cpu, rtol)
    for (g_in, g_rec), (w_in, w_rec) in zip(gpu.reservoir_weights(), fixed):
        np.testing.assert_array_equal(g_in, w_in.astype(dtype))
        np.testing.assert_array_equal(g_rec, w_rec.astype(dtype))


@pytest.mark.parametrize("side_stream", [False, True])
def test_torch_spikes_are_read_after_the_kernel_that_writes_them(side_stream):
    # PyTorch exports no stream: the copy that produces the spikes may still be queued (behind
    # a 50 ms sleep kernel here) when the engine, on its own stream, starts to read them. The
    # engine must order itself after PyTorch's current stream, the default or a side stream.
    if EMULATED:
        pytest.skip("needs real asynchronous device work")
    torch = pytest.importorskip("torch", reason="torch not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    config, spikes, _ = random_case(4, [30, 20, 6], 60, 3)
    net = hm2bp.Network(**config, backend="cuda")
    want = net.infer(spikes)["counts"]  # also sizes the engine's buffers: no cudaFree below
    assert want.any()
    host = torch.from_numpy(spikes).pin_memory()
    stream = torch.cuda.Stream() if side_stream else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            on_gpu = torch.zeros(spikes.shape, dtype=torch.bool, device="cuda")
            torch.cuda._sleep(100_000_000)  # ~50 ms of GPU clock cycles before the copy
            on_gpu.copy_(host, non_blocking=True)
            np.testing.assert_array_equal(net.infer(on_gpu)["counts"], want)


def test_host_memory_posing_as_cuda_spikes_is_refused_not_read():
    # On a GPU, reading a host pointer would be a sticky illegal-address fault that ends the
    # process's CUDA context; the engine refuses it first, and keeps working.
    if EMULATED:
        pytest.skip("the emulator's version registers memory: test_cuda_spikes_outside_this_gpus_memory_...")
    config, spikes, _ = random_case(4, [30, 20, 6], 60, 3)
    net = hm2bp.Network(**config, backend="cuda")
    host = np.ascontiguousarray(spikes)

    class HostPosingAsCuda:
        __cuda_array_interface__ = {"shape": host.shape, "typestr": host.dtype.str, "version": 3,
                                    "data": (host.ctypes.data, False), "strides": None, "stream": None}

    with pytest.raises(ValueError, match="not all in GPU memory"):
        net.infer(HostPosingAsCuda())
    assert net.infer(spikes)["counts"].any()
