"""hm2bp.schedule against SPEC 5 and SPEC_CNN 4: learning rate, boosting, training order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hm2bp.train.schedule import apply_swaps, boost_weights, epoch_order, learning_rate

# ------------------------------------------------------------------------- learning rate


def test_learning_rate_sqrt_max1():
    # SPEC 5: lr0 / sqrt(max(e, 1)), the default
    assert learning_rate(0.001, 0) == 0.001
    assert learning_rate(0.001, 1) == 0.001
    assert learning_rate(0.001, 4) == pytest.approx(0.0005)
    assert learning_rate(0.001, 199, "sqrt_max1") == pytest.approx(7.0888e-5, abs=5e-10)


def test_learning_rate_sqrt_plus1():
    # SPEC_CNN 7: lr(0) = 0.001, lr(1) = 0.00070711, lr(199) = 0.00007071 (printed to 8 places)
    assert learning_rate(0.001, 0, "sqrt_plus1") == 0.001
    assert learning_rate(0.001, 1, "sqrt_plus1") == pytest.approx(0.00070711, abs=5e-9)
    assert learning_rate(0.001, 199, "sqrt_plus1") == pytest.approx(0.00007071, abs=5e-9)


def test_learning_rate_cosine():
    # not the paper's: lr0 in epoch 0, half of it half-way, above 0 in the last epoch
    assert learning_rate(0.004, 0, "cosine", 3) == 0.004
    assert learning_rate(0.004, 1, "cosine", 3) == pytest.approx(0.003)
    assert learning_rate(0.004, 2, "cosine", 3) == pytest.approx(0.001)
    assert learning_rate(0.001, 5, "cosine", 10) == pytest.approx(0.0005)
    with pytest.raises(ValueError, match="epochs"):
        learning_rate(0.001, 3, "cosine")
    with pytest.raises(ValueError, match="epochs"):
        learning_rate(0.001, 3, "cosine", 3)


def test_learning_rate_unknown_rule():
    with pytest.raises(ValueError, match="rule"):
        learning_rate(0.001, 3, "step")


# ------------------------------------------------------------------------------ boosting


def test_boosting_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    predictions = np.array([0, 1, 1, 0, 0])
    weights = np.array([1.0, 1.0, 1.0, 2.0, 1.0])
    # class 0: wrong weight 1 of total 2 -> err 0.5; class 1: wrong 2+1 of total 4 -> err 0.75
    new = boost_weights(weights, labels, predictions)
    expected = [1.0, math.exp(0.5 / 20), 1.0, 2 * math.exp(0.75 / 20), math.exp(0.75 / 20)]
    np.testing.assert_allclose(new, expected, rtol=1e-14)
    np.testing.assert_array_equal(weights, [1.0, 1.0, 1.0, 2.0, 1.0])  # not in place


# ----------------------------------------------------------------- order: "permutation"


def test_permutation_order_is_the_trainers():
    # hm2bp.trainer's order of epoch e: default_rng([seed, e]).permutation(n)
    for seed, e in [(0, 0), (5, 2), (123, 199)]:
        np.testing.assert_array_equal(epoch_order(1000, seed, e),
                                      np.random.default_rng([seed, e]).permutation(1000))
    # the same numbers as the trainer has always drawn (pinned against a numpy change)
    np.testing.assert_array_equal(epoch_order(10, 5, 0), [7, 6, 1, 3, 2, 4, 0, 9, 5, 8])
    np.testing.assert_array_equal(epoch_order(10, 5, 3, previous=np.arange(10)),
                                  [9, 1, 0, 3, 4, 2, 7, 8, 6, 5])  # previous is ignored


# --------------------------------------------------------------------- order: "authors"


def test_apply_swaps_by_hand():
    # [0 1 2 3 4] -(0,4)-> [4 1 2 3 0] -(1,1)-> same -(4,2)-> [4 1 0 3 2] -(0,3)-> [3 1 0 4 2]
    order = np.arange(5)
    out = apply_swaps(order, [(0, 4), (1, 1), (4, 2), (0, 3)])
    np.testing.assert_array_equal(out, [3, 1, 0, 4, 2])
    np.testing.assert_array_equal(order, np.arange(5))  # not in place
    np.testing.assert_array_equal(apply_swaps([7, 8, 9], [(2, 0)]), [9, 8, 7])


def test_authors_order_is_5000_seeded_swaps_of_the_previous_order():
    # SPEC 5 / SPEC_CNN 4: x = rand() % n, y = rand() % n, 5000 times, from (seed, "shuffle", e)
    n, seed = 300, 7
    order0 = epoch_order(n, seed, 0, mode="authors")
    for e, previous in [(0, np.arange(n)), (1, order0)]:
        pairs = np.random.default_rng([seed, 0x5348, e]).integers(0, n, 10000).reshape(5000, 2)
        np.testing.assert_array_equal(epoch_order(n, seed, e, previous, mode="authors"),
                                      apply_swaps(previous, pairs))


def test_authors_order_is_a_deterministic_permutation():
    a = epoch_order(1000, 3, 4, mode="authors")
    np.testing.assert_array_equal(a, epoch_order(1000, 3, 4, mode="authors"))
    np.testing.assert_array_equal(np.sort(a), np.arange(1000))
    assert a.dtype == np.int64
    assert not np.array_equal(a, epoch_order(1000, 4, 4, mode="authors"))  # seed matters


def test_authors_order_is_cumulative_and_resumes_exactly():
    n, seed = 2000, 11
    orders = [epoch_order(n, seed, 0, mode="authors")]
    for e in range(1, 4):
        orders.append(epoch_order(n, seed, e, orders[-1], mode="authors"))
    for e in range(4):  # without `previous` the earlier epochs are replayed: the same order
        np.testing.assert_array_equal(epoch_order(n, seed, e, mode="authors"), orders[e])
    # the swaps act on positions: epoch e on any previous order p is p[epoch e on the identity]
    step = epoch_order(n, seed, 3, np.arange(n), mode="authors")
    np.testing.assert_array_equal(orders[3], orders[2][step])


def test_authors_order_moves_about_10000_of_60000_positions():
    # SPEC_CNN 4: 5000 swaps move about 10000 of 60000 positions per epoch
    n = 60000
    previous = epoch_order(n, 0, 0, mode="authors")
    for e, before in [(0, np.arange(n)), (1, previous)]:
        moved = int(np.sum(epoch_order(n, 0, e, before, mode="authors") != before))
        assert 8000 <= moved <= 11000, (e, moved)


def test_order_checks_its_arguments():
    with pytest.raises(ValueError, match="mode"):
        epoch_order(10, 0, 0, mode="shuffle")
    with pytest.raises(ValueError, match="permutation"):
        epoch_order(10, 0, 1, previous=np.zeros(10, dtype=np.int64), mode="authors")
    with pytest.raises(ValueError, match="permutation"):
        epoch_order(10, 0, 1, previous=np.arange(9), mode="authors")
    assert epoch_order(0, 0, 2, mode="authors").shape == (0,)
