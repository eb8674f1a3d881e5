"""Layers of an HM2-BP network: a connection (how input spikes become current, and how S-PSPs,
gradients and pre-deltas flow back) followed by a population of LIF neurons with its own
threshold vth (SPEC 1; SPEC_CNN 1-2).

- ``Dense(n, vth)``: n neurons, each connected to every input.
- ``Conv2d(channels, kernel, vth, padding=0)``: a spiking convolution (cross-correlation, stride
  1, zero padding, shared kernels; SPEC_CNN 1).
- ``Pool2d(size, vth, stride=None)``: spiking pooling with fixed weights 1 over each window,
  channel by channel (SPEC_CNN 2); no parameters.
- ``Reservoir(n=135, vth=20.0, grid=(3, 3, 15), ...)``: a recurrent spiking reservoir (liquid
  state machine, SPEC_SPEECH 3) with fixed input and recurrent weights, generated from a seed
  (`hm2bp.model.reservoir.generate`) or set with `Network.set_reservoir_weights`; never trained, so no
  trainable layer may lie below it.

Populations are shaped (channels, height, width); a Dense population is (n, 1, 1). A neuron's
flat index, the order of spike arrays (B, T, n_l) and of the next layer's inputs, is
n = (c * height + x) * width + y. A layer checks its arguments once, when it is made, and holds
them normalised (vth a float); the shapes of a stack (`stack_shapes`) and of its parameters
(`param_shapes`) follow from SPEC_CNN 1-2 here, without the engine (which has its own, checked
against these by tests/test_architecture.py). Both engines and the reference run all four kinds.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .._suggest import did_you_mean
from . import reservoir
from .hyper import check_number, check_whole

__all__ = ["Conv2d", "Dense", "Layer", "Pool2d", "Reservoir", "from_dict", "from_sizes", "is_trainable",
           "output_shape", "param_shapes", "stack_shapes", "to_dict"]

Shape = tuple[int, int, int]


def _normalise(layer: Any, **values: Any) -> None:
    """Store checked values on a frozen layer."""
    for name, value in values.items():
        object.__setattr__(layer, name, value)


@dataclass(frozen=True)
class Dense:
    """n LIF neurons, each connected to every input; init_w overrides the network's."""

    n: int
    vth: float
    init_w: float | None = None

    def __post_init__(self) -> None:
        _normalise(self, n=check_whole("Dense n", self.n, 1), vth=check_number("Dense vth", self.vth, strict=True),
                   init_w=_check_init_w("Dense", self.init_w))


@dataclass(frozen=True)
class Conv2d:
    """A spiking convolution with `channels` kernels of kernel x kernel (SPEC_CNN 1)."""

    channels: int
    kernel: int
    vth: float
    padding: int = 0
    init_w: float | None = None

    def __post_init__(self) -> None:
        _normalise(self, channels=check_whole("Conv2d channels", self.channels, 1),
                   kernel=check_whole("Conv2d kernel", self.kernel, 1),
                   vth=check_number("Conv2d vth", self.vth, strict=True),
                   padding=check_whole("Conv2d padding", self.padding, 0),
                   init_w=_check_init_w("Conv2d", self.init_w))


@dataclass(frozen=True)
class Pool2d:
    """Spiking pooling over size x size windows every `stride` (default: size) steps (SPEC_CNN 2)."""

    size: int
    vth: float
    stride: int | None = None

    def __post_init__(self) -> None:
        _normalise(self, size=check_whole("Pool2d size", self.size, 1),
                   vth=check_number("Pool2d vth", self.vth, strict=True),
                   stride=None if self.stride is None else check_whole("Pool2d stride", self.stride, 1))


