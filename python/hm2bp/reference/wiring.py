"""A connection given as the list of its (post, pre) neuron pairs, each with a weight: the form
of the conv and pool connections (SPEC_CNN 1-2), whose sums all run over that list."""

from __future__ import annotations

import numpy as np


class ListedConnection:
    """Connections k: post neuron post[k] sees pre neuron pre[k] through weight w[k]."""

    def __init__(self, post: np.ndarray, pre: np.ndarray, w: np.ndarray, n_out: int, n_in: int) -> None:
        self.post, self.pre, self.w = post, pre, w
        self.n_out, self.n_in = n_out, n_in

    def current(self, s_in: np.ndarray) -> np.ndarray:
        """I[t, o] = sum over o's connections k of w[k] * s_in[t, pre[k]], float64 (T, n_out)."""
        x = np.asarray(s_in, dtype=np.float64)
        I = np.empty((x.shape[0], self.n_out))
        for t in range(x.shape[0]):
            I[t] = self.sum_by_post(self.w * x[t, self.pre])
        return I

    def sum_by_post(self, values: np.ndarray) -> np.ndarray:
        """Per post neuron, the sum of a per-connection value over its connections, in order."""
        return np.bincount(self.post, weights=values, minlength=self.n_out)

    def sum_by_pre(self, values: np.ndarray) -> np.ndarray:
        """Per pre neuron, the sum of a per-connection value (0 for a neuron in no connection)."""
        return np.bincount(self.pre, weights=values, minlength=self.n_in)
