"""hm2bp: fast, faithful HM2-BP training of deep spiking neural networks.

`Network` is the compiled engine (CPU, CUDA when available); `reference` the plain NumPy
implementation of SPEC.md it is tested against.
"""
from __future__ import annotations

from . import _core, config, data, reference
from .network import Network, cuda_available, encode_poisson
from .trainer import Trainer

__version__: str = _core.build_info()["version"]


def build_info() -> dict:
    """How this installation was built: version, CUDA support, usable GPU, CPU threads."""
    return dict(_core.build_info())


__all__ = ["Network", "Trainer", "build_info", "config", "cuda_available", "data", "encode_poisson",
           "reference", "__version__"]
