"""The authors' reservoir wiring and initial weights from a seed (SPEC_SPEECH 3.3-3.5).

The authors' CPU simulator draws every initial weight of the speech network from one glibc
`rand()` stream started by `srand(5)`: the reservoir's neuron types and recurrent synapses, the
input -> reservoir synapses, then the initial weights of the trained layers above it. `generate`
replays that stream with a portable clone of glibc's `rand()` (`GlibcRand`), so the default
seed 5 gives the authors' four weight files synapse for synapse, on any platform.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["GlibcRand", "ReservoirWeights", "Synapses", "generate", "grid_coordinates"]

# Connection probabilities c of a pre -> post pair by type (E: excitatory, I: inhibitory): the
# authors' 0.3, 0.2, 0.4, 0.1 times their LIQUID_SYN_MODIFICATION factor 1.5 (written as the
# products; 0.3 * 1.5 rounds differently from 0.45 but draws the same synapses for seed 5).
DEFAULT_CONNECT = (0.45, 0.3, 0.6, 0.15)  # EE, EI, IE, II


class GlibcRand:
    """glibc's `srand(seed)` / `rand()` (the TYPE_3 additive feedback generator), bit for bit.

    Other C libraries (macOS, MSVC) have other generators; this one is glibc's on every platform.
    """

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        word = seed - 2**32 if seed >= 2**31 else seed  # glibc keeps it as an int32_t
        r = [word if word != 0 else 1]
        for _ in range(1, 31):
            # Schrage's 16807 * r mod (2^31 - 1) in int32 arithmetic, C's truncating division
            hi = abs(r[-1]) // 127773 * (1 if r[-1] >= 0 else -1)
            lo = r[-1] - hi * 127773
            w = 16807 * lo - 2836 * hi
            r.append(w + 2147483647 if w < 0 else w)
        r = [x % 2**32 for x in r]
        r += r[:3]  # r[31..33] = r[0..2]
        self._state = r  # the last 34 values of the sequence
        for _ in range(310):  # r[34..343] are discarded
            self._next()

    def _next(self) -> int:
        r = self._state
        value = (r[-31] + r[-3]) % 2**32
        r.append(value)
        del r[0]
        return value

    def rand(self) -> int:
        """The next `rand()`: an integer in [0, 2**31)."""
        return self._next() >> 1


class Synapses(NamedTuple):
    """Synapses in the order they were drawn: pre i -> post o with weight w (duplicates kept)."""

    pre: np.ndarray  # int64 (n,)
    post: np.ndarray  # int64 (n,)
    weight: np.ndarray  # float64 (n,)


class ReservoirWeights(NamedTuple):
    """What `generate` returns: the reservoir's fixed weights and the trained layers' initial ones.

    - input: float64 (N, C), W_in[o, i] = the sum of the weights of all synapses i -> o.
    - recurrent: float64 (N, N), W_rec[post, pre], +-recurrent_weight (the sign of pre's type).
    - trained: the initial weights of the layers above the reservoir, float64 (n_out, n_in) each,
      bottom up (the authors' h_weights_info.txt and o_weights_info.txt for the speech network).
    - inhibitory: bool (N,), the reservoir neurons' types.
    - input_synapses, recurrent_synapses: the synapses in drawing order (the order of the
      authors' r_weights_info.txt and r_weights_recurrent_info.txt lines); input duplicates are
      separate entries there and summed in `input`.
    The trained layers' synapses are drawn pre-major (pre outer, post inner): the row-major order
    of each matrix's transpose.
    """

    input: np.ndarray
    recurrent: np.ndarray
    trained: list[np.ndarray]
    inhibitory: np.ndarray
    input_synapses: Synapses
    recurrent_synapses: Synapses


def grid_coordinates(grid: Sequence[int]) -> np.ndarray:
    """(x, y, z) of every neuron of a reservoir on a grid (d1, d2, d3): neuron n = (x*d2 + y)*d3 + z."""
    d1, d2, d3 = grid
    x, y, z = np.meshgrid(np.arange(d1), np.arange(d2), np.arange(d3), indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def generate(
    n_in: int = 78,
    trained: Sequence[int] = (64, 26),
    seed: int = 5,
    *,
    grid: Sequence[int] = (3, 3, 15),
    inhibitory: float = 0.2,
    connect: Sequence[float] = DEFAULT_CONNECT,
    distance: float = 4.0,
    recurrent_weight: float = 1.0,
    fan_out: int = 32,
    input_weight: float = 8.0,
) -> ReservoirWeights:
    """The reservoir's weights and the initial weights of the layers above it, drawn from one
    glibc rand() stream after srand(seed) (SPEC_SPEECH 3.3-3.5); see `ReservoirWeights`.

    n_in: input channels C; trained: the sizes of the layers above the reservoir (the authors'
    speech network: hidden 64, output 26). grid: (d1, d2, d3), N = d1 * d2 * d3 neurons.
    inhibitory: fraction of inhibitory neurons (neuron n is inhibitory iff rand() % 100 <
    100 * inhibitory). connect: the probabilities c of an (EE, EI, IE, II) pre -> post pair at
    distance 0; a pair at squared grid distance d2 connects iff rand() % 100000 < 100000 * c *
    exp(-d2 / distance). fan_out: input synapses per input channel, each to a random reservoir
    neuron (with replacement) with weight +-input_weight.
    The defaults are the authors' speech network; seed 5 gives their weight files.
    """
    rng = GlibcRand(seed)
    coords = grid_coordinates(grid).astype(np.float64)
    N = len(coords)
    c_ee, c_ei, c_ie, c_ii = (float(c) for c in connect)

    # 3.4: neuron types, then one draw per ordered pair (pre i, post j), j == i included
    inh = np.array([rng.rand() % 100 < 100 * inhibitory for _ in range(N)])
    rec_pre, rec_post, rec_w = [], [], []
    for i in range(N):
        for j in range(N):
            if inh[i]:
                c, sign = (c_ii if inh[j] else c_ie), -1.0
            else:
                c, sign = (c_ei if inh[j] else c_ee), 1.0
            dx, dy, dz = coords[i] - coords[j]
            d2 = dx * dx + dy * dy + dz * dz
            if rng.rand() % 100000 < 100000 * c * math.exp(-d2 / distance):
                rec_pre.append(i)
                rec_post.append(j)
                rec_w.append(sign * recurrent_weight)

    # 3.3: per input channel, fan_out synapses to random neurons (with replacement), random sign
    in_pre, in_post, in_w = [], [], []
    for i in range(n_in):
        for _ in range(fan_out):
            o = rng.rand() % N
            in_pre.append(i)
            in_post.append(o)
            in_w.append(input_weight if rng.rand() % 2 == 1 else -input_weight)

    # 3.5: the trained layers, pre outer, post inner, w = (rand() % 100000) * 2 / 99999 - 1
    layers = []
    n_pre = N
    for n_post in trained:
        w = np.empty((n_post, n_pre))
        for p in range(n_pre):
            for q in range(n_post):
                w[q, p] = float(rng.rand() % 100000) * 2 / 99999 - 1
        layers.append(w)
        n_pre = n_post

    input_synapses = Synapses(np.array(in_pre, dtype=np.int64), np.array(in_post, dtype=np.int64),
                              np.array(in_w, dtype=np.float64))
    recurrent_synapses = Synapses(np.array(rec_pre, dtype=np.int64), np.array(rec_post, dtype=np.int64),
                                  np.array(rec_w, dtype=np.float64))
    w_in = np.zeros((N, n_in))
    np.add.at(w_in, (input_synapses.post, input_synapses.pre), input_synapses.weight)
    w_rec = np.zeros((N, N))
    w_rec[recurrent_synapses.post, recurrent_synapses.pre] = recurrent_synapses.weight
    return ReservoirWeights(w_in, w_rec, layers, inh, input_synapses, recurrent_synapses)
