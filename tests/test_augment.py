"""Augmentation (SPEC_CNN 5, hm2bp.augment): the map, the warp and the rate encoding against
plain NumPy written from the spec, determinism per key, and the bit-exact undistorted path."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hm2bp
from hm2bp import data
from hm2bp.data import augment as aug
from hm2bp.data.augment import AugmentConfig
from hm2bp.reference.encoding import _mix

TAG = np.uint64(0x8000000000617567)  # "aug" | 2^63, csrc/hm2bp/augment.hpp
OFF = AugmentConfig(distortion=0.0, scale=0.0, rotation=0.0)


def np_uniforms(seed: int, epoch: int, n: int, sample: int | None = None) -> np.ndarray:
    """u[k] in (0, 1] from the documented keys."""
    key = _mix(_mix(_mix(np.uint64(seed)) ^ TAG) ^ np.uint64(epoch))
    if sample is not None:
        key = _mix(key ^ np.uint64(sample))
    bits = _mix(key ^ np.arange(n, dtype=np.uint64)) >> np.uint64(11)
    return (bits.astype(np.float64) + 1.0) * 2.0**-53


def np_map(seed: int, epoch: int, S: int, c: AugmentConfig, sample: int | None = None):
    """SPEC_CNN 5.2 literally: zero-padded correlation of r with G, then zoom and rotation."""
    r = 2.0 * np_uniforms(seed, epoch, 2 * S * S, sample) - 1.0
    F, h = c.field, c.field // 2
    a = np.arange(F)
    G = np.exp(-((a[:, None] - h) ** 2 + (a[None, :] - h) ** 2) / (2 * c.sigma**2)) / (2 * math.pi * c.sigma)
    def elastic(values):
        padded = np.zeros((S + 2 * h, S + 2 * h))
        padded[h:h + S, h:h + S] = values.reshape(S, S)
        return np.array([[(padded[row:row + F, col:col + F] * G).sum() for col in range(S)] for row in range(S)])
    eh = elastic(r[:S * S])
    ev = elastic(r[S * S:]) if c.elastic_fix else eh
    if c.distortion < 0.1:
        eh = ev = np.zeros((S, S))
    s1, s2 = (max(r[0], 0.0), max(r[1], 0.0)) if c.rotation >= 0.01 else (r[0], r[1])
    mid = S // 2
    X, Y = np.meshgrid(np.arange(S) - mid, np.arange(S) - mid, indexing="ij")
    t = math.radians(c.rotation * r[0])
    dh = c.distortion * eh + c.scale / 100 * s1 * Y + (Y - Y * math.cos(t) - X * math.sin(t))
    dv = c.distortion * ev + c.scale / 100 * s2 * X + (X - X * math.cos(t) + Y * math.sin(t))
    return dh, dv, r


def np_warp(image: np.ndarray, dh: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """SPEC_CNN 5.3 pixel by pixel, in the engine's operation order: rates (S*S,)."""
    S = dh.shape[0]
    raw = image.reshape(S, S).astype(np.float64) * 2.0 / 255.0 - 1.0
    out = np.empty(S * S)
    for row in range(S):
        for col in range(S):
            if abs(dv[row, col]) < 1e-9 and abs(dh[row, col]) < 1e-9:
                out[row * S + col] = image.reshape(-1)[row * S + col] / 1402.5
                continue
            sr, sc = row - dv[row, col], col - dh[row, col]
            r0, c0 = math.trunc(sr), math.trunc(sc)
            if r0 + 1 >= S or r0 < 0 or c0 + 1 >= S or c0 < 0:
                out[row * S + col] = 0.0
                continue
            fr, fc = sr - r0, sc - c0
            v = ((1.0 - fr) * (1.0 - fc) * raw[r0, c0] + (1.0 - fr) * fc * raw[r0, c0 + 1]
                 + fr * (1.0 - fc) * raw[r0 + 1, c0] + fr * fc * raw[r0 + 1, c0 + 1])
            out[row * S + col] = (v + 1.0) * 255.0 / 2.0 / 1402.5
    return out


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return data.load("mnist-mini", "train").images[:64].reshape(64, -1)


