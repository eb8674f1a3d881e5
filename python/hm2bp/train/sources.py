"""Spike sources: where a split's spikes come from, one object per dataset split, each timing
its own engine calls. The fast path encodes images inside the engine (``train_step_images``/
``infer_images``); event data (``batch_spikes`` + ``train_step``), augmented images and networks
without the image fast path (explicit encoding + ``train_step``, e.g. hm2bp.reference) have their
own. A source trains through a `LearningStep`, the network with the epoch's learning rate
bound, so that the rate never passes through the sources. ``evaluate`` runs a network over all
samples of a source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ..data import augment
from ..model.network import encode_poisson

__all__ = ["TEST_SEED_OFFSET", "AugmentedImageSource", "EncodedImageSource", "EventSource", "ImageSource",
           "LearningStep", "Source", "evaluate", "make_source"]

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


class Source(Protocol):
    labels: np.ndarray
    engine_seconds: float

    def train(self, step: LearningStep, idx: np.ndarray, epoch: int, weights: np.ndarray | None) -> dict: ...

    def infer(self, net: Any, idx: np.ndarray) -> dict: ...

    def spikes(self, idx: np.ndarray) -> np.ndarray: ...


class ImageSource:
    """Static images, Poisson-encoded inside the engine (train_step_images/infer_images)."""

    def __init__(self, dataset: Any, T: int, seed: int, reencode: bool = False):
        self.images = np.ascontiguousarray(dataset.images, dtype=np.uint8)
        self.labels = np.asarray(dataset.labels, dtype=np.int64)
        self.T, self.seed, self.reencode = T, seed, reencode
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
        super().__init__(dataset, T, seed, reencode)
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
    (hm2bp.data.augment). Inference sees the images as they are."""

    def __init__(self, dataset: Any, T: int, seed: int, augment: Any):
        super().__init__(dataset, T, seed, reencode=True)
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
    if augment is not None:
        return AugmentedImageSource(dataset, T, seed, augment)
    if encode is None and hasattr(net, "train_step_images"):
        return ImageSource(dataset, T, seed, reencode)
    return EncodedImageSource(dataset, T, seed, reencode, encode)



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
