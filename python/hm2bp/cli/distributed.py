"""Data-parallel training over MPI ranks (``mpirun -n R hm2bp-train ...``).

Every rank holds the whole network and the whole data set. Each global batch of B samples is
split by sample into R contiguous shares; a rank runs the engine's forward/backward pass on its
share (gradient SUMS, ``reduce="sum"``; the encoding is keyed by (seed, sample, epoch), so a
sample draws the same spikes on any rank), and one reduction per batch adds the ranks' buffers
(gradients, loss, spike counts, predictions and pending signals, one contiguous float64
vector). Every rank then applies the same Adam/SGD step to the same sums, so the weights stay
identical on all ranks without ever being sent.

The reduction is deterministic for a given R: MPI's own Allreduce may group the additions
differently from one call (message size, algorithm choice) or implementation to the next, so
``Communicator.sum`` does it explicitly. Alltoall hands element block k of every rank's buffer
to rank k, which adds the R blocks in rank order (rank 0 + rank 1 + ...), and Allgather returns
the summed blocks to everyone: every element is the rank-order sum on every rank, bit for bit,
at the bandwidth of a ring Allreduce (2 (R-1)/R buffers sent per rank).

Rank 0 alone writes the run directory (metrics, checkpoints, lock); the other ranks train with
no run directory and adopt rank 0's state when fit() starts (so that a resume, also with
another R, starts every rank from the checkpoint). Evaluation is split the same way, its counts
summed. A SIGINT/SIGTERM/SIGHUP on any rank is only recorded; it travels in the next batch's
reduction, and all ranks stop at that same batch (rank 0 saves the last completed epoch).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..config import ConfigError, RunConfig
from ..train import runstate
from ..train.sources import LearningStep
from ..train.trainer import Trainer

__all__ = ["MODES", "Communicator", "DataParallel", "abort_on_error", "communicator", "follow",
           "launcher"]

MODES = ("auto", "mpi", "none")
# Set in the ranks by the common launchers: Open MPI, PMIx (Open MPI 5, srun --mpi=pmix),
# MPICH/Intel MPI (Hydra, srun --mpi=pmi2), MVAPICH.
LAUNCH_ENV = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
INSTALL_HINT = 'pip install "hm2bp[mpi]" (mpi4py and Open MPI), or mpi4py built on your MPI'


def launcher() -> str | None:
    """The launcher variable found in the environment, or None when not started by mpirun/srun."""
    return next((name for name in LAUNCH_ENV if name in os.environ), None)


class Communicator:
    """The few collectives hm2bp needs, on an mpi4py communicator (COMM_WORLD by default)."""

    def __init__(self, comm: Any = None):
        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        self.comm = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self._held: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def sum(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Elementwise sums over the ranks of float64 arrays (one buffer, packed here), added
        in rank order, the same bits on every rank (module doc). The results are flat views
        of a buffer that the next call overwrites."""
        sizes = [p.size for p in parts]
        n = sum(sizes)
        R = self.size
        send, blocks, out = self._buffers(n)
        flat = send if R > 1 else out
        start = 0
        for part, size in zip(parts, sizes):
            flat[start:start + size] = np.ravel(part)
            start += size
        if R > 1:
            self.comm.Alltoall(send, blocks)  # blocks[r] = my element block, as rank r holds it
            block = blocks[0]
            for r in range(1, R):
                block += blocks[r]
            self.comm.Allgather(block, out)
        ends = np.cumsum(sizes)
        return [out[end - size:end] for end, size in zip(ends, sizes)]

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Kept between calls: fresh multi-MB buffers cost page faults, and MPI transfers
        # between buffers it has seen before faster.
        if self._held is None or self._held[0].size < n or self._held[0].size >= n + self.size:
            chunk = -(-n // self.size)
            self._held = (np.zeros(self.size * chunk), np.empty((self.size, chunk)), np.empty(self.size * chunk))
        return self._held

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)


def communicator(mode: str = "auto") -> Communicator | None:
    """The MPI world to train on, or None for a single process. auto: MPI when a launcher
    started more than one rank; mpi: always (also one rank); none: never."""
    if mode not in MODES:
        raise ConfigError(f"invalid distributed = {mode!r}: expected one of {', '.join(MODES)}")
    found = launcher()
    if mode == "none" or (mode == "auto" and found is None):
        return None
    try:
        comm = Communicator()
    except ImportError:
        where = f"started by an MPI launcher ({found} is set)" if found else "--distributed mpi"
        raise ConfigError(f"{where} but mpi4py is missing: {INSTALL_HINT}; or run one "
                          f"process per rank on its own with --distributed none") from None
    return comm if comm.size > 1 or mode == "mpi" else None


