"""The run configuration: one flat :class:`RunConfig`, its keys (type, section of a grouped TOML
file, meaning) and its validation. Every problem is reported as :class:`ConfigError` naming the
key.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import safe_io
from ..data.augment import AugmentConfig
from ..data.events import RECIPES
from ..model import hyper, layers, limits
from ..model.hyper import HYPERPARAMETERS
from ..train.schedule import LR_RULES, ORDER_MODES

__all__ = ["ADDED_KEYS", "BACKENDS", "DATASETS", "DTYPES", "FIELDS", "FIELD_DOCS", "SECTIONS", "ConfigError",
           "RunConfig", "fail"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""


# (n_inputs, n_classes) per dataset name of hm2bp.data.load; checked early so that a layer
# size mismatch is reported before any data is read.
DATASETS: dict[str, tuple[int, int]] = {
    "mnist": (784, 10),
    "fashion-mnist": (784, 10),
    "emnist-balanced": (784, 47),
    "nmnist": (2312, 10),
    "mnist-mini": (784, 10),
    "spoken-letters": (78, 26),
}

DTYPES = ("float32", "float64")
BACKENDS = ("auto", "cpu", "cuda")


def _with_hyperparameters(cls: type) -> type:
    """Add one field per hyperparameter, with its declared type and default (hm2bp.hyper)."""
    for h in HYPERPARAMETERS.values():
        cls.__annotations__[h.name] = h.kind.__name__
        setattr(cls, h.name, h.default)
    return cls


@dataclass
@_with_hyperparameters
class RunConfig:
    """Everything needed to (re)build a network and train it; serialised into checkpoints.

    The network is either the classic list of sizes (`layers`, with one threshold per layer in
    `vth`) or, when `layer` is given, a stack of layer tables on an `input_shape` (hm2bp.layers,
    e.g. ``{"type": "conv2d", "channels": 15, "kernel": 5, "vth": 5.0}``); `layers` and `vth`
    are then derived from it. The hyperparameters (tau_m, ..., eps) are fields too, one per
    entry of hm2bp.hyper.HYPERPARAMETERS, added from there (`_with_hyperparameters`).
    """

    # data
    dataset: str = "mnist-mini"
    data_dir: str | None = None
    download: bool = True
    train_size: int | None = None  # a seeded class-stratified sample of N (None: all)
    test_size: int | None = None
    nmnist_recipe: str = "authors"
    val_split: float = 0.0  # share of the training set held out for validation (hm2bp.train.validation)
    # data augmentation of training images (SPEC_CNN 5; all 0: off)
    augment_distortion: float = 0.0
    augment_scale: float = 0.0
    augment_rotation: float = 0.0
    augment_mode: str = "epoch"  # one displacement map per epoch ("epoch", the authors') or per sample
    augment_elastic_fix: bool = False
    # network (SPEC sections 1-4)
    layers: list[int] = field(default_factory=lambda: [784, 800, 10])
    vth: list[float] = field(default_factory=lambda: [20.0, 8.0])
    input_shape: list[int] | None = None  # with `layer`: (channels, height, width)
    layer: list[dict[str, Any]] | None = None  # a layer stack ([[network.layer]] tables)
    T: int = 400
    init_w: float = 1.0
    dtype: str = "float32"
    # training (SPEC section 5)
    epochs: int = 200
    batch_size: int = 1
    eval_batch_size: int = 64
    lr: float = 0.001
    lr_rule: str = "sqrt_max1"  # lr / sqrt(max(epoch, 1)); "sqrt_plus1": lr / sqrt(epoch + 1)
    order: str = "permutation"  # per-epoch sample order; "authors": 5000 swaps of the last order
    boosting: bool = True
    reencode: bool = False
    seed: int = 0
    backend: str = "auto"
    threads: int | None = None
    # informative only: which preset the run started from
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build and validate from a flat mapping (e.g. a checkpoint's ``config``)."""
        unknown = sorted(set(values) - FIELDS.keys())
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(sorted(FIELDS))}"
            )
        try:
            cfg = cls(**{k: _coerce(k, v) for k, v in values.items()})
            cfg.validate()
        except RecursionError:  # a value nested thousands deep (a crafted TOML or checkpoint)
            raise ConfigError("invalid config: a value is nested too deeply") from None
        except OverflowError as exc:  # a number beyond any float, caught here if not by its key
            raise ConfigError(f"invalid config: a number is too large ({exc})") from None
        return cfg

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with some keys changed (None values are ignored)."""
        merged = self.to_dict()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return RunConfig.from_dict(merged)

    def network_kwargs(self, backend: str | None = None) -> dict[str, Any]:
        """Keyword arguments for hm2bp.Network (and hm2bp.reference.Network)."""
        stack = self.layer_stack()
        shape = {"layers": stack, "vth": None, "input_shape": tuple(self.input_shape)} if stack else {
            "layers": list(self.layers), "vth": list(self.vth), "input_shape": None}
        return {
            **shape, **hyper.pick(self.to_dict()), "init_w": self.init_w,
            "backend": backend or self.backend, "dtype": self.dtype, "threads": self.threads,
            "seed": self.seed,
        }

    def layer_stack(self) -> list[layers.Layer] | None:
        """The `layer` tables as hm2bp.layers objects (None for the classic sizes form)."""
        if self.layer is None:
            return None
        try:
            return [layers.from_dict(t, f"layer[{k}]") for k, t in enumerate(self.layer)]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {exc}") from None

    def augmentation(self) -> AugmentConfig:
        """The augmentation settings (AugmentConfig.enabled says whether to apply them)."""
        return AugmentConfig(distortion=self.augment_distortion, scale=self.augment_scale,
                             rotation=self.augment_rotation, mode=self.augment_mode,
                             elastic_fix=self.augment_elastic_fix)

    def validate(self) -> None:
        """Raise ConfigError for impossible values, naming the key and what is allowed."""
        for name, (kind, _) in FIELDS.items():
            _check_type(name, getattr(self, name), kind)
        if self.dataset not in DATASETS:
            fail("dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        if self.data_dir is not None:  # a FIFO or a file here would only fail much later
            where = os.path.expanduser(self.data_dir)
            if os.path.exists(where) and not os.path.isdir(where):
                fail("data_dir", self.data_dir, "a directory (or a new path, for downloads)")
        if self.dataset == "mnist-mini" and self.data_dir is not None:
            fail("data_dir", self.data_dir, "none with dataset 'mnist-mini' (the digits bundled with the "
                 "package); for MNIST files in a folder use dataset = \"mnist\" or a preset that "
                 "does, e.g. --preset mnist-fc800")
        for key, allowed in (("dtype", DTYPES), ("backend", BACKENDS), ("lr_rule", LR_RULES),
                             ("order", ORDER_MODES), ("augment_mode", ("epoch", "sample")),
                             ("nmnist_recipe", RECIPES)):
            if getattr(self, key) not in allowed:
                fail(key, getattr(self, key), f"one of {', '.join(allowed)}")
        for name in HYPERPARAMETERS:  # the schema's types and bounds, one message style
            try:
                hyper.check(name, getattr(self, name))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid {name} = {safe_io.short(getattr(self, name))}: {exc}") from None
        try:
            hyper.check_all(hyper.pick(self.to_dict()))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid hyperparameters: {exc}") from None
        self._check_network()

        _positive(self, "T", minimum=2)
        if self.t_ref >= self.T:
            fail("t_ref", self.t_ref, f"a refractory period shorter than T ({self.T})")
        if not self.undesired < self.desired < self.T:
            fail("desired", self.desired,
                  f"undesired ({self.undesired}) < desired < T ({self.T})")
        _positive(self, "init_w", strict=True)
        _positive(self, "epochs", minimum=1)
        _positive(self, "batch_size", minimum=1)
        _positive(self, "eval_batch_size", minimum=1)
        try:
            hyper.check_lr(self.lr)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid lr = {self.lr!r}: {exc}") from None
        # seed + 1 keys the test set; keep both inside the engine's uint64.
        if not 0 <= self.seed < 2**63:
            fail("seed", self.seed, "an integer in [0, 2**63)")
        if not 0 <= self.val_split < 1:
            fail("val_split", self.val_split, "a share in [0, 1) of the training set (0: no validation set)")
        for name in ("threads", "train_size", "test_size"):
            if getattr(self, name) is not None:
                _positive(self, name, minimum=1)
        try:
            self.augmentation()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid augmentation: {exc}") from None
        self._check_engine_limits()

    def _check_network(self) -> None:
        """The layer sizes (or the layer stack) against each other and the dataset."""
        n_in, n_cls = DATASETS[self.dataset]
        stack = self.layer_stack()
        if stack is not None:
            if self.input_shape is None:
                fail("input_shape", None, "(channels, height, width) of the input, with a layer stack")
            try:
                shapes = layers.stack_shapes(self.input_shape, stack)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid layer stack: {exc}") from None
            # the classic fields follow the stack (informative; the stack builds the network)
            self.layers = [c * h * w for c, h, w in shapes]
            self.vth = [layer.vth for layer in stack]
        elif self.input_shape is not None:
            fail("input_shape", self.input_shape, "no input_shape without a layer stack ([[network.layer]])")
        if len(self.layers) < 2:
            fail("layers", self.layers, "at least 2 sizes (inputs and outputs)")
        if any(n < 1 for n in self.layers):
            fail("layers", self.layers, "sizes >= 1")
        if self.layers[0] != n_in:
            fail("layers", self.layers, f"layers[0] = {n_in} (inputs of dataset {self.dataset!r})")
        if self.layers[-1] != n_cls:
            fail("layers", self.layers,
                  f"layers[-1] = {n_cls} (classes of dataset {self.dataset!r})")
        if len(self.vth) != len(self.layers) - 1:
            fail("vth", self.vth,
                  f"{len(self.layers) - 1} thresholds, one per layer after the input "
                  f"(layers = {self.layers})")
        if stack is None:
            try:
                layers.from_sizes(self.layers, self.vth)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid vth = {self.vth!r}: {exc}") from None

    def _check_engine_limits(self) -> None:
        """Values the engine's C++ types and the chosen float dtype can hold."""
        for key, top in _INT_LIMITS.items():
            values = getattr(self, key)
            for v in values if isinstance(values, list) else [values]:
                if v is not None and v > top:
                    fail(key, values, f"integers <= {top} (the engine's limit)")
        info = np.finfo(self.dtype)
        tiny, big = float(info.tiny), float(info.max)
        for key in _FLOAT_KEYS:
            values = getattr(self, key)
            for v in values if isinstance(values, list) else [values]:
                if v > big or 0 < v < tiny:  # would become inf or 0 in the engine
                    fail(key, values, f"values 0 or within [{tiny:.3g}, {big:.3g}], the range "
                          f"of {self.dtype}")


