"""SPEC 2: Poisson encoding of uint8 images with the counter-based RNG of the engine contract.

Bit-identical to the engine's encoder (tests/test_engine.py checks it spike for spike): the
spike of (seed, sample, epoch, neuron, t) depends on those five integers only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_U64_MAX = 2**64 - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays; wrap-around is intended."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _check_u64(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= int(value) <= _U64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return int(value)


def encode_poisson(
    images_uint8: np.ndarray,
    T: int,
    seed: int,
    sample_index: int | np.ndarray,
    epoch: int = 0,
) -> np.ndarray:
    """Poisson-encode uint8 images with the contract's counter-based RNG. Returns bool (B, T, n_in).

    images_uint8: (B, n_in) or (B, H, W) uint8 (flattened row-major). sample_index: index of the
    first image (image b gets sample_index + b) or an int array of length B.
    """
    if not isinstance(images_uint8, np.ndarray) or images_uint8.dtype != np.uint8:
        raise ValueError("images_uint8 must be a numpy uint8 array")
    if images_uint8.ndim not in (2, 3):
        raise ValueError(
            f"images_uint8 must have shape (B, n_in) or (B, H, W), got {images_uint8.shape}"
        )
    T = _check_u64("T", T)
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    seed = _check_u64("seed", seed)
    epoch = _check_u64("epoch", epoch)
    pixels = images_uint8.reshape(images_uint8.shape[0], -1)
    B, n_in = pixels.shape
    if isinstance(sample_index, np.ndarray):
        if sample_index.dtype.kind not in "iu" or sample_index.shape != (B,):
            raise ValueError(
                f"sample_index array must be integer with shape ({B},), "
                f"got {sample_index.dtype} {sample_index.shape}"
            )
        if np.any(sample_index < 0):
            raise ValueError("sample_index values must be >= 0")
        samples = sample_index.astype(np.uint64)
    else:
        first = _check_u64("sample_index", sample_index)
        samples = np.array([(first + b) & _U64_MAX for b in range(B)], dtype=np.uint64)

    keys = _mix(_mix(_mix(np.uint64(seed)) ^ samples) ^ np.uint64(epoch))  # (B,)
    neurons = np.arange(n_in, dtype=np.uint64)
    steps = np.arange(T, dtype=np.uint64)
    rate = pixels.astype(np.float64) / (5.5 * 255.0)
    limit = np.ceil(rate * 2.0**53).astype(np.uint64)  # spike iff u53 < ceil(rate * 2**53)
    out = np.zeros((B, T, n_in), dtype=bool)
    for b in range(B):
        h = _mix(keys[b] ^ neurons)  # (n_in,)
        bits = _mix(h[None, :] ^ steps[:, None])  # (T, n_in)
        out[b] = (bits >> np.uint64(11)) < limit[b][None, :]
    out[:, 0, :] = False  # never at t = 0
    return out
