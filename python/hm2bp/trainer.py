"""Training loop: epochs, shuffling, SPEC-5 learning-rate schedule and boosting, per-epoch
evaluation, metrics, atomic checkpoints and exact resume.

The trainer never touches spikes itself for image data: the engine encodes them
(``train_step_images``/``infer_images``), so the loop's own overhead is a few NumPy index
operations per batch. Where the spikes come from is a small "source" object, so the same loop
drives the fast image path, event data (``batch_spikes`` + ``train_step``) and networks without
the image fast path (explicit ``encode_poisson`` + ``train_step``, e.g. hm2bp.reference).

Reproducibility: the order of epoch e is ``default_rng([seed, e]).permutation(n)`` and the
Poisson spikes are keyed by (seed, sample index, epoch), so the state after epoch e is a
function of the checkpoint of epoch e-1 alone; resuming reproduces an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import ConfigError, RunConfig
from .network import resolve_backend
from .schedule import boost_weights, learning_rate  # the SPEC-5 schedule, one copy each

__all__ = [
    "CheckpointError",
    "EncodedImageSource",
    "EventSource",
    "FitResult",
    "ImageSource",
    "Trainer",
    "boost_weights",
    "build_network",
    "evaluate",
    "find_checkpoint",
    "format_epoch",
    "learning_rate",
    "load_checkpoint",
    "load_split",
    "make_source",
    "resolve_backend",
    "restore_network",
]

CHECKPOINT_FORMAT = "hm2bp-checkpoint"
CHECKPOINT_VERSION = 1
# Test spikes use seed + TEST_SEED_OFFSET so that train and test sample i are independent.
TEST_SEED_OFFSET = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match the run."""


# ---------------------------------------------------------------------------------------------
# Spike sources: one per dataset split; each times its own engine calls.


class Source(Protocol):
    labels: np.ndarray
    engine_seconds: float

    def train(self, net: Any, idx: np.ndarray, lr: float, epoch: int,
              weights: np.ndarray | None) -> dict: ...

    def infer(self, net: Any, idx: np.ndarray) -> dict: ...

    def spikes(self, idx: np.ndarray) -> np.ndarray: ...


