"""`Network`: the stateful float64 reference network, same constructor and methods as the
compiled `hm2bp.Network`, built from the same checked `NetworkDescription` (hm2bp.model:
plain Python written from the specs, no engine)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..model.description import DescribedNetwork
from ..model.hyper import check_lr, check_whole
from ..model.layers import Reservoir
from .backward import sample_gradients
from .bsa import encode_bsa
from .connection import Connection, forward_sample, from_layers
from .encoding import encode_poisson
from .optimizer import adam_step, regularization, sgd_step


class Network(DescribedNetwork):
    """Stateful float64 reference network with the API of `hm2bp.Network`.

    Two forms, as hm2bp.Network: ``Network(layers=[784, 800, 10], vth=[20.0, 8.0])`` (sizes,
    input first, one threshold per layer) or ``Network(input_shape=(1, 28, 28),
    layers=[Conv2d(...), Pool2d(...), ..., Dense(10, vth)])`` (hm2bp.layers), with the same
    hyperparameters, checks and initial weights. backend, dtype and threads are validated and
    otherwise ignored (always float64, one thread).
    """

    def _start(self, backend: str, dtype: str, threads: int | None) -> None:
        if backend not in ("cpu", "cuda", "auto"):
            raise ValueError(f"backend must be 'cpu', 'cuda' or 'auto', got {backend!r}")
        if threads is not None:
            check_whole("threads", threads, 1)
        self.backend, self.dtype, self.threads = backend, dtype, threads
        self._W = self.description.initial_weights()  # the engine's draw, block by block
        self._reservoirs = [l for l, layer in enumerate(self.layer_specs) if isinstance(layer, Reservoir)]
        self._fixed = [self.layer_specs[l].generate(self.layers[l]) for l in self._reservoirs]
        self._step = 0
        if self.optimizer == "adam":
            self._m = [np.zeros_like(W) for W in self._W]
            self._v = [np.zeros_like(W) for W in self._W]
        else:
            self._velocity = [np.zeros_like(W) for W in self._W]

    def connections(self) -> list[Connection]:
        """The layers as connection objects (reference.connection) on the current weights."""
        return from_layers(self.layer_specs, self.shapes, self._W, self._fixed)

    # ---- weights and state ------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        return [W.copy() for W in self._W]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace the weights (optimizer state is kept)."""
        weights = list(weights)
        if len(weights) != len(self._W):
            raise ValueError(f"weights must have {len(self._W)} arrays, got {len(weights)}")
        new = []
        for l, (W, shape) in enumerate(zip(weights, self._param_shapes)):
            W = np.array(W, dtype=np.float64, copy=True)
            if W.shape != shape:
                raise ValueError(f"weights[{l}] must have shape {shape}, got {W.shape}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"weights[{l}] must be finite")
            new.append(W)
        self._W = new

    def reservoir_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W_in, W_rec) of each Reservoir layer, bottom up."""
        return [(w_in.copy(), w_rec.copy()) for w_in, w_rec in self._fixed]

    def set_reservoir_weights(self, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the fixed weights of each Reservoir layer (bottom up)."""
        weights = list(weights)
        if len(weights) != len(self._fixed):
            raise ValueError(f"expected {len(self._fixed)} (W_in, W_rec) pairs, got {len(weights)}")
        new = []
        for k, ((w_in, w_rec), (old_in, old_rec)) in enumerate(zip(weights, self._fixed)):
            pair = (np.array(w_in, dtype=np.float64), np.array(w_rec, dtype=np.float64))
            if pair[0].shape != old_in.shape or pair[1].shape != old_rec.shape:
                raise ValueError(f"reservoir weights[{k}] must have shapes {old_in.shape} and {old_rec.shape}")
            new.append(pair)
        self._fixed = new

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights + optimizer state: keys weight.{l}, step, and adam_m.{l}/adam_v.{l} or
        velocity.{l}; reservoir_input.{k}/reservoir_recurrent.{k} of each Reservoir layer."""
        state = {f"weight.{l}": W.copy() for l, W in enumerate(self._W)}
        for k, (w_in, w_rec) in enumerate(self._fixed):
            state[f"reservoir_input.{k}"], state[f"reservoir_recurrent.{k}"] = w_in.copy(), w_rec.copy()
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
        self.set_reservoir_weights([(state[f"reservoir_input.{k}"], state[f"reservoir_recurrent.{k}"])
                                    for k in range(len(self._fixed))])
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

    def _forward_one(self, s_in: np.ndarray, stack: list[Connection]) -> list[np.ndarray]:
        return forward_sample(
            stack, s_in, None, self.tau_m, self.tau_s, self.t_ref, self.lateral_inhibition
        )[0]

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Spike trains of every layer: list of bool (B, T, n_l), neurons in flat order."""
        spikes = self._check_spikes(spikes)
        stack = self.connections()
        per_sample = [self._forward_one(x, stack) for x in spikes]
        return [np.stack([s[l] for s in per_sample]) for l in range(len(stack))]

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
        stack = self.connections()
        for b in range(B):
            grads, info = sample_gradients(
                stack, spikes[b], int(labels[b]),
                tau_m=self.tau_m, tau_s=self.tau_s, t_ref=self.t_ref,
                w0=self.lateral_inhibition, desired=self.desired, undesired=self.undesired,
                margin=self.margin, use_effect_ratio=self.effect_ratio,
                sample_weight=float(weights[b]),
            )
            for acc, g in zip(sums, grads):
                acc += g
            infos.append(info)
        return sums, infos

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

    def forward_backward(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None,
        reduce: str = "sum",
    ) -> dict[str, Any]:
        """Loss, predictions, counts, layer_spikes and the batch sum (or mean) of the per-sample
        SPEC-4 gradients (no regularization), as hm2bp.Network.forward_backward."""
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        sums, infos = self._batch(spikes, labels, sample_weights)
        result = self._report(infos)
        result["loss"] = float(np.mean([info["cost"] for info in infos]))
        result["gradients"] = [g / len(infos) for g in sums] if reduce == "mean" else sums
        return result

    def gradients(
        self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None,
        reduce: str = "mean",
    ) -> list[np.ndarray]:
        """Batch mean (or sum) of the per-sample SPEC-4 gradients (no regularization)."""
        return self.forward_backward(spikes, labels, sample_weights, reduce)["gradients"]

    def apply_gradients(self, grads: Sequence[np.ndarray], lr: float, count: int) -> None:
        """One optimizer step from gradient sums over `count` samples (SPEC 5)."""
        count = check_whole("count", count, 1)
        self._step_from([np.asarray(g, dtype=np.float64) / count for g in grads], check_lr(lr))

    def train_step(
        self,
        spikes: np.ndarray,
        labels: np.ndarray,
        lr: float,
        sample_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """One optimizer step on batch-mean gradient + regularization."""
        lr = check_lr(lr)
        sums, infos = self._batch(spikes, labels, sample_weights)
        self._step_from([g / len(infos) for g in sums], lr)
        result = self._report(infos)
        result["loss"] = float(np.mean([info["cost"] for info in infos]))
        return result

    def _step_from(self, grads: list[np.ndarray], lr: float) -> None:
        """SPEC 5: regularization, then one Adam or SGD step on the batch-mean gradients."""
        self._step += 1
        for l, W in enumerate(self._W):
            g = grads[l] + regularization(W, self.reg_lambda, self.reg_beta, self.weight_limit)
            if self.optimizer == "adam":
                self._W[l], self._m[l], self._v[l] = adam_step(
                    W, g, self._m[l], self._v[l], self._step, lr, self.b1, self.b2, self.eps
                )
            else:
                self._W[l], self._velocity[l] = sgd_step(W, g, self._velocity[l], lr, self.momentum)

    def infer(self, spikes: np.ndarray) -> dict[str, Any]:
        spikes = self._check_spikes(spikes)
        infos = []
        stack = self.connections()
        for x in spikes:
            trains = self._forward_one(x, stack)
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

    def train_step_bsa(self, analog: np.ndarray, labels: np.ndarray, lr: float, *, T: int,
                       sample_weights: np.ndarray | None = None) -> dict[str, Any]:
        return self.train_step(encode_bsa(analog, T), labels, lr, sample_weights)

    def forward_backward_bsa(self, analog: np.ndarray, labels: np.ndarray, *, T: int,
                             sample_weights: np.ndarray | None = None, reduce: str = "sum") -> dict[str, Any]:
        return self.forward_backward(encode_bsa(analog, T), labels, sample_weights, reduce)

    def infer_bsa(self, analog: np.ndarray, *, T: int) -> dict[str, Any]:
        return self.infer(encode_bsa(analog, T))
