"""What a run is built from: the network of a config (after its memory estimate is checked) and
the data splits it trains and tests on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import data
from ..config import ConfigError, RunConfig
from ..model import limits
from ..model.network import Network, default_threads

__all__ = ["build_network", "check_memory", "load_split"]


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