def test_uniforms_follow_the_documented_keys():
    # rotation only: dispH[0, 0] = Y - Y cos a - X sin a with X = Y = -mid, a = 12 r[0] degrees
    for mode, sample in (("epoch", None), ("sample", 5)):
        r0 = 2.0 * np_uniforms(9, 3, 1, sample)[0] - 1.0
        dh, _ = aug.displacement_map(9, 3, sample or 0, AugmentConfig(distortion=0.0, scale=0.0, mode=mode))
        t = math.radians(12.0 * r0)
        assert dh[0, 0] == pytest.approx(-14 + 14 * math.cos(t) + 14 * math.sin(t), abs=1e-12)


def test_enabled_is_the_authors_apply_preproc():
    assert AugmentConfig().enabled and not OFF.enabled
    assert AugmentConfig(distortion=0.1, scale=0.0, rotation=0.0).enabled
    assert AugmentConfig(distortion=0.0, scale=1.0, rotation=0.0).enabled
    assert AugmentConfig(distortion=0.0, scale=0.0, rotation=1.0).enabled
    assert not AugmentConfig(distortion=0.09, scale=0.9, rotation=0.9).enabled


@pytest.mark.parametrize("config", [
    AugmentConfig(),                                   # the mnist-cnn preset
    AugmentConfig(elastic_fix=True),
    AugmentConfig(rotation=0.0, scale=30.0),           # unclipped zoom: s1, s2 may be negative
    AugmentConfig(distortion=0.05, scale=5.0),         # elastic field off below 0.1
    AugmentConfig(sigma=1.0, field=3, rotation=40.0),  # a small window
])
def test_map_and_warp_match_numpy_on_a_6x6_image(config):
    S = 6
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, S * S), dtype=np.uint8)
    cases = {"extrapolated": 0, "out of bounds": 0}
    for seed in range(4):
        dh, dv = aug.displacement_map(seed, 2, 0, config, size=S)
        ref_h, ref_v, _ = np_map(seed, 2, S, config)
        np.testing.assert_allclose(dh, ref_h, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dv, ref_v, rtol=0, atol=1e-12)
        rates = aug.augment(image, seed, 2, [0], config)[0]
        np.testing.assert_array_equal(rates, np_warp(image, dh, dv))  # same operations, same bits
        sr, sc = np.arange(S)[:, None] - dv, np.arange(S)[None, :] - dh
        cases["extrapolated"] += int(((sr > -1) & (sr < 0) & (sc > -1) & (sc < S - 1)).sum())
        cases["out of bounds"] += int(((sr <= -1) | (sr >= S - 1) | (sc <= -1) | (sc >= S - 1)).sum())
    if config.distortion >= 0.1 and config.field == 21:
        assert cases["extrapolated"] > 0 and cases["out of bounds"] > 0, cases


def test_truncation_extrapolates_where_floor_would_be_out_of_bounds():
    # one pixel by hand: sr in (-1, 0) reads rows 0 and 1 with a negative weight on row 1
    S = 6
    image = np.zeros((1, S * S), dtype=np.uint8)
    image[0, :S] = 200  # row 0 bright, row 1 dark: extrapolation overshoots row 0
    for seed in range(50):
        dh, dv = aug.displacement_map(seed, 0, 0, AugmentConfig(), size=S)
        sr, sc = -dv[0, :], np.arange(S) - dh[0, :]
        hits = np.nonzero((sr > -1) & (sr < 0) & (sc > 0) & (sc < S - 1))[0]
        if hits.size:
            break
    col = int(hits[0])
    fr, c0 = sr[col], math.trunc(sc[col])
    fc = sc[col] - c0
    top = 200 * 2 / 255 - 1
    expected = ((1 - fr) * top + fr * -1.0 + 1.0) * 255 / 2 / 1402.5  # both columns of row 0 are 200
    rates = aug.augment(image, seed, 0, [0], AugmentConfig())[0]
    assert 0 < fc < 1
    assert rates[col] == pytest.approx(expected, rel=1e-12)
    assert rates[col] > 200 / 1402.5  # overshoot: floor would have given 0 (out of bounds)


