"""Shared helpers of the benchmark: imports, data, spikes, timing, memory, machine info, and the
runner factory that gives every row (hm2bp engine, NumPy, peer frameworks) one interface.

A runner has ``prepare(spikes, labels) -> batch`` (conversion to the framework's own input
format, done once and never timed), ``train(batch) -> dict`` (one optimizer step) and
``infer(batch) -> dict`` (forward only). hm2bp and NumPy return the engine's dict (loss,
predictions, counts, layer_spikes); the peers return loss (train) or predictions (infer).
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "mnist-10k"

# mnist-fc800 (SPEC 7): the network every row of the main table trains.
LAYERS = (784, 800, 10)
VTH = (20.0, 8.0)
T_STEPS = 400
HM2BP_LR = 1e-3  # SPEC 5 lr0
SEED = 0

HM2BP_ROWS = ("hm2bp-cpu", "hm2bp-cpu-1thread", "hm2bp-cuda")
PEER_ROWS = ("snntorch", "spikingjelly", "norse")
ROWS = HM2BP_ROWS + ("numpy",) + PEER_ROWS


class Skipped(Exception):
    """A row cannot run here (framework missing, no GPU, ...); the message is the reason."""


def hm2bp_module(name: str) -> Any:
    """hm2bp.<name> for the pure-Python modules (reference, train.schedule, data, config).

    Falls back to importing python/hm2bp/<name> (a module or a package) under a stand-in
    parent package that skips hm2bp/__init__.py when the package cannot be imported (engine
    not built yet), so the NumPy and peer rows still run.
    """
    try:
        return importlib.import_module("hm2bp." + name)
    except ImportError:
        if "_bench_hm2bp" not in sys.modules:
            parent = types.ModuleType("_bench_hm2bp")
            parent.__path__ = [str(REPO / "python" / "hm2bp")]
            sys.modules["_bench_hm2bp"] = parent
        return importlib.import_module("_bench_hm2bp." + name)


def import_engine() -> Any:
    """hm2bp with its compiled engine, or Skipped with the import error."""
    try:
        hm2bp = importlib.import_module("hm2bp")
        hm2bp.Network  # noqa: B018 - the engine class must exist, not just the package
        hm2bp.build_info()
    except Exception as exc:  # ImportError, AttributeError: engine not built or broken
        raise Skipped(f"hm2bp engine not importable: {type(exc).__name__}: {exc}") from None
    return hm2bp


def encode_poisson(images: np.ndarray, T: int, seed: int, sample_index: Any) -> np.ndarray:
    """Contract Poisson spikes bool (B, T, n_in): the engine's encoder when built, else the
    bit-identical NumPy one of hm2bp.reference."""
    try:
        return import_engine().encode_poisson(images, T, seed, sample_index, 0)
    except Skipped:
        return hm2bp_module("reference").encode_poisson(images, T, seed, sample_index, 0)


_U64 = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer of the contract RNG (uint64, wrap-around intended)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=_U64) + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def encode_rate_scaled(
    images: np.ndarray, T: int, seed: int, first_index: int, rate_scale: float
) -> np.ndarray:
    """Poisson spikes with the contract RNG but rate = rate_scale * p / (5.5 * 255).

    Why our own encoder: scaling the images instead would clip bright pixels at 255, so "2x"
    would not double the rate. rate_scale == 1 gives exactly hm2bp.encode_poisson.
    """
    if rate_scale <= 0:
        raise ValueError(f"rate_scale must be > 0, got {rate_scale}")
    pixels = images.reshape(len(images), -1)
    B, n_in = pixels.shape
    rate = np.minimum(pixels.astype(np.float64) / (5.5 * 255.0) * rate_scale, 1.0)
    limit = np.ceil(rate * 2.0**53).astype(_U64)
    samples = np.arange(first_index, first_index + B, dtype=_U64)
    keys = _mix(_mix(_mix(_U64(seed)) ^ samples) ^ _U64(0))
    neurons = np.arange(n_in, dtype=_U64)
    steps = np.arange(T, dtype=_U64)
    out = np.zeros((B, T, n_in), dtype=bool)
    for b in range(B):
        bits = _mix(_mix(keys[b] ^ neurons)[None, :] ^ steps[:, None])
        out[b] = (bits >> _U64(11)) < limit[b][None, :]
    out[:, 0] = False  # never at t = 0
    return out


def load_mnist(split: str, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """mnist-10k split through hm2bp.data (no download: the files are on disk)."""
    return hm2bp_module("data").load("mnist", split, data_dir=data_dir or DEFAULT_DATA_DIR,
                                     download=False)


def pretrain(digits: Any, first: int, count: int, train: Callable[[slice], Any], batch: int) -> None:
    """Train (untimed) on digits [first, first + count), a batch at a time (train(slice)), so
    that a benchmark's training paths time a network in training: from random weights the first
    few hundred samples fire differently (the output layer is silent, few hidden neurons fire),
    and newer engines run them faster than training (presumably skipping spike-driven work)."""
    if first + count > len(digits):
        raise ValueError(f"--trained {count}: only {len(digits) - first} digits after the timed {first}")
    for k in range(first, first + count, batch):
        train(slice(k, min(k + batch, first + count)))


def bench_samples(
    n: int, T: int, data_dir: str | os.PathLike[str] | None = None, rate_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The first n mnist-10k training digits as (spikes bool (n, T, 784), labels int64)."""
    ds = load_mnist("train", data_dir)
    if n > len(ds):
        raise ValueError(f"samples must be <= {len(ds)}, got {n}")
    images = ds.images[:n]
    if rate_scale == 1.0:
        spikes = encode_poisson(images, T, SEED, 0)
    else:
        spikes = encode_rate_scaled(images, T, SEED, 0, rate_scale)
    return spikes, ds.labels[:n].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# runners


