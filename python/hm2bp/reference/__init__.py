"""NumPy float64 reference implementation of HM2-BP (docs/algorithm.md sections 1-5 and C1-C4).

This package is the oracle for every engine test: it is written straight from the spec, favours
clarity over speed, and computes everything in float64. Pure functions on arrays form the core
(names follow the paper), one module per concept: `neuron` (SPEC 1), `encoding` (SPEC 2),
`loss` (SPEC 3, revival), `spsp` and `backward` (SPEC 4), `optimizer` (SPEC 5), `bsa`
(SPEC_SPEECH 2), and one module per connection kind, each with its layer object: `dense` (fully
connected), `conv` (SPEC_CNN 1, 3.3), `pool` (SPEC_CNN 2, 3.2), the latter two on `wiring` (a
connection as a list of pairs), and `reservoir` (SPEC_SPEECH 3, fixed and recurrent).
`connection` is the interface they share and the forward walk over a stack of them. `Network`
is a thin stateful wrapper with the same constructor and methods as the compiled
`hm2bp.Network`. Nothing here imports the engine (`hm2bp._core`): the layer types, their shapes
and the hyperparameters' defaults come from hm2bp.model's plain-Python declarations, written
from the specs (tests/test_layout.py checks both).

Conventions: spike trains are bool arrays of shape (T, n) for one sample (time first), neurons
in the flat order of `hm2bp.layers`; weights are (n_out, n_in) for dense layers and
(out_channels, in_channels, k, k) for conv layers. Counts and predictions reported to callers
are always the ones from BEFORE the output revival (SPEC 4).
"""

from __future__ import annotations

from .backward import lateral_factor, sample_gradients
from .bsa import encode_bsa
from .connection import Connection, as_connections, forward_sample, from_layers
from .conv import ConvConnection
from .dense import DenseConnection, lif_forward, side_term
from .encoding import encode_poisson
from .loss import output_delta, revive
from .network import Network
from .neuron import FIRE_EPS, lif_scan
from .optimizer import adam_step, regularization, sgd_step
from .pool import PoolConnection
from .reservoir import ReservoirConnection
from .spsp import BackwardParams, effect_ratio, side_ratio, spsp, spsp_matrix

__all__ = [
    "FIRE_EPS",
    "lif_scan",
    "lif_forward",
    "forward_sample",
    "spsp",
    "spsp_matrix",
    "output_delta",
    "revive",
    "lateral_factor",
    "side_ratio",
    "side_term",
    "effect_ratio",
    "sample_gradients",
    "BackwardParams",
    "regularization",
    "adam_step",
    "sgd_step",
    "encode_poisson",
    "encode_bsa",
    "Connection",
    "DenseConnection",
    "ConvConnection",
    "PoolConnection",
    "ReservoirConnection",
    "as_connections",
    "from_layers",
    "Network",
]
