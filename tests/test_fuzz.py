"""Seeded mutation fuzzing of every reader of user files: IDX, N-MNIST events, TOML configs
and checkpoints. Each mutated input must either load or raise the reader's own one-line error
(DatasetError, ConfigError, CheckpointError) - never another exception, a hang or a huge
allocation (tracemalloc bounds what one read may allocate)."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hm2bp import data
from hm2bp.train import checkpoint
from hm2bp.config import ConfigError, build_config, preset
from hm2bp.train.runstate import CheckpointError
from hm2bp.train.trainer import Trainer

TRIALS = 400
MAX_SECONDS = 2.0  # per read


def mutate(rng: np.random.Generator, blob: bytes) -> bytes:
    """One of: truncation, 1-8 bit flips, a huge or zero 32-bit field, inserted or appended
    junk, a copied block."""
    b = bytearray(blob)
    kind = rng.integers(6)
    if kind == 0:
        return bytes(b[:rng.integers(len(b) + 1)])
    if kind == 1:
        for _ in range(rng.integers(1, 9)):
            i = rng.integers(len(b))
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if kind == 2:  # header fields live near the start (IDX dims, zip/npy headers)
        i = int(rng.integers(min(len(b), 64) - 3)) if len(b) > 4 else 0
        b[i:i + 4] = int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, rng.integers(2**32)])
                         ).to_bytes(4, "big")
        return bytes(b)
    if kind == 3:
        i = rng.integers(len(b) + 1)
        return bytes(b[:i]) + rng.bytes(int(rng.integers(1, 64))) + bytes(b[i:])
    if kind == 4:
        return bytes(b) + rng.bytes(int(rng.integers(1, 4096)))
    i, j = sorted(rng.integers(len(b) + 1, size=2))
    k = rng.integers(len(b) + 1)
    return bytes(b[:k]) + bytes(b[i:j]) + bytes(b[k:])


def fuzz(tmp_path: Path, name: str, base: bytes, read: Callable[[Path], object],
         expected: type[BaseException], seed: int, max_alloc: int = 64 << 20) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    outcome = {"loaded": 0, "refused": 0}
    path = tmp_path / name
    for _ in range(TRIALS):
        blob = mutate(rng, base)
        path.write_bytes(blob)
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            read(path)
            outcome["loaded"] += 1
        except expected:
            outcome["refused"] += 1
        except Exception as exc:  # pragma: no cover - the failure this test exists for
            path.with_suffix(".failing").write_bytes(blob)
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc} (input kept in "
                                 f"{path.with_suffix('.failing')})") from exc
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert time.perf_counter() - t0 < MAX_SECONDS
        assert peak < max_alloc, f"{name}: one read allocated {peak} bytes"
    assert outcome["refused"] > 0
    return outcome


def idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x800 + arr.ndim
    return (magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            + arr.tobytes())


@pytest.mark.parametrize("compress", [False, True])
def test_fuzz_idx(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = idx_bytes(rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
    labels = idx_bytes(rng.integers(0, 10, 6).astype(np.uint8))
    for name, base, read in (("images", images, data.read_idx_images),
                             ("labels", labels, data.read_idx_labels)):
        base = gzip.compress(base) if compress else base
        outcome = fuzz(tmp_path, name, base, read, data.DatasetError, seed=1 + compress)
        print(f"IDX {name} {'gzip' if compress else 'raw'}: {outcome}")


def test_fuzz_nmnist_events(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
    p, ts = rng.integers(0, 2, n), np.sort(rng.integers(0, 300_000, n))
    base = np.stack([x, y, (p << 7) | (ts >> 16), (ts >> 8) & 0xFF, ts & 0xFF], 1)
    base = base.astype(np.uint8).tobytes()

    def read(path):
        codes = data.bin_events(data.read_nmnist_events(path), recipe="authors")
        assert codes.dtype == np.int32 and (codes >= 0).all()

    print(f"N-MNIST: {fuzz(tmp_path, 'sample.bin', base, read, data.DatasetError, seed=4)}")


def test_fuzz_toml(tmp_path):
    base = b"""preset = "mnist-mini"
[network]
layers = [784, 30, 10]
T = 60
vth = [5.0, 3.0]
desired = 10
[training]
epochs = 2
batch_size = 4
lr = 0.005
seed = 7
[data]
train_size = 200
"""
    print(f"TOML: {fuzz(tmp_path, 'c.toml', base, lambda p: build_config(None, p), ConfigError, 5)}")


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> tuple[bytes, object]:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    cfg = preset("mnist-mini", layers=[784, 12, 10], T=40, vth=[5.0, 3.0], desired=10,
                 undesired=2, margin=2, train_size=50, test_size=20, batch_size=5, epochs=1,
                 seed=7, backend="cpu")
    tr = Trainer(cfg, out)
    tr.fit()
    return (out / "checkpoint.npz").read_bytes(), tr.net


def test_fuzz_checkpoint(tmp_path, checkpoint_bytes):
    base, net = checkpoint_bytes

    def read(path):
        config, meta, arrays = checkpoint.load_checkpoint(path)
        checkpoint.restore_network(net, arrays, path)  # a loaded state must also restore

    print(f"checkpoint: {fuzz(tmp_path, 'checkpoint.npz', base, read, CheckpointError, 6)}")


def test_gzip_bomb_is_not_inflated_beyond_its_header(tmp_path):
    """A 2-image IDX header followed by 256 MiB of zeros (a ~250 KB file)."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    head = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(head)
        zeros = bytes(1 << 20)
        for _ in range(256):
            fh.write(zeros)
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(data.DatasetError, match="unexpected bytes"):
        data.read_idx_images(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20 and time.perf_counter() - t0 < 2.0, peak
