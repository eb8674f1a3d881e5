"""The trainer's schedule (SPEC 5, SPEC_CNN 4): learning rate per epoch, boosting, sample order.

Every function here is a pure function of its arguments (seeds included), so the state of
epoch e follows from the checkpoint of epoch e-1 alone and a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LR_RULES",
    "ORDER_MODES",
    "SWAPS_PER_EPOCH",
    "apply_swaps",
    "boost_weights",
    "epoch_order",
    "learning_rate",
]

# "sqrt_max1": the authors' HEAD code and FC logs (SPEC 5); "sqrt_plus1": their CNN logs
# (SPEC_CNN 4 and 8.11); "cosine": not the paper's, a half cosine from lr0 towards 0 over the run's
# epochs, for short runs at batch > 1 where the noise of a high learning rate, not its
# size, limits the last epochs (the fashion recipes).
LR_RULES = ("sqrt_max1", "sqrt_plus1", "cosine")
# "permutation": a fresh full permutation per epoch; "authors": their cumulative partial
# shuffle (common/cuMatrixVector.h:shuffle, 5000 swaps per epoch).
ORDER_MODES = ("permutation", "authors")
SWAPS_PER_EPOCH = 5000
# Keys the swap RNG apart from any other stream seeded by (seed, epoch): "SH" for shuffle.
_SHUFFLE_KEY = 0x5348


def learning_rate(lr0: float, epoch: int, rule: str = "sqrt_max1", epochs: int | None = None) -> float:
    """Learning rate of 0-based `epoch`: lr0 / sqrt(max(epoch, 1)) ("sqrt_max1", SPEC 5),
    lr0 / sqrt(epoch + 1) ("sqrt_plus1", mnist-cnn, SPEC_CNN 4) or, of a run of `epochs` epochs,
    lr0 * (1 + cos(pi * epoch / epochs)) / 2 ("cosine": lr0 in epoch 0, never 0)."""
    if rule == "sqrt_max1":
        return lr0 / math.sqrt(max(epoch, 1))
    if rule == "sqrt_plus1":
        return lr0 / math.sqrt(epoch + 1)
    if rule == "cosine":
        if epochs is None or not 0 <= epoch < epochs:
            raise ValueError(f"the cosine rule needs the run's epochs (> epoch {epoch}), got {epochs!r}")
        return lr0 * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0
    raise ValueError(f"rule must be one of {LR_RULES}, got {rule!r}")


def boost_weights(
    weights: np.ndarray, labels: np.ndarray, predictions: np.ndarray
) -> np.ndarray:
    """One boosting round (SPEC 5): misclassified samples of class c get weight *= exp(err_c/20).

    err_c = (weight of misclassified samples of class c) / (weight of all samples of class c).
    """
    weights = np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels)
    wrong = labels != np.asarray(predictions)
    new = weights.copy()
    for c in np.unique(labels):
        in_c = labels == c
        err_c = weights[in_c & wrong].sum() / weights[in_c].sum()
        new[in_c & wrong] *= math.exp(err_c / 20.0)
    return new


def apply_swaps(order: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A copy of `order` with positions x and y swapped for each row (x, y) of `pairs`, in turn."""
    out = np.asarray(order, dtype=np.int64).tolist()
    _swap(out, np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    return np.array(out, dtype=np.int64)


def _swap(order: list[int], pairs: np.ndarray) -> None:
    # On a Python list: element access is far cheaper than on a NumPy array, one at a time.
    for x, y in pairs.tolist():
        order[x], order[y] = order[y], order[x]


def _authors_swaps(n: int, seed: int, epoch: int) -> np.ndarray:
    """The (x, y) pairs of epoch `epoch`: x = rand() % n, y = rand() % n, 5000 times."""
    draws = np.random.default_rng([seed, _SHUFFLE_KEY, epoch]).integers(
        0, n, size=2 * SWAPS_PER_EPOCH
    )
    return draws.reshape(SWAPS_PER_EPOCH, 2)


def epoch_order(
    n: int,
    seed: int,
    epoch: int,
    previous: np.ndarray | None = None,
    mode: str = "permutation",
) -> np.ndarray:
    """Order (int64 (n,), sample indices) in which 0-based epoch `epoch` visits the n samples.

    "permutation": default_rng([seed, epoch]).permutation(n), independent of `previous`.
    "authors" (SPEC 5, SPEC_CNN 4): epoch e's 5000 swaps applied to epoch e-1's order, epoch 0's
    to the identity. `previous` is epoch e-1's order (what a checkpoint keeps); without it the
    orders of epochs 0..e-1 are replayed, so both calls give the same order.
    """
    if mode == "permutation":
        return np.random.default_rng([seed, epoch]).permutation(n)
    if mode != "authors":
        raise ValueError(f"mode must be one of {ORDER_MODES}, got {mode!r}")
    if previous is None:
        order = np.arange(n, dtype=np.int64)
        first = 0
    else:
        order = np.asarray(previous)
        if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"previous must be a permutation of range({n})")
        first = epoch
    if n == 0:
        return np.zeros(0, dtype=np.int64)  # no swap can be drawn from range(0)
    out = order.tolist()
    for e in range(first, epoch + 1):
        _swap(out, _authors_swaps(n, seed, e))
    return np.array(out, dtype=np.int64)