@dataclass(frozen=True)
class Reservoir:
    """A fixed recurrent spiking reservoir of n LIF neurons on a grid (SPEC_SPEECH 3; the
    defaults are the authors' speech reservoir).

    Each step, neuron o receives sum_i W_in[o, i] s_in[t-1, i] + sum_l W_rec[o, l] s[t-1, l] (both
    one step delayed). The weights are drawn from a glibc rand() stream after srand(seed)
    (`hm2bp.model.reservoir.generate`): a fraction `inhibitory` of the neurons is inhibitory; a pre ->
    post pair at squared grid distance d2 connects with probability c * exp(-d2 / distance), c
    from `connect` (EE, EI, IE, II), with weight +-recurrent_weight by the pre neuron's type; each
    input sends fan_out synapses of weight +-input_weight to random neurons (duplicates add).
    The weights are fixed: the backward pass stops above this layer.
    """

    n: int = 135
    vth: float = 20.0
    grid: tuple[int, int, int] = (3, 3, 15)
    inhibitory: float = 0.2
    connect: tuple[float, float, float, float] = reservoir.DEFAULT_CONNECT
    distance: float = 4.0
    recurrent_weight: float = 1.0
    fan_out: int = 32
    input_weight: float = 8.0
    seed: int = 5

    def __post_init__(self) -> None:
        n = check_whole("Reservoir n", self.n, 1)
        grid = tuple(check_whole(f"Reservoir grid[{k}]", g, 1)
                     for k, g in enumerate(_as_tuple("Reservoir grid", self.grid, 3)))
        if int(np.prod(grid)) != n:
            raise ValueError(f"Reservoir grid {'x'.join(map(str, grid))} holds {int(np.prod(grid))} "
                             f"neurons, not n = {n}")
        _normalise(self, n=n, vth=check_number("Reservoir vth", self.vth, strict=True), grid=grid,
                   connect=tuple(_probability(f"Reservoir connect[{k}]", c)
                                 for k, c in enumerate(_as_tuple("Reservoir connect", self.connect, 4))),
                   inhibitory=_probability("Reservoir inhibitory", self.inhibitory),
                   distance=check_number("Reservoir distance", self.distance, strict=True),
                   recurrent_weight=check_number("Reservoir recurrent_weight", self.recurrent_weight),
                   fan_out=check_whole("Reservoir fan_out", self.fan_out, 0),
                   input_weight=check_number("Reservoir input_weight", self.input_weight),
                   seed=check_whole("Reservoir seed", self.seed, 0, 2**32 - 1))

    def generate(self, n_in: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed weights for n_in inputs from the seed: W_in (n, n_in) and W_rec (n, n), [post, pre]."""
        w = reservoir.generate(n_in, (), self.seed, grid=self.grid, inhibitory=self.inhibitory,
                               connect=self.connect, distance=self.distance,
                               recurrent_weight=self.recurrent_weight, fan_out=self.fan_out,
                               input_weight=self.input_weight)
        return w.input, w.recurrent


def _as_tuple(name: str, value: Any, length: int) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != length:
        raise ValueError(f"{name} must be {length} numbers, got {value!r}")
    return tuple(value)


def _probability(name: str, value: Any) -> float:
    value = check_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


Layer = Union[Dense, Conv2d, Pool2d, Reservoir]


_KINDS: dict[str, type] = {"dense": Dense, "conv2d": Conv2d, "pool2d": Pool2d, "reservoir": Reservoir}


def to_dict(layer: Layer) -> dict[str, Any]:
    """A layer as a plain table: {"type": "conv2d", "channels": 15, ...} (TOML, JSON)."""
    kind = next(name for name, cls in _KINDS.items() if isinstance(layer, cls))
    table = {k: v for k, v in dataclasses.asdict(layer).items() if v is not None}
    return {"type": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in table.items()}}


def from_dict(table: Any, where: str = "layer") -> Layer:
    """The inverse of to_dict, with one-line errors naming `where` and the bad key."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table with a 'type', got {table!r}")
    kind = table.get("type")
    if kind not in _KINDS:
        raise ValueError(f"{where}: type must be one of {', '.join(_KINDS)}, got {kind!r}")
    cls = _KINDS[kind]
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(table) - {"type", *names})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} for {kind}{did_you_mean(unknown[0], names)}; "
                         f"allowed: {', '.join(names)}")
    try:
        return cls(**{k: v for k, v in table.items() if k != "type"})
    except TypeError as exc:  # a required key is missing
        raise ValueError(f"{where}: {exc}") from None


def _check_init_w(kind: str, init_w: float | None) -> float | None:
    return None if init_w is None else check_number(f"{kind} init_w", init_w)


