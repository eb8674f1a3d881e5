"""NumPy float64 reference implementation of HM2-BP (SPEC.md sections 1-5).

This package is the oracle for every engine test: it is written straight from the spec, favours
clarity over speed, and computes everything in float64. Pure functions on arrays form the core
(names follow the paper), one module per concept: `neuron` (SPEC 1), `encoding` (SPEC 2),
`loss` (SPEC 3, revival), `spsp` and `backward` (SPEC 4), `optimizer` (SPEC 5), with the
wiring of a fully connected layer in `dense`. `Network` is a thin stateful wrapper with the same
constructor and methods as the compiled `hm2bp.Network`.

Conventions: spike trains are bool arrays of shape (T, n) for one sample (time first), weights
are (n_out, n_in). Counts and predictions reported to callers are always the ones from BEFORE
the output revival (SPEC 4).
"""

from __future__ import annotations

from .backward import effect_ratio, lateral_factor, sample_gradients
from .dense import side_term
from .encoding import encode_poisson
from .loss import output_delta, revive
from .network import Network
from .neuron import FIRE_EPS, forward_sample, lif_forward
from .optimizer import adam_step, regularization, sgd_step
from .spsp import spsp, spsp_matrix

__all__ = [
    "FIRE_EPS",
    "lif_forward",
    "forward_sample",
    "spsp",
    "spsp_matrix",
    "output_delta",
    "revive",
    "lateral_factor",
    "side_term",
    "effect_ratio",
    "sample_gradients",
    "regularization",
    "adam_step",
    "sgd_step",
    "encode_poisson",
    "Network",
]
