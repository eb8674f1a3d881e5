"""Training on a sequence of consecutive batches in one engine call (`Network.train_steps_images`).

At batch 1, the paper's setting, one call per sample spent a sizeable share of each sample in
Python and the binding (argument checks, result dicts) and in input work done before the engine
ran; one call for many samples checks its arguments once, releases the GIL once, and lets the CPU
engine make the next samples' input spikes ahead on all its threads. Each batch trains exactly as
`train_step_images` (or, augmented, `train_step` on `encode_rates(augment(...))`) would train it
alone: the same weights, moments, losses, predictions and spike counts, bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import limits
from .arrays import check_images, check_sample_index
from .hyper import check_lr, check_whole

Array = np.ndarray


class SequenceTraining:
    """Network's sequence call (a mixin: it uses the engine and the checks of `Network`)."""

    def train_steps_images(self, images: Array, labels: Array, lr: float, *, batch_size: int, T: int, seed: int,
                           sample_index: int | Sequence[int] | Array, epoch: int = 0,
                           sample_weights: Array | None = None, augment: Any = None) -> dict:
        """train_step_images on consecutive batches of `batch_size` of the n images (the last one
        may be shorter), all in one engine call: one optimizer step per batch, each batch
        exactly as train_step_images would train it alone (sample_index, sample_weights and
        labels: n entries, split the same way).

        augment: a hm2bp.data.augment.AugmentConfig: the images are warped (SPEC_CNN 5, the
        epoch's map or each sample's) and their rates Poisson-encoded, the spikes of
        ``encode_rates(augment(images, seed, epoch, sample_index, augment), T, seed,
        sample_index, epoch)`` (then each batch as train_step on them).

        Returns per batch "loss" (n_batches,) and "layer_spikes" (n_batches, n_layers), per
        sample "predictions" (n,) and "counts" (n, n_out). FloatingPointError when a step left a
        weight non-finite: the batches after it were not trained."""
        images = check_images(images, self.layers[0])
        n = images.shape[0]
        batch_size = check_whole("batch_size", batch_size, 1)
        index = check_sample_index(sample_index, n)
        T, _ = self._check_run(min(batch_size, n), T, None)
        self._check_learning_T(T)
        args = None
        if augment is not None:
            args = augment._core_args()  # hm2bp.data.augment's, checked by its AugmentConfig
        out = self._engine.train_steps_images(
            images, T, check_whole("seed", seed, 0, limits.UINT64_MAX), index,
            check_whole("epoch", epoch, 0, limits.UINT64_MAX),
            self._check_labels(labels, n), self._check_sample_weights(sample_weights, n), check_lr(lr),
            batch_size, args)
        self._check_stepped()
        return {"loss": out["loss"], "predictions": out["predictions"], "counts": out["counts"],
                "layer_spikes": out["layer_spikes"]}
