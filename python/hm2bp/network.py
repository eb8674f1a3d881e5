"""`Network`: the user-facing handle on the compiled HM2-BP engine.

All per-sample work (spike simulation, S-PSP traces, gradients, optimizer) runs in C++/CUDA
(`hm2bp._core`); this module validates arguments, so that a mistake raises a clear Python
exception instead of reaching the engine, and converts arrays.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from . import _core, limits

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


def _positive_number(name: str, value: float, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def _whole_number(name: str, value: int, minimum: int, maximum: int = limits.INT32_MAX) -> int:
    return limits.check_int(name, value, minimum, maximum)  # the C++ type's range


def check_images(images: Array, n_in: int | None = None) -> Array:
    """uint8 images (B, n_in) or (B, H, W) -> contiguous (B, n_in)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(
            f"images must be uint8 pixels 0..255, got dtype {images.dtype}"
            " (scale float images with (x * 255).round().astype(np.uint8))")
    if images.ndim == 3:
        images = images.reshape(images.shape[0], -1)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, n_in) or (B, H, W) with B >= 1, got {images.shape}")
    if n_in is not None and images.shape[1] != n_in:
        raise ValueError(f"images have {images.shape[1]} pixels but the network has {n_in} inputs")
    return np.ascontiguousarray(images)


def check_sample_index(sample_index: int | Sequence[int] | Array, batch: int) -> Array:
    index = np.asarray(sample_index)
    if index.ndim == 0:
        if not np.issubdtype(index.dtype, np.integer) or int(index) < 0:
            raise ValueError(f"sample_index must be a non-negative integer, got {sample_index!r}")
        return np.arange(int(index), int(index) + batch, dtype=np.int64)
    if index.shape != (batch,) or not np.issubdtype(index.dtype, np.integer) or (index < 0).any():
        raise ValueError(f"sample_index must be an int or {batch} non-negative integers, got shape {index.shape}")
    return np.ascontiguousarray(index, dtype=np.int64)


def _check_T(T: int) -> int:
    return _whole_number("T", T, 2)


def _check_seed(name: str, value: int) -> int:
    return _whole_number(name, value, 0, limits.UINT64_MAX)


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


