"""Limits of the compiled engine, checked in Python before anything reaches C++.

The engine takes C++ ``int`` sizes (layers, T, t_ref, batch, threads), ``uint64`` seeds and an
``int64`` step; a value outside its type would overflow or be refused by pybind11 with an
unreadable message, so every integer is checked here against its C++ type first. A
configuration's memory is estimated from its sizes and refused, with the estimate, when it
does not fit in the memory available, instead of an allocation failing half way (or a
multi-GB attempt swapping the machine). Floats must stay finite in the engine's dtype
(1e300 is finite in float64 but inf in float32).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_ELEMENTS",
    "MAX_THREADS",
    "UINT64_MAX",
    "available_bytes",
    "check_finite_in",
    "check_int",
    "check_memory",
    "check_network_memory",
    "check_sizes",
    "check_state",
    "engine_bytes",
    "format_bytes",
]

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# One thread per core is the useful maximum; far more only exhausts the OS (pthread_create
# failing inside OpenMP aborts the process).
MAX_THREADS = 1024
# Largest element count of one engine array (batch * T * layer width, n_in * n_out): the
# engine indexes some of them with int.
MAX_ELEMENTS = INT32_MAX
# Keys of second optimizer moments (engine, NumPy reference): never negative.
SECOND_MOMENTS = ("moment2_", "adam_v.")


def check_int(name: str, value: object, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum] (the C++ type's range, or tighter)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum} (the engine's limit), got {value}")
    return int(value)


def check_finite_in(name: str, value: object, dtype: str) -> np.ndarray:
    """float64 values that stay finite when stored in the engine's dtype."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    big = np.finfo(dtype).max
    if dtype != "float64" and (np.abs(arr) > big).any():
        raise ValueError(f"{name} has values beyond {big:.4g}, which become infinite in {dtype}")
    return arr


def check_sizes(layers: Sequence[int], batch: int = 1, T: int = 2, t_ref: int = 0) -> None:
    """Element counts of the engine's arrays fit its index types."""
    if 2 * (T + 1) + t_ref > MAX_ELEMENTS:
        raise ValueError(f"T {T} and t_ref {t_ref} need S-PSP tables of {2 * (T + 1) + t_ref} "
                         f"entries, more than the engine's limit {MAX_ELEMENTS}")
    widest = max(layers)
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        if n_in * n_out > MAX_ELEMENTS:
            raise ValueError(f"a {n_in} x {n_out} weight matrix has {n_in * n_out} elements, "
                             f"more than the engine's limit {MAX_ELEMENTS}")
    if batch * T * widest > MAX_ELEMENTS:
        raise ValueError(f"batch {batch} x T {T} x {widest} neurons = {batch * T * widest} "
                         f"spike slots, more than the engine's limit {MAX_ELEMENTS}; use a "
                         f"smaller batch or T")


def check_state(state: Mapping[str, np.ndarray]) -> None:
    """Optimizer state that can only come from training: finite, second moments >= 0 and
    an integral step count in int64."""
    for key, value in state.items():
        arr = np.asarray(value)
        if key == "step":
            if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"state['step'] must be one integer, got {arr.dtype} {arr.shape}")
            check_int("state['step']", arr[()], 0, INT64_MAX)
            continue
        if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"state[{key!r}] must be a real array, got dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise ValueError(f"state[{key!r}] contains NaN or infinite values")
        if key.startswith(SECOND_MOMENTS) and (arr < 0).any():
            raise ValueError(f"state[{key!r}] has negative values (a second moment is a mean "
                             f"of squares)")


def engine_bytes(layers: Sequence[int], T: int, t_ref: int, batch: int, threads: int,
                 dtype: str) -> int:
    """Estimate of the memory one training or inference batch needs (engine plus the
    trainer's float64 copies of the state), from the sizes alone."""
    real = 8 if dtype == "float64" else 4
    params = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    workers = max(1, min(threads, batch))
    # weights + two moments in the engine; the trainer's snapshot and a get_state copy, float64
    state = 3 * params * real + 2 * 3 * params * 8
    # per worker: a gradient of every layer, S-PSP rows (n_in x n_out) and its spike trains,
    # traces and masks (T x neurons)
    per_worker = params * real * 2 + sum(T * n * (real + 2) for n in layers)
    inputs = batch * T * layers[0]  # dense input spikes, one byte each
    tables = (2 * (T + 1) + t_ref) * real
    return state + workers * per_worker + inputs + tables


def _cgroup_free() -> int | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory this process may still use (MemAvailable, capped by a cgroup limit); None when
    unknown."""
    free: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            free.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    cgroup = _cgroup_free()
    if cgroup is not None:
        free.append(cgroup)
    return min(free) if free else None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_network_memory(param_sizes: Sequence[int], dtype: str) -> int:
    """Refuse (MemoryError, with the estimate) a network whose weights do not fit: the engine's
    weights and two moments, one gradient buffer, and the float64 initial weights and their
    checked copy, from the parameter counts alone, before anything is allocated."""
    real = 8 if dtype == "float64" else 4
    params = sum(param_sizes)
    need = params * (4 * real + 2 * 8)
    free = available_bytes()
    if free is not None and need > free:
        raise MemoryError(f"a network of {params} weights in {dtype} needs about {format_bytes(need)} of "
                          f"memory, only {format_bytes(free)} are available; use a smaller network")
    return need


def check_memory(layers: Sequence[int], T: int, t_ref: int, batch: int, threads: int,
                 dtype: str) -> int:
    """Refuse a configuration whose estimated memory exceeds what is available."""
    check_sizes(layers, batch, T, t_ref)
    need = engine_bytes(layers, T, t_ref, batch, threads, dtype)
    free = available_bytes()
    if free is not None and need > free:
        raise MemoryError(
            f"layers {'-'.join(map(str, layers))}, T {T}, batch {batch}, {threads} threads, "
            f"{dtype} need about {format_bytes(need)} of memory, only {format_bytes(free)} "
            f"are available; use a smaller network, T, batch or thread count")
    return need

