"""A layer of the reference as one object: its connection plus its LIF population, and the
forward walk over a stack of them (SPEC 1, SPEC_CNN 1-2).

Every layer kind (`dense.DenseConnection`, `conv.ConvConnection`, `pool.PoolConnection`,
`reservoir.ReservoirConnection`) offers the `Connection` interface; the forward pass, the backward walk (`backward`) and the
network only use that interface, so they are the same for all kinds.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from ..model.layers import Conv2d, Dense, Layer, Pool2d
from .conv import ConvConnection
from .dense import DenseConnection
from .neuron import lif_scan
from .pool import PoolConnection
from .reservoir import ReservoirConnection
from .spsp import BackwardParams


class Connection(Protocol):
    vth: float
    fire_eps: float  # the population fires on v > vth - fire_eps
    # A reservoir's recurrent weights (SPEC_SPEECH 3), None elsewhere; a fixed layer is never
    # trained and the backward pass stops above it.
    recurrent: np.ndarray | None
    fixed: bool

    def current(self, s_in: np.ndarray) -> np.ndarray:
        """Input current (T, n_out) from input spikes (T, n_in), before SPEC 1's one-step delay."""
        ...

    def backward(self, delta: np.ndarray, s_out: np.ndarray, s_in: np.ndarray,
                 params: BackwardParams, need_pre_delta: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(gradient of the layer's weights, or None without weights; pre_delta (n_in,), or None
        when need_pre_delta is False) from the layer's delta (n_out,) and its trains."""
        ...


def from_layers(
    layers: Sequence[Layer], shapes: Sequence[tuple[int, int, int]], weights: Sequence[np.ndarray],
    fixed: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> list[Connection]:
    """The connection objects of a layer stack: shapes[l] is layer l's input shape (as
    hm2bp.layers.stack_shapes gives it), weights one array per trainable layer, in order, fixed
    one (W_in, W_rec) pair per Reservoir layer, in order."""
    trained, reservoirs = iter(weights), iter(fixed)
    out: list[Connection] = []
    for layer, in_shape in zip(layers, shapes):
        if isinstance(layer, Dense):
            out.append(DenseConnection(next(trained), layer.vth))
        elif isinstance(layer, Conv2d):
            out.append(ConvConnection(next(trained), in_shape, layer.padding, layer.vth))
        elif isinstance(layer, Pool2d):
            out.append(PoolConnection(in_shape, layer.size, layer.stride or layer.size, layer.vth))
        else:
            out.append(ReservoirConnection(*next(reservoirs), layer.vth))
    return out


def as_connections(
    layers: Sequence[Connection] | Sequence[np.ndarray], vth: Sequence[float] | None
) -> list[Connection]:
    """Connection objects as given (vth None), or a dense stack from weight arrays (O, N) and
    one vth per layer (the classic form)."""
    if vth is None:
        return list(layers)
    if len(vth) != len(layers):
        raise ValueError(f"vth needs one threshold per weight array ({len(layers)}), got {len(vth)}")
    return [DenseConnection(W, v) for W, v in zip(layers, vth)]


def forward_sample(
    layers: Sequence[Connection] | Sequence[np.ndarray],
    s_in: np.ndarray,
    vth: Sequence[float] | None,
    tau_m: float,
    tau_s: float,
    t_ref: int,
    w0: float = 0.0,
) -> tuple[list[np.ndarray], float]:
    """Run all layers for one sample. Only the last (output) layer gets lateral inhibition w0.

    layers: connection objects (vth None) or dense weight arrays with one vth each.
    Returns (spike trains per layer, each bool (T, n_l); smallest fire-test margin of all layers).
    """
    spikes: list[np.ndarray] = []
    margin = math.inf
    x = s_in
    stack = as_connections(layers, vth)
    last = len(stack) - 1
    for l, layer in enumerate(stack):
        x, m = lif_scan(
            layer.current(x), layer.vth, tau_m, tau_s, t_ref, w0 if l == last else 0.0,
            layer.fire_eps, layer.recurrent,
        )
        spikes.append(x)
        margin = min(margin, m)
    return spikes, margin
