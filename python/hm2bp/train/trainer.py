"""Training loop: epochs, shuffling, SPEC-5 learning-rate schedule and boosting, per-epoch
evaluation, metrics, atomic checkpoints, exact resume and a divergence guard.

The trainer never touches spikes itself for image data: the engine encodes them
(``train_step_images``/``infer_images``), so the loop's own overhead is a few NumPy index
operations per batch. Where the spikes come from is a small "source" object, so the same loop
drives the fast image path, event data (``batch_spikes`` + ``train_step``) and networks without
the image fast path (explicit ``encode_poisson`` + ``train_step``, e.g. hm2bp.reference).

Reproducibility: the order of epoch e is hm2bp.train.schedule.epoch_order (by default
``default_rng([seed, e]).permutation(n)``; "authors": 5000 swaps of the last order) and the
Poisson spikes are keyed by (seed, sample index, epoch), so the state after epoch e is a
function of the checkpoint of epoch e-1 alone; resuming reproduces an uninterrupted run.

Durability (see runstate): a trainer with a run directory holds its lock, writes the whole run
state as one atomic checkpoint.npz after every epoch (and of epoch 0 when it starts), the best
epoch's state as best.npz (hm2bp.train.validation), appends metrics.jsonl line-atomically (and
metrics.csv, hm2bp.train.metrics_log), and on SIGINT, SIGTERM or SIGHUP saves the last completed epoch
and returns interrupted (a signal during a save waits for it). A non-finite loss, weight or
moment stops the run with DivergenceError before anything non-finite is written.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, RunConfig
from ..model import limits
from ..model.network import resolve_backend
from . import runstate, validation
from .build import build_network, load_split
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, find_checkpoint, load_checkpoint, restore_network
from .metrics_log import MetricsLog
from .runstate import CheckpointError, Interrupted, RunDirError
from .schedule import boost_weights, epoch_order, learning_rate  # the SPEC-5 schedule, one copy each
from .sources import TEST_SEED_OFFSET, LearningStep, epoch_batches, evaluate, make_source

__all__ = ["DivergenceError", "FitResult", "Trainer", "format_epoch"]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, weight or optimizer moment."""



@dataclass
class FitResult:
    final_test_accuracy: float | None
    best_test_accuracy: float | None
    best_epoch: int | None
    epochs_completed: int
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    signal: int | None = None  # the signal that interrupted the run (SIGINT for Ctrl-C)


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    """One summary line per epoch (with a validation set: its accuracy and the best epoch's)."""
    val = (f"val {100 * m['val_accuracy']:6.2f}% (best {100 * m['best_val_accuracy']:6.2f}% at "
           f"epoch {m['best_epoch']})  " if "val_accuracy" in m else "")
    return (
        f"epoch {m['epoch']:>{len(str(epochs))}}/{epochs}  loss {m['train_loss']:8.2f}  "
        f"train {100 * m['train_accuracy']:6.2f}%  {val}test {100 * m['test_accuracy']:6.2f}%  "
        f"best {100 * m['best_test_accuracy']:6.2f}%  {m['seconds']:7.1f}s  "
        f"{m['samples_per_s']:8.1f} samples/s"
    )



