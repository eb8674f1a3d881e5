"""The authors' text checkpoint format (mm-bp-snn Result/checkPoint*.txt; SPEC_CNN 6).

One line of "%f " numbers, layer after layer in the order of the network, pool layers writing
nothing: a conv layer its kernels W (O, C, K, K) in flat order ((o*C + c)*K + i)*K + j, then O
biases; a dense layer W (O, N) row-major, then O biases; the output (last) dense layer W, then
its O x O lateral matrix (0 on the diagonal, -w0 elsewhere), then O biases. The biases are never
used by the authors' code (SPEC_CNN 8.4): zeros on write, ignored on read. The lateral matrix is
checked on read. `shapes` are the trainable layers' weight shapes, as hm2bp.layers.param_shapes
gives them; mnist-cnn's [(15, 1, 5, 5), (40, 15, 5, 5), (300, 640), (10, 300)] take 210840
numbers.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model.network import Network

__all__ = ["checkpoint_size", "lateral_matrix", "network_from_checkpoint", "read_checkpoint", "write_checkpoint"]

# "%f" prints 6 decimals: a lateral entry is -w0 to within half of the last one.
_PRINT_TOLERANCE = 5e-7


def _layout(shapes: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """(weights, lateral entries, biases) per layer, in file order."""
    shapes = [tuple(int(n) for n in s) for s in shapes]
    if not shapes:
        raise ValueError("a checkpoint needs at least one layer shape")
    if len(shapes[-1]) != 2:
        raise ValueError(f"the output layer must be dense (O, N), got shape {shapes[-1]}")
    out = []
    for k, shape in enumerate(shapes):
        if len(shape) not in (2, 4) or min(shape) < 1:
            raise ValueError(f"shapes[{k}] must be dense (O, N) or conv (O, C, K, K), got {shape}")
        O = shape[0]
        out.append((math.prod(shape), O * O if k == len(shapes) - 1 else 0, O))
    return out


def checkpoint_size(shapes: Sequence[Sequence[int]]) -> int:
    """How many numbers a checkpoint of these weight shapes holds."""
    return sum(w + lat + b for w, lat, b in _layout(shapes))


def lateral_matrix(n: int, w0: float) -> np.ndarray:
    """L[o, l] = -w0 for l != o, 0 on the diagonal (SPEC 1)."""
    return -w0 * (1.0 - np.eye(n))


def read_checkpoint(path: str | os.PathLike, shapes: Sequence[Sequence[int]],
                    w0: float = 1.0) -> list[np.ndarray]:
    """The weights of a checkpoint, one float64 array per shape. Raises ValueError naming the
    file on a wrong count of numbers, a token that is not a finite number, or a lateral matrix
    that is not -w0 off the diagonal (0 on it)."""
    layout = _layout(shapes)
    with open(path, encoding="ascii", errors="replace") as f:
        tokens = f.read().split()
    expected = checkpoint_size(shapes)
    if len(tokens) != expected:
        raise ValueError(f"{path}: {len(tokens)} numbers, expected {expected} for layer shapes "
                         f"{[tuple(s) for s in shapes]}")
    values = np.empty(expected)
    for k, token in enumerate(tokens):
        try:
            values[k] = float(token)
        except ValueError:
            values[k] = math.nan
        if not math.isfinite(values[k]):
            raise ValueError(f"{path}: number {k} (0-based) is {token[:40]!r}, not a finite number")
    weights, at = [], 0
    for shape, (n_w, n_lat, n_b) in zip(shapes, layout):
        weights.append(values[at:at + n_w].reshape(tuple(shape)))
        at += n_w
        if n_lat:
            O = int(shape[0])
            found = values[at:at + n_lat].reshape(O, O)
            worst = float(np.abs(found - lateral_matrix(O, w0)).max())
            if worst > _PRINT_TOLERANCE:
                raise ValueError(f"{path}: the output lateral matrix (numbers {at}..{at + n_lat - 1}) "
                                 f"is not 0 on the diagonal and -{w0:g} elsewhere (off by up to {worst:g})")
            at += n_lat
        at += n_b  # biases: unused by the authors' code
    return weights


def write_checkpoint(path: str | os.PathLike, weights: Sequence[np.ndarray],
                     shapes: Sequence[Sequence[int]], w0: float = 1.0) -> None:
    """Write weights (one array per shape) in the authors' format: zero biases, the lateral
    matrix of strength w0 after the output weights."""
    layout = _layout(shapes)
    weights = list(weights)
    if len(weights) != len(layout):
        raise ValueError(f"{path}: {len(weights)} weight arrays for {len(layout)} layer shapes")
    blocks = []
    for k, (W, shape, (_, n_lat, n_b)) in enumerate(zip(weights, shapes, layout)):
        W = np.asarray(W, dtype=np.float64)
        if W.shape != tuple(shape):
            raise ValueError(f"{path}: weights[{k}] has shape {W.shape}, expected {tuple(shape)}")
        if not np.isfinite(W).all():
            raise ValueError(f"{path}: weights[{k}] is not finite")
        blocks.append(W.ravel())
        if n_lat:
            blocks.append(lateral_matrix(int(shape[0]), w0).ravel())
        blocks.append(np.zeros(n_b))
    with open(path, "w", encoding="ascii") as f:
        f.write("".join(f"{x:f} " for x in np.concatenate(blocks)))  # C's "%f ", no newline


def network_from_checkpoint(path: str | os.PathLike, config: Any, backend: str = "cpu",
                            threads: int | None = None) -> Any:
    """An hm2bp.Network built from `config` (a hm2bp.config.RunConfig, e.g. preset("mnist-cnn"))
    carrying the weights of the authors' checkpoint at `path`."""
    net = Network(**{**config.network_kwargs(backend), "threads": threads})
    net.set_weights(read_checkpoint(path, [w.shape for w in net.get_weights()], config.lateral_inhibition))
    return net
