# Type stub of the compiled engine, hm2bp._core (csrc/bindings.cpp, csrc/augment_bindings.cpp).
# tests/test_core_stub.py fails when _core exposes a name, member or parameter this file lacks:
# a binding added in C++ is declared here too. Array arguments are converted on the way in
# (C-contiguous, cast to the dtype named in the comment), so any array-like is accepted.
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import numpy.typing as npt

# What run_dense, run_dense_device and run_images return (a plain dict, so that callers may keep
# it as one): "loss" float (the batch's mean cost, 0 in infer mode); "counts" int64 (batch, n_out)
# output spike counts; "predictions" int64 (batch,); "layer_spikes" int64 (n_layers,) spikes per
# layer over the batch; with want_spikes, "spikes": per layer bool (batch, T, n); in mode
# "gradients", "gradients": per trainable layer float64 in its canonical shape.

# The string choices (any other value raises ValueError); plain str so that callers holding a
# mode in a str variable type-check.
_Mode = str  # "infer" | "gradients" | "train"
_Reduce = str  # "mean" | "sum"
_Param = str  # "weights" | "moment1" | "moment2"
_AugmentMode = str  # "epoch" | "sample"

class LayerKind:
    Dense: ClassVar[LayerKind]
    Conv2d: ClassVar[LayerKind]
    Pool2d: ClassVar[LayerKind]
    Reservoir: ClassVar[LayerKind]
    __members__: ClassVar[dict[str, LayerKind]]
    def __init__(self, value: int) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Shape:
    channels: int
    height: int
    width: int
    def __init__(self, channels: int, height: int, width: int) -> None: ...
    def size(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...

class LayerSpec:
    kind: LayerKind
    units: int  # Dense, Reservoir: neurons; Conv2d: output channels
    kernel: int  # Conv2d, Pool2d: window size
    padding: int  # Conv2d: zero padding
    stride: int  # Pool2d: window step (0: the window size)
    vth: float
    def __init__(self) -> None: ...

class Hyper:
    tau_m: float
    tau_s: float
    t_ref: int
    lateral_inhibition: float
    desired: int
    undesired: int
    margin: int
    effect_ratio: bool
    adam: bool
    reg_lambda: float
    reg_beta: float
    weight_limit: float
    momentum: float
    b1: float
    b2: float
    eps: float
    threads: int
    def __init__(self) -> None: ...

class NetSpec:
    input: Shape
    layers: list[LayerSpec]  # read: a copy; assign a whole list to change it
    hyper: Hyper
    def __init__(self) -> None: ...

class Engine:
    step: int  # optimizer updates so far (Adam's bias correction)
    @property
    def device(self) -> str: ...
    def __init__(self, spec: NetSpec, float64: bool, backend: str) -> None: ...  # backend: "cpu" | "cuda"
    # values: in the parameter's canonical shape (param_shapes); C-contiguous float32 taken as it
    # is, anything else as float64
    def set_param(self, kind: _Param, block: int, values: npt.ArrayLike, /) -> None: ...
    def get_param(self, kind: _Param, block: int, /) -> npt.NDArray[np.float64]: ...
    # whether every weight is finite; None where the engine does not track it (CUDA)
    def weights_finite(self) -> bool | None: ...
    # The engine's own weight memory of trainable block `block` (CPU engine), writable, in its
    # stored layout (n_in, n_out) = W.T (a Conv2d's rows: (in_channel, y, x)), kept alive by the
    # array; from then on every run recomputes the column sums from it and refuses a non-finite weight
    def share_weights(self, block: int) -> npt.NDArray[np.float32] | npt.NDArray[np.float64]: ...
    # spikes: uint8 0/1 (batch, T, n_in); labels: int64 (batch,) when learning; sample_weights:
    # float64 (batch,) or None. "gradients" mode: gradients_out, float32 or float64 arrays of the
    # parameter shapes, C-contiguous or (CPU engine) in share_weights' stored layout, written in
    # place (else new float64 ones); regularize (with
    # reduce "mean"): plus SPEC 5's regularization gradient of the current weights
    def run_dense(
        self,
        spikes: npt.ArrayLike,
        mode: _Mode,
        labels: npt.ArrayLike | None,
        sample_weights: npt.ArrayLike | None,
        lr: float,
        want_spikes: bool,
        reduce: _Reduce = "mean",
        gradients_out: Sequence[npt.NDArray[np.float32] | npt.NDArray[np.float64]] | None = None,
        regularize: bool = False,
    ) -> dict[str, Any]: ...
    # run_dense on a C-contiguous uint8 (batch, T, n_in) array in CUDA device memory
    def run_dense_device(
        self,
        pointer: int,
        batch: int,
        T: int,
        n_in: int,
        stream: int,
        mode: _Mode,
        labels: npt.ArrayLike | None,
        sample_weights: npt.ArrayLike | None,
        lr: float,
        want_spikes: bool,
        reduce: _Reduce = "mean",
        gradients_out: Sequence[npt.NDArray[np.float32] | npt.NDArray[np.float64]] | None = None,
        regularize: bool = False,
    ) -> dict[str, Any]: ...
    # images: uint8 (batch, n_in), Poisson-encoded by the engine; sample_index: int64 (batch,)
    def run_images(
        self,
        images: npt.ArrayLike,
        T: int,
        seed: int,
        sample_index: npt.ArrayLike,
        epoch: int,
        mode: _Mode,
        labels: npt.ArrayLike | None,
        sample_weights: npt.ArrayLike | None,
        lr: float,
        want_spikes: bool,
        reduce: _Reduce = "mean",
        gradients_out: Sequence[npt.NDArray[np.float32] | npt.NDArray[np.float64]] | None = None,
        regularize: bool = False,
    ) -> dict[str, Any]: ...
    # Train steps on consecutive batches of batch_size of images uint8 (n, n_in) (sample_index,
    # labels int64 (n,), sample_weights float64 (n,) or None), Poisson-encoded by the engine or,
    # with augment (hm2bp.data.augment.AugmentConfig._core_args()), warped then rate-encoded.
    # Returns "loss" float64 (n_batches,), "layer_spikes" int64 (n_batches, n_layers),
    # "counts" int64 (n_done, n_out), "predictions" int64 (n_done,): the batches run, fewer than
    # asked when a step left a weight non-finite.
    def train_steps_images(
        self,
        images: npt.ArrayLike,
        T: int,
        seed: int,
        sample_index: npt.ArrayLike,
        epoch: int,
        labels: npt.ArrayLike,
        sample_weights: npt.ArrayLike | None,
        lr: float,
        batch_size: int,
        augment: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
    # analog: float64 (batch, n_in, frames), BSA-encoded by the engine
    def run_analog(
        self,
        analog: npt.ArrayLike,
        T: int,
        mode: _Mode,
        labels: npt.ArrayLike | None,
        sample_weights: npt.ArrayLike | None,
        lr: float,
        want_spikes: bool,
        reduce: _Reduce = "mean",
        gradients_out: Sequence[npt.NDArray[np.float32] | npt.NDArray[np.float64]] | None = None,
        regularize: bool = False,
    ) -> dict[str, Any]: ...
    # the fixed weights of Reservoir layer `layer` (its index among all layers): float64 input
    # (n, n_in) and recurrent (n, n), [post, pre]
    def set_fixed(self, layer: int, input: npt.ArrayLike, recurrent: npt.ArrayLike) -> None: ...
    def get_fixed(self, layer: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    # sums: float64, one per trainable layer in its canonical shape, over `count` samples
    def apply_gradients(self, sums: Sequence[npt.ArrayLike], count: int, lr: float) -> None: ...
    # grads: what the step feeds on (batch means, regularization added), float32 or float64, one
    # per trainable layer in its canonical shape, C-contiguous or in the stored layout (CPU engine)
    def step_gradients(self, grads: Sequence[npt.NDArray[np.float32] | npt.NDArray[np.float64]], lr: float) -> None: ...

def hyper_defaults() -> dict[str, float | int | bool]: ...
def output_shape(input: Shape, layer: LayerSpec) -> Shape: ...
def param_shapes(spec: NetSpec, /) -> list[tuple[int, ...]]: ...

# images: uint8 (batch, n_in); sample_index: int64 (batch,); returns (batch, T, n_in)
def encode_poisson(
    images: npt.ArrayLike, T: int, seed: int, sample_index: npt.ArrayLike, epoch: int, threads: int
) -> npt.NDArray[np.bool_]: ...

# analog: float64 (batch, channels, frames); returns the BSA trains (batch, T, channels)
def encode_bsa(analog: npt.ArrayLike, T: int, threads: int) -> npt.NDArray[np.bool_]: ...

# rates: float64 (batch, n_in), spikes per step; returns (batch, T, n_in)
def encode_rates(
    rates: npt.ArrayLike, T: int, seed: int, sample_index: npt.ArrayLike, epoch: int, threads: int
) -> npt.NDArray[np.bool_]: ...
# "version" str, "threads" int, "cuda_compiled" bool, "cuda_architectures" list[str],
# "cuda_device" str | None
def build_info() -> dict[str, Any]: ...
def cuda_available() -> bool: ...

# images: uint8 (batch, S*S); returns the warped rates (batch, S*S), float64 or float32
def augment_rates(
    images: npt.ArrayLike,
    seed: int,
    epoch: int,
    sample_index: npt.ArrayLike,
    mode: _AugmentMode,
    elastic_fix: bool,
    distortion: float,
    scale: float,
    rotation: float,
    sigma: float = 4.0,
    field: int = 21,
    threads: int = 1,
    float64: bool = True,
) -> npt.NDArray[np.floating[Any]]: ...

# (disp_h, disp_v): the two displacement fields, (size, size) each
def displacement_map(
    seed: int,
    epoch: int,
    sample_id: int,
    mode: _AugmentMode,
    size: int,
    elastic_fix: bool,
    distortion: float,
    scale: float,
    rotation: float,
    sigma: float = 4.0,
    field: int = 21,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

