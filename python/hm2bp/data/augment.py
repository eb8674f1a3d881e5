"""Data augmentation of the mnist-cnn preset (SPEC_CNN 5), computed by the engine (C++).

A displacement map (Gaussian-smoothed elastic noise, zoom, rotation) drawn from a counter RNG
keyed (seed, "aug", epoch[, sample id]) warps each uint8 image bilinearly, exactly as the authors'
code does (truncating lookup, -1 outside the image); the result is every pixel's spike
probability per step, which `encode_rates` turns into Poisson trains with the keys of
`hm2bp.encode_poisson`. Rates lie in [0, 1/5.5] up to rounding (+-1e-17) except where a source
coordinate in (-1, 0) extrapolates from ink on the first two rows or columns (the authors'
truncation; MNIST's blank border never has any); the encoder treats rates <= 0 as silent. An undisplaced pixel's rate is exactly p / (5.5 * 255),
so with all amplitudes 0 `encode_rates(augment(...))` equals `encode_poisson` bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..model.arrays import check_images, check_sample_index
from ..model.hyper import check_number, check_whole
from ..model.network import default_threads

__all__ = ["AugmentConfig", "augment", "displacement_map", "encode_rates", "square_images"]

Array = np.ndarray

MODES = ("epoch", "sample")


@dataclass(frozen=True)
class AugmentConfig:
    """Amplitudes and options of the augmentation; the defaults are the mnist-cnn preset.

    distortion: elastic amplitude (the authors' DISTORTION; under 0.1 the elastic field is off),
    scale: largest zoom in percent (SCALE), rotation: largest angle in degrees (ROTATION),
    mode: "epoch" (one map per epoch shared by all samples, the authors') or "sample" (one per
    sample and epoch), elastic_fix: draw the vertical elastic field from its own uniforms (the
    authors' code reuses the horizontal one), sigma and field: the Gaussian's width and window.
    """

    distortion: float = 3.4
    scale: float = 12.0
    rotation: float = 12.0
    mode: str = "epoch"
    elastic_fix: bool = False
    sigma: float = 4.0
    field: int = 21

    def __post_init__(self) -> None:
        for name in ("distortion", "scale", "rotation"):
            object.__setattr__(self, name, check_number(name, getattr(self, name)))
        object.__setattr__(self, "sigma", check_number("sigma", self.sigma, strict=True))
        field = check_whole("field", self.field, 1)
        if field % 2 == 0:
            raise ValueError(f"field must be odd (a window centred on the pixel), got {field}")
        object.__setattr__(self, "field", field)
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'epoch' or 'sample', got {self.mode!r}")
        if not isinstance(self.elastic_fix, (bool, np.bool_)):
            raise TypeError(f"elastic_fix must be True or False, got {self.elastic_fix!r}")
        object.__setattr__(self, "elastic_fix", bool(self.elastic_fix))

    @property
    def enabled(self) -> bool:
        """Whether the authors augment at all with these amplitudes (their applyPreproc)."""
        return self.distortion >= 0.1 or self.scale >= 1 or self.rotation >= 1

    def _core_args(self) -> dict:
        return dict(mode=self.mode, elastic_fix=self.elastic_fix, distortion=self.distortion, scale=self.scale,
                    rotation=self.rotation, sigma=self.sigma, field=self.field)


def square_images(images: Array) -> Array:
    images = check_images(images)
    side = int(round(images.shape[1] ** 0.5))
    if side < 2 or side * side != images.shape[1]:
        raise ValueError(f"augment needs square images, (B, S, S) or (B, S*S) with S >= 2; "
                         f"{images.shape[1]} pixels per image is not a square")
    return images


def _threads(threads: int | None) -> int:
    return default_threads() if threads is None else check_whole("threads", threads, 1)


def augment(images: Array, seed: int, epoch: int, sample_index: int | Sequence[int] | Array,
            config: AugmentConfig = AugmentConfig(), dtype: str = "float64", threads: int | None = None) -> Array:
    """Spike probabilities per step of the warped images: (B, S*S) float64 (or float32).

    images: uint8 (B, S, S) or (B, S*S). sample_index: the images' indices in the data file
    (an int: the first of B consecutive ones); in "sample" mode they key each image's map.
    The amplitudes are applied as given; `config.enabled` says whether the authors would
    augment at all. float32 rates are rounded: encode float64 ones for the bit-exact path.
    """
    images = square_images(images)
    index = check_sample_index(sample_index, images.shape[0])
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return _core.augment_rates(images, check_whole("seed", seed, 0), check_whole("epoch", epoch, 0), index,
                               threads=_threads(threads), float64=dtype == "float64", **config._core_args())


def displacement_map(seed: int, epoch: int, sample_id: int = 0, config: AugmentConfig = AugmentConfig(),
                     size: int = 28) -> tuple[Array, Array]:
    """The map (dispH, dispV), float64 (size, size): a pixel (row, col) reads the source image
    at (row - dispV, col - dispH). sample_id only matters in "sample" mode."""
    return _core.displacement_map(check_whole("seed", seed, 0), check_whole("epoch", epoch, 0),
                                  check_whole("sample_id", sample_id, 0), size=check_whole("size", size, 2),
                                  **config._core_args())


def encode_rates(rates: Array, T: int, seed: int, sample_index: int | Sequence[int] | Array, epoch: int = 0,
                 threads: int | None = None) -> Array:
    """Poisson trains of per-step spike probabilities: bool (B, T, n), never a spike at t = 0.

    Same keys as `hm2bp.encode_poisson`: input n of sample b spikes at t >= 1 iff its uniform
    is below rates[b, n], so a float64 rate of exactly p / (5.5 * 255) gives encode_poisson's
    spikes. Rates <= 0 never fire and rates >= 1 always do.
    """
    rates = np.asarray(rates)
    if not np.issubdtype(rates.dtype, np.floating):
        raise TypeError(f"rates must be a float array of spike probabilities, got dtype {rates.dtype}"
                        " (encode uint8 images with hm2bp.encode_poisson)")
    if rates.ndim != 2 or rates.shape[0] == 0:
        raise ValueError(f"rates must have shape (B, n) with B >= 1, got {rates.shape}")
    if np.isnan(rates).any():
        raise ValueError("rates contain NaN")
    index = check_sample_index(sample_index, rates.shape[0])
    return _core.encode_rates(np.ascontiguousarray(rates, dtype=np.float64), check_whole("T", T, 2),
                              check_whole("seed", seed, 0), index, check_whole("epoch", epoch, 0),
                              _threads(threads))