def test_rotation_by_90_degrees_moves_a_pixel_where_the_formula_says():
    # a pixel (row, col) reads the source at (mid - Y, mid + X): input (r, c) lands on (c, 2 mid - r)
    seed = next(s for s in range(100) if np_uniforms(s, 0, 1)[0] > 0.6)
    r0 = 2.0 * np_uniforms(seed, 0, 1)[0] - 1.0
    config = AugmentConfig(distortion=0.0, scale=0.0, rotation=90.0 / r0)
    image = np.zeros((1, 784), dtype=np.uint8)
    image[0, 5 * 28 + 9] = 255
    rates = aug.augment(image, seed, 0, [0], config)[0].reshape(28, 28)
    expected = np.zeros((28, 28))
    expected[9, 28 - 5] = 255 / 1402.5
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-9)


def test_all_amplitudes_zero_is_the_identity_bit_for_bit(digits):
    assert not OFF.enabled
    rates = aug.augment(digits, 1, 4, np.arange(64), OFF)
    np.testing.assert_array_equal(rates, digits / (5.5 * 255.0))
    dh, dv = aug.displacement_map(1, 4, 0, OFF)
    assert not dh.any() and not dv.any()
    spikes = aug.encode_rates(rates, 60, 7, np.arange(64), epoch=4)
    np.testing.assert_array_equal(spikes, hm2bp.encode_poisson(digits, 60, 7, np.arange(64), epoch=4))
    # the authors' round trip through 2p/255 - 1 is not exact: why the engine returns p / 1402.5
    p = np.arange(256.0)
    round_trip = (p * 2.0 / 255.0 - 1.0 + 1.0) * 255.0 / 2.0 / 1402.5
    assert (round_trip != p / 1402.5).sum() == 34


def test_maps_are_deterministic_per_key():
    epoch_mode, sample_mode = AugmentConfig(), AugmentConfig(mode="sample")
    a = aug.displacement_map(3, 1, 0, epoch_mode)
    np.testing.assert_array_equal(a, aug.displacement_map(3, 1, 0, epoch_mode))
    np.testing.assert_array_equal(a, aug.displacement_map(3, 1, 17, epoch_mode))  # id unused
    assert not np.array_equal(a, aug.displacement_map(3, 2, 0, epoch_mode))
    assert not np.array_equal(a, aug.displacement_map(4, 1, 0, epoch_mode))
    s = aug.displacement_map(3, 1, 0, sample_mode)
    np.testing.assert_array_equal(s, aug.displacement_map(3, 1, 0, sample_mode))
    assert not np.array_equal(s, aug.displacement_map(3, 1, 1, sample_mode))
    assert not np.array_equal(s, a)


def test_epoch_mode_shares_one_map_and_sample_mode_does_not(digits):
    same = np.repeat(digits[:1], 3, axis=0)
    index = [0, 11, 500]
    rates = aug.augment(same, 5, 0, index, AugmentConfig(), threads=2)
    assert (rates == rates[0]).all()
    rates = aug.augment(same, 5, 0, index, AugmentConfig(mode="sample"), threads=2)
    assert not np.array_equal(rates[0], rates[1]) and not np.array_equal(rates[1], rates[2])
    for b, i in enumerate(index):  # each sample's map is displacement_map's for its id
        dh, dv = aug.displacement_map(5, 0, i, AugmentConfig(mode="sample"))
        np.testing.assert_array_equal(rates[b], np_warp(same[b], dh, dv))


def test_epoch_maps_kept_between_calls_are_the_maps_of_their_key(digits):
    # batch 1 asks for an epoch's map sample after sample (the engine keeps the last one drawn):
    # each call still warps by displacement_map's map for its seed, epoch and amplitudes
    plain, fixed = AugmentConfig(), AugmentConfig(elastic_fix=True, distortion=2.0)
    for seed, epoch, config in [(5, 0, plain), (5, 0, plain), (5, 1, plain), (6, 1, plain), (6, 1, fixed),
                                (5, 0, plain)]:
        dh, dv = aug.displacement_map(seed, epoch, 0, config)
        for k in (3, 9):
            rates = aug.augment(digits[k:k + 1], seed, epoch, k, config)
            np.testing.assert_array_equal(rates[0], np_warp(digits[k], dh, dv))