class Network:
    """A fully connected HM2-BP spiking network (SPEC sections 1-5).

    Weights are W[l] with shape (n_out, n_in) per layer; inputs are bool spike arrays
    (B, T, n_in) or uint8 images that the engine Poisson-encodes itself.
    """

    def __init__(self, layers: Sequence[int], vth: Sequence[float], tau_m: float = 64.0,
                 tau_s: float = 8.0, t_ref: int = 2, lateral_inhibition: float = 1.0,
                 desired: int = 35, undesired: int = 5, margin: int = 5, effect_ratio: bool = True,
                 optimizer: str = "adam", reg_lambda: float = 10.0, reg_beta: float = 0.04,
                 weight_limit: float = 8.0, init_w: float = 1.0, backend: str = "cpu",
                 dtype: str = "float32", threads: int | None = None, seed: int = 0) -> None:
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"layers must list at least 2 sizes (inputs and outputs), got {layers}")
        self.layers = [_whole_number(f"layers[{k}]", n, 1) for k, n in enumerate(layers)]
        limits.check_sizes(self.layers)
        vth = [vth] if isinstance(vth, (int, float)) else list(vth)
        if len(vth) != len(layers) - 1:
            raise ValueError(f"vth needs one threshold per weight layer ({len(layers) - 1}), got {len(vth)}")
        self.vth = [_positive_number(f"vth[{k}]", v) for k, v in enumerate(vth)]
        self.tau_m = _positive_number("tau_m", tau_m)
        self.tau_s = _positive_number("tau_s", tau_s)
        if self.tau_s == self.tau_m:
            raise ValueError("tau_s must differ from tau_m (the S-PSP divides by 1 - tau_s / tau_m)")
        _whole_number("the S-PSP window 4 * tau_m", math.floor(4 * self.tau_m), 0)
        self.t_ref = _whole_number("t_ref", t_ref, 0)
        self.lateral_inhibition = _positive_number("lateral_inhibition", lateral_inhibition, allow_zero=True)
        self.desired = _whole_number("desired", desired, 1)
        self.undesired = _whole_number("undesired", undesired, 0)
        self.margin = _whole_number("margin", margin, 0)
        if not isinstance(effect_ratio, (bool, np.bool_)):
            raise TypeError(f"effect_ratio must be True or False, got {effect_ratio!r}")
        self.effect_ratio = bool(effect_ratio)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.optimizer = optimizer
        self.reg_lambda = _positive_number("reg_lambda", reg_lambda, allow_zero=True)
        self.reg_beta = _positive_number("reg_beta", reg_beta, allow_zero=True)
        self.weight_limit = _positive_number("weight_limit", weight_limit)
        self.init_w = _positive_number("init_w", init_w, allow_zero=True)
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        self.threads = default_threads() if threads is None else _whole_number("threads", threads, 1, limits.MAX_THREADS)
        self.seed = _check_seed("seed", seed)
        self.backend = self._choose_backend(backend)

        config = _core.NetConfig()
        config.layers = self.layers
        config.vth = self.vth
        config.tau_m, config.tau_s, config.t_ref = self.tau_m, self.tau_s, self.t_ref
        config.w0 = self.lateral_inhibition
        config.desired, config.undesired, config.margin = self.desired, self.undesired, self.margin
        config.effect_ratio = self.effect_ratio
        config.adam = optimizer == "adam"
        config.reg_lambda, config.reg_beta = self.reg_lambda, self.reg_beta
        config.weight_limit = self.weight_limit
        config.threads = self.threads
        self._engine = _core.Engine(config, dtype == "float64", self.backend)

        rng = np.random.default_rng(self.seed)
        self.set_weights([self.init_w * rng.uniform(-1.0, 1.0, size=(n_out, n_in))
                          for n_in, n_out in zip(self.layers[:-1], self.layers[1:])])

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
        return len(self.layers) - 1

    # -- parameters ---------------------------------------------------------------------------

    def get_weights(self) -> list[Array]:
        """Copies of the weights, float64, layer l with shape (n_out, n_in)."""
        return [self._engine.get_param("weights", l) for l in range(self.n_layers)]

    def set_weights(self, weights: Sequence[Array]) -> None:
        weights = list(weights)
        if len(weights) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} weight arrays, got {len(weights)}")
        checked = [self._check_param(f"weights[{l}]", w, l) for l, w in enumerate(weights)]
        for l, w in enumerate(checked):
            self._engine.set_param("weights", l, w)

    def _check_param(self, name: str, value: Array, l: int) -> Array:
        value = np.asarray(value)
        shape = (self.layers[l + 1], self.layers[l])
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (n_out, n_in), got {value.shape}")
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real array, got dtype {value.dtype}")
        return np.ascontiguousarray(limits.check_finite_in(name, value, self.dtype))

    def get_state(self) -> dict[str, Array]:
        """Weights and optimizer state, enough to resume training exactly."""
        state: dict[str, Array] = {"step": np.array(self._engine.step, dtype=np.int64)}
        for l in range(self.n_layers):
            for kind in ("weights", "moment1", "moment2"):
                state[f"{kind}_{l}"] = self._engine.get_param(kind, l)
        return state

    def set_state(self, state: dict[str, Array]) -> None:
        missing = [k for k in self.get_state() if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}; it must come from Network.get_state()")
        limits.check_state({k: state[k] for k in self.get_state()})
        checked = {f"{kind}_{l}": self._check_param(f"{kind}_{l}", state[f"{kind}_{l}"], l)
                   for l in range(self.n_layers) for kind in ("weights", "moment1", "moment2")}
        for key, value in checked.items():
            kind, l = key.rsplit("_", 1)
            self._engine.set_param(kind, int(l), value)
        self._engine.step = int(np.asarray(state["step"]))  # checked by check_state

    # -- input checks -------------------------------------------------------------------------

    def _check_spikes(self, spikes: Array) -> Array:
        spikes = np.asarray(spikes)
        if spikes.ndim != 3:
            raise ValueError(f"spikes must have shape (B, T, n_in), got {spikes.shape}")
        B, T, n_in = spikes.shape
        if B == 0:
            raise ValueError("spikes must hold at least one sample")
        if T < 2:
            raise ValueError(f"spikes need T >= 2 time steps, got T = {T}")
        if n_in != self.layers[0]:
            raise ValueError(f"spikes have {n_in} inputs but the network has {self.layers[0]}")
        limits.check_sizes(self.layers, B, T, self.t_ref)
        if spikes.dtype != np.bool_:
            if not (np.issubdtype(spikes.dtype, np.integer) or np.issubdtype(spikes.dtype, np.floating)) \
                    or not np.isin(spikes, (0, 1)).all():
                raise TypeError(f"spikes must be a bool array (or 0/1 values), got dtype {spikes.dtype}")
            spikes = spikes.astype(np.bool_)
        return np.ascontiguousarray(spikes).view(np.uint8)

    def _check_learning_T(self, T: int) -> None:
        if T < self.desired:
            raise ValueError(f"learning needs T >= desired ({self.desired}) so that a silent label neuron can be "
                             f"revived with T // desired spacing; got T = {T}")

    def _check_labels(self, labels: Array, batch: int) -> Array:
        labels = np.asarray(labels)
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
        w = np.asarray(sample_weights, dtype=np.float64)
        if w.shape != (batch,) or not np.isfinite(w).all() or (w <= 0).any():
            raise ValueError(f"sample_weights must be {batch} finite numbers > 0, got shape {w.shape}")
        return np.ascontiguousarray(w)

    @staticmethod
    def _check_lr(lr: float) -> float:
        return _positive_number("lr", lr, allow_zero=True)

    # -- engine calls -------------------------------------------------------------------------

    @staticmethod
    def _result(out: dict) -> dict:
        return {"loss": float(out["loss"]), "predictions": out["predictions"], "counts": out["counts"],
                "layer_spikes": out["layer_spikes"]}

    def forward(self, spikes: Array) -> list[Array]:
        """Spike trains of every layer: one bool (B, T, n_l) array per layer."""
        out = self._engine.run_dense(self._check_spikes(spikes), "infer", None, None, 0.0, True)
        return list(out["spikes"])

    def infer(self, spikes: Array) -> dict:
        """Predictions and output spike counts, no learning."""
        return self._result(self._engine.run_dense(self._check_spikes(spikes), "infer", None, None, 0.0, False))

    def gradients(self, spikes: Array, labels: Array, sample_weights: Array | None = None) -> list[Array]:
        """Batch mean of the per-sample SPEC-4 weight gradients (no regularization), (n_out, n_in) each."""
        s = self._check_spikes(spikes)
        self._check_learning_T(s.shape[1])
        out = self._engine.run_dense(s, "gradients", self._check_labels(labels, s.shape[0]),
                                     self._check_sample_weights(sample_weights, s.shape[0]), 0.0, False)
        return list(out["gradients"])

    def train_step(self, spikes: Array, labels: Array, lr: float, sample_weights: Array | None = None) -> dict:
        """One optimizer step on the batch. Returns loss, predictions, counts, layer_spikes."""
        s = self._check_spikes(spikes)
        self._check_learning_T(s.shape[1])
        out = self._engine.run_dense(s, "train", self._check_labels(labels, s.shape[0]),
                                     self._check_sample_weights(sample_weights, s.shape[0]),
                                     self._check_lr(lr), False)
        return self._result(out)

    def _run_images(self, mode: str, images: Array, labels: Array | None, lr: float, T: int, seed: int,
                    sample_index: int | Sequence[int] | Array, epoch: int,
                    sample_weights: Array | None) -> dict:
        images = check_images(images, self.layers[0])
        B = images.shape[0]
        index = check_sample_index(sample_index, B)
        T = _check_T(T)
        limits.check_sizes(self.layers, B, T, self.t_ref)
        if labels is not None:
            labels = self._check_labels(labels, B)
            self._check_learning_T(T)
        out = self._engine.run_images(images, T, _check_seed("seed", seed), index,
                                      _check_seed("epoch", epoch), mode, labels,
                                      self._check_sample_weights(sample_weights, B), lr, False)
        return self._result(out)

    def train_step_images(self, images: Array, labels: Array, lr: float, *, T: int, seed: int,
                          sample_index: int | Sequence[int] | Array, epoch: int = 0,
                          sample_weights: Array | None = None) -> dict:
        """train_step on uint8 images Poisson-encoded inside the engine (same spikes as encode_poisson)."""
        return self._run_images("train", images, labels, self._check_lr(lr), T, seed, sample_index, epoch,
                                sample_weights)

    def infer_images(self, images: Array, *, T: int, seed: int, sample_index: int | Sequence[int] | Array,
                     epoch: int = 0) -> dict:
        """infer on uint8 images Poisson-encoded inside the engine."""
        return self._run_images("infer", images, None, 0.0, T, seed, sample_index, epoch, None)