# Field name -> (type kind, section of a grouped TOML file); the hyperparameters' from hm2bp.hyper.
_HYPER_KINDS = {float: "float", int: "int", bool: "bool", str: "str"}
FIELDS: dict[str, tuple[str, str]] = {
    "dataset": ("str", "data"),
    "data_dir": ("str?", "data"),
    "download": ("bool", "data"),
    "train_size": ("int?", "data"),
    "test_size": ("int?", "data"),
    "nmnist_recipe": ("str", "data"),
    "val_split": ("float", "data"),
    "augment_distortion": ("float", "data"),
    "augment_scale": ("float", "data"),
    "augment_rotation": ("float", "data"),
    "augment_mode": ("str", "data"),
    "augment_elastic_fix": ("bool", "data"),
    "layers": ("int_list", "network"),
    "vth": ("float_list", "network"),
    "input_shape": ("int_list?", "network"),
    "layer": ("table_list?", "network"),
    "T": ("int", "network"),
    "init_w": ("float", "network"),
    "dtype": ("str", "network"),
    **{h.name: (_HYPER_KINDS[h.kind], h.group) for h in HYPERPARAMETERS.values()},
    "epochs": ("int", "training"),
    "batch_size": ("int", "training"),
    "eval_batch_size": ("int", "training"),
    "lr": ("float", "training"),
    "lr_rule": ("str", "training"),
    "order": ("str", "training"),
    "boosting": ("bool", "training"),
    "reencode": ("bool", "training"),
    "seed": ("int", "training"),
    "backend": ("str", "training"),
    "threads": ("int?", "training"),
    "preset": ("str?", "top"),
}
# Upper limits of integer keys (their C++ types); lower limits are in RunConfig.validate.
_INT_LIMITS: dict[str, int] = {
    "layers": limits.INT32_MAX, "T": limits.INT32_MAX, "t_ref": limits.INT32_MAX,
    "desired": limits.INT32_MAX, "undesired": limits.INT32_MAX, "margin": limits.INT32_MAX,
    "epochs": limits.INT32_MAX, "batch_size": limits.INT32_MAX,
    "eval_batch_size": limits.INT32_MAX, "threads": limits.MAX_THREADS,
    "train_size": limits.INT64_MAX, "test_size": limits.INT64_MAX,
}
_FLOAT_KEYS = ("vth", "init_w", "lr", *(h.name for h in HYPERPARAMETERS.values() if h.kind is float))
SECTIONS: dict[str, list[str]] = {
    s: [k for k, (_, sec) in FIELDS.items() if sec == s] for s in ("network", "training", "data")
}
_KIND_TEXT = {
    "str": "a string", "str?": "a string", "bool": "true or false", "int": "an integer",
    "int?": "an integer", "float": "a number", "int_list": "a list of integers",
    "int_list?": "a list of integers", "float_list": "a list of numbers",
    "table_list?": "a list of tables ([[network.layer]])",
}

