"""`Network`: the user-facing handle on the compiled HM2-BP engine.

All per-sample work (spike simulation, S-PSP traces, gradients, optimizer) runs in C++/CUDA
(`hm2bp._core`); this module validates arguments, so that a mistake raises a clear Python
exception instead of reaching the engine, and converts arrays. A network is a stack of layers
(`hm2bp.layers`) and the hyperparameters of `hm2bp.hyper`, checked once into a
`NetworkDescription` (model/description.py) that `_engine_spec` turns into the engine's NetSpec.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core
from . import limits, network_file
from .arrays import (CudaArray, as_host_array, check_analog, check_images, check_out_arrays, check_sample_index,
                     cuda_array, spike_bits)
from .description import DescribedNetwork, NetworkDescription
from .hyper import check_lr, check_whole
from .layers import Conv2d, Dense, Reservoir
from .steps import SequenceTraining

log = logging.getLogger("hm2bp")

Array = np.ndarray


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cuda_available() -> bool:
    """True when this build has CUDA kernels and a usable GPU is present."""
    return bool(_core.cuda_available())


def resolve_backend(backend: str) -> str:
    """'auto' becomes 'cuda' when this build has CUDA kernels and sees a usable GPU, else 'cpu'."""
    if backend not in ("cpu", "cuda", "auto"):
        raise ValueError(f"backend must be 'cpu', 'cuda' or 'auto', got {backend!r}")
    if backend == "auto":
        backend = "cuda" if cuda_available() else "cpu"
        log.info("hm2bp: backend 'auto' chose %s", backend)
    return backend


def _check_reduce(reduce: str) -> str:
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    return reduce


def _check_T(T: int) -> int:  # noqa: N802 (T is the paper's name)
    return check_whole("T", T, 2)


def _check_seed(name: str, value: int) -> int:
    return check_whole(name, value, 0, limits.UINT64_MAX)


def encode_poisson(images: Array, T: int, seed: int, sample_index: int | Sequence[int] | Array,
                   epoch: int = 0) -> Array:
    """Poisson spike trains of uint8 images (SPEC 2): bool (B, T, n_in), never a spike at t = 0.

    The spikes of image b depend only on (seed, sample_index[b], epoch), on every backend.
    """
    images = check_images(images)
    index = check_sample_index(sample_index, images.shape[0])
    limits.check_sizes([images.shape[1]], images.shape[0], _check_T(T))
    return _core.encode_poisson(images, _check_T(T), _check_seed("seed", seed), index,
                                _check_seed("epoch", epoch), default_threads())


class Network(SequenceTraining, DescribedNetwork):
    """An HM2-BP spiking network (SPEC sections 1-5; layers: `hm2bp.layers`).

    Two forms: the classic fully connected one, ``Network(layers=[784, 800, 10], vth=[20.0,
    8.0])`` (sizes, input first, one threshold per layer), and a stack of layers on a shaped
    input, ``Network(input_shape=(1, 28, 28), layers=[Conv2d(15, 5, vth=5.0), Pool2d(2, vth=2.0),
    ..., Dense(10, vth=10.0)])``. Weights come as one array per trainable layer (Dense
    (n_out, n_in), Conv2d (out_channels, in_channels, k, k)); inputs are bool spike arrays
    (B, T, n_in) in the flat order of `hm2bp.layers`, or uint8 images that the engine
    Poisson-encodes itself.
    """

    def _start(self, backend: str, dtype: str, threads: int | None) -> None:
        limits.check_sizes(self.layers)
        self.dtype = dtype
        self.threads = default_threads() if threads is None else check_whole("threads", threads, 1, limits.MAX_THREADS)
        self.backend = self._choose_backend(backend)
        self._reservoirs = [l for l, layer in enumerate(self.layer_specs) if isinstance(layer, Reservoir)]
        limits.check_network_memory([int(np.prod(shape)) for shape in self._param_shapes], dtype)
        self._engine = _core.Engine(_engine_spec(self.description, self.threads), dtype == "float64", self.backend)
        self.set_reservoir_weights([self.layer_specs[l].generate(self.layers[l]) for l in self._reservoirs])
        self.set_weights(self.description.initial_weights())
        # The RunConfig of the training run it was loaded from (hm2bp.load), else None. (Typed
        # loosely: hm2bp.config builds on this module.)
        self.config: Any = None

    def __repr__(self) -> str:
        rows = [f"    {layer!r},  # -> {shape}" for layer, shape in zip(self.layer_specs, self.shapes[1:])]
        return (f"Network(input_shape={self.input_shape}, dtype={self.dtype!r}, backend={self.backend!r}, "
                f"threads={self.threads}, layers=[\n" + "\n".join(rows) + "\n])")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to one file (atomically): its layers, hyperparameters, dtype,
        weights, optimizer state and, for a network of hm2bp.load, the run's config.
        Network.load(path) (or hm2bp.load(path)) gives it back exactly."""
        network_file.write(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, backend: str = "auto", threads: int | None = None) -> Network:
        """A network saved by Network.save, with its exact state, on `backend` with `threads`
        (not saved: they do not change results). hm2bp.load(path) also restores the run's
        config stored with it. A missing, damaged or foreign file raises NetworkFileError."""
        return network_file.load(cls, path, backend, threads)[0]

    @staticmethod
    def _choose_backend(backend: str) -> str:
        backend = resolve_backend(backend)
        if backend == "cuda" and not cuda_available():
            reason = ("this build has no CUDA kernels (no CUDA compiler when it was installed)"
                      if not _core.build_info()["cuda_compiled"] else "no usable CUDA GPU was found")
            raise RuntimeError(f"backend='cuda' is not available: {reason}; use backend='cpu' or 'auto'")
        return backend

    @property
    def n_layers(self) -> int:
        """Number of layers after the input (weight layers of the classic form)."""
        return len(self.layer_specs)

    @property
    def n_param_layers(self) -> int:
        """Number of trainable layers (one weight array each)."""
        return len(self._param_shapes)

    # -- parameters ---------------------------------------------------------------------------

    def get_weights(self) -> list[Array]:
        """Copies of the weights, float64, one array per trainable layer: Dense (n_out, n_in),
        Conv2d (out_channels, in_channels, k, k)."""
        return [self._engine.get_param("weights", k) for k in range(self.n_param_layers)]

    def set_weights(self, weights: Sequence[Array]) -> None:
        for k, w in enumerate(self._check_params("weight", weights)):
            self._engine.set_param("weights", k, w)

    def _set_host_weights(self, weights: Sequence[np.ndarray]) -> None:
        """set_weights for C-contiguous host arrays of the network's dtype (hm2bp.torch, before
        every step): they go in as they are, and their finiteness is read from the column sums
        the engine computes of new weights; only when those are not finite (or not tracked) does
        NumPy look for the array to name (a finite sum that overflowed is no error)."""
        if len(weights) != self.n_param_layers:
            raise ValueError(f"expected {self.n_param_layers} weight arrays, got {len(weights)}")
        for k, w in enumerate(weights):
            self._engine.set_param("weights", k, self._check_shape(f"weights[{k}]", w, k))
        if self._engine.weights_finite() is not True:
            for k, w in enumerate(weights):
                if not np.isfinite(w).all():
                    raise ValueError(f"weights[{k}] contains NaN or infinite values")

    def _check_params(self, what: str, arrays: Sequence[Array]) -> list[Array]:
        arrays = list(arrays)
        if len(arrays) != self.n_param_layers:
            raise ValueError(f"expected {self.n_param_layers} {what} arrays (one per trainable layer), "
                             f"got {len(arrays)}")
        return [self._check_param(f"{what}s[{k}]", a, k) for k, a in enumerate(arrays)]

    def _check_shape(self, name: str, value: Array, k: int) -> Array:
        shape = self._param_shapes[k]
        return self._check_array(name, value, shape, "(n_out, n_in)" if len(shape) == 2
                                 else "(out_channels, in_channels, k, k)")

    def _check_array(self, name: str, value: Array, shape: tuple[int, ...], axes: str = "(n_out, n_in)") -> Array:
        value = as_host_array(value, name)
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} {axes}, got {value.shape}")
        return value

    def _check_param(self, name: str, value: Array, k: int) -> Array:
        value = self._check_shape(name, as_host_array(value, name), k)
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real array, got dtype {value.dtype}")
        return np.ascontiguousarray(limits.check_finite_in(name, value, self.dtype))

    def reservoir_weights(self) -> list[tuple[Array, Array]]:
        """The fixed weights of each Reservoir layer, bottom up: (W_in (n, n_in), W_rec (n, n)),
        float64, [post, pre]."""
        return [tuple(self._engine.get_fixed(l)) for l in self._reservoirs]

    def set_reservoir_weights(self, weights: Sequence[tuple[Array, Array]]) -> None:
        """Replace the fixed weights of each Reservoir layer (bottom up): (W_in (n, n_in), W_rec (n, n))
        pairs, [post, pre], e.g. the authors' reservoir files. Training never changes them."""
        weights = list(weights)
        if len(weights) != len(self._reservoirs):
            raise ValueError(f"expected {len(self._reservoirs)} (W_in, W_rec) pairs (one per Reservoir layer), "
                             f"got {len(weights)}")
        checked = []
        for k, (l, pair) in enumerate(zip(self._reservoirs, weights)):
            if len(pair) != 2:
                raise ValueError(f"reservoir weights[{k}] must be a pair (W_in, W_rec)")
            n = self.layers[l + 1]
            checked.append([self._check_array(f"reservoir weights[{k}][{j}] ({what})", a, shape)
                            for j, (what, a, shape) in enumerate([("W_in", pair[0], (n, self.layers[l])),
                                                                  ("W_rec", pair[1], (n, n))])])
        for l, (w_in, w_rec) in zip(self._reservoirs, checked):
            self._engine.set_fixed(l, w_in, w_rec)

    def get_state(self) -> dict[str, Array]:
        """Weights and optimizer state, enough to resume training exactly (with the fixed weights
        of Reservoir layers: reservoir_input_k, reservoir_recurrent_k)."""
        state: dict[str, Array] = {"step": np.array(self._engine.step, dtype=np.int64)}
        for k in range(self.n_param_layers):
            for kind in ("weights", "moment1", "moment2"):
                state[f"{kind}_{k}"] = self._engine.get_param(kind, k)
        for k, (w_in, w_rec) in enumerate(self.reservoir_weights()):
            state[f"reservoir_input_{k}"], state[f"reservoir_recurrent_{k}"] = w_in, w_rec
        return state

    def set_state(self, state: dict[str, Array]) -> None:
        missing = [k for k in self.get_state() if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}; it must come from Network.get_state()")
        limits.check_state({k: state[k] for k in self.get_state()})
        checked = {f"{kind}_{k}": self._check_param(f"{kind}_{k}", state[f"{kind}_{k}"], k)
                   for k in range(self.n_param_layers) for kind in ("weights", "moment1", "moment2")}
        self.set_reservoir_weights([(state[f"reservoir_input_{k}"], state[f"reservoir_recurrent_{k}"])
                                    for k in range(len(self._reservoirs))])
        for key, value in checked.items():
            kind, k = key.rsplit("_", 1)
            self._engine.set_param(kind, int(k), value)
        self._engine.step = int(np.asarray(state["step"]))  # checked by check_state

    # -- input checks -------------------------------------------------------------------------

    def _check_spikes(self, spikes: Array, time_first: bool = False) -> Array | CudaArray:
        """Host spikes as contiguous uint8 (B, T, n_in); on the CUDA backend, a CUDA array as it
        is. time_first: the spikes are (T, B, n_in) (snnTorch, SpikingJelly, Norse), transposed
        here into a copy."""
        device = cuda_array(spikes, "spikes") if self.backend == "cuda" else None
        if device is not None and time_first:
            raise TypeError("time_first=True needs host spikes; hand CUDA spikes over as (B, T, n_in) "
                            "(x.transpose(0, 1).contiguous() in PyTorch)")
        if device is not None:
            if device.typestr != "|b1":
                raise TypeError(f"CUDA spikes must be a bool array, got typestr {device.typestr!r} "
                                f"(x.astype(bool) in CuPy, x.bool() in PyTorch, on the GPU)")
            shape = device.shape
        else:
            spikes = as_host_array(spikes, "spikes")
            if time_first:
                if spikes.ndim != 3:
                    raise ValueError(f"spikes must have shape (T, B, n_in) with time_first=True, got {spikes.shape}")
                spikes = np.swapaxes(spikes, 0, 1)
            shape = spikes.shape
        if len(shape) != 3:
            raise ValueError(f"spikes must have shape (B, T, n_in), got {shape}")
        B, T, n_in = shape
        if B == 0:
            raise ValueError("spikes must hold at least one sample")
        if T < 2:
            raise ValueError(f"spikes need T >= 2 time steps, got T = {T}")
        if n_in != self.layers[0]:
            raise ValueError(f"spikes have {n_in} inputs but the network has {self.layers[0]}")
        limits.check_sizes(self.layers, B, T, self.t_ref)
        if device is not None:
            return device
        return np.ascontiguousarray(spike_bits(spikes)).view(np.uint8)

    def _check_learning_T(self, T: int) -> None:
        if T < self.desired:
            raise ValueError(f"learning needs T >= desired ({self.desired}) so that a silent label neuron can be "
                             f"revived with T // desired spacing; got T = {T}")

    def _check_labels(self, labels: Array, batch: int) -> Array:
        labels = as_host_array(labels, "labels")
        if labels.shape != (batch,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {batch} integers (one per sample), got shape {labels.shape} "
                             f"dtype {labels.dtype}")
        n_out = self.layers[-1]
        if ((labels < 0) | (labels >= n_out)).any():
            raise ValueError(f"labels must lie in 0..{n_out - 1}, got values {np.unique(labels)}")
        return np.ascontiguousarray(labels, dtype=np.int64)

    @staticmethod
    def _check_sample_weights(sample_weights: Array | None, batch: int) -> Array | None:
        if sample_weights is None:
            return None
        w = as_host_array(sample_weights, "sample_weights").astype(np.float64, copy=False)
        if w.shape != (batch,) or not np.isfinite(w).all() or (w <= 0).any():
            raise ValueError(f"sample_weights must be {batch} finite numbers > 0, got shape {w.shape}")
        return np.ascontiguousarray(w)

    # -- engine calls -------------------------------------------------------------------------

    @staticmethod
    def _result(out: dict) -> dict:
        return {"loss": float(out["loss"]), "predictions": out["predictions"], "counts": out["counts"],
                "layer_spikes": out["layer_spikes"]}

    def _run_dense(self, spikes: Array | CudaArray, *args: object) -> dict:
        """The engine on checked spikes: host arrays by value, CUDA arrays in place."""
        if isinstance(spikes, CudaArray):
            B, T, n_in = spikes.shape
            return self._engine.run_dense_device(spikes.pointer, B, T, n_in, spikes.stream, *args)
        return self._engine.run_dense(spikes, *args)

    def forward(self, spikes: Array, *, time_first: bool = False) -> list[Array]:
        """Spike trains of every layer: one bool (B, T, n_l) array per layer ((T, B, n_l) views
        with time_first=True, the layout of the spikes then given as (T, B, n_in))."""
        out = self._run_dense(self._check_spikes(spikes, time_first), "infer", None, None, 0.0, True)
        return [np.swapaxes(s, 0, 1) for s in out["spikes"]] if time_first else list(out["spikes"])

    def infer(self, spikes: Array, *, time_first: bool = False) -> dict:
        """Predictions and output spike counts (B, n_out), no learning. time_first: spikes (T, B, n_in)."""
        return self._result(self._run_dense(self._check_spikes(spikes, time_first), "infer", None, None, 0.0,
                                            False))

    def forward_backward(self, spikes: Array, labels: Array, sample_weights: Array | None = None,
                         reduce: str = "sum", *, time_first: bool = False, regularize: bool = False,
                         out: Sequence[np.ndarray] | None = None) -> dict:
        """Forward, loss and backward pass of a batch, no step: loss, predictions, counts,
        layer_spikes and `gradients` (one array per trainable layer, shapes of get_weights):
        the batch SUM of the per-sample SPEC-4 gradients (reduce="sum"; add them across
        processes, then apply_gradients) or their mean (reduce="mean"). regularize (with
        reduce="mean"): plus SPEC 5's regularization gradient of the current weights, what
        train_step's optimizer would be fed. out: arrays to write the gradients into (writable
        float32 or float64, C-contiguous or on the CPU backend also in the engine's stored layout,
        axis 0 innermost, as hm2bp.torch's gradients; returned as `gradients`), else new float64 ones.
        time_first: spikes (T, B, n_in)."""
        out = None if out is None else check_out_arrays(out, self._param_shapes, self.backend == "cpu")
        result = self._gradients(spikes, labels, sample_weights, reduce, time_first, regularize, out)
        return {**self._result(result), "gradients": list(result["gradients"])}

    def _gradients(self, spikes: Array, labels: Array, sample_weights: Array | None, reduce: str,
                   time_first: bool, regularize: bool, out: Sequence[np.ndarray] | None) -> dict:
        """forward_backward's run; `out` as given (checked by it, made to measure by hm2bp.torch)."""
        s = self._check_spikes(spikes, time_first)
        self._check_learning_T(s.shape[1])
        if regularize and reduce != "mean":
            raise ValueError("regularize=True needs reduce='mean' (apply_gradients regularizes gradient sums)")
        return self._run_dense(s, "gradients", self._check_labels(labels, s.shape[0]),
                               self._check_sample_weights(sample_weights, s.shape[0]), 0.0, False,
                               _check_reduce(reduce), out, bool(regularize))

    def gradients(self, spikes: Array, labels: Array, sample_weights: Array | None = None,
                  reduce: str = "mean", *, time_first: bool = False) -> list[Array]:
        """Batch mean (reduce="mean") or sum (reduce="sum") of the per-sample SPEC-4 weight
        gradients (no regularization), one array per trainable layer. time_first: spikes (T, B, n_in)."""
        return self.forward_backward(spikes, labels, sample_weights, reduce, time_first=time_first)["gradients"]

    def apply_gradients(self, grads: Sequence[Array], lr: float, count: int) -> None:
        """One optimizer step (SPEC 5) from gradient SUMS over `count` samples: regularization,
        then Adam or SGD on grads / count; the step counter advances once. train_step(batch)
        equals forward_backward(batch) + apply_gradients(its gradients, lr, len(batch)) bit for bit."""
        checked = self._check_params("gradient", grads)
        self._engine.apply_gradients(checked, check_whole("count", count, 1), check_lr(lr))
        self._check_stepped()

    def train_step(self, spikes: Array, labels: Array, lr: float, sample_weights: Array | None = None, *,
                   time_first: bool = False) -> dict:
        """One optimizer step on the batch. Returns loss, predictions, counts, layer_spikes.
        time_first: spikes (T, B, n_in)."""
        s = self._check_spikes(spikes, time_first)
        self._check_learning_T(s.shape[1])
        out = self._run_dense(s, "train", self._check_labels(labels, s.shape[0]),
                                     self._check_sample_weights(sample_weights, s.shape[0]),
                                     check_lr(lr), False)
        self._check_stepped()
        return self._result(out)

    def _check_stepped(self) -> None:
        """FloatingPointError when a step left a weight NaN or infinite (too large an lr or
        init_w, or the lateral factor 1 / (1 - w0^2 * sum) at its pole). The CPU engine answers
        from the column sums its step keeps (n_out values per layer, no measurable cost); an
        engine that does not track them answers None and is checked where its state is read
        (the trainer's epoch checkpoints)."""
        if self._engine.weights_finite() is False:
            raise FloatingPointError(
                f"after optimizer step {self._engine.step} the weights are not finite (NaN or "
                f"infinite): the step diverged (too large lr or init_w, or a lateral factor "
                f"1 / (1 - w0^2 * sum) at its pole); restore a saved state with set_state and use a "
                f"smaller lr, init_w or lateral_inhibition")

    def _run_images(self, mode: str, images: Array, labels: Array | None, lr: float, T: int, seed: int,
                    sample_index: int | Sequence[int] | Array, epoch: int,
                    sample_weights: Array | None, reduce: str = "mean") -> dict:
        images = check_images(images, self.layers[0])
        B = images.shape[0]
        index = check_sample_index(sample_index, B)
        T, labels = self._check_run(B, T, labels)
        out = self._engine.run_images(images, T, _check_seed("seed", seed), index,
                                      _check_seed("epoch", epoch), mode, labels,
                                      self._check_sample_weights(sample_weights, B), lr, False,
                                      _check_reduce(reduce))
        return self._finish(mode, out)

    def _check_run(self, B: int, T: int, labels: Array | None) -> tuple[int, Array | None]:
        """T and labels of a batch of B samples encoded inside the engine, checked."""
        T = _check_T(T)
        limits.check_sizes(self.layers, B, T, self.t_ref)
        if labels is not None:
            labels = self._check_labels(labels, B)
            self._check_learning_T(T)
        return T, labels

    def _finish(self, mode: str, out: dict) -> dict:
        """The result of an engine run in `mode` (after a step, the weights checked finite)."""
        if mode == "train":
            self._check_stepped()
        result = self._result(out)
        if mode == "gradients":
            result["gradients"] = list(out["gradients"])
        return result

    def train_step_images(self, images: Array, labels: Array, lr: float, *, T: int, seed: int,
                          sample_index: int | Sequence[int] | Array, epoch: int = 0,
                          sample_weights: Array | None = None) -> dict:
        """train_step on uint8 images Poisson-encoded inside the engine (same spikes as encode_poisson)."""
        return self._run_images("train", images, labels, check_lr(lr), T, seed, sample_index, epoch,
                                sample_weights)

    def forward_backward_images(self, images: Array, labels: Array, *, T: int, seed: int,
                                sample_index: int | Sequence[int] | Array, epoch: int = 0,
                                sample_weights: Array | None = None, reduce: str = "sum") -> dict:
        """forward_backward on uint8 images Poisson-encoded inside the engine."""
        return self._run_images("gradients", images, labels, 0.0, T, seed, sample_index, epoch, sample_weights,
                                reduce)

    def infer_images(self, images: Array, *, T: int, seed: int, sample_index: int | Sequence[int] | Array,
                     epoch: int = 0) -> dict:
        """infer on uint8 images Poisson-encoded inside the engine."""
        return self._run_images("infer", images, None, 0.0, T, seed, sample_index, epoch, None)

    def _run_analog(self, mode: str, analog: Array, labels: Array | None, lr: float, T: int,
                    sample_weights: Array | None, reduce: str = "mean") -> dict:
        values = check_analog(analog, self.layers[0])
        B = values.shape[0]
        T, labels = self._check_run(B, T, labels)
        out = self._engine.run_analog(values, T, mode, labels, self._check_sample_weights(sample_weights, B), lr,
                                      False, _check_reduce(reduce))
        return self._finish(mode, out)

    def train_step_bsa(self, analog: Array, labels: Array, lr: float, *, T: int,
                       sample_weights: Array | None = None) -> dict:
        """train_step on analog channels (B, n_in, frames) BSA-encoded inside the engine (the
        spikes of hm2bp.encode_bsa; pad shorter samples with zero frames, which add no spikes)."""
        return self._run_analog("train", analog, labels, check_lr(lr), T, sample_weights)

    def forward_backward_bsa(self, analog: Array, labels: Array, *, T: int, sample_weights: Array | None = None,
                             reduce: str = "sum") -> dict:
        """forward_backward on analog channels BSA-encoded inside the engine."""
        return self._run_analog("gradients", analog, labels, 0.0, T, sample_weights, reduce)

    def infer_bsa(self, analog: Array, *, T: int) -> dict:
        """infer on analog channels BSA-encoded inside the engine."""
        return self._run_analog("infer", analog, None, 0.0, T, None)


