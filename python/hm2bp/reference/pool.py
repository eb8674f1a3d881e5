"""The spiking pooling connection (SPEC_CNN 2 forward, 3.2 backward), written per connection.

Over an input of C x H x W, pool neuron p = (c, X, Y), X < ceil(H/stride), Y < ceil(W/stride),
sees the inputs q = (c, h, w) of its window X*stride <= h < min(H, X*stride + size) (same for
w; the window is clipped at the border) with the fixed weight 1. `connections` lists those
(p, q) pairs; the sums below are sums over that list, grouped by p or q. No parameters.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .neuron import FIRE_EPS
from .spsp import BackwardParams, effect_ratio
from .wiring import ListedConnection


def out_size(n: int, stride: int) -> int:
    """D = ceil(n / stride) pool neurons along an axis of n inputs."""
    return (n + stride - 1) // stride


@lru_cache(maxsize=None)
def connections(
    in_shape: tuple[int, int, int], size: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """(post, pre) flat indices of every window member, ordered by p, then (h, w). Read-only."""
    C, H, W = in_shape
    Dx, Dy = out_size(H, stride), out_size(W, stride)
    c, X, Y, a, b = np.indices((C, Dx, Dy, size, size))
    h, w = X * stride + a, Y * stride + b
    inside = (h < H) & (w < W)  # the window is clipped at the border
    post = ((c * Dx + X) * Dy + Y)[inside]
    pre = ((c * H + h) * W + w)[inside]
    for x in (post, pre):
        x.flags.writeable = False
    return post, pre


class PoolConnection(ListedConnection):
    """A pool layer over size x size windows every `stride`, threshold vth (v > vth - 1e-6)."""

    fire_eps = FIRE_EPS
    recurrent = None
    fixed = False

    def __init__(self, in_shape: tuple[int, int, int], size: int, stride: int, vth: float) -> None:
        self.size = size
        self.vth = float(vth)
        post, pre = connections(tuple(in_shape), size, stride)
        C, H, W = in_shape
        n_out = C * out_size(H, stride) * out_size(W, stride)
        super().__init__(post, pre, np.ones(len(post)), n_out, C * H * W)  # fixed weights 1

    def backward(self, delta: np.ndarray, s_out: np.ndarray, s_in: np.ndarray,
                 params: BackwardParams, need_pre_delta: bool) -> tuple[None, np.ndarray | None]:
        """SPEC_CNN 3.2: no gradient; delta_in[q] = sum over the windows p holding q of
        delta[p] / size^2 * R(p, q), 0 for q in no window. delta is not divided by the pool's
        vth, and the effect ratio is always on for pool (SPEC_CNN 8.2-8.3)."""
        if not need_pre_delta:
            return None, None
        e = params.spsp_matrix(s_out, s_in)
        R = effect_ratio(e, s_out.sum(axis=0), s_in.sum(axis=0))[self.post, self.pre]
        return None, self.sum_by_pre(delta[self.post] / self.size**2 * R)
