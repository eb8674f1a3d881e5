"""A network as one file (Network.save / Network.load): its description (input shape, layers,
every hyperparameter, init_w, seed, dtype), its state (weights, optimizer moments and step,
fixed reservoir weights) and, when it came from a training run, the run's config. The
container is hm2bp.model.state_file's, read without pickle; loading rebuilds the network from
the description and sets the state, so a save/load round trip is exact.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import limits, state_file
from .hyper import check_whole
from .layers import from_dict, to_dict

__all__ = ["FORMAT", "VERSION", "NetworkFileError", "format_of", "load", "read", "write"]

FORMAT = "hm2bp-network"
VERSION = 1


class NetworkFileError(ValueError):
    """A saved network file is missing, damaged or not one."""


def write(network: Any, path: str | os.PathLike[str]) -> None:
    """Save `network` (an hm2bp.Network) to path, atomically."""
    d = network.description
    config = network.config
    meta = {
        "format": FORMAT, "version": VERSION,
        "network": {"input_shape": list(d.input_shape), "layers": [to_dict(layer) for layer in d.layers],
                    "init_w": d.init_w, "seed": d.seed, "dtype": network.dtype,
                    "hyperparameters": d.hyperparameters},
        "config": None if config is None else config.to_dict(),
    }
    state_file.write(path, network.get_state(), meta, what="network file")


def format_of(path: str | os.PathLike[str]) -> str | None:
    """The `format` a state file's metadata names ("hm2bp-network", "hm2bp-checkpoint"), read
    from its __meta__ member alone; None for anything else (read() then says what is wrong)."""
    try:
        meta = state_file.read_meta(path, what="state file", error=NetworkFileError)
    except (OSError, NetworkFileError):
        return None
    return meta.get("format") if isinstance(meta, dict) else None


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]:
    """(Network keyword arguments, state for Network.set_state, the run's config as a dict or
    None) of a saved network; any problem is one NetworkFileError naming the file."""
    if not os.path.isfile(path):
        raise NetworkFileError(f"no saved network at {path}: not a file")
    meta, arrays = state_file.read(path, what="network file", error=NetworkFileError)
    try:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            hint = " (a training run's checkpoint: load it with hm2bp.load)" if found == "hm2bp-checkpoint" else ""
            raise ValueError(f"not a saved hm2bp network{hint}")
        if meta.get("version") != VERSION:
            raise ValueError(f"format version {meta.get('version')!r}, this hm2bp reads version {VERSION} "
                             "(written by a newer hm2bp?)")
        net = meta["network"]
        kwargs = {
            "layers": [from_dict(t, f"layers[{k}]") for k, t in enumerate(net["layers"])],
            "input_shape": tuple(net["input_shape"]), "init_w": net["init_w"], "seed": net["seed"],
            "dtype": net["dtype"], **net["hyperparameters"],
        }
        config = meta.get("config")
        if config is not None and not isinstance(config, dict):
            raise ValueError("its config is not a table")
    except (ValueError, KeyError, TypeError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else str(exc)
        raise NetworkFileError(f"{path}: {what}") from None
    return kwargs, arrays, config


def load(cls: Any, path: str | os.PathLike[str], backend: str, threads: int | None) -> tuple[Any, dict[str, Any] | None]:
    """(the network, built by cls (hm2bp.Network) with the file's exact state; the run's config
    as a dict or None). A description or state the network refuses is a NetworkFileError."""
    kwargs, state, config = read(path)
    if threads is not None:  # the caller's mistake, not the file's: checked before the file is blamed
        check_whole("threads", threads, 1, limits.MAX_THREADS)
    try:
        network = cls(**kwargs, backend=backend, threads=threads)
        network.set_state(state)
    except (ValueError, TypeError) as exc:
        raise NetworkFileError(f"{path}: {exc}") from None
    return network, config
