"""What a network is, whoever runs it: its layer stack on an input shape, the shapes that follow,
its hyperparameters and its initial weights. `describe` builds one from the two forms that
`hm2bp.Network` and `hm2bp.reference.Network` accept, checking everything once; both networks
are `DescribedNetwork`s made from it, so they cannot differ in what they accept or in their
initial state.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import limits
from .hyper import check_all, check_number, check_whole, hyperparameter_signature
from .layers import Layer, Shape, from_sizes, is_trainable, param_shapes, stack_shapes

__all__ = ["DTYPES", "DescribedNetwork", "NetworkDescription", "check_dtype", "describe"]

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class NetworkDescription:
    """A checked network: `shapes[0]` is the input's shape, `shapes[l + 1]` layer l's;
    `hyperparameters` holds every one of hm2bp.hyper's, checked (defaults filled in)."""

    layers: tuple[Layer, ...]
    shapes: tuple[Shape, ...]
    hyperparameters: dict[str, Any]
    init_w: float
    seed: int

    @property
    def input_shape(self) -> Shape:
        return self.shapes[0]

    @property
    def sizes(self) -> list[int]:
        """Neurons of the input and of each layer."""
        return [c * h * w for c, h, w in self.shapes]

    @property
    def vth(self) -> list[float]:
        return [layer.vth for layer in self.layers]

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """One weight shape per trainable layer: Dense (n_out, n_in), Conv2d (out, in, k, k)."""
        return param_shapes(self.layers, self.shapes)

    def initial_weights(self) -> list[np.ndarray]:
        """init_w (or the layer's own) * U(-1, 1), one block per trainable layer in order,
        drawn from default_rng(seed)."""
        rng = np.random.default_rng(self.seed)
        trainable = [layer for layer in self.layers if is_trainable(layer)]
        return [(self.init_w if layer.init_w is None else layer.init_w) * rng.uniform(-1.0, 1.0, size=shape)
                for layer, shape in zip(trainable, self.param_shapes)]


def describe(layers: Sequence[int | Layer], vth: float | Sequence[float] | None = None, *,
             input_shape: Sequence[int] | None = None, init_w: float = 1.0, seed: int = 0,
             hyperparameters: Mapping[str, Any] | None = None) -> NetworkDescription:
    """The classic form (`layers` sizes, input first, one `vth` per layer) or a stack of
    hm2bp.layers on an `input_shape`, checked; unknown hyperparameters are refused."""
    if input_shape is None:
        if vth is None:
            raise ValueError("vth is required with layer sizes: one threshold per weight layer")
        input_shape, stack = from_sizes(layers, vth)  # type: ignore[arg-type]
    else:
        if vth is not None:
            raise ValueError("with input_shape, give each layer its own vth (hm2bp.layers) instead of vth=")
        stack = list(layers)  # type: ignore[arg-type]
    shapes = stack_shapes(input_shape, stack)
    return NetworkDescription(tuple(stack), tuple(shapes), check_all(hyperparameters or {}),
                              check_number("init_w", init_w), check_whole("seed", seed, 0, limits.UINT64_MAX))


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dtype


class DescribedNetwork:
    """What hm2bp.Network and hm2bp.reference.Network share: one constructor, which checks its
    arguments into a NetworkDescription and shows it as attributes (shapes, input_shape,
    layer_specs, layers: the neurons per population, vth, init_w, seed and every
    hyperparameter by name); `_start` then makes what runs the network."""

    @hyperparameter_signature
    def __init__(self, layers: Sequence[int | Layer], vth: float | Sequence[float] | None = None, *,
                 input_shape: Sequence[int] | None = None, init_w: float = 1.0, backend: str = "cpu",
                 dtype: str = "float32", threads: int | None = None, seed: int = 0,
                 **hyperparameters: Any) -> None:
        description = describe(layers, vth, input_shape=input_shape, init_w=init_w, seed=seed,
                               hyperparameters=hyperparameters)
        self.description = description
        self.shapes = list(description.shapes)
        self.input_shape = description.input_shape
        self.layer_specs: list[Layer] = list(description.layers)
        self.layers = description.sizes
        self.vth = description.vth
        self.init_w, self.seed = description.init_w, description.seed
        for name, value in description.hyperparameters.items():
            setattr(self, name, value)
        self._param_shapes = description.param_shapes
        self._start(backend, check_dtype(dtype), threads)

    def _start(self, backend: str, dtype: str, threads: int | None) -> None:
        """Make the network run: the engine, or the reference's arrays."""
        raise NotImplementedError