class Trainer:
    """Trains one network as described by a RunConfig.

    out_dir: where metrics.jsonl and checkpoint.npz go (None: write nothing). The trainer
        locks it (RunDirError when another run holds it) until fit() returns or close();
        a new trainer refuses a directory that already holds a run.
    train_set/test_set: datasets to use instead of loading config.dataset.
    network_factory: called with RunConfig.network_kwargs() (default hm2bp.Network).
    encode: Poisson encoder for networks without the image fast path (forces encoding in
        Python, e.g. hm2bp.encode_poisson for hm2bp.reference networks).
    on_batch(epoch, done, total): called when an epoch starts (done = 0) and after every
        training batch (progress display); epoch is 0-based.
    on_epoch(metrics): called after every completed epoch.
    distributed: a hm2bp.distributed.DataParallel to split every batch across MPI ranks.
    log: optional loggers besides metrics.jsonl and metrics.csv (hm2bp.train.metrics_log.LOGGERS).
    """

    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path | None = None,
        *,
        train_set: Any = None,
        test_set: Any = None,
        network_factory: Callable[..., Any] | None = None,
        encode: Callable[..., np.ndarray] | None = None,
        on_batch: Callable[[int, int, int], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        distributed: Any = None,
        log: tuple[str, ...] = (),
        _resuming: bool = False,
    ):
        config.validate()
        if config.data_dir is not None:  # stored in checkpoints: valid from any directory
            config = config.replace(data_dir=os.path.abspath(os.path.expanduser(
                config.data_dir)))
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.on_batch, self.on_epoch = on_batch, on_epoch
        self.distributed = distributed
        self.metrics_log = (MetricsLog(self.out_dir, log, guard=self._verify_dir)
                            if self.out_dir is not None else None)
        self._lock: runstate.RunLock | None = None
        if self.out_dir is not None and not _resuming:
            self._lock_dir()
        try:
            if self.out_dir is not None and not _resuming \
                    and (self.out_dir / runstate.STATE_FILE).exists():
                raise RunDirError(f"{self.out_dir} already holds a run; continue it with "
                                  f"--resume {self.out_dir} or choose another directory")
            self._setup(train_set, test_set, network_factory, encode)
        except BaseException:
            self.close()  # a trainer that does not exist must not keep the directory
            raise

    def _setup(self, train_set: Any, test_set: Any, network_factory: Callable[..., Any] | None,
               encode: Callable[..., np.ndarray] | None) -> None:
        config = self.config
        self.backend = resolve_backend(config.backend)
        self.net = build_network(config, self.backend, network_factory)
        self.train_set = train_set if train_set is not None else load_split(
            config, "train", config.train_size)
        self.train_set, val_set = validation.split(self.train_set, config.val_split, config.seed)
        self.test_set = test_set if test_set is not None else load_split(
            config, "test", config.test_size)
        for name, ds in (("train", self.train_set), ("test", self.test_set)):
            if ds.n_inputs != config.layers[0] or ds.n_classes != config.layers[-1]:
                raise ConfigError(
                    f"invalid layers = {config.layers}: the {name} set {ds.name!r} has "
                    f"{ds.n_inputs} inputs and {ds.n_classes} classes"
                )
        augment = config.augmentation()
        self.train_source = make_source(self.train_set, self.net, config.T, config.seed,
                                        config.reencode, encode, augment if augment.enabled else None)
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its order), for "authors"
        self.test_source = make_source(self.test_set, self.net, config.T,
                                       config.seed + TEST_SEED_OFFSET, False, encode)
        self.validation = None if val_set is None else validation.Validation(val_set, make_source(
            val_set, self.net, config.T, config.seed + validation.VAL_SEED_OFFSET, False, encode))
        if self.distributed is not None:
            self.distributed.attach(self)  # splits every source's batches across the ranks
        n = len(self.train_set)
        self.epoch = 0  # completed epochs; the next epoch to run has 0-based index self.epoch
        self.sample_weights = np.ones(n)
        self.best_test_accuracy: float | None = None
        self.best_epoch: int | None = None
        self.last_test_accuracy: float | None = None
        self.history: list[dict[str, Any]] = []
        self._saved_epoch: int | None = None
        self._snapshot = self._take_snapshot()

    # -- run directory --------------------------------------------------------------------

    def _lock_dir(self) -> None:
        assert self.out_dir is not None
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise RunDirError(f"{self.out_dir} is not a directory; give a new or existing run directory")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = runstate.RunLock(self.out_dir)
        self._lock.acquire()
        runstate.remove_stale_temporaries(self.out_dir)

    def _verify_dir(self) -> None:
        """Before every write: RunDirError when the run directory was removed or replaced
        under this run (another run may be writing there now)."""
        if self._lock is not None:
            self._lock.verify()

    def close(self) -> None:
        """Release the run directory (fit() does at its end; fit() again re-locks it)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resume ---------------------------------------------------------------------------

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        *,
        epochs: int | None = None,
        backend: str | None = None,
        threads: int | None = None,
        data_dir: str | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """Continue the run in run_dir from its checkpoint. Only settings that do not change
        the arithmetic may be overridden (epochs to extend a run, backend, threads, data_dir).
        """
        lock = runstate.RunLock(Path(run_dir))
        if not Path(run_dir).is_dir():
            raise CheckpointError(f"no checkpoint at {run_dir}: not a directory")
        lock.acquire()  # before reading: no other run may replace the state meanwhile
        try:
            config, meta, arrays = load_checkpoint(run_dir)
            config = config.replace(epochs=epochs, backend=backend, threads=threads,
                                    data_dir=data_dir)
            trainer = cls(config, run_dir, _resuming=True, **kwargs)
            trainer._lock = lock
            trainer._restore(meta, arrays)
            trainer._trim_metrics()
        except BaseException:
            lock.release()
            raise
        return trainer

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if meta["n_train"] != len(self.train_set) or meta["n_test"] != len(self.test_set):
            raise CheckpointError(
                f"the checkpoint was trained on {meta['n_train']} train / "
                f"{meta['n_test']} test samples, the data now has {len(self.train_set)} / "
                f"{len(self.test_set)} (different data directory?)"
            )
        restore_network(self.net, arrays, find_checkpoint(self.out_dir))
        self.sample_weights = np.array(arrays["sample_weights"], dtype=np.float64)
        self.epoch = meta["epoch"]
        self.best_test_accuracy = meta["best_test_accuracy"]
        self.best_epoch = meta["best_epoch"]
        self.last_test_accuracy = meta["test_accuracy"]
        if self.validation is not None:
            try:
                self.validation.restore(meta)
            except ValueError as exc:
                raise CheckpointError(f"{find_checkpoint(self.out_dir)}: {exc}") from None
        self._snapshot = self._take_snapshot()
        self._saved_epoch = self.epoch

    def _trim_metrics(self) -> None:
        """Keep the metric lines of epochs up to the checkpoint (later ones were written
        before a crash); lines cut by a crash or a full disk are dropped with a warning."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        records, bad = runstate.read_lines(path)
        if bad:
            warnings.warn(f"{path}: dropped {len(bad)} damaged line(s) (line "
                          f"{', '.join(map(str, bad))}; cut by a crash or a full disk?)",
                          RuntimeWarning, stacklevel=3)
        # One line per epoch, the last one written (a line repeated by a run that wrote
        # beside another, or before a crash), in epoch order.
        last = {m["epoch"]: m for m in records
                if isinstance(m.get("epoch"), int) and 1 <= m["epoch"] <= self.epoch}
        kept = [last[e] for e in sorted(last)]
        self.history = kept
        self.metrics_log.rewrite(kept)

    # -- training -------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train until config.epochs epochs are completed. Ctrl-C, SIGTERM or SIGHUP stop
        after saving the checkpoint of the last completed epoch; the result then has
        interrupted=True and the signal. DivergenceError: a non-finite loss, weight or
        moment; the last good checkpoint is kept."""
        if self.out_dir is not None:
            self._lock_dir()
        try:
            guard = runstate.SignalGuard() if self.distributed is None else self.distributed.start(self)
            with guard:
                if self.metrics_log is not None:
                    self.metrics_log.open(self.epoch)
                return self._fit(guard)
        finally:
            if self.metrics_log is not None:
                self.metrics_log.close()
            self.close()

    def _fit(self, guard: runstate.SignalGuard) -> FitResult:
        try:
            if self.out_dir is not None and self._saved_epoch is None:
                with guard.deferred():  # a kill from now on leaves a resumable run
                    self._save(self._snapshot)
            while self.epoch < self.config.epochs:
                metrics = self._run_epoch(self.epoch)
                with guard.deferred():  # the epoch is committed whole or not at all
                    self.epoch += 1
                    self.history.append(metrics)
                    self._snapshot = self._take_snapshot()
                    if self.out_dir is not None:
                        self.metrics_log.append(self.history)
                        if self.best_epoch == self.epoch:  # before the checkpoint that names it
                            self._save(self._snapshot, validation.BEST_FILE)
                        self._save(self._snapshot)
                if self.on_epoch is not None:
                    self.on_epoch(metrics)
        except KeyboardInterrupt as exc:
            with guard.deferred(raise_pending=False):  # a second Ctrl-C waits for the save
                if self.out_dir is not None and self._saved_epoch != self._snapshot["epoch"]:
                    self._save(self._snapshot)
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            return self._result(interrupted=True, signum=int(signum))
        return self._result(interrupted=False)

    def _result(self, interrupted: bool, signum: int | None = None) -> FitResult:
        snap = self._snapshot
        return FitResult(
            final_test_accuracy=snap["test_accuracy"],
            best_test_accuracy=snap["best_test_accuracy"],
            best_epoch=snap["best_epoch"],
            epochs_completed=snap["epoch"],
            interrupted=interrupted,
            history=list(self.history),
            signal=signum,
        )

    def _run_epoch(self, e: int) -> dict[str, Any]:
        cfg, src = self.config, self.train_source
        n = len(self.train_set)
        lr = learning_rate(cfg.lr, e, cfg.lr_rule, cfg.epochs)
        step = LearningStep(self.net, lr)
        previous = self._order[1] if self._order is not None and self._order[0] == e - 1 else None
        order = epoch_order(n, cfg.seed, e, previous, cfg.order)  # without previous: replayed
        self._order = (e, order)
        predictions = np.empty(n, dtype=np.int64)
        layer_spikes = np.zeros(len(cfg.layers) - 1, dtype=np.int64)
        loss_sum = 0.0
        weights = self.sample_weights if cfg.boosting else None
        engine0 = src.engine_seconds
        t0 = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(e, 0, n)
        done = 0
        try:
            for idx, out in epoch_batches(src, step, order, e, weights, cfg.batch_size):
                loss = float(out["loss"])
                if not math.isfinite(loss):
                    self._diverged(e, f"the loss of a batch is {loss}")
                predictions[idx] = out["predictions"]
                layer_spikes += out["layer_spikes"]
                loss_sum += loss * len(idx)
                done += len(idx)
                if self.on_batch is not None:
                    self.on_batch(e, done, n)
        except FloatingPointError as exc:  # the network's own check of its weights
            self._diverged(e, str(exc))
        train_seconds = time.perf_counter() - t0
        engine_seconds = src.engine_seconds - engine0

        correct = predictions == src.labels
        if cfg.boosting:
            self.sample_weights = boost_weights(self.sample_weights, src.labels, predictions)
        t1 = time.perf_counter()
        test = self.evaluate()
        eval_seconds = time.perf_counter() - t1
        acc = test["accuracy"]
        self.last_test_accuracy = acc
        if self.best_test_accuracy is None or acc > self.best_test_accuracy:
            self.best_test_accuracy = acc
            if self.validation is None:  # the best epoch is the best test epoch
                self.best_epoch = e + 1
        val: dict[str, Any] = {}
        if self.validation is not None:  # the best epoch is the best validation epoch
            val = self.validation.after_epoch(
                lambda source: evaluate(self.net, source, cfg.layers[-1], cfg.eval_batch_size)["accuracy"],
                e + 1, acc)
            self.best_epoch = self.validation.best_epoch
        neurons = np.asarray(cfg.layers[1:], dtype=np.float64)
        return {
            "epoch": e + 1,  # 1-based: epochs completed after this one
            "lr": lr,
            "train_loss": loss_sum / n,
            "train_accuracy": float(correct.mean()),
            "test_accuracy": acc,
            "best_test_accuracy": self.best_test_accuracy,
            "best_epoch": self.best_epoch,
            **val,
            # spikes per neuron per time step, training samples, before revival
            "firing_rate": (layer_spikes / (neurons * n * cfg.T)).tolist(),
            "test_firing_rate": (test["layer_spikes"] / (neurons * len(self.test_set)
                                                         * cfg.T)).tolist(),
            "seconds": time.perf_counter() - t0,
            "train_seconds": train_seconds,
            "engine_seconds": engine_seconds,
            "eval_seconds": eval_seconds,
            "samples_per_s": n / train_seconds if train_seconds > 0 else float("inf"),
            "boost_weight_max": float(self.sample_weights.max()),
        }

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """evaluate() on the train or test split (test: the per-epoch test accuracy)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        src = self.test_source if split == "test" else self.train_source
        return evaluate(self.net, src, self.config.layers[-1], self.config.eval_batch_size)

    # -- checkpoints ----------------------------------------------------------------------

    def _diverged(self, e: int, what: str) -> None:
        kept = (f"the checkpoint of epoch {self._saved_epoch} in {self.out_dir} is kept"
                if self.out_dir is not None and self._saved_epoch is not None
                else "nothing was saved")
        raise DivergenceError(
            f"training diverged in epoch {e + 1}: {what}; {kept}. Start a new run with a "
            f"smaller lr (or milder lateral_inhibition, reg_lambda, vth)")

    def _take_snapshot(self) -> dict[str, Any]:
        """Everything a checkpoint of the last completed epoch holds, copied now; a state
        that is not finite stops the run instead (it must never be saved)."""
        state = {k: np.array(v) for k, v in self.net.get_state().items()}
        try:
            limits.check_state(state)
        except ValueError as exc:
            self._diverged(self.epoch - 1, str(exc))
        return {
            "epoch": self.epoch,
            "state": state,
            "sample_weights": self.sample_weights.copy(),
            "test_accuracy": self.last_test_accuracy,
            "best_test_accuracy": self.best_test_accuracy,
            "best_epoch": self.best_epoch,
            "validation": {} if self.validation is None else self.validation.state(),
        }

    def _save(self, snap: dict[str, Any], name: str = runstate.STATE_FILE) -> None:
        arrays = {f"net.{k}": v for k, v in snap["state"].items()}
        arrays["sample_weights"] = snap["sample_weights"]
        arrays["epoch"] = np.int64(snap["epoch"])
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": snap["epoch"],
            "test_accuracy": snap["test_accuracy"],
            "best_test_accuracy": snap["best_test_accuracy"],
            "best_epoch": snap["best_epoch"],
            "n_train": len(self.train_set),
            "n_test": len(self.test_set),
            "backend": self.backend,
            # No RNG state is needed: the order is epoch_order(n, seed, epoch, mode) (the
            # "authors" order replays its swaps from epoch 0 on resume) and spikes are keyed by
            # (seed, sample, epoch); recorded here for readers.
            "shuffle": f"hm2bp.train.schedule.epoch_order(n_train, seed, epoch, mode={self.config.order!r})",
            "config": self.config.to_dict(),
            **snap["validation"],
        }
        self._verify_dir()
        saved = self._saved_epoch
        kept = ("nothing was saved yet" if saved is None else
                f"the previous checkpoint (epoch {saved}) is intact" if name == runstate.STATE_FILE else
                f"the previous {name} and the checkpoint of epoch {saved} are intact")
        runstate.write_state(self.out_dir / name, arrays, meta, kept=kept)
        if name == runstate.STATE_FILE:
            self._saved_epoch = snap["epoch"]