def test_elastic_fields_are_equal_without_the_fix_only():
    elastic = AugmentConfig(scale=0.0, rotation=0.0)
    dh, dv = aug.displacement_map(2, 0, 0, elastic)
    np.testing.assert_array_equal(dh, dv)
    assert np.abs(dh).max() > 0.1
    dh, dv = aug.displacement_map(2, 0, 0, AugmentConfig(scale=0.0, rotation=0.0, elastic_fix=True))
    assert not np.allclose(dh, dv)


def test_rates_of_digits_stay_in_range_and_threads_agree(digits):
    for config in (AugmentConfig(), AugmentConfig(mode="sample", elastic_fix=True)):
        rates = aug.augment(digits, 0, 3, np.arange(64), config, threads=1)
        # MNIST's blank border keeps extrapolation away from ink; rounding leaves +-1e-17
        assert rates.min() > -1e-15 and rates.max() < 1 / 5.5 + 1e-15
        assert not np.array_equal(rates, digits / 1402.5)
        np.testing.assert_array_equal(rates, aug.augment(digits, 0, 3, np.arange(64), config, threads=2))
        r32 = aug.augment(digits, 0, 3, np.arange(64), config, dtype="float32")
        assert r32.dtype == np.float32
        np.testing.assert_array_equal(r32, rates.astype(np.float32))


def test_encode_rates_spikes_iff_the_uniform_is_below_the_rate():
    rates = np.array([[-0.5, 0.0, 0.25, 1.0, 2.0]])
    spikes = aug.encode_rates(rates, 4000, 3, [8], epoch=1)
    assert not spikes[:, 0].any()
    counts = spikes[0].sum(axis=0)
    assert counts[0] == counts[1] == 0 and counts[3] == counts[4] == 3999
    assert abs(counts[2] - 0.25 * 3999) < 5 * math.sqrt(3999 * 0.25 * 0.75)
    # the same uniforms as encode_poisson: rate 255 / 1402.5 is pixel 255
    pixel = aug.encode_rates(np.array([[255 / 1402.5]]), 300, 3, [8], epoch=1)
    np.testing.assert_array_equal(pixel, hm2bp.encode_poisson(np.array([[255]], np.uint8), 300, 3, [8], 1))


def test_errors_say_what_to_fix(digits):
    with pytest.raises(ValueError, match="mode must be"):
        AugmentConfig(mode="batch")
    with pytest.raises(ValueError, match="distortion must be a finite number"):
        AugmentConfig(distortion=-1.0)
    with pytest.raises(ValueError, match="field must be odd"):
        AugmentConfig(field=20)
    with pytest.raises(TypeError, match="elastic_fix"):
        AugmentConfig(elastic_fix=1)
    with pytest.raises(ValueError, match="not a square"):
        aug.augment(digits[:, :700], 0, 0, 0)
    with pytest.raises(TypeError, match="uint8"):
        aug.augment(digits / 255.0, 0, 0, 0)
    with pytest.raises(ValueError, match="sample_index"):
        aug.augment(digits, 0, 0, [1, 2])
    with pytest.raises(ValueError, match="dtype"):
        aug.augment(digits, 0, 0, 0, dtype="float16")
    with pytest.raises(TypeError, match="float array"):
        aug.encode_rates(digits, 10, 0, 0)
    with pytest.raises(ValueError, match="NaN"):
        aug.encode_rates(np.full((1, 4), np.nan), 10, 0, 0)
    with pytest.raises(ValueError, match="T must be"):
        aug.encode_rates(np.zeros((1, 4)), 1, 0, 0)


def test_plot_augmented(tmp_path, digits):
    pytest.importorskip("matplotlib")
    from hm2bp.cli.plot import plot_augmented

    path = plot_augmented(digits, AugmentConfig(), 0, tmp_path / "aug.png", n=3, epochs=2)
    assert path.stat().st_size > 1000