class ImageSource:
    """Static images, Poisson-encoded inside the engine (train_step_images/infer_images)."""

    def __init__(self, dataset: Any, T: int, seed: int, reencode: bool = False):
        self.images = np.ascontiguousarray(dataset.images, dtype=np.uint8)
        self.labels = np.asarray(dataset.labels, dtype=np.int64)
        self.T, self.seed, self.reencode = T, seed, reencode
        self.engine_seconds = 0.0

    def _epoch(self, epoch: int) -> int:
        # The reference encodes once and reuses the train; re-encoding keys spikes by epoch.
        return epoch if self.reencode else 0

    def train(self, net, idx, lr, epoch, weights):
        images, labels = self.images[idx], self.labels[idx]
        t0 = time.perf_counter()
        out = net.train_step_images(images, labels, lr, T=self.T, seed=self.seed,
                                    sample_index=idx, epoch=self._epoch(epoch),
                                    sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        images = self.images[idx]
        t0 = time.perf_counter()
        out = net.infer_images(images, T=self.T, seed=self.seed, sample_index=idx, epoch=0)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        import hm2bp

        return hm2bp.encode_poisson(self.images[idx], self.T, self.seed, idx, 0)


class EncodedImageSource(ImageSource):
    """Static images encoded in Python, for networks without the *_images fast path."""

    def __init__(self, dataset: Any, T: int, seed: int, reencode: bool = False,
                 encode: Callable[..., np.ndarray] | None = None):
        super().__init__(dataset, T, seed, reencode)
        if encode is None:
            import hm2bp

            encode = hm2bp.encode_poisson
        self.encode = encode

    def _encode(self, idx: np.ndarray, epoch: int) -> np.ndarray:
        return self.encode(self.images[idx], self.T, self.seed, idx, epoch)

    def train(self, net, idx, lr, epoch, weights):
        spikes = self._encode(idx, self._epoch(epoch))
        t0 = time.perf_counter()
        out = net.train_step(spikes, self.labels[idx], lr, sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        spikes = self._encode(idx, 0)
        t0 = time.perf_counter()
        out = net.infer(spikes)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        return self._encode(idx, 0)


class EventSource:
    """Event data (N-MNIST): spike trains come from the dataset (batch_spikes)."""

    def __init__(self, dataset: Any, T: int):
        self.dataset = dataset
        self.labels = np.asarray(dataset.labels, dtype=np.int64)
        self.T = T
        self.engine_seconds = 0.0

    def train(self, net, idx, lr, epoch, weights):
        spikes = self.dataset.batch_spikes(idx, self.T)
        t0 = time.perf_counter()
        out = net.train_step(spikes, self.labels[idx], lr, sample_weights=weights)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def infer(self, net, idx):
        spikes = self.dataset.batch_spikes(idx, self.T)
        t0 = time.perf_counter()
        out = net.infer(spikes)
        self.engine_seconds += time.perf_counter() - t0
        return out

    def spikes(self, idx):
        return self.dataset.batch_spikes(idx, self.T)


def make_source(dataset: Any, net: Any, T: int, seed: int, reencode: bool = False,
                encode: Callable[..., np.ndarray] | None = None) -> Source:
    """Pick the spike source for a dataset and a network (fast image path when available)."""
    if not getattr(dataset, "is_images", True):
        return EventSource(dataset, T)
    if encode is None and hasattr(net, "train_step_images"):
        return ImageSource(dataset, T, seed, reencode)
    return EncodedImageSource(dataset, T, seed, reencode, encode)


# ---------------------------------------------------------------------------------------------
# Checkpoints: checkpoint.npz (network state, boosting weights; loaded without pickle) and
# checkpoint.json (config, epoch, best accuracy). Both are replaced atomically.


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, mode) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def find_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(npz, json) paths for a run directory or a checkpoint .npz/.json file."""
    path = Path(path)
    if path.is_dir():
        npz, meta = path / "checkpoint.npz", path / "checkpoint.json"
    else:
        npz, meta = path.with_suffix(".npz"), path.with_suffix(".json")
    for p in (npz, meta):
        if not p.is_file():
            raise CheckpointError(f"no checkpoint at {path}: {p} does not exist")
    return npz, meta


def load_checkpoint(path: str | Path) -> tuple[RunConfig, dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint: (config, json metadata, arrays). Arrays: 'net.<name>' (engine
    state), 'sample_weights', 'epoch'."""
    npz, meta_path = find_checkpoint(path)
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {npz}: {exc}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{meta_path} is not an hm2bp checkpoint")
    if "epoch" not in arrays or int(arrays["epoch"]) != meta.get("epoch"):
        raise CheckpointError(
            f"{npz} and {meta_path} belong to different epochs (interrupted while saving?)"
        )
    try:
        config = RunConfig.from_dict(meta["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{meta_path}: {exc}") from None
    return config, meta, arrays


def evaluate(net: Any, source: Source, n_classes: int, batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, predictions, confusion matrix (rows: label, columns: prediction) and total
    spikes per layer over all samples of a source; no learning."""
    labels = source.labels
    n = len(labels)
    predictions = np.empty(n, dtype=np.int64)
    layer_spikes = None
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        out = source.infer(net, idx)
        predictions[idx] = out["predictions"]
        spikes = np.asarray(out["layer_spikes"], dtype=np.int64)
        layer_spikes = spikes if layer_spikes is None else layer_spikes + spikes
    confusion = np.bincount(labels * n_classes + predictions,
                            minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return {
        "accuracy": float(np.mean(predictions == labels)) if n else 0.0,
        "predictions": predictions,
        "confusion": confusion,
        "layer_spikes": layer_spikes,
    }


def restore_network(net: Any, arrays: dict[str, np.ndarray]) -> None:
    """Load the 'net.<name>' arrays of a checkpoint into a network (exact state)."""
    state = {k[len("net."):]: v for k, v in arrays.items() if k.startswith("net.")}
    try:
        net.set_state(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"the checkpoint does not fit this network: {exc}") from None


# ---------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    final_test_accuracy: float | None
    best_test_accuracy: float | None
    best_epoch: int | None
    epochs_completed: int
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    """One summary line per epoch."""
    return (
        f"epoch {m['epoch']:>{len(str(epochs))}}/{epochs}  loss {m['train_loss']:8.2f}  "
        f"train {100 * m['train_accuracy']:6.2f}%  test {100 * m['test_accuracy']:6.2f}%  "
        f"best {100 * m['best_test_accuracy']:6.2f}%  {m['seconds']:7.1f}s  "
        f"{m['samples_per_s']:8.1f} samples/s"
    )


def build_network(config: RunConfig, backend: str, factory: Callable[..., Any] | None) -> Any:
    if factory is None:
        import hm2bp

        factory = hm2bp.Network
    try:
        return factory(**config.network_kwargs(backend))
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot create the network (backend {backend!r}): {exc}") from None


def load_split(config: RunConfig, split: str, size: int | None) -> Any:
    from . import data

    ds = data.load(config.dataset, split, data_dir=config.data_dir, download=config.download)
    if size is not None:
        if size > len(ds):
            raise ConfigError(
                f"invalid {split}_size = {size}: the {split} split of {config.dataset!r} has "
                f"only {len(ds)} samples"
            )
        ds = ds.subset(np.arange(size))
    return ds


class Trainer:
    """Trains one network as described by a RunConfig.

    out_dir: where metrics.jsonl and checkpoint.{npz,json} go (None: write nothing).
    train_set/test_set: datasets to use instead of loading config.dataset.
    network_factory: called with RunConfig.network_kwargs() (default hm2bp.Network).
    encode: Poisson encoder for networks without the image fast path (forces encoding in
        Python, e.g. hm2bp.encode_poisson for hm2bp.reference networks).
    on_batch(epoch, done, total): called when an epoch starts (done = 0) and after every
        training batch (progress display); epoch is 0-based.
    on_epoch(metrics): called after every completed epoch.
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
    ):
        config.validate()
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.on_batch, self.on_epoch = on_batch, on_epoch
        self.train_set = train_set if train_set is not None else load_split(
            config, "train", config.train_size)
        self.test_set = test_set if test_set is not None else load_split(
            config, "test", config.test_size)
        for name, ds in (("train", self.train_set), ("test", self.test_set)):
            if ds.n_inputs != config.layers[0] or ds.n_classes != config.layers[-1]:
                raise ConfigError(
                    f"invalid layers = {config.layers}: the {name} set {ds.name!r} has "
                    f"{ds.n_inputs} inputs and {ds.n_classes} classes"
                )
        self.backend = resolve_backend(config.backend)
        self.net = build_network(config, self.backend, network_factory)
        self.train_source = make_source(self.train_set, self.net, config.T, config.seed,
                                        config.reencode, encode)
        self.test_source = make_source(self.test_set, self.net, config.T,
                                       config.seed + TEST_SEED_OFFSET, False, encode)
        n = len(self.train_set)
        self.epoch = 0  # completed epochs; the next epoch to run has 0-based index self.epoch
        self.sample_weights = np.ones(n)
        self.best_test_accuracy: float | None = None
        self.best_epoch: int | None = None
        self.last_test_accuracy: float | None = None
        self.history: list[dict[str, Any]] = []
        self._snapshot = self._take_snapshot()
        self._saved_epoch: int | None = None

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
        config, meta, arrays = load_checkpoint(run_dir)
        config = config.replace(epochs=epochs, backend=backend, threads=threads,
                                data_dir=data_dir)
        trainer = cls(config, run_dir, **kwargs)
        trainer._restore(meta, arrays)
        trainer._trim_metrics()
        return trainer

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if meta.get("n_train") != len(self.train_set) or meta.get("n_test") != len(self.test_set):
            raise CheckpointError(
                f"the checkpoint was trained on {meta.get('n_train')} train / "
                f"{meta.get('n_test')} test samples, the data now has {len(self.train_set)} / "
                f"{len(self.test_set)} (different data directory?)"
            )
        restore_network(self.net, arrays)
        self.sample_weights = np.array(arrays["sample_weights"], dtype=np.float64)
        self.epoch = int(meta["epoch"])
        self.best_test_accuracy = meta.get("best_test_accuracy")
        self.best_epoch = meta.get("best_epoch")
        self.last_test_accuracy = meta.get("test_accuracy")
        self._snapshot = self._take_snapshot()
        self._saved_epoch = self.epoch

    def _trim_metrics(self) -> None:
        """Drop metric lines of epochs after the checkpoint (written before a crash)."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            if line.strip() and json.loads(line)["epoch"] <= self.epoch:
                kept.append(json.loads(line))
        self.history = kept
        _atomic_write(path, lambda fh: fh.write("".join(json.dumps(m) + "\n" for m in kept)),
                      "w")

    # -- training -------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train until config.epochs epochs are completed. Ctrl-C (KeyboardInterrupt) stops
        after saving the checkpoint of the last completed epoch; the result then has
        interrupted=True."""
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            while self.epoch < self.config.epochs:
                metrics = self._run_epoch(self.epoch)
                self.epoch += 1
                self.history.append(metrics)
                self._snapshot = self._take_snapshot()
                if self.out_dir is not None:
                    with open(self.out_dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(metrics) + "\n")
                    self._save(self._snapshot)
                if self.on_epoch is not None:
                    self.on_epoch(metrics)
        except KeyboardInterrupt:
            if self.out_dir is not None and self._saved_epoch != self._snapshot["epoch"]:
                self._save(self._snapshot)
            return self._result(interrupted=True)
        return self._result(interrupted=False)

    def _result(self, interrupted: bool) -> FitResult:
        snap = self._snapshot
        return FitResult(
            final_test_accuracy=snap["test_accuracy"],
            best_test_accuracy=snap["best_test_accuracy"],
            best_epoch=snap["best_epoch"],
            epochs_completed=snap["epoch"],
            interrupted=interrupted,
            history=list(self.history),
        )

    def _run_epoch(self, e: int) -> dict[str, Any]:
        cfg, src = self.config, self.train_source
        n, bs = len(self.train_set), cfg.batch_size
        lr = learning_rate(cfg.lr, e)
        order = np.random.default_rng([cfg.seed, e]).permutation(n)
        predictions = np.empty(n, dtype=np.int64)
        layer_spikes = np.zeros(len(cfg.layers) - 1, dtype=np.int64)
        loss_sum = 0.0
        weights = self.sample_weights if cfg.boosting else None
        engine0 = src.engine_seconds
        t0 = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(e, 0, n)
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            out = src.train(self.net, idx, lr, e, None if weights is None else weights[idx])
            predictions[idx] = out["predictions"]
            layer_spikes += out["layer_spikes"]
            loss_sum += float(out["loss"]) * len(idx)
            if self.on_batch is not None:
                self.on_batch(e, start + len(idx), n)
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
            self.best_test_accuracy, self.best_epoch = acc, e + 1
        neurons = np.asarray(cfg.layers[1:], dtype=np.float64)
        return {
            "epoch": e + 1,  # 1-based: epochs completed after this one
            "lr": lr,
            "train_loss": loss_sum / n,
            "train_accuracy": float(correct.mean()),
            "test_accuracy": acc,
            "best_test_accuracy": self.best_test_accuracy,
            "best_epoch": self.best_epoch,
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

    def _take_snapshot(self) -> dict[str, Any]:
        """Everything a checkpoint of the last completed epoch holds, copied now."""
        return {
            "epoch": self.epoch,
            "state": {k: np.array(v) for k, v in self.net.get_state().items()},
            "sample_weights": self.sample_weights.copy(),
            "test_accuracy": self.last_test_accuracy,
            "best_test_accuracy": self.best_test_accuracy,
            "best_epoch": self.best_epoch,
        }

    def _save(self, snap: dict[str, Any]) -> None:
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
            # No RNG state is needed: shuffling uses default_rng([seed, epoch]) and spikes
            # are keyed by (seed, sample, epoch); recorded here for readers.
            "shuffle": "numpy.random.default_rng([seed, epoch]).permutation(n_train)",
            "config": self.config.to_dict(),
        }
        _atomic_write(self.out_dir / "checkpoint.npz", lambda fh: np.savez(fh, **arrays))
        _atomic_write(self.out_dir / "checkpoint.json",
                      lambda fh: fh.write(json.dumps(meta, indent=2) + "\n"), "w")
        self._saved_epoch = snap["epoch"]
