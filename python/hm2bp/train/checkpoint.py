"""Checkpoints: one file, checkpoint.npz, holding the network state ('net.<name>'), the boosting
weights, the epoch and, as JSON, the config and accuracies (runstate.write_state); loaded
without pickle and checked in full before anything is used.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_io
from ..config import ADDED_KEYS, ConfigError, RunConfig
from ..model import limits
from . import runstate, validation
from .runstate import CheckpointError

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "find_checkpoint", "load_checkpoint", "restore_network"]

CHECKPOINT_FORMAT = "hm2bp-checkpoint"
CHECKPOINT_VERSION = 2  # 1: checkpoint.npz + checkpoint.json; 2: one npz with __meta__

_META_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,), "version": (int,), "epoch": (int,), "n_train": (int,), "n_test": (int,),
    "test_accuracy": (float, int, type(None)), "best_test_accuracy": (float, int, type(None)),
    "best_epoch": (int, type(None)), "backend": (str,), "config": (dict,),
}


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file of a run directory, or path itself when it names the file."""
    path = Path(path)
    npz = path / runstate.STATE_FILE if path.is_dir() else path
    if not npz.exists():
        raise CheckpointError(f"no checkpoint at {path}: {npz} does not exist")
    return npz


def _read_checkpoint(npz: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta, arrays = runstate.read_state(npz)
    if meta is None:  # version 1: the metadata is the json beside the npz
        meta_path = npz.with_suffix(".json")
        try:
            meta = json.loads(safe_io.read_text(meta_path, runstate.MAX_META_BYTES,
                                                what="checkpoint metadata"))
        except safe_io.FileRefusedError as exc:  # names the file and the problem itself
            raise CheckpointError(f"{npz} has no metadata and {exc}") from None
        except (OSError, ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else safe_io.short(str(exc), 200)
            raise CheckpointError(f"{npz} has no metadata and {meta_path} cannot be read "
                                  f"({why})") from None
        if isinstance(meta, dict) and meta.get("version") != 1:
            raise CheckpointError(f"{meta_path} does not belong to the version-1 {npz}")
    return meta, arrays


def _check_checkpoint(meta: Any, arrays: dict[str, np.ndarray]) -> RunConfig:
    """Everything a checkpoint holds, against its format and its own config; raises
    ValueError naming the first problem."""
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not an hm2bp checkpoint (no hm2bp-checkpoint metadata)")
    for key, types in _META_TYPES.items():
        value = meta.get(key, KeyError)
        if value is KeyError:
            raise ValueError(f"metadata lacks {key!r}")
        if not isinstance(value, types) or isinstance(value, bool):
            raise ValueError(f"metadata {key!r} = {safe_io.short(value)} has the wrong type")
    if not 1 <= meta["version"] <= CHECKPOINT_VERSION:
        raise ValueError(f"format version {safe_io.short(meta['version'])}, this hm2bp reads versions 1 to "
                         f"{CHECKPOINT_VERSION} (written by a newer hm2bp?)")
    for key in ("test_accuracy", "best_test_accuracy"):
        if meta[key] is not None and not 0 <= meta[key] <= 1:
            raise ValueError(f"metadata {key!r} = {meta[key]!r} is not an accuracy")
    if meta["epoch"] < 0 or meta["n_train"] < 1 or meta["n_test"] < 1:
        raise ValueError("metadata epoch, n_train or n_test out of range")
    missing = sorted({f.name for f in dataclasses.fields(RunConfig)} - set(meta["config"])
                     - ADDED_KEYS.keys())
    if missing:  # defaults would silently change the run (e.g. another T)
        raise ValueError(f"config lacks {', '.join(missing)}")
    if meta["config"].get("dataset") == "nmnist" and "nmnist_recipe" not in meta["config"]:
        raise ValueError("it was written by an older hm2bp whose N-MNIST binning no longer exists; "
                         "start a new run")
    try:
        stored = {**ADDED_KEYS, **meta["config"]}
        if stored.get("dataset") == "mnist-mini":  # older versions stored an ignored --data-dir
            stored["data_dir"] = None
        config = RunConfig.from_dict(stored)
    except ConfigError as exc:
        raise ValueError(f"config: {exc}") from None
    n_train = None if config.train_size is None else (
        config.train_size - validation.held_out(config.train_size, config.val_split))
    for name, size in (("n_train", n_train), ("n_test", config.test_size)):
        if size is not None and meta[name] != size:
            raise ValueError(f"metadata {name} = {meta[name]} but the config's size is {size}")

    net = {k for k in arrays if k.startswith("net.")}
    unexpected = sorted(set(arrays) - net - {"sample_weights", "epoch"})
    if unexpected or not net or "sample_weights" not in arrays or "epoch" not in arrays:
        raise ValueError(f"arrays {sorted(arrays)} are not those of a checkpoint (network "
                         f"state 'net.*', 'sample_weights', 'epoch')")
    epoch = arrays["epoch"]
    if epoch.shape != () or not np.issubdtype(epoch.dtype, np.integer) \
            or int(epoch) != meta["epoch"]:
        raise ValueError(f"array epoch = {epoch!r} does not match metadata epoch "
                         f"{meta['epoch']} (interrupted while saving?)")
    weights = arrays["sample_weights"]
    if weights.dtype != np.float64 or weights.shape != (meta["n_train"],) \
            or not np.isfinite(weights).all() or (weights <= 0).any():
        raise ValueError(f"sample_weights must be {meta['n_train']} finite float64 > 0, got "
                         f"{weights.dtype} {weights.shape}")
    limits.check_state({k[len("net."):]: arrays[k] for k in net})
    return config


def _load(npz: Path) -> tuple[RunConfig, dict[str, Any], dict[str, np.ndarray]]:
    meta, arrays = _read_checkpoint(npz)
    try:
        config = _check_checkpoint(meta, arrays)
    except ValueError as exc:
        raise CheckpointError(f"{npz}: {exc}") from None
    return config, meta, arrays


def load_checkpoint(path: str | Path) -> tuple[RunConfig, dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a checkpoint: (config, metadata, arrays). Arrays: 'net.<name>' (engine
    state), 'sample_weights', 'epoch'. Any problem is one CheckpointError naming the file.
    The run's other checkpoint file, best.npz beside checkpoint.npz, is read and checked too,
    so that damage to it is found now and not when it is needed."""
    npz = find_checkpoint(path)
    loaded = _load(npz)
    best = npz.with_name(validation.BEST_FILE)
    if npz.name == runstate.STATE_FILE and os.path.lexists(best):
        try:
            _load(best)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} (the best epoch's state of the run; move it away to go "
                                  f"on without it)") from None
    return loaded



def restore_network(net: Any, arrays: dict[str, np.ndarray],
                    where: str | Path = "the checkpoint") -> None:
    """Load the 'net.<name>' arrays of a checkpoint into a network (exact state), after
    checking names, shapes and dtypes against the network its config builds."""
    state = {k[len("net."):]: v for k, v in arrays.items() if k.startswith("net.")}
    template = net.get_state()
    try:
        if set(state) != set(template):
            raise ValueError(f"it holds {sorted(state)}, the network has {sorted(template)}")
        for key, want in template.items():
            got = state[key]
            if got.shape != np.shape(want) or got.dtype.kind != np.asarray(want).dtype.kind:
                raise ValueError(f"{key} is {got.dtype} {got.shape}, the network needs "
                                 f"{np.asarray(want).dtype} {np.shape(want)}")
        net.set_state(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{where} does not fit its network: {exc}") from None