# What each key means (docs/config.md is rendered from this, FIELDS and hm2bp.hyper's docs by
# hm2bp.config.doc; the hyperparameters' meanings are hm2bp.hyper's).
FIELD_DOCS: dict[str, str] = {
    "dataset": "which data: " + ", ".join(DATASETS) + " (mnist-mini: the digits bundled with the package)",
    "data_dir": "folder holding the dataset's files (default: $HM2BP_DATA/<dataset>, else ~/.cache/hm2bp, else "
                "an operating-system copy such as Debian's dataset-fashion-mnist); none for mnist-mini",
    "download": "fetch missing MNIST, Fashion-MNIST or EMNIST files from public mirrors (MD5-checked)",
    "train_size": "train on a class-stratified sample of this many training samples, drawn with `seed` "
                  "(unset: all)",
    "test_size": "test on a class-stratified sample of this many test samples, drawn with `seed` (unset: all)",
    "nmnist_recipe": "how N-MNIST events become input spikes: 'authors' (the paper's recipe: saccades undone, "
                     "coordinates rounded as MATLAB does, events moved off the 34x34 sensor dropped) or 'raw' "
                     "(events where the sensor recorded them); both use input p*34*34 + x*34 + y and step "
                     "ceil(t / 600 us) + 1; ignored for image datasets",
    "val_split": "share of the training set held out as a validation set (class-stratified, drawn with "
                 "`seed`); when > 0 it picks the best epoch (best.npz) instead of the test set",
    "augment_distortion": "elastic distortion amplitude of training images, in pixels (0: off)",
    "augment_scale": "random zoom of training images, in percent (0: off)",
    "augment_rotation": "random rotation of training images, in degrees (0: off)",
    "augment_mode": "'epoch': one displacement map per epoch shared by all samples (the authors'); "
                    "'sample': one per sample and epoch",
    "augment_elastic_fix": "draw the vertical elastic field from its own random numbers (the authors' code "
                           "reuses the horizontal one)",
    "layers": "layer sizes, inputs first, e.g. [784, 800, 10] (derived from `layer` when a stack is given)",
    "vth": "firing threshold of each layer after the input (derived from `layer` when a stack is given)",
    "input_shape": "(channels, height, width) of the input, with a layer stack",
    "layer": "a layer stack on `input_shape`: [[network.layer]] tables of type dense (n, vth, init_w), "
             "conv2d (channels, kernel, vth, padding, init_w), pool2d (size, vth, stride) or reservoir (n, vth, "
             "grid, inhibitory, connect, distance, recurrent_weight, fan_out, input_weight, seed; fixed weights)",
    "T": "time steps per sample",
    "init_w": "initial weights are init_w * U(-1, 1) (a layer table's init_w overrides it)",
    "dtype": "float type of the engine: float32 or float64",
    "epochs": "number of epochs to train (--resume --epochs N extends a run)",
    "batch_size": "training samples per update (the gradient is the batch mean); the paper uses 1",
    "eval_batch_size": "samples per engine call when testing (speed only, no effect on results)",
    "lr": "initial learning rate lr0 of the schedule `lr_rule`",
    "lr_rule": "learning rate in 0-based epoch e: 'sqrt_max1' lr0 / sqrt(max(e, 1)), "
               "'sqrt_plus1' lr0 / sqrt(e + 1), 'cosine' lr0 * (1 + cos(pi * e / epochs)) / 2 (not the "
               "paper's; follows `epochs`, so extending a run with --epochs changes its later rates)",
    "order": "sample order of each epoch: 'permutation' (a fresh one each epoch) or 'authors' (5000 random "
             "swaps of the previous order)",
    "boosting": "raise the weight of misclassified training samples after each epoch",
    "reencode": "draw new Poisson spike trains for the training images every epoch (default: once)",
    "seed": "seeds weights, spikes, sample order, samples and the validation split",
    "backend": "engine: auto (CUDA when a GPU is usable, else CPU), cpu or cuda",
    "threads": "CPU threads of the engine (unset: all cores the process may use)",
    "preset": "start from this preset (informative in a stored config)",
}
# Keys added after checkpoint format 2 was fixed, with the value that reproduces a run stored
# without them (a checkpoint's config must otherwise name every key).
# nmnist_recipe: image runs ignore it; an N-MNIST checkpoint without it used a binning that no
# longer exists and is refused (hm2bp.train.checkpoint).
ADDED_KEYS: dict[str, Any] = {"val_split": 0.0, "nmnist_recipe": "authors"}


