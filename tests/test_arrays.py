"""hm2bp.arrays: every Network argument accepts what users hold (lists, memoryviews, DLPack,
PyTorch tensors, CUDA arrays) through one conversion; results equal those of NumPy inputs."""

from __future__ import annotations

import numpy as np
import pytest

import hm2bp
from hm2bp.model.arrays import CudaArray, as_host_array, cuda_array
from helpers import random_case


class DLPackOnly:
    """A host array that offers nothing but DLPack."""

    def __init__(self, a: np.ndarray):
        self.a = a

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)


class FakeCuda:
    """What CuPy / PyTorch CUDA arrays show hm2bp: __cuda_array_interface__ (v3) and DLPack on
    device 2 (kDLCUDA). Its memory is host memory, so only the CPU-side paths may read it; a
    copy to the host goes through __dlpack__(dl_device=(1, 0)) as with CuPy and PyTorch."""

    def __init__(self, a: np.ndarray, strides=None, exports: bool = True, requires_grad=False,
                 stream: dict | None = None):
        self.a, self.strides, self.exports, self.requires_grad = a, strides, exports, requires_grad
        self.stream = {"stream": 1} if stream is None else stream  # the entry, or {} for none

    @property
    def __cuda_array_interface__(self):
        if self.requires_grad:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")
        return {"shape": self.a.shape, "typestr": self.a.dtype.str, "data": (self.a.ctypes.data, False),
                "version": 3, "strides": self.strides, **self.stream}

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, dl_device=None, copy=None, **kwargs):
        if not self.exports or dl_device != (1, 0):
            raise BufferError("cannot export to the host")
        return self.a.__dlpack__(dl_device=dl_device, copy=copy, **kwargs)

    def detach(self):
        return FakeCuda(self.a, self.strides, self.exports, stream=self.stream)


@pytest.fixture(scope="module")
def case():
    config, spikes, labels = random_case(3, [40, 16, 5], 30, 4)
    return config, spikes, labels


FORMS = {
    "list": lambda a: a.tolist(),
    "memoryview": lambda a: memoryview(np.ascontiguousarray(a)),
    "dlpack": lambda a: DLPackOnly(np.ascontiguousarray(a)),
    "cuda-copied-to-host": lambda a: FakeCuda(np.ascontiguousarray(a)),
}


@pytest.mark.parametrize("form", FORMS)
def test_cpu_network_takes_any_array_like(case, form):
    config, spikes, labels = case
    make = FORMS[form]
    a, b = hm2bp.Network(**config, threads=1), hm2bp.Network(**config, threads=1)
    weights = np.array([1.0, 0.5, 2.0, 1.0])
    want = a.train_step(spikes, labels, 0.01, sample_weights=weights)
    got = b.train_step(make(spikes), make(labels), 0.01, sample_weights=make(weights))
    np.testing.assert_array_equal(got["counts"], want["counts"])
    for x, y in zip(b.get_weights(), a.get_weights()):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(b.infer(make(spikes))["counts"], a.infer(spikes)["counts"])
    b.set_weights([make(w) for w in a.get_weights()])
    grads = b.forward_backward(make(spikes), make(labels))["gradients"]
    for x, y in zip(grads, a.forward_backward(spikes, labels)["gradients"]):
        np.testing.assert_array_equal(x, y)


def test_torch_tensors_even_with_requires_grad(case):
    torch = pytest.importorskip("torch", reason="torch not installed")
    config, spikes, labels = case
    a, b = hm2bp.Network(**config, threads=1), hm2bp.Network(**config, threads=1)
    cpu = torch.from_numpy(spikes)
    assert np.shares_memory(as_host_array(cpu, "spikes"), spikes)  # read in place, no copy
    t = torch.tensor(spikes.astype(np.float32), requires_grad=True)
    np.testing.assert_array_equal(b.infer(t)["counts"], a.infer(spikes)["counts"])
    b.train_step(torch.from_numpy(spikes), torch.from_numpy(labels), 0.01)
    a.train_step(spikes, labels, 0.01)
    for x, y in zip(b.get_weights(), a.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_host_arrays_are_not_copied():
    a = np.zeros((3, 4), bool)
    assert as_host_array(a, "x") is a
    assert np.shares_memory(as_host_array(memoryview(a), "x"), a)
    assert np.shares_memory(as_host_array(DLPackOnly(a), "x"), a)


def test_cuda_arrays_are_recognised_and_checked():
    a = np.zeros((2, 3, 4), bool)
    got = cuda_array(FakeCuda(a), "spikes")
    assert got == CudaArray(a.ctypes.data, (2, 3, 4), "|b1", 1)
    assert cuda_array(a) is None and cuda_array([1, 2]) is None
    assert cuda_array(FakeCuda(a, requires_grad=True)) == got  # read through detach()
    assert cuda_array(FakeCuda(a, strides=(12, 4, 1))) == got  # explicit C strides
    with pytest.raises(TypeError, match="strided view"):
        cuda_array(FakeCuda(a, strides=(24, 8, 2)), "spikes")


@pytest.mark.parametrize("entry, stream", [
    ({}, 1),                   # PyTorch (interface version 2): no stream entry at all
    ({"stream": None}, 1),     # Numba arrays on the default stream
    ({"stream": 0}, 1),        # disallowed by the interface; the CUDA runtime's 0 is the legacy stream
    ({"stream": 1}, 1),
    ({"stream": 2}, 2),        # per-thread default stream
    ({"stream": 0x5a5a10}, 0x5a5a10),  # a cudaStream_t
])
def test_cuda_arrays_name_the_stream_to_order_after(entry, stream):
    # The engine orders its reads after the producer's stream; "no stream" must not mean "wait
    # for nothing", or spikes from a kernel still queued would be read before they are written.
    a = np.zeros((2, 3, 4), bool)
    assert cuda_array(FakeCuda(a, stream=entry)).stream == stream
    assert cuda_array(FakeCuda(a, stream=entry, requires_grad=True)).stream == stream


def test_gpu_arrays_that_cannot_reach_the_host_say_what_to_do(case):
    config, spikes, labels = case
    net = hm2bp.Network(**config)
    with pytest.raises(TypeError, match=r"spikes: FakeCuda is in GPU memory .*x\.cpu\(\) in PyTorch"):
        net.infer(FakeCuda(spikes, exports=False))
    with pytest.raises(TypeError, match="labels: FakeCuda is in GPU memory"):
        net.train_step(spikes, FakeCuda(labels, exports=False), 0.01)