class _Hm2bpRunner:
    """hm2bp.Network (engine) or NumpyHM2BP: both take NumPy spikes (B, T, N) directly."""

    def __init__(self, net: Any, lr: float) -> None:
        self.net, self.lr = net, lr
        self.initial = net.get_state() if hasattr(net, "get_state") else None

    def restart(self) -> None:
        """Back to the initial weights and optimizer state (see throughput)."""
        if self.initial is not None:
            self.net.set_state(self.initial)

    def prepare(self, spikes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(spikes), np.ascontiguousarray(labels, dtype=np.int64)

    def train(self, batch: tuple[np.ndarray, np.ndarray]) -> dict:
        return self.net.train_step(batch[0], batch[1], self.lr)

    def infer(self, batch: tuple[np.ndarray, np.ndarray]) -> dict:
        return self.net.infer(batch[0])


def make_runner(
    name: str,
    layers: Sequence[int] = LAYERS,
    vth: Sequence[float] = VTH,
    T: int = T_STEPS,
    threads: int | None = None,
    peer_device: str = "auto",
) -> tuple[Any, dict[str, Any]]:
    """(runner, facts about it) for a row name; Skipped when it cannot run here.

    threads: hm2bp-cpu and the peers default to all cores (os.cpu_count()).
    peer_device: torch device of the peer frameworks ("cpu", "cuda", or "auto": cuda when
    torch sees a GPU).
    """
    layers, vth = list(layers), list(vth)
    if name in HM2BP_ROWS:
        hm2bp = import_engine()
        kw: dict[str, Any] = dict(layers=layers, vth=vth, dtype="float32", seed=SEED)
        if name == "hm2bp-cuda":
            device = hm2bp.build_info().get("cuda_device")
            if device is None:
                raise Skipped("no usable CUDA device (hm2bp.build_info()['cuda_device'] is None)")
            kw["backend"] = "cuda"
            facts = {"device": str(device)}
        else:
            kw["backend"] = "cpu"
            kw["threads"] = 1 if name == "hm2bp-cpu-1thread" else threads
            facts = {"device": "cpu", "threads": kw["threads"] or os.cpu_count()}
        facts.update(dtype="float32", lr=HM2BP_LR)
        return _Hm2bpRunner(hm2bp.Network(**kw), HM2BP_LR), facts
    if name == "numpy":
        from .numpy_hm2bp import NumpyHM2BP

        facts = {"device": "cpu", "dtype": "float64", "lr": HM2BP_LR,
                 "threads": "BLAS default (" + blas_threads() + ")"}
        return _Hm2bpRunner(NumpyHM2BP(layers=layers, vth=vth, seed=SEED), HM2BP_LR), facts
    if name in PEER_ROWS:
        from . import peers

        return peers.make(name, layers, T, threads or os.cpu_count() or 1, peer_device)
    raise ValueError(f"row must be one of {', '.join(ROWS)}, got {name!r}")


# ---------------------------------------------------------------------------------------------
# timing and memory


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread (min, max) of repeated samples/s measurements."""
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# What a repeat is timed by: wall-clock seconds, or the CPU seconds of this process (all its
# threads; at 1 thread a measure of the work that other processes on a loaded machine barely
# disturb, at several threads a sum over threads, not a speed).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


class Repeats:
    """Timed repeats of `step` (one batch per call), each giving samples/s (per second of
    `clock`); the position in `batches` carries over from one repeat to the next.

    Each repeat cycles through `batches` until at least one batch ran and `min_seconds`
    passed, so fast and slow rows both get a stable number without a fixed sample count.
    sync: waits for queued device work (CUDA) before the clock is read.
    restart: called, untimed, before every pass over `batches` (hm2bp training restarts from
    its initial weights, so that it never fits the few bench samples: a network that has
    learned a sample skips its backward pass, which would flatter the measurement).
    """

    def __init__(self, step: Callable[[Any], Any], batches: Sequence[Any], batch_size: int, *,
                 min_seconds: float, sync: Callable[[], None] | None = None,
                 restart: Callable[[], None] | None = None, clock: str = "wall") -> None:
        self.step, self.batches, self.batch_size = step, batches, batch_size
        self.min_seconds, self.sync, self.restart = min_seconds, sync, restart
        self.clock = CLOCKS[clock]
        self.k = 0  # batches run so far

    def warm_up(self, calls: int) -> None:
        """`calls` untimed steps."""
        for _ in range(calls):
            self.step(self.batches[self.k % len(self.batches)])
            self.k += 1
        if self.sync:
            self.sync()

    def _step(self) -> float:
        """The next batch's step (after an untimed restart at the start of a pass): its seconds."""
        if self.restart and self.k % len(self.batches) == 0:
            self.restart()
            if self.sync:
                self.sync()
        t0 = self.clock()
        self.step(self.batches[self.k % len(self.batches)])
        if self.sync:
            self.sync()
        self.k += 1
        return self.clock() - t0

    def timed(self, calls: int) -> float:
        """Exactly `calls` steps, continuing through `batches` (restarts untimed): seconds of
        `clock` they took (bench.ab's interleaved chunks, which must do the same work on both
        builds)."""
        return sum(self._step() for _ in range(calls))

    def repeat(self) -> float:
        """One timed repeat: samples/s."""
        n = 0
        elapsed = 0.0
        while elapsed < self.min_seconds or n == 0:
            elapsed += self._step()
            n += self.batch_size
        return n / elapsed


def throughput(
    step: Callable[[Any], Any],
    batches: Sequence[Any],
    batch_size: int,
    *,
    warmup: int,
    repeats: int,
    min_seconds: float,
    sync: Callable[[], None] | None = None,
    restart: Callable[[], None] | None = None,
    clock: str = "wall",
) -> list[float]:
    """samples/s of `step` over `repeats` timed repeats (Repeats) after `warmup` untimed calls."""
    timer = Repeats(step, batches, batch_size, min_seconds=min_seconds, sync=sync, restart=restart, clock=clock)
    timer.warm_up(warmup)
    return [timer.repeat() for _ in range(repeats)]


def sequence_batches(batch: int, samples: int) -> int:
    """Batches per call of a benchmark's trainer path: about `samples` samples (~0.1 s of
    training at batch 1, what the trainer's runs of batches take; at most the samples the
    benchmark cycles through), at least one batch."""
    return max(1, samples // batch)


def path_calls(w: dict[str, Any], path: str, batch: int) -> tuple[list[int], int]:
    """A workload path's call starts and samples per call (one batch, unless per_call says)."""
    return w.get("per_call", {}).get(path, (w["starts"], batch))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# machine info


def blas_threads() -> str:
    """Threads of NumPy's BLAS as threadpoolctl would say, or the environment setting."""
    try:
        from threadpoolctl import threadpool_info

        info = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if info:
            return f"{info[0].get('internal_api')} {info[0].get('num_threads')} threads"
    except ImportError:
        pass
    env = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS")
    return env or "all cores"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
        return "none (" + (out.stderr.strip().splitlines() or ["git failed"])[0] + ")"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, python/numpy/torch versions, hm2bp build info, date, git commit."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }
    for dist in ("torch", "snntorch", "spikingjelly", "norse", "matplotlib"):
        info[dist] = _dist_version(dist) or "not installed"
    try:
        info["hm2bp_build"] = {k: (v if isinstance(v, (int, float, str, bool, type(None)))
                                   else str(v)) for k, v in import_engine().build_info().items()}
    except Skipped as exc:
        info["hm2bp_build"] = str(exc)
    return info


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
