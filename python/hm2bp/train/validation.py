"""The optional validation set (RunConfig.val_split): a class-stratified share of the training
set held out by seed, evaluated after every epoch, and the best epoch it selects.

The split is a function of the training set and the config alone (``seed``, ``val_split``), so
a resumed run holds out the same samples. With a validation set the best epoch (``best_epoch``,
whose state the trainer keeps in ``best.npz``) is the one with the highest validation accuracy,
and the test accuracy is still reported for every epoch; without one the best epoch is the best
test epoch, as the authors select it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import data
from ..config import ConfigError

__all__ = ["BEST_FILE", "VAL_SEED_OFFSET", "Validation", "held_out", "split"]

BEST_FILE = "best.npz"
# Validation spikes use seed + VAL_SEED_OFFSET (training: seed, test: seed + 1).
VAL_SEED_OFFSET = 2
# stratified_sample keys [seed, k]: k = 0, 1 are the train/test samples (data.SPLITS).
_SPLIT_KEY = len(data.SPLITS)


def held_out(n: int, share: float) -> int:
    """How many of n training samples the validation set takes."""
    return round(share * n)


def split(dataset: Any, share: float, seed: int) -> tuple[Any, Any | None]:
    """(training part, validation part) of a training set; (dataset, None) for share 0. The
    validation part is round(share * n) samples, class-stratified, drawn with seed; both parts
    keep the dataset's order."""
    if share == 0:
        return dataset, None
    n = len(dataset)
    n_val = held_out(n, share)
    if not 1 <= n_val < n:
        raise ConfigError(f"invalid val_split = {share}: {n_val} of the {n} training samples would "
                         f"be held out; choose a share that leaves at least one on each side")
    val_idx = data.stratified_sample(dataset.labels, n_val, [seed, _SPLIT_KEY])
    keep = np.setdiff1d(np.arange(n), val_idx, assume_unique=True)
    return dataset.subset(keep), dataset.subset(val_idx)


class Validation:
    """Evaluates the validation set after each epoch and tracks the best validation epoch.

    source: the hm2bp.train.sources spike source of the validation set. The tracked values travel
    in checkpoints through state() / restore()."""

    def __init__(self, dataset: Any, source: Any):
        self.dataset, self.source = dataset, source
        self.best_accuracy: float | None = None
        self.best_epoch: int | None = None
        self.test_at_best: float | None = None  # the test accuracy of the best epoch

    def after_epoch(self, evaluate: Any, epoch: int, test_accuracy: float) -> dict[str, Any]:
        """Evaluate (evaluate(source) -> accuracy) after 1-based `epoch`; the metrics to log."""
        accuracy = evaluate(self.source)
        if self.best_accuracy is None or accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch, self.test_at_best = accuracy, epoch, test_accuracy
        return {"val_accuracy": accuracy, "best_val_accuracy": self.best_accuracy,
                "test_accuracy_at_best": self.test_at_best}

    def state(self) -> dict[str, Any]:
        return {"n_val": len(self.dataset), "best_val_accuracy": self.best_accuracy,
                "best_val_epoch": self.best_epoch, "test_accuracy_at_best": self.test_at_best}

    def restore(self, meta: dict[str, Any]) -> None:
        """Take the tracked values from a checkpoint's metadata (written by state())."""
        if meta.get("n_val") != len(self.dataset):
            raise ValueError(f"the checkpoint held out {meta.get('n_val')} validation samples, "
                             f"the config now holds out {len(self.dataset)}")
        for key in ("best_val_accuracy", "test_accuracy_at_best"):
            value = meta.get(key)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                      or not 0 <= value <= 1):
                raise ValueError(f"metadata {key!r} = {value!r} is not an accuracy")
        epoch = meta.get("best_val_epoch")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1):
            raise ValueError(f"metadata 'best_val_epoch' = {epoch!r} is not an epoch")
        self.best_accuracy, self.best_epoch = meta.get("best_val_accuracy"), epoch
        self.test_at_best = meta.get("test_accuracy_at_best")