def from_sizes(sizes: Sequence[int], vth: float | Sequence[float]) -> tuple[Shape, list[Dense]]:
    """The classic form [n_in, n_1, ..., n_out] with one vth per layer -> (input shape, Dense layers)."""
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"layers must list at least 2 sizes (inputs and outputs), got {sizes}")
    vth = [vth] if isinstance(vth, (int, float)) else list(vth)
    if len(vth) != len(sizes) - 1:
        raise ValueError(f"vth needs one threshold per weight layer ({len(sizes) - 1}), got {len(vth)}")
    n_in = check_whole("layers[0]", sizes[0], 1)
    layers = []
    for k, (n, v) in enumerate(zip(sizes[1:], vth)):
        try:
            layers.append(Dense(n, v))
        except (TypeError, ValueError) as exc:  # name the list entry, not the Dense argument
            message = str(exc).replace("Dense n", f"layers[{k + 1}]").replace("Dense vth", f"vth[{k}]")
            raise type(exc)(message) from None
    return (n_in, 1, 1), layers


def output_shape(shape: Shape, layer: Layer) -> Shape:
    """The population shape a layer makes of its input's (SPEC_CNN 1-2): a convolution has
    stride 1 and pads both sides; a pool's windows start every stride steps, the last one cut
    at the border (ceil(H / stride) of them)."""
    c, h, w = shape
    if isinstance(layer, (Dense, Reservoir)):
        return (layer.n, 1, 1)
    if isinstance(layer, Conv2d):
        grow = 2 * layer.padding - layer.kernel + 1
        return (layer.channels, h + grow, w + grow)
    stride = layer.stride or layer.size
    return (c, -(-h // stride), -(-w // stride))


def stack_shapes(input_shape: Sequence[int], layers: Sequence[Layer]) -> list[Shape]:
    """The population shapes of a layer stack, checked: shapes[0] is the input, shapes[l + 1]
    the output of layer l. Spatial layers come first, every window fits its map, the output
    layer is Dense."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape}")
    shape: Shape = tuple(check_whole(f"input_shape[{k}]", n, 1) for k, n in enumerate(input_shape))  # type: ignore[assignment]
    layers = list(layers)
    if not layers:
        raise ValueError("the network needs at least one layer")
    shapes, flat, trained = [shape], None, None  # flat: the kind of the first flat layer
    for k, layer in enumerate(layers):
        if not isinstance(layer, (Dense, Conv2d, Pool2d, Reservoir)):
            raise TypeError(f"layers[{k}] must be hm2bp.layers.Dense, Conv2d, Pool2d or Reservoir, got {layer!r}")
        name = f"layers[{k}] ({type(layer).__name__})"
        if isinstance(layer, Reservoir) and trained is not None:
            raise ValueError(f"{name} lies above the trainable {trained}: a reservoir's fixed weights stop "
                             f"the backward pass, so nothing below it would learn")
        if isinstance(layer, (Dense, Conv2d)) and trained is None:
            trained = name
        if not isinstance(layer, (Dense, Reservoir)):
            if flat:
                raise ValueError(f"{name} follows a {flat} layer: spatial layers must come before the {flat} ones")
            window = layer.kernel if isinstance(layer, Conv2d) else layer.size
            padding = layer.padding if isinstance(layer, Conv2d) else 0
            if window > min(shape[1], shape[2]) + 2 * padding:
                raise ValueError(f"{name}: window {window} is larger than its input map "
                                 f"{shape[1]}x{shape[2]} (padding {padding})")
        if flat is None and isinstance(layer, (Dense, Reservoir)):
            flat = type(layer).__name__
        shape = output_shape(shape, layer)
        shapes.append(shape)
    if not isinstance(layers[-1], Dense):
        raise ValueError(f"the output layer must be Dense (one neuron per class), got {type(layers[-1]).__name__}")
    return shapes


def is_trainable(layer: Layer) -> bool:
    """Whether the optimizer steps this layer's weights (a parameter array each: Dense, Conv2d)."""
    return isinstance(layer, (Dense, Conv2d))


def param_shapes(layers: Sequence[Layer], shapes: Sequence[Shape]) -> list[tuple[int, ...]]:
    """Shapes of the trainable layers' parameters (stack_shapes gives `shapes`): Dense
    (n_out, n_in), Conv2d (out_channels, in_channels, k, k); Pool2d and Reservoir have none."""
    out: list[tuple[int, ...]] = []
    for layer, (c, h, w) in zip(layers, shapes):
        if isinstance(layer, Dense):
            out.append((layer.n, c * h * w))
        elif isinstance(layer, Conv2d):
            out.append((layer.channels, c, layer.kernel, layer.kernel))
    return out
