"""hm2bp: fast, faithful HM2-BP training of deep spiking neural networks.

`Network` is the compiled engine (CPU, CUDA when available), built from `layers` (Dense,
Conv2d, Pool2d, Reservoir) and the hyperparameters of `hyper`; `Trainer` trains one from a
`config.RunConfig`; `data` loads the datasets; `encode_poisson` and `encode_bsa` turn images and
analog channels (speech) into spike trains; `reference` is the plain NumPy implementation of the
algorithm the engine is tested against. docs/architecture.md maps the sub-packages (model, data,
config, train, interop, cli, reference).
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: a spinning pool thread steals the core its
# partner needs whenever the machine is busy (measured: 10x slower batch-1 training under load).
# Read once when the OpenMP runtime starts (so too late when torch, whose runtime the engine
# then shares, was imported first: docs/interop.md); an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from . import _core, _moved, config, data, reference  # noqa: E402
from .model import hyper, layers  # noqa: E402
from .model.bsa import encode_bsa  # noqa: E402
from .model.network import Network, cuda_available, encode_poisson  # noqa: E402
from .train.build import load_network as load  # noqa: E402
from .train.trainer import Trainer  # noqa: E402

_moved.install()  # the module paths of the flat layout (hm2bp.nir, hm2bp.torch, ...) keep working

__version__: str = _core.build_info()["version"]


def build_info() -> dict:
    """How this installation was built: version, CUDA support, usable GPU, CPU threads."""
    return dict(_core.build_info())


__all__ = ["Network", "Trainer", "build_info", "config", "cuda_available", "data", "encode_bsa", "encode_poisson",
           "hyper", "layers", "load", "reference", "__version__"]
