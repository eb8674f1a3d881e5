"""Array arguments from wherever users hold them: the one input conversion of `hm2bp.Network`.

Host arrays: anything NumPy reads (ndarrays, lists, memoryviews and other buffers, PyTorch CPU
tensors and other objects with ``__array__``, objects with only DLPack), without a copy where
NumPy can avoid one. PyTorch tensors that require grad are read through ``detach()``: HM2-BP
computes its own gradients, nothing flows back through the inputs.

CUDA arrays (CuPy, PyTorch CUDA tensors, Numba, anything with ``__cuda_array_interface__``): the
CUDA backend reads spike trains in place, with no host round trip (:func:`cuda_array`). Every
other argument, and spikes on the CPU backend, is copied to the host through DLPack when the
array supports that (``numpy.from_dlpack(x, device="cpu")``), else the error says how to copy it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CudaArray", "as_host_array", "check_analog", "check_images", "check_sample_index", "cuda_array", "spike_bits"]

_DLPACK_CPU = 1  # DLDeviceType kDLCPU


@dataclass(frozen=True)
class CudaArray:
    """A C-contiguous CUDA array as its ``__cuda_array_interface__`` describes it."""

    pointer: int
    shape: tuple[int, ...]
    typestr: str
    stream: int  # the producer's stream, which the engine orders itself after: 1 or 2 (the
    # legacy or per-thread default stream) or a cudaStream_t handle; never 0 (ambiguous)


_LEGACY_DEFAULT_STREAM = 1


def _producer_stream(value: Any, cai: dict) -> int:
    """The stream whose queued work may still write value (see CudaArray.stream).

    The CUDA Array Interface (v3) lets a producer omit ``stream`` or give None when no work on
    the data is pending, but PyTorch exports version 2, which has no ``stream`` at all, and
    Numba's default-stream arrays give None: in both, the producing kernel or copy can still be
    queued. So a missing or None stream stands for the legacy default stream (which every
    blocking stream's earlier work precedes), except for a PyTorch tensor: its work is on
    PyTorch's current stream. 0, which the interface disallows, is the legacy default stream
    as the CUDA runtime reads it.
    """
    stream = cai.get("stream")
    if stream is None:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            stream = torch.cuda.current_stream(value.device).cuda_stream
    return int(stream) if stream else _LEGACY_DEFAULT_STREAM


def _detached(value: Any) -> Any:
    if getattr(value, "requires_grad", False) and callable(getattr(value, "detach", None)):
        return value.detach()
    return value


def _interface(value: Any) -> dict | None:
    # asked of the object, not its type: PyTorch's tensor class has the property, and its CPU
    # tensors answer it with AttributeError
    try:
        return value.__cuda_array_interface__
    except AttributeError:
        return None


def cuda_array(value: Any, name: str = "array") -> CudaArray | None:
    """The CUDA array behind value's ``__cuda_array_interface__`` (None if it has none).

    Raises TypeError for what the engine cannot read in place: strided views, masked arrays.
    """
    value = _detached(value)
    cai = _interface(value)
    if cai is None:
        return None
    shape = tuple(int(s) for s in cai["shape"])
    typestr = str(cai["typestr"])
    itemsize = int(typestr[2:]) if typestr[2:].isdigit() else 0
    strides = cai.get("strides")
    contiguous = [itemsize * int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
    if strides is not None and any(s != c for s, c, n in zip(strides, contiguous, shape) if n > 1):
        raise TypeError(f"{name}: the CUDA array is a strided view (strides {tuple(strides)}); pass a "
                        f"C-contiguous one (x.copy() in CuPy, x.contiguous() in PyTorch)")
    if cai.get("mask") is not None:
        raise TypeError(f"{name}: masked CUDA arrays are not supported; fill the masked entries first")
    return CudaArray(int(cai["data"][0]), shape, typestr, _producer_stream(value, cai))


def _on_device(value: Any) -> bool:
    """Whether value lives outside host memory (by ``__cuda_array_interface__`` or DLPack)."""
    if _interface(value) is not None:
        return True
    device = getattr(value, "__dlpack_device__", None)
    if device is None or isinstance(value, np.ndarray):
        return False
    return int(device()[0]) != _DLPACK_CPU


def as_host_array(value: Any, name: str) -> np.ndarray:
    """value as a NumPy array in host memory (see the module docstring)."""
    if isinstance(value, np.ndarray):
        return value
    value = _detached(value)
    if _on_device(value):
        if hasattr(value, "__dlpack__"):
            try:
                return np.from_dlpack(value, device="cpu", copy=True)
            except (BufferError, RuntimeError, TypeError, ValueError) as exc:
                reason = f" ({exc})"
        else:
            reason = ""
        raise TypeError(f"{name}: {type(value).__name__} is in GPU memory and cannot be copied to "
                        f"the host through DLPack{reason}; copy it yourself (x.get() in CuPy, "
                        f"x.cpu() in PyTorch)")
    if not hasattr(value, "__array__") and hasattr(value, "__dlpack__"):
        return np.from_dlpack(value)
    return np.asarray(value)


# -- the input checks of a batch (Network, hm2bp.data.augment, encode_bsa) -------------------


def spike_bits(spikes: np.ndarray) -> np.ndarray:
    """0/1 spikes of any bool, integer or float dtype as one byte per value (bool; uint8 0/1 as
    they are, the same bytes), or TypeError. Two vector passes, not np.isin's sort (~100x slower
    on a batch): the 1s, then whether every nonzero value (NaN included) was one of them."""
    if spikes.dtype == np.bool_:
        return spikes
    if spikes.dtype == np.uint8 and spikes.max(initial=0) <= 1:
        return spikes
    if spikes.dtype.kind in "uif":
        ones = spikes == 1
        if np.array_equal(ones, spikes != 0):
            return ones
        raise TypeError(f"spikes must be 0 or 1 (a spike or none), but this {spikes.dtype} array holds other "
                        f"values: binarize them first (or pass a bool array)")
    raise TypeError(f"spikes must be a bool array (or 0/1 integers or floats), got dtype {spikes.dtype}")


def check_images(images: Any, n_in: int | None = None) -> np.ndarray:
    """uint8 images (B, n_in) or (B, H, W) -> contiguous (B, n_in)."""
    images = as_host_array(images, "images")
    if images.dtype != np.uint8:
        raise TypeError(
            f"images must be uint8 pixels 0..255, got dtype {images.dtype}"
            " (scale float images with (x * 255).round().astype(np.uint8))")
    if images.ndim == 3:
        images = images.reshape(images.shape[0], -1)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, n_in) or (B, H, W) with B >= 1, got {images.shape}")
    if n_in is not None and images.shape[1] != n_in:
        raise ValueError(f"images have {images.shape[1]} pixels but the network has {n_in} inputs")
    return np.ascontiguousarray(images)


def check_analog(analog: Any, n_in: int | None = None) -> np.ndarray:
    """Analog channels (B, C, frames) with B, C, frames >= 1 (C = n_in when given), real and
    finite -> contiguous float64 (the BSA encoder's input)."""
    values = as_host_array(analog, "analog")
    channels = "C" if n_in is None else str(n_in)
    if values.ndim != 3 or min(values.shape) < 1 or (n_in is not None and values.shape[1] != n_in):
        raise ValueError(f"analog must have shape (B, {channels}, frames) with B, frames >= 1, got {values.shape}")
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise TypeError(f"analog must be a real array, got dtype {values.dtype}")
    values = np.ascontiguousarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("analog must be finite (no NaN or inf)")
    return values


def check_out_arrays(arrays: Sequence[Any], shapes: Sequence[tuple[int, ...]], stored: bool = False) -> list[np.ndarray]:
    """Arrays to write one result per trainable layer into (Network.forward_backward's `out`):
    writable float32 or float64 NumPy arrays of the parameters' shapes, C-contiguous or, with
    `stored` (the CPU engine), in the layout it stores weights in, axis 0 innermost
    (``np.moveaxis(a, 0, -1)`` C-contiguous: a Dense layer's ``W.T`` memory), written without a transpose."""
    arrays = list(arrays)
    if len(arrays) != len(shapes):
        raise ValueError(f"out needs {len(shapes)} arrays (one per trainable layer), got {len(arrays)}")
    for k, (a, shape) in enumerate(zip(arrays, shapes)):
        if not (isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) and a.flags.writeable
                and (a.flags.c_contiguous or stored and np.moveaxis(a, 0, -1).flags.c_contiguous)):
            layout = "C-contiguous or in the engine's stored layout" if stored else "C-contiguous"
            raise TypeError(f"out[{k}] must be a writable float32 or float64 NumPy array, {layout}")
        if a.shape != tuple(shape):
            raise ValueError(f"out[{k}] must have shape {tuple(shape)} (its weights' shape), got {a.shape}")
    return arrays


def check_sample_index(sample_index: Any, batch: int) -> np.ndarray:
    index = as_host_array(sample_index, "sample_index")
    if index.ndim == 0:
        if not np.issubdtype(index.dtype, np.integer) or int(index) < 0:
            raise ValueError(f"sample_index must be a non-negative integer, got {sample_index!r}")
        return np.arange(int(index), int(index) + batch, dtype=np.int64)
    if index.shape != (batch,) or not np.issubdtype(index.dtype, np.integer) or (index < 0).any():
        raise ValueError(f"sample_index must be an int or {batch} non-negative integers, got shape {index.shape}")
    return np.ascontiguousarray(index, dtype=np.int64)
