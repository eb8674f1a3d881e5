"""Spike sources: where a split's spikes come from, one object per dataset split, each timing
its own engine calls. The fast path encodes images inside the engine (``train_step_images``/
``infer_images``); event data (``batch_spikes`` + ``train_step``), augmented images and networks
without the image fast path (explicit encoding + ``train_step``, e.g. hm2bp.reference) have their
own. Where the network has ``train_steps_images`` (hm2bp.Network), the image sources also train
several consecutive batches in one engine call (``train_batches``; ``sequences`` says so). A
source trains through a `LearningStep`, the network with the epoch's learning rate
bound, so that the rate never passes through the sources. ``evaluate`` runs a network over all
samples of a source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from ..data import augment
from ..model.network import encode_poisson

__all__ = ["TEST_SEED_OFFSET", "AugmentedImageSource", "EncodedImageSource", "EventSource", "ImageSource",
           "LearningStep", "Source", "epoch_batches", "evaluate", "make_source"]

# Test spikes use seed + TEST_SEED_OFFSET so that train and test sample i are independent.
TEST_SEED_OFFSET = 1


class LearningStep:
    """A network's training calls with the learning rate of the epoch bound (the trainer makes
    one per epoch from SPEC 5's schedule)."""

    def __init__(self, net: Any, lr: float):
        self.net, self.lr = net, lr

    def train_step(self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None) -> dict:
        return self.net.train_step(spikes, labels, self.lr, sample_weights=sample_weights)

    def train_step_images(self, images: np.ndarray, labels: np.ndarray, **encoding: Any) -> dict:
        """encoding: T, seed, sample_index, epoch, sample_weights (Network.train_step_images)."""
        return self.net.train_step_images(images, labels, self.lr, **encoding)

    def train_steps_images(self, images: np.ndarray, labels: np.ndarray, **encoding: Any) -> dict:
        """encoding: batch_size, T, seed, sample_index, epoch, sample_weights, augment
        (Network.train_steps_images)."""
        return self.net.train_steps_images(images, labels, self.lr, **encoding)


class Source(Protocol):
    labels: np.ndarray
    engine_seconds: float

    def train(self, step: LearningStep, idx: np.ndarray, epoch: int, weights: np.ndarray | None) -> dict: ...

    def infer(self, net: Any, idx: np.ndarray) -> dict: ...

    def spikes(self, idx: np.ndarray) -> np.ndarray: ...


