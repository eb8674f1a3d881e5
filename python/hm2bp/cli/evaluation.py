"""What ``hm2bp-eval`` evaluates and how it prints it: the samples of its --split as the trainer
saw them, and the confusion matrix as text."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import ConfigError, RunConfig
from ..data import stratified_sample
from ..train import validation
from ..train.build import load_split
from ..train.sources import TEST_SEED_OFFSET

__all__ = ["eval_samples", "format_confusion"]


def format_confusion(confusion: np.ndarray) -> str:
    """Confusion matrix as text: rows are labels, columns predictions."""
    k = confusion.shape[0]
    w = max(len(str(int(confusion.max()))), len(str(k - 1))) + 1
    lines = ["label\\pred " + "".join(f"{c:>{w}}" for c in range(k))]
    for r in range(k):
        lines.append(f"{r:>10} " + "".join(f"{int(v):>{w}}" for v in confusion[r]))
    return "\n".join(lines)


def eval_samples(config: RunConfig, split: str, limit: int | None) -> tuple[Any, int]:
    """(dataset, spike seed) of hm2bp-eval's --split, as the trainer saw them; with a validation
    split, "train" is the part trained on and "val" the held-out part (their --limit: a
    class-stratified sample of that part)."""
    if split == "test" or (split == "train" and config.val_split == 0):
        size = limit if limit is not None else getattr(config, f"{split}_size")
        return load_split(config, split, size), config.seed + (TEST_SEED_OFFSET if split == "test" else 0)
    if config.val_split == 0:
        raise ConfigError("--split val: this run held out no validation set (val_split = 0); "
                          "use --split train or test")
    trained, held = validation.split(load_split(config, "train", config.train_size), config.val_split,
                                     config.seed)
    dataset = held if split == "val" else trained
    seed = config.seed + (validation.VAL_SEED_OFFSET if split == "val" else 0)
    if limit is not None and limit < len(dataset):
        dataset = dataset.subset(stratified_sample(dataset.labels, limit, [config.seed, 0]))
    return dataset, seed
