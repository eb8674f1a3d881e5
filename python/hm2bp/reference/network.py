"""`Network`: the stateful float64 reference network, same constructor and methods as the
compiled `hm2bp.Network`."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .backward import sample_gradients
from .encoding import encode_poisson
from .neuron import forward_sample
from .optimizer import adam_step, regularization, sgd_step


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {expected}, got {value}")
    return x


def _int_at_least(name: str, value: Any, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


class Network:
    """Stateful float64 reference network with the API of `hm2bp.Network`.

    backend, dtype and threads are validated and otherwise ignored (always float64, one thread).
    """

    def __init__(
        self,
        layers: Sequence[int] = (784, 800, 10),
        vth: float | Sequence[float] = (20.0, 8.0),
        tau_m: float = 64.0,
        tau_s: float = 8.0,
        t_ref: int = 2,
        lateral_inhibition: float = 1.0,
        desired: int = 35,
        undesired: int = 5,
        margin: float = 5,
        effect_ratio: bool = True,
        optimizer: str = "adam",
        reg_lambda: float = 10.0,
        reg_beta: float = 0.04,
        weight_limit: float = 8.0,
        init_w: float = 1.0,
        backend: str = "cpu",
        dtype: str = "float32",
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"layers must list at least 2 sizes (input, output), got {layers}")
        self.layers = [_int_at_least(f"layers[{k}]", n, 1) for k, n in enumerate(layers)]
        L = len(layers) - 1
        if isinstance(vth, (int, float, np.integer, np.floating)):
            vth = [vth] * L
        vth = list(vth)
        if len(vth) != L:
            raise ValueError(f"vth must have one value per weight layer ({L}), got {len(vth)}")
        self.vth = [_positive(f"vth[{k}]", x) for k, x in enumerate(vth)]
        self.tau_m = _positive("tau_m", tau_m)
        self.tau_s = _positive("tau_s", tau_s)
        if self.tau_s == self.tau_m:
            raise ValueError("tau_s must differ from tau_m (the S-PSP divides by 1 - tau_s/tau_m)")
        self.t_ref = _int_at_least("t_ref", t_ref, 0)
        self.lateral_inhibition = _positive("lateral_inhibition", lateral_inhibition, True)
        self.desired = _int_at_least("desired", desired, 1)
        self.undesired = _int_at_least("undesired", undesired, 0)
        self.margin = _positive("margin", margin, True)
        if not isinstance(effect_ratio, (bool, np.bool_)):
            raise TypeError(f"effect_ratio must be a bool, got {type(effect_ratio).__name__}")
        self.effect_ratio = bool(effect_ratio)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.optimizer = optimizer
        self.reg_lambda = _positive("reg_lambda", reg_lambda, True)
        self.reg_beta = _positive("reg_beta", reg_beta, True)
        self.weight_limit = _positive("weight_limit", weight_limit)
        init_w = _positive("init_w", init_w, True)
        if backend not in ("cpu", "cuda"):
            raise ValueError(f"backend must be 'cpu' or 'cuda', got {backend!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if threads is not None:
            _int_at_least("threads", threads, 1)
        self.backend, self.dtype, self.threads = backend, dtype, threads
        seed = _int_at_least("seed", seed, 0)

        rng = np.random.default_rng(seed)
        self._W = [
            init_w * rng.uniform(-1.0, 1.0, size=(n_out, n_in))
            for n_in, n_out in zip(self.layers[:-1], self.layers[1:])
        ]
        self._step = 0
        if optimizer == "adam":
            self._m = [np.zeros_like(W) for W in self._W]
            self._v = [np.zeros_like(W) for W in self._W]
        else:
            self._velocity = [np.zeros_like(W) for W in self._W]

    # ---- weights and state ------------------------------------------------------------

    def _shapes(self) -> list[tuple[int, int]]:
        return [(n_out, n_in) for n_in, n_out in zip(self.layers[:-1], self.layers[1:])]

    def get_weights(self) -> list[np.ndarray]:
        return [W.copy() for W in self._W]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace the weights (optimizer state is kept)."""
        weights = list(weights)
        if len(weights) != len(self._W):
            raise ValueError(f"weights must have {len(self._W)} arrays, got {len(weights)}")
        new = []
        for l, (W, shape) in enumerate(zip(weights, self._shapes())):
            W = np.array(W, dtype=np.float64, copy=True)
            if W.shape != shape:
                raise ValueError(f"weights[{l}] must have shape {shape}, got {W.shape}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"weights[{l}] must be finite")
            new.append(W)
        self._W = new

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights + optimizer state: keys weight.{l}, step, and adam_m.{l}/adam_v.{l} or
        velocity.{l}."""
        state = {f"weight.{l}": W.copy() for l, W in enumerate(self._W)}
        state["step"] = np.array(self._step, dtype=np.int64)
        if self.optimizer == "adam":
            state.update({f"adam_m.{l}": m.copy() for l, m in enumerate(self._m)})
            state.update({f"adam_v.{l}": v.copy() for l, v in enumerate(self._v)})
        else:
            state.update({f"velocity.{l}": u.copy() for l, u in enumerate(self._velocity)})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        expected = self.get_state()
        if set(state) != set(expected):
            raise ValueError(
                f"state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        for key, ref in expected.items():
            if np.shape(state[key]) != ref.shape:
                raise ValueError(f"state[{key!r}] must have shape {ref.shape}, got "
                                 f"{np.shape(state[key])}")
        L = len(self._W)
        self.set_weights([state[f"weight.{l}"] for l in range(L)])
        self._step = int(state["step"])
        if self.optimizer == "adam":
            self._m = [np.array(state[f"adam_m.{l}"], dtype=np.float64) for l in range(L)]
            self._v = [np.array(state[f"adam_v.{l}"], dtype=np.float64) for l in range(L)]
        else:
            self._velocity = [
                np.array(state[f"velocity.{l}"], dtype=np.float64) for l in range(L)
            ]

    # ---- input validation -------------------------------------------------------------

    def _check_spikes(self, spikes: Any) -> np.ndarray:
        if not isinstance(spikes, np.ndarray) or spikes.dtype != np.bool_:
            raise ValueError("spikes must be a numpy bool array of shape (B, T, n_in)")
        if spikes.ndim != 3 or spikes.shape[2] != self.layers[0] or min(spikes.shape[:2]) < 1:
            raise ValueError(
                f"spikes must have shape (B>=1, T>=1, {self.layers[0]}), got {spikes.shape}"
            )
        return spikes

    def _check_labels(self, labels: Any, B: int) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (B,):
            raise ValueError(f"labels must be an int array of shape ({B},), got "
                             f"{labels.dtype} {labels.shape}")
        n_out = self.layers[-1]
        if np.any(labels < 0) or np.any(labels >= n_out):
            raise ValueError(f"labels must be in [0, {n_out}), got {labels.min()}..{labels.max()}")
        return labels.astype(np.int64)

    def _check_sample_weights(self, sample_weights: Any, B: int) -> np.ndarray:
        if sample_weights is None:
            return np.ones(B)
        w = np.asarray(sample_weights, dtype=np.float64)
        if w.shape != (B,):
            raise ValueError(f"sample_weights must have shape ({B},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("sample_weights must be finite and > 0")
        return w

    # ---- forward / backward -----------------------------------------------------------

    def _forward_one(self, s_in: np.ndarray) -> tuple[list[np.ndarray], float]:
        return forward_sample(
            self._W, s_in, self.vth, self.tau_m, self.tau_s, self.t_ref, self.lateral_inhibition
        )

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Spike trains of every layer: list of bool (B, T, n_l)."""
        spikes = self._check_spikes(spikes)
        per_sample = [self._forward_one(x)[0] for x in spikes]
        return [np.stack([s[l] for s in per_sample]) for l in range(len(self._W))]

    def _batch(
        self, spikes: Any, labels: Any, sample_weights: Any
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        spikes = self._check_spikes(spikes)
        B, T = spikes.shape[:2]
        labels = self._check_labels(labels, B)
        weights = self._check_sample_weights(sample_weights, B)
        if T // self.desired < 1:
            raise ValueError(f"training needs T >= desired for revival (T={T}, "
                             f"desired={self.desired})")
        sums = [np.zeros_like(W) for W in self._W]
        infos = []
        for b in range(B):
            grads, info = sample_gradients(
                self._W, spikes[b], int(labels[b]),
                vth=self.vth, tau_m=self.tau_m, tau_s=self.tau_s, t_ref=self.t_ref,
                w0=self.lateral_inhibition, desired=self.desired, undesired=self.undesired,
                margin=self.margin, use_effect_ratio=self.effect_ratio,
                sample_weight=float(weights[b]),
            )
            for acc, g in zip(sums, grads):
                acc += g
            infos.append(info)
        return [s / B for s in sums], infos

    @staticmethod
    def _report(infos: list[dict[str, Any]]) -> dict[str, Any]:
        counts = np.stack([info["counts"] for info in infos]).astype(np.int64)
        layer_spikes = np.array(
            [sum(int(info["spikes"][l].sum()) for info in infos)
             for l in range(len(infos[0]["spikes"]))],
            dtype=np.int64,
        )
        return {
            "predictions": np.argmax(counts, axis=1).astype(np.int64),
            "counts": counts,
            "layer_spikes": layer_spikes,
        }

    def gradients(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Batch mean of the per-sample SPEC-4 gradients (no regularization)."""
        return self._batch(spikes, labels, sample_weights)[0]

    def train_step(
        self,
        spikes: np.ndarray,
        labels: np.ndarray,
        lr: float,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """One optimizer step on batch-mean gradient + regularization."""
        lr = _positive("lr", lr, allow_zero=True)
        grads, infos = self._batch(spikes, labels, sample_weights)
        self._step += 1
        for l, W in enumerate(self._W):
            g = grads[l] + regularization(W, self.reg_lambda, self.reg_beta, self.weight_limit)
            if self.optimizer == "adam":
                self._W[l], self._m[l], self._v[l] = adam_step(
                    W, g, self._m[l], self._v[l], self._step, lr
                )
            else:
                self._W[l], self._velocity[l] = sgd_step(W, g, self._velocity[l], lr)
        result = self._report(infos)
        result["loss"] = float(np.mean([info["cost"] for info in infos]))
        return result

    def infer(self, spikes: np.ndarray) -> dict[str, Any]:
        spikes = self._check_spikes(spikes)
        infos = []
        for x in spikes:
            trains, _ = self._forward_one(x)
            infos.append({"spikes": trains, "counts": trains[-1].sum(axis=0)})
        return self._report(infos)

    def train_step_images(
        self,
        images_uint8: np.ndarray,
        labels: np.ndarray,
        lr: float,
        *,
        T: int,
        seed: int,
        sample_index: int | np.ndarray,
        epoch: int = 0,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        spikes = encode_poisson(images_uint8, T, seed, sample_index, epoch)
        return self.train_step(spikes, labels, lr, sample_weights)

    def infer_images(
        self,
        images_uint8: np.ndarray,
        *,
        T: int,
        seed: int,
        sample_index: int | np.ndarray,
        epoch: int = 0,
    ) -> dict[str, Any]:
        return self.infer(encode_poisson(images_uint8, T, seed, sample_index, epoch))