def fail(key: str, value: Any, expected: str) -> None:
    raise ConfigError(f"invalid {key} = {safe_io.short(value)}: expected {expected}")


def _huge(value: Any) -> bool:
    """An int (also inside lists and tables) beyond 64 bits: no key takes one, and such a
    number overflows any float it meets."""
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if isinstance(value, (list, tuple)):
        return any(_huge(v) for v in value)
    if isinstance(value, dict):
        return any(_huge(v) for v in value.values())
    return False


def _positive(cfg: RunConfig, key: str, *, strict: bool = False, minimum: float = 0) -> None:
    value = getattr(cfg, key)
    bad = not math.isfinite(value) or (value <= minimum if strict else value < minimum)
    if bad:
        fail(key, value, f"a finite value {'>' if strict else '>='} {minimum:g}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _check_type(key: str, value: Any, kind: str) -> None:
    if kind.endswith("?") and value is None:
        return
    if _huge(value):
        fail(key, value, "numbers of at most 64 bits (magnitude below 2**63)")
    ok = {
        "str": lambda v: isinstance(v, str),
        "str?": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": _is_int,
        "int?": _is_int,
        "float": _is_num,
        "int_list": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
        "int_list?": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
        "float_list": lambda v: isinstance(v, list) and all(_is_num(x) for x in v),
        "table_list?": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    }[kind](value)
    if not ok:
        fail(key, value, _KIND_TEXT[kind])


def _coerce(key: str, value: Any) -> Any:
    """Type-check one value and normalise numbers (ints allowed where floats are)."""
    kind = FIELDS[key][0]
    if isinstance(value, tuple):
        value = list(value)
    _check_type(key, value, kind)
    if kind == "float":
        return float(value)
    if kind == "float_list":
        return [float(x) for x in value]
    if kind == "table_list?" and value is not None:
        return [dict(t) for t in value]
    return value