class ImageSource:
    """Static images, Poisson-encoded inside the engine (train_step_images/infer_images).
    sequences: the network has train_steps_images, and train_batches may be used."""

    augment: Any = None  # AugmentedImageSource's AugmentConfig

    def __init__(self, dataset: Any, T: int, seed: int, reencode: bool = False, sequences: bool = False):
        self.images = np.ascontiguousarray(dataset.images, dtype=np.uint8)
        self.labels = np.asarray(dataset.labels, dtype=np.int64)
        self.T, self.seed, self.reencode = T, seed, reencode
        self.sequences = sequences
        self.engine_seconds = 0.0

    def _epoch(self, epoch: int) -> int:
        # The reference encodes once and reuses the train; re-encoding keys spikes by epoch.
        return epoch if self.reencode else 0

    def train(self, step, idx, epoch, weights):
        images, labels = self.images[idx], self.labels[idx]
        t0 = time.perf_counter()
        out = step.train_step_images(images, labels, T=self.T, seed=self.seed,
                                     sample_index=idx, epoch=self._epoch(epoch),
                                     sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def train_batches(self, step: LearningStep, idx: np.ndarray, epoch: int, weights: np.ndarray | None,
                      batch_size: int) -> dict:
        """The consecutive batches of batch_size in idx, trained in one engine call (each as
        `train` trains it): per batch "loss" and "layer_spikes", per sample "predictions"."""
        images, labels = self.images[idx], self.labels[idx]
        t0 = time.perf_counter()
        out = step.train_steps_images(images, labels, batch_size=batch_size, T=self.T, seed=self.seed,
                                      sample_index=idx, epoch=self._epoch(epoch), sample_weights=weights,
                                      augment=self.augment)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        images = self.images[idx]
        t0 = time.perf_counter()
        out = net.infer_images(images, T=self.T, seed=self.seed, sample_index=idx, epoch=0)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        return encode_poisson(self.images[idx], self.T, self.seed, idx, 0)


class EncodedImageSource(ImageSource):
    """Static images encoded in Python, for networks without the *_images fast path."""

    def __init__(self, dataset: Any, T: int, seed: int, reencode: bool = False,
                 encode: Callable[..., np.ndarray] | None = None):
        super().__init__(dataset, T, seed, reencode)  # no sequences: train encodes in Python
        self.encode = encode_poisson if encode is None else encode

    def _encode(self, idx: np.ndarray, epoch: int) -> np.ndarray:
        return self.encode(self.images[idx], self.T, self.seed, idx, epoch)

    def train(self, step, idx, epoch, weights):
        spikes = self._encode(idx, self._epoch(epoch))
        t0 = time.perf_counter()
        out = step.train_step(spikes, self.labels[idx], sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        spikes = self._encode(idx, 0)
        t0 = time.perf_counter()
        out = net.infer(spikes)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        return self._encode(idx, 0)


class EventSource:
    """Event data (N-MNIST): spike trains come from the dataset (batch_spikes)."""

    def __init__(self, dataset: Any, T: int):
        self.dataset = dataset
        self.labels = np.asarray(dataset.labels, dtype=np.int64)
        self.T = T
        self.engine_seconds = 0.0

    def train(self, step, idx, epoch, weights):
        spikes = self.dataset.batch_spikes(idx, self.T)
        t0 = time.perf_counter()
        out = step.train_step(spikes, self.labels[idx], sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        spikes = self.dataset.batch_spikes(idx, self.T)
        t0 = time.perf_counter()
        out = net.infer(spikes)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        return self.dataset.batch_spikes(idx, self.T)


class AugmentedImageSource(ImageSource):
    """Training images warped by a displacement map of the epoch (or of each sample) and
    Poisson-encoded from the warped rates, fresh trains every epoch (SPEC_CNN 5); both in C++
    (hm2bp.data.augment), or in train_batches inside the engine call. Inference sees the
    images as they are."""

    def __init__(self, dataset: Any, T: int, seed: int, augment: Any, sequences: bool = False):
        super().__init__(dataset, T, seed, reencode=True, sequences=sequences)
        self.augment = augment

    def train(self, step, idx, epoch, weights):
        rates = augment.augment(self.images[idx], self.seed, epoch, idx, self.augment)
        spikes = augment.encode_rates(rates, self.T, self.seed, idx, epoch)
        t0 = time.perf_counter()
        out = step.train_step(spikes, self.labels[idx], sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out


def make_source(dataset: Any, net: Any, T: int, seed: int, reencode: bool = False,
                encode: Callable[..., np.ndarray] | None = None, augment: Any = None) -> Source:
    """Pick the spike source for a dataset and a network (fast image path when available);
    augment: an enabled hm2bp.data.augment.AugmentConfig for training images."""
    if not getattr(dataset, "is_images", True):
        return EventSource(dataset, T)
    sequences = hasattr(net, "train_steps_images")
    if augment is not None:
        return AugmentedImageSource(dataset, T, seed, augment, sequences)
    if encode is None and hasattr(net, "train_step_images"):
        return ImageSource(dataset, T, seed, reencode, sequences)
    return EncodedImageSource(dataset, T, seed, reencode, encode)


# Batches per engine call of a source with sequences: about this many seconds of training each
# (an interrupt waits for at most one call), at most MAX_SEQUENCE batches.
SEQUENCE_SECONDS = 0.1
MAX_SEQUENCE = 256


def epoch_batches(src: Source, step: LearningStep, order: np.ndarray, epoch: int, weights: np.ndarray | None,
                  batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Train an epoch's batches in order: (sample indices, result) of each. A source with
    sequences trains runs of consecutive batches in one engine call (train_batches: each
    batch bit for bit as alone, less Python and engine overhead per batch at batch 1), as
    many as take about SEQUENCE_SECONDS (measured as the epoch goes), so that progress,
    Ctrl-C (checked between calls) and the metrics stay those of single batches."""
    n, bs = len(order), batch_size
    per_call, start = 1, 0
    while start < n:
        idx = order[start:start + bs * per_call]
        w = None if weights is None else weights[idx]
        if not getattr(src, "sequences", False):
            yield idx, src.train(step, idx, epoch, w)
            start += len(idx)
            continue
        t0 = time.perf_counter()
        out = src.train_batches(step, idx, epoch, w, bs)
        seconds = time.perf_counter() - t0
        for k, loss in enumerate(out["loss"]):
            part = slice(k * bs, (k + 1) * bs)
            yield idx[part], {"loss": loss, "predictions": out["predictions"][part],
                              "layer_spikes": out["layer_spikes"][k]}
        start += len(idx)
        batches = len(out["loss"])
        per_call = max(1, min(MAX_SEQUENCE, int(SEQUENCE_SECONDS * batches / max(seconds, 1e-9))))


def evaluate(net: Any, source: Source, n_classes: int, batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, predictions, confusion matrix (rows: label, columns: prediction) and total
    spikes per layer over all samples of a source; no learning."""
    labels = source.labels
    n = len(labels)
    predictions = np.empty(n, dtype=np.int64)
    layer_spikes = None
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        out = source.infer(net, idx)
        predictions[idx] = out["predictions"]
        spikes = np.asarray(out["layer_spikes"], dtype=np.int64)
        layer_spikes = spikes if layer_spikes is None else layer_spikes + spikes
    confusion = np.bincount(labels * n_classes + predictions,
                            minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return {
        "accuracy": float(np.mean(predictions == labels)) if n else 0.0,
        "predictions": predictions,
        "confusion": confusion,
        "layer_spikes": layer_spikes,
    }
