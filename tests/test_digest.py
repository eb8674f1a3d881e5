"""Bit-identity guard for refactors: SHA-256 digests of the weights, Adam moments, losses and counts
after several training steps of the FC networks, float32 and float64, batch 1 and 32, 1 and 2
threads. The stored digests were taken from the engine before a refactor; a change that is meant
to keep every result bit for bit must keep them. A change that is meant to alter results (a new
rule, a fidelity fix) regenerates them on purpose:

    python tests/test_digest.py --update        # rewrites tests/digests.json

SGD is not covered (its form changed on purpose with the layer architecture, SPEC 5)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import hm2bp
from hm2bp import data

DIGESTS = Path(__file__).with_name("digests.json")

# (name, layers, vth, T, batch, threads, dtype); the hidden widths cover full vectors, a partial
# last vector and several mask words.
CASES = [
    (f"{name}-{dtype}-b{batch}-t{threads}", layers, vth, T, batch, threads, dtype)
    for name, layers, vth, T in [
        ("fc120", [784, 120, 10], [20.0, 8.0], 120),
        ("fc90x70", [784, 90, 70, 10], [20.0, 20.0, 8.0], 100),
    ]
    for dtype in ("float32", "float64")
    for batch, threads in [(1, 1), (32, 1), (32, 2), (1, 2)]
]


def _run(layers, vth, T, batch, threads, dtype) -> str:
    train = data.load("mnist-mini", "train")
    net = hm2bp.Network(layers=layers, vth=vth, dtype=dtype, threads=threads, seed=3)
    h = hashlib.sha256()
    steps = 4 if batch > 1 else 24
    for k in range(steps):
        idx = np.arange(k * batch, (k + 1) * batch)
        out = net.train_step_images(train.images[idx], train.labels[idx], lr=0.004, T=T, seed=5,
                                    sample_index=idx)
        h.update(np.float64(out["loss"]).tobytes())
        h.update(np.ascontiguousarray(out["counts"], dtype=np.int64).tobytes())
    # the dense-spike path and the gradients call
    idx = np.arange(200, 200 + batch)
    spikes = hm2bp.encode_poisson(train.images[idx], T, 7, idx)
    out = net.train_step(spikes, train.labels[idx], lr=0.002)
    h.update(np.ascontiguousarray(out["counts"], dtype=np.int64).tobytes())
    for g in net.gradients(spikes, train.labels[idx]):
        h.update(np.ascontiguousarray(g, dtype=np.float64).tobytes())
    state = net.get_state()
    for key in sorted(state):
        h.update(key.encode())
        h.update(np.ascontiguousarray(state[key]).tobytes())
    return h.hexdigest()


def _stored() -> dict[str, str]:
    return json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_training_is_bit_identical_to_the_stored_digest(case):
    name, *args = case
    stored = _stored()
    if name not in stored:
        pytest.fail(f"no stored digest for {name}: run python tests/test_digest.py --update")
    assert _run(*args) == stored[name], f"{name}: results changed (not bit-identical)"


if __name__ == "__main__":
    if "--update" not in sys.argv:
        sys.exit("usage: python tests/test_digest.py --update")
    DIGESTS.write_text(json.dumps({c[0]: _run(*c[1:]) for c in CASES}, indent=1) + "\n")
    print(f"wrote {DIGESTS}")