# Rank 0 of hm2bp-train before it has sent its config: the other ranks wait for it in follow().
_config_awaited: DataParallel | None = None
_rank0_failed = False  # on the other ranks: rank 0 could not start, everyone exits


def abort_on_error(code: int) -> int:
    """After hm2bp-train failed with exit code `code` on one rank of a multi-rank job: when rank
    0 failed before its run started, tell the waiting ranks (they exit with 2, silently);
    otherwise abort the MPI job, since the other ranks may wait in a collective that this rank
    will never reach. A stop by signal (128 + n) ends all ranks together and returns."""
    global _config_awaited
    mpi = sys.modules.get("mpi4py.MPI")
    stopped = {128 + int(s) for s in runstate.SignalGuard.SIGNALS}
    if code == 0 or code in stopped or mpi is None or not mpi.Is_initialized() or mpi.Is_finalized() \
            or mpi.COMM_WORLD.Get_size() == 1 or _rank0_failed:
        return code
    if _config_awaited is not None:
        _config_awaited.comm.bcast(None)
        _config_awaited = None
        return code
    sys.stderr.flush()
    mpi.COMM_WORLD.Abort(code)
    return code


def follow(dp: DataParallel) -> int:
    """hm2bp-train on a rank other than 0: train rank 0's run (its config arrives from rank 0),
    silently; exit code 0, 128 + signal when stopped, 2 when rank 0 could not start."""
    global _rank0_failed
    config = dp.comm.bcast(None)
    if config is None:
        _rank0_failed = True
        return 2
    result = Trainer(RunConfig.from_dict(config), None, distributed=dp).fit()
    return 128 + result.signal if result.interrupted and result.signal else 0


class CollectiveSignalGuard(runstate.SignalGuard):
    """A SignalGuard that only records signals: DataParallel raises them at the next batch,
    on all ranks at once."""

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = self.pending or signum

    @contextlib.contextmanager
    def deferred(self, raise_pending: bool = True) -> Iterator[None]:
        yield


class _GradientsOnly:
    """The learning step as a source sees it on one rank: a training step computes the gradient
    sums of the rank's share and keeps them; DistributedSource adds them up and steps."""

    def __init__(self, net: Any):
        self.net = net
        self.gradients: list[np.ndarray] | None = None

    def train_step(self, spikes: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None) -> dict:
        out = self.net.forward_backward(spikes, labels, sample_weights, reduce="sum")
        self.gradients = out["gradients"]
        return out

    def train_step_images(self, images: np.ndarray, labels: np.ndarray, *, T: int, seed: int,
                          sample_index: Any, epoch: int = 0, sample_weights: np.ndarray | None = None) -> dict:
        out = self.net.forward_backward_images(images, labels, T=T, seed=seed, sample_index=sample_index,
                                               epoch=epoch, sample_weights=sample_weights, reduce="sum")
        self.gradients = out["gradients"]
        return out


class DistributedSource:
    """A trainer spike source split across the ranks: train() and infer() see the global batch
    and return its global loss, predictions and spike counts."""

    def __init__(self, source: Any, dp: DataParallel, n_layers: int):
        self.source, self.dp, self.n_layers = source, dp, n_layers
        self.labels = source.labels
        self._shapes: list[tuple[int, ...]] | None = None  # of the weight arrays

    @property
    def engine_seconds(self) -> float:
        return self.source.engine_seconds

    def spikes(self, idx: np.ndarray) -> np.ndarray:
        return self.source.spikes(idx)

    def train(self, step: LearningStep, idx: np.ndarray, epoch: int, weights: np.ndarray | None) -> dict:
        net = step.net
        share = self.dp.share(len(idx))
        if self._shapes is None:
            self._shapes = [np.shape(w) for w in net.get_weights()]
        rank = _GradientsOnly(net)
        out = None
        if share.stop > share.start:  # a last batch smaller than R leaves some ranks idle
            out = self.source.train(rank, idx[share], epoch, None if weights is None else weights[share])
        grads = [np.zeros(s) for s in self._shapes] if out is None else rank.gradients
        loss = np.array([0.0 if out is None else float(out["loss"]) * (share.stop - share.start)])
        total = self.dp.reduce([*grads, loss], out, share, len(idx), self.n_layers)
        net.apply_gradients([t.reshape(s) for t, s in zip(total, self._shapes)], step.lr, len(idx))
        return {"loss": float(total[len(grads)][0]) / len(idx), "predictions": total[-1],
                "layer_spikes": total[-2]}

    def infer(self, net: Any, idx: np.ndarray) -> dict:
        share = self.dp.share(len(idx))
        out = self.source.infer(net, idx[share]) if share.stop > share.start else None
        total = self.dp.reduce([], out, share, len(idx), self.n_layers)
        return {"predictions": total[-1], "layer_spikes": total[-2]}


