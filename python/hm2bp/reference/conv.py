"""The spiking convolution connection (SPEC_CNN 1 forward, 3.3 backward), written per connection.

A conv layer with O kernels of K x K over an input of C x H x W (zero padding P, stride 1) has
O x Dx x Dy neurons, Dx = H - K + 1 + 2P, Dy = W - K + 1 + 2P. Neuron o = (k, x, y) sees input
q = (c, x+i-P, y+j-P) through the shared weight W[k, c, i, j] for every (c, i, j) that lands
inside the input (padding connects nothing). `connections` lists those (o, q, weight) triples;
every sum of SPEC_CNN 1 and 3.3 below is a sum over that list, grouped by o, q or weight.
Flat orders: neurons (c*H + x)*W + y, weights ((k*C + c)*K + i)*K + j.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .spsp import BackwardParams, effect_ratio, side_ratio
from .wiring import ListedConnection


@lru_cache(maxsize=None)
def connections(
    in_shape: tuple[int, int, int], out_channels: int, kernel: int, padding: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(post, pre, weight) flat indices of every valid connection, ordered by o, then (c, i, j).

    Cached and read-only: a layer's wiring depends on its shapes only.
    """
    C, H, W = in_shape
    K, P = kernel, padding
    Dx, Dy = H - K + 1 + 2 * P, W - K + 1 + 2 * P
    k, x, y, c, i, j = np.indices((out_channels, Dx, Dy, C, K, K))
    h, w = x + i - P, y + j - P
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)  # zero padding: no connection
    post = ((k * Dx + x) * Dy + y)[inside]
    pre = ((c * H + h) * W + w)[inside]
    weight = (((k * C + c) * K + i) * K + j)[inside]
    for a in (post, pre, weight):
        a.flags.writeable = False
    return post, pre, weight


class ConvConnection(ListedConnection):
    """A conv layer: kernels W (O, C, K, K) over an input of in_shape, threshold vth.

    Conv neurons fire on v > vth, without the 1e-6 slack of the other layers (SPEC_CNN 8.1).
    """

    fire_eps = 0.0
    recurrent = None
    fixed = False

    def __init__(
        self, W: np.ndarray, in_shape: tuple[int, int, int], padding: int, vth: float
    ) -> None:
        self.W = np.asarray(W, dtype=np.float64)
        O, C, K, _ = self.W.shape
        if C != in_shape[0] or K != self.W.shape[3]:
            raise ValueError(f"conv weights {self.W.shape} do not fit an input of {in_shape}")
        self.vth = float(vth)
        post, pre, self.weight = connections(tuple(in_shape), O, K, padding)
        _, H, W_in = in_shape
        n_out = O * (H - K + 1 + 2 * padding) * (W_in - K + 1 + 2 * padding)
        super().__init__(post, pre, self.W.ravel()[self.weight], n_out, C * H * W_in)

    def backward(self, delta: np.ndarray, s_out: np.ndarray, s_in: np.ndarray,
                 params: BackwardParams, need_pre_delta: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """SPEC_CNN 3.3: the kernel gradient g (O, C, K, K) and pre_delta (n_in,).

        g[k,c,i,j] is a plain sum over the positions (x, y) that use the weight. The effect
        ratio is always on for conv (SPEC_CNN 8.3): params.use_effect_ratio is not read.
        need_pre_delta is False for a conv layer on the data layer: it hands nothing down.
        """
        post, pre = self.post, self.pre
        n_o = s_out.sum(axis=0)
        e_pairs = params.spsp_matrix(s_out, s_in)  # every (o, q); 0.1 rule included
        e = e_pairs[post, pre]
        dv = delta / self.vth
        ratio = side_ratio(e_pairs, n_o)[post, pre]  # e/n_o, or 0.5 for a silent o
        side = (1.0 / self.vth) * self.sum_by_post(self.w * ratio)
        per_connection = e * (1.0 + side[post]) * dv[post]
        g = np.bincount(self.weight, weights=per_connection, minlength=self.W.size)
        g = g.reshape(self.W.shape)
        if not need_pre_delta:
            return g, None
        R = effect_ratio(e_pairs, n_o, s_in.sum(axis=0))[post, pre]
        return g, self.sum_by_pre(dv[post] * self.w * R)
