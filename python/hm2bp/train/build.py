"""What a run is built from: the network of a config (after its memory estimate is checked) and
the data splits it trains and tests on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import data
from ..config import ConfigError, RunConfig
from ..model import limits, network_file
from ..model.network import Network, default_threads
from .checkpoint import find_checkpoint, load_checkpoint, restore_network

__all__ = ["build_network", "check_memory", "load_network", "load_split"]


def check_memory(config: RunConfig) -> int:
    """Refuse (ConfigError) a configuration whose estimated memory exceeds what is free."""
    threads = config.threads or default_threads()
    try:
        return limits.check_memory(config.layers, config.T, config.t_ref,
                                   max(config.batch_size, config.eval_batch_size), threads,
                                   config.dtype)
    except (MemoryError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def build_network(config: RunConfig, backend: str, factory: Callable[..., Any] | None) -> Any:
    """The network of a config, after its memory estimate is checked."""
    check_memory(config)
    if factory is None:
        factory = Network
    try:
        return factory(**config.network_kwargs(backend))
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise ConfigError(f"cannot create the network (backend {backend!r}): {exc}") from None


def load_network(run: str | Path, backend: str = "auto", threads: int | None = None) -> Network:
    """The trained network of a run: RUN_DIR (its checkpoint.npz, the last completed epoch) or a
    checkpoint file (e.g. RUN_DIR/best.npz), checked in full, as a Network with the run's weights
    and optimizer state, ready for forward/infer, hm2bp.nir and hm2bp.torch; its `config` is the
    run's RunConfig (T, dataset, ... for encoding inputs as the run did). A file written by
    Network.save loads too (its `config` is the run's when it was saved from one, else None).
    A damaged or foreign file raises runstate.CheckpointError (NetworkFileError) naming it."""
    if network_file.format_of(run) == network_file.FORMAT:
        net, stored = network_file.load(Network, run, backend, threads)
        try:
            net.config = None if stored is None else RunConfig.from_dict(stored)
        except ConfigError as exc:
            raise network_file.NetworkFileError(f"{run}: its config: {exc}") from None
        return net
    config, _, arrays = load_checkpoint(run)
    config = config.replace(threads=threads)
    net = build_network(config, backend, None)
    restore_network(net, arrays, find_checkpoint(run))
    net.config = config
    return net


def load_split(config: RunConfig, split: str, size: int | None) -> Any:
    """One split of the config's dataset, checked for its class count; with a size, a seeded
    class-stratified sample of that many (the same for a given seed, in dataset order)."""
    ds = data.load(config.dataset, split, data_dir=config.data_dir, download=config.download,
                   nmnist_recipe=config.nmnist_recipe)
    data.check_classes(ds)
    if size is not None:
        if size > len(ds):
            raise ConfigError(
                f"invalid {split}_size = {size}: the {split} split of {config.dataset!r} has "
                f"only {len(ds)} samples"
            )
        ds = ds.subset(data.stratified_sample(ds.labels, size, [config.seed,
                                                                data.SPLITS.index(split)]))
    return ds
