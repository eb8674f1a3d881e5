"""SPEC 5: weight regularization and the optimizers (Adam, SGD with momentum)."""

from __future__ import annotations

import numpy as np


def regularization(
    W: np.ndarray, reg_lambda: float, reg_beta: float, weight_limit: float
) -> np.ndarray:
    """reg_lambda*reg_beta*(W/limit)*exp(reg_beta*(q[o]-1)), q[o] = mean_i (W[o,i]/limit)^2.

    o is the first axis: a dense post neuron (W (O, N)) or a conv output channel, whose mean runs
    over all its (c, i, j) (W (O, C, K, K); SPEC_CNN 4).
    """
    W = np.asarray(W, dtype=np.float64)
    scaled = W / weight_limit
    per_o = tuple(range(1, W.ndim))
    q = np.mean(scaled**2, axis=per_o, keepdims=True)
    return reg_lambda * reg_beta * scaled * np.exp(reg_beta * (q - 1.0))


def adam_step(
    W: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bias-corrected Adam; step counts from 1. Returns new (W, m, v)."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (Adam counts from 1), got {step}")
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1**step)
    v_hat = v / (1.0 - b2**step)
    return W - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def sgd_step(
    W: np.ndarray, g: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """velocity = momentum*velocity + lr*g; W -= velocity (the authors' form, SPEC 5: the learning
    rate inside the velocity). Returns new (W, velocity)."""
    velocity = momentum * velocity + lr * g
    return W - velocity, velocity
