"""Run configuration: the schema (`RunConfig`, validated key by key), the presets (SPEC section 7),
TOML config files and their documentation (docs/config.md, --print-config).

A run is described by one flat :class:`RunConfig`. TOML files may be flat or grouped into
``[network]``, ``[training]`` and ``[data]`` tables, and may start from a preset with
``preset = "name"``. Every problem is reported as :class:`ConfigError` naming the key.
"""
from __future__ import annotations

from .files import build_config, load_toml
from .presets import DEFAULT_PRESET, MNIST_MINI, PRESETS, preset
from .schema import (ADDED_KEYS, BACKENDS, DATASETS, DTYPES, FIELD_DOCS, FIELDS, SECTIONS, ConfigError,
                     RunConfig)

__all__ = [
    "DATASETS",
    "ADDED_KEYS",
    "BACKENDS",
    "DEFAULT_PRESET",
    "DTYPES",
    "FIELD_DOCS",
    "FIELDS",
    "MNIST_MINI",
    "PRESETS",
    "SECTIONS",
    "ConfigError",
    "RunConfig",
    "build_config",
    "load_toml",
    "preset",
]