class DataParallel:
    """Data-parallel training of one Trainer over the ranks of a Communicator (module doc):
    ``Trainer(config, out_dir if rank 0 else None, distributed=DataParallel(comm))`` on every
    rank, then fit() on every rank."""

    def __init__(self, comm: Communicator):
        global _config_awaited
        self.comm = comm
        if comm.is_root:
            _config_awaited = self
        self.guard: CollectiveSignalGuard | None = None
        self.reduce_seconds = 0.0  # spent in the per-batch reductions (python -m bench mpi)

    @property
    def is_root(self) -> bool:
        return self.comm.is_root

    def share(self, n: int) -> slice:
        """This rank's contiguous share of a batch of n samples."""
        R, r = self.comm.size, self.comm.rank
        return slice(n * r // R, n * (r + 1) // R)

    def attach(self, trainer: Any) -> None:
        """Check a trainer can be split (Trainer._setup) and wrap its sources."""
        R, B = self.comm.size, trainer.config.batch_size
        if B < R:
            raise ConfigError(f"batch_size = {B} with {R} MPI ranks is not data-parallel (each "
                              f"batch is split across the ranks by sample): use --batch-size >= {R}, "
                              f"or run independent trainings with --seeds/--sweep")
        if not hasattr(trainer.net, "forward_backward"):
            raise ConfigError(f"{type(trainer.net).__name__} has no forward_backward: MPI training "
                              f"needs hm2bp.Network")
        if trainer.out_dir is not None and not self.is_root:
            raise ConfigError(f"rank {self.comm.rank} was given the run directory {trainer.out_dir}: "
                              f"only rank 0 writes it, pass out_dir=None on the other ranks")
        n_layers = len(trainer.config.layers) - 1
        trainer.train_source = DistributedSource(trainer.train_source, self, n_layers)
        trainer.test_source = DistributedSource(trainer.test_source, self, n_layers)
        if trainer.validation is not None:
            trainer.validation.source = DistributedSource(trainer.validation.source, self, n_layers)

    def send_config(self, config: RunConfig) -> None:
        """Rank 0, its trainer built: send its config (e.g. read from a checkpoint to resume)
        to the other ranks, which wait in follow()."""
        global _config_awaited
        self.comm.bcast(config.to_dict())
        _config_awaited = None

    def start(self, trainer: Any) -> CollectiveSignalGuard:
        """At fit(): every rank adopts rank 0's state; signals are held for the batches."""
        snap = self.comm.bcast(trainer._snapshot if self.is_root else None)
        if not self.is_root:
            trainer.net.set_state(snap["state"])
            trainer.sample_weights = snap["sample_weights"].copy()
            trainer.epoch = snap["epoch"]
            trainer.last_test_accuracy = snap["test_accuracy"]
            trainer.best_test_accuracy, trainer.best_epoch = snap["best_test_accuracy"], snap["best_epoch"]
            trainer._snapshot = trainer._take_snapshot()
        self.guard = CollectiveSignalGuard()
        return self.guard

    def reduce(self, parts: list[np.ndarray], out: dict | None, share: slice, n: int,
               n_layers: int) -> list[np.ndarray]:
        """One reduction of a batch: `parts` (float64 arrays), then the spike counts, the
        predictions placed at this rank's share of the n samples and every rank's pending
        signal. Returns the summed parts (flat), then the spike counts and the predictions
        (int64). Raises Interrupted on every rank when any rank holds a signal."""
        predictions = np.zeros(n)
        spikes = np.zeros(n_layers)
        if out is not None:
            predictions[share] = out["predictions"]
            spikes[:] = out["layer_spikes"]
        signals = np.zeros(self.comm.size)
        if self.guard is not None and self.guard.pending:
            signals[self.comm.rank] = self.guard.pending
        t0 = time.perf_counter()
        *total, spikes, predictions, signals = self.comm.sum([*parts, spikes, predictions, signals])
        self.reduce_seconds += time.perf_counter() - t0
        stop = signals[signals > 0]
        if stop.size:
            if self.guard is not None:
                self.guard.pending = None
            raise runstate.Interrupted(int(stop[0]))
        return [*total, spikes.astype(np.int64), predictions.astype(np.int64)]