def _engine_spec(description: NetworkDescription, threads: int) -> Any:
    """The engine's NetSpec of a checked description: the one place where layers and
    hyperparameters become the engine's types (Python's `optimizer` is the engine's `adam`)."""
    spec = _core.NetSpec()
    spec.input = _core.Shape(*description.input_shape)
    layers = []
    for layer in description.layers:
        entry = _core.LayerSpec()
        entry.vth = layer.vth
        if isinstance(layer, Dense):
            entry.kind, entry.units = _core.LayerKind.Dense, layer.n
        elif isinstance(layer, Reservoir):
            entry.kind, entry.units = _core.LayerKind.Reservoir, layer.n
        elif isinstance(layer, Conv2d):
            entry.kind, entry.units = _core.LayerKind.Conv2d, layer.channels
            entry.kernel, entry.padding = layer.kernel, layer.padding
        else:
            entry.kind, entry.kernel = _core.LayerKind.Pool2d, layer.size
            entry.stride = layer.stride or 0
        layers.append(entry)
    spec.layers = layers
    hyper = _core.Hyper()
    for name, value in description.hyperparameters.items():
        if name == "optimizer":
            hyper.adam = value == "adam"
        else:
            setattr(hyper, name, value)
    hyper.threads = threads
    spec.hyper = hyper
    return spec
