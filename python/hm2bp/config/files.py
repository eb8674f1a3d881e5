"""Config files: TOML, flat or grouped into [network], [training] and [data] tables, optionally
starting from a preset; and the composition preset < config file < overrides."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli package (a dependency there), the parser that became tomllib
    import tomli as tomllib

from .. import safe_io
from .._suggest import did_you_mean
from .presets import DEFAULT_PRESET, PRESETS
from .schema import FIELDS, SECTIONS, ConfigError, RunConfig, fail

__all__ = ["build_config", "load_toml", "tomllib"]


def _flatten(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Merge [network]/[training]/[data] tables and top-level keys into one flat dict."""
    flat: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key not in FIELDS:
            raise ConfigError(
                f"{source}: unknown key {where}{key!r}{did_you_mean(key, FIELDS)}; allowed keys: "
                f"{', '.join(sorted(FIELDS))} (or tables [network], [training], [data])"
            )
        if key in flat:
            raise ConfigError(f"{source}: key {key!r} given twice")
        flat[key] = value

    for key, value in table.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} must be a table ([{key}])")
            for sub, sub_value in value.items():
                if sub in FIELDS and FIELDS[sub][1] != key:
                    raise ConfigError(
                        f"{source}: key {sub!r} belongs in [{FIELDS[sub][1]}] "
                        f"(or at the top level), not in [{key}]"
                    )
                put(sub, sub_value, f"[{key}] ")
        else:
            put(key, value, "")
    return flat


# A config is a page of keys; a larger file is not one (and is refused before it is read).
MAX_CONFIG_BYTES = 1 << 20


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a flat dict of keys (not yet validated): a regular file of
    at most MAX_CONFIG_BYTES (hm2bp.safe_io), any problem one ConfigError line."""
    path = Path(path)
    try:
        text = safe_io.read_text(path, MAX_CONFIG_BYTES, what="config file", error=ConfigError)
        table = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {safe_io.short(str(exc), 200)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a config: arrays or tables nested too deeply") from None
    except ValueError as exc:  # ConfigError; or tomllib's int() of a number of > 4300 digits
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: not valid TOML: {safe_io.short(str(exc), 200)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return _flatten(table, str(path))


def build_config(
    preset_name: str | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> RunConfig:
    """Compose preset < config file < overrides (None overrides are ignored).

    A config file's own ``preset`` key is used when ``preset_name`` is not given; without
    either, the config starts from RunConfig's defaults if a file is given, else from
    DEFAULT_PRESET.
    """
    file_values = load_toml(config_file) if config_file is not None else {}
    name = preset_name or file_values.get("preset")
    if name is None and config_file is None:
        name = DEFAULT_PRESET
    if name is not None and not isinstance(name, str):
        fail("preset", name, "a string")
    values: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            fail("preset", name, f"one of {', '.join(PRESETS)}{did_you_mean(name, PRESETS)}")
        values.update(PRESETS[name])
    values.update(file_values)
    values["preset"] = name
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict(values)
