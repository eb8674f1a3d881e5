"""Event data as users have it (tonic datasets, structured arrays, plain (t, x, y, p) arrays)
and the authors' N-MNIST recipe (SPEC 2), checked by hand-computed cases."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hm2bp import data
from hm2bp.config import ConfigError, preset

N = 2312  # inputs of the 34x34x2 sensor


def events(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """Structured events from (x, y, t, p) rows, tonic's layout."""
    return np.array(list(rows), dtype=[("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


# ---------------------------------------------------------------------------------------------
# The pieces of the authors' recipe, by hand


def test_rounding_at_half_is_away_from_zero():
    # t = 7500: Y -= 7*7500/105000 = 0.5 exactly; t = 15000: X -= 3.5*15000/105000 = 0.5 exactly.
    # NumPy's round would take 0.5 -> 0 and 2.5 -> 2 (half to even); MATLAB's gives 1 and 3.
    X, Y = data.stabilise_saccades([0, 2, 9], [0, 2, 9], [7500, 7500, 15000])
    assert Y.tolist() == [1, 3, 10 - 1]  # Y = 0.5, 2.5 (round up), 10 - 1.0 = 9
    assert X.tolist() == [1, 3, 10]      # X = 1 - 0.25, 3 - 0.25, 10 - 0.5 = 9.5 -> 10
    # a negative half goes away from zero too (such events are dropped anyway): x = 0 at
    # t = 105000 gives X = 1 - 3.5 = -2.5 -> -3
    X, _ = data.stabilise_saccades([0], [20], [105_000])
    assert X.tolist() == [-3]


@pytest.mark.parametrize("t, X, Y", [
    (0, 11, 11),            # no motion yet
    (52_500, 9, 8),         # saccade 1 half way: X = 11 - 1.75 = 9.25, Y = 11 - 3.5 = 7.5 -> 8
    (105_000, 8, 4),        # end of saccade 1: X = 11 - 3.5 = 7.5 -> 8, Y = 11 - 7
    (157_500, 6, 8),        # saccade 2 half way: X = 11 - 5.25 = 5.75, Y = 11 - 3.5 = 7.5 -> 8
    (210_000, 4, 11),       # end of saccade 2: X = 11 - 7, Y back at 11
    (262_500, 8, 11),       # saccade 3 half way: X = 11 - 3.5 = 7.5 -> 8, Y unchanged
    (315_000, 11, 11),      # end of saccade 3: back where it started
    (330_000, 12, 11),      # after it X keeps moving: X = 11 - (7 - 8) = 12
])
def test_three_saccade_phases(t, X, Y):
    got = data.stabilise_saccades([10], [10], [t])
    assert (got[0].tolist(), got[1].tolist()) == ([X], [Y])


def test_x_major_index_and_step_formula():
    ev = events(
        (1, 2, 0, 1),          # t = 0: step ceil(0) + 1 = 1; input 1156 + 1*34 + 2 = 1192
        (1, 2, 1, 1),          # t = 1: step 2
        (1, 2, 600, 1),        # exact multiple: ceil(600/600) + 1 = 2, same spike as above
        (3, 0, 601, 0),        # step 3, input 3*34 = 102 (x-major: x*34 + y)
        (0, 3, 1200, 0),       # step 3, input 3
        (33, 33, 1800, 1),     # step 4, input 2311
    )
    codes = data.bin_events(ev, recipe="raw")
    assert codes.dtype == np.int32
    assert codes.tolist() == [1 * N + 1192, 2 * N + 1192, 3 * N + 3, 3 * N + 102, 4 * N + 2311]


def test_steps_at_and_after_T_are_dropped():
    T = 540
    ev = events((5, 5, (T - 2) * 600, 0),      # step T - 1: the last one kept
                (5, 5, (T - 2) * 600 + 1, 0),  # step T: dropped
                (5, 5, 10**7, 1))              # far later: dropped
    assert data.bin_events(ev, recipe="raw", T=T).tolist() == [(T - 1) * N + 5 * 34 + 5]
    assert len(data.bin_events(ev, recipe="raw")) == 3  # T=None keeps every step
    ds = data.from_events([ev], [0], sensor_size=data.NMNIST_SENSOR)
    assert ds.batch_spikes([0], T=T).sum() == 1 and ds.batch_spikes([0], T=T + 1).sum() == 2


def test_authors_recipe_drops_events_moved_off_the_sensor():
    ev = events(
        (0, 20, 105_000, 0),   # X = -2.5 -> -3 < 1: dropped
        (20, 0, 105_000, 0),   # Y = 1 - 7 < 1: dropped
        (33, 20, 330_000, 0),  # X = 34 + 1 = 35 > 34: dropped
        (33, 33, 0, 1),        # X = Y = 34: kept, input 1156 + 33*34 + 33 = 2311
        (10, 10, 157_500, 0),  # X = 6, Y = 8 (above): input 5*34 + 7, step ceil(262.5) + 1
    )
    codes = data.bin_events(ev, recipe="authors")
    assert codes.tolist() == [1 * N + 2311, 264 * N + 5 * 34 + 7]
    # without the stabilisation all five are on the sensor
    assert len(data.bin_events(ev, recipe="raw")) == 5


def test_duplicate_events_are_one_spike():
    ev = events((4, 4, 100, 0), (4, 4, 100, 0), (4, 4, 599, 0), (4, 4, 601, 0))
    assert data.bin_events(ev, recipe="raw").tolist() == [2 * N + 4 * 34 + 4, 3 * N + 4 * 34 + 4]


# ---------------------------------------------------------------------------------------------
# Event data in the forms users have it


def test_structured_any_dtype_any_order_and_plain_arrays_agree():
    rng = np.random.default_rng(5)
    n = 3000
    x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 320_000, n))
    ref = data.bin_events(events(*zip(x, y, t, p)), recipe="authors")
    other = np.zeros(n, dtype=[("p", bool), ("extra", "f4"), ("t", np.float64), ("y", np.uint8),
                               ("x", np.int16)])
    other["x"], other["y"], other["t"], other["p"] = x, y, t, p
    assert np.array_equal(data.bin_events(other, recipe="authors"), ref)
    plain = np.stack([t, x, y, p], axis=1)
    assert np.array_equal(data.bin_events(plain, recipe="authors"), ref)
    assert np.array_equal(data.bin_events(plain.tolist(), recipe="authors"), ref)
    assert np.array_equal(data.bin_events(plain.astype(np.uint32), recipe="authors"), ref)


def test_a_larger_sensor_with_raw_events():
    # a 128x128 sensor (DVS Gesture's) with one polarity channel of 2: input p*W*H + x*H + y
    ev = events((127, 5, 0, 1), (3, 127, 1300, 0))
    codes = data.bin_events(ev, (128, 128, 2), recipe="raw", step_us=1000)
    n = 128 * 128 * 2
    assert codes.tolist() == [1 * n + 128 * 128 + 127 * 128 + 5, 3 * n + 3 * 128 + 127]
    ds = data.from_events([ev, ev[:1]], [1, 0], sensor_size=(128, 128, 2), step_us=1000)
    assert ds.n_inputs == n and ds.n_classes == 2 and ds.sensor_size == (128, 128, 2)
    assert ds.batch_spikes([0, 1], T=4).shape == (2, 4, n)
    assert ds.subset([1]).sensor_size == (128, 128, 2)


@pytest.mark.parametrize("make, match", [
    (lambda: data.bin_events(np.zeros(3, [("x", int), ("y", int), ("t", int)])), "missing p"),
    (lambda: data.bin_events(np.zeros((3, 3))), r"\(N, 4\)"),
    (lambda: data.bin_events(np.array([[0.5, 1, 1, 0]])), "whole numbers"),
    (lambda: data.bin_events(np.array([[np.nan, 1, 1, 0]])), "whole numbers"),
    (lambda: data.bin_events(events((1, 1, 0, -1))), "OFF events must be polarity 0"),
    (lambda: data.bin_events(events((34, 1, 0, 0))), "x: values 34..34 outside 0..33"),
    (lambda: data.bin_events(events((1, 1, -3, 0))), "negative"),
    (lambda: data.bin_events(events((1, 1, 2**31, 0))), "int32"),
    (lambda: data.bin_events(events((1, 1, 0, 0)), (34, 34)), "sensor_size"),
    (lambda: data.bin_events(events((1, 1, 0, 0)), (128, 128, 2), recipe="authors"), "use recipe 'raw'"),
    (lambda: data.bin_events(events((1, 1, 0, 0)), step_us=0), "step_us"),
    (lambda: data.from_events([events((1, 1, 0, 0))], [0]), "sensor_size"),
    (lambda: data.from_events([events((1, 1, 0, 0))], [0, 1], sensor_size=(34, 34, 2)), "labels"),
    (lambda: data.from_events([events((1, 1, 0, 0))], sensor_size=(34, 34, 2)), "pair"),
    (lambda: data.from_events([(events((1, 1, 0, 0)), -1)], sensor_size=(34, 34, 2)), "label"),
    (lambda: data.from_events([(events((1, 1, 0, 0)), 3)], sensor_size=(34, 34, 2), n_classes=2),
     "out of range"),
    (lambda: data.from_events([(events(), 0)], sensor_size=(34, 34, 2)), "empty"),
])
def test_errors_say_what_to_fix(make, match):
    with pytest.raises(data.DatasetError, match=match):
        make()


def test_recipe_is_checked():
    with pytest.raises(ValueError, match="recipe"):
        data.bin_events(events((1, 1, 0, 0)), recipe="stabilised")


def test_tonic_own_stabilisation_is_not_applied_twice():
    class Stabilised(list):
        sensor_size, stabilize = (34, 34, 2), True

    samples = Stabilised([(events((1, 1, 0, 0)), 0)])
    with pytest.raises(data.DatasetError, match="stabilize=False"):
        data.from_events(samples, recipe="authors")
    assert len(data.from_events(samples, recipe="raw")) == 1


# ---------------------------------------------------------------------------------------------
# The bundled N-MNIST recordings: tonic-shaped data and the native loader give the same spikes


class TonicShaped:
    """What tonic.datasets.NMNIST(save_to, train) is to its users: len, [i] -> (events, label)
    with structured events (x, y, t, p as int) and a sensor_size attribute; events decoded here,
    independently of hm2bp, from the .bin files."""

    sensor_size = (34, 34, 2)
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])

    def __init__(self, folder: Path):
        self.files = sorted(folder.glob("*/*.bin"), key=lambda f: (int(f.parent.name), f.name))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i >= len(self):
            raise IndexError(i)
        raw = np.fromfile(self.files[i], np.uint8).reshape(-1, 5).astype(np.int64)
        ev = np.empty(len(raw), self.dtype)
        ev["x"], ev["y"], ev["p"] = raw[:, 0], raw[:, 1], raw[:, 2] >> 7
        ev["t"] = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
        return ev, int(self.files[i].parent.name)


@pytest.mark.parametrize("recipe", data.RECIPES)
def test_tonic_shaped_events_match_the_native_loader(shared_data, recipe):
    root = shared_data / "nmnist-small"
    native = data.load("nmnist", "test", data_dir=root, nmnist_recipe=recipe)
    tonic_like = data.from_events(TonicShaped(root / "Test"), recipe=recipe, name="nmnist",
                                  split="test")
    assert np.array_equal(tonic_like.labels, native.labels)
    assert np.array_equal(tonic_like.offsets, native.offsets)
    assert np.array_equal(tonic_like.codes, native.codes)
    idx = [0, 37, 99]
    assert np.array_equal(tonic_like.batch_spikes(idx, 540), native.batch_spikes(idx, 540))


def _authors_by_hand(ev: np.ndarray, T: int) -> set[tuple[int, int]]:
    """SPEC 2 event by event in exact rational arithmetic (no floats, no NumPy)."""
    spikes = set()
    for x, y, ts, p in zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist(), ev["p"].tolist()):
        X, Y = Fraction(x + 1), Fraction(y + 1)
        if ts <= 105000:
            X -= Fraction(35, 10) * ts / 105000
            Y -= Fraction(7 * ts, 105000)
        elif ts <= 210000:
            X -= Fraction(35, 10) + Fraction(35, 10) * (ts - 105000) / 105000
            Y -= 7 - Fraction(7 * (ts - 105000), 105000)
        else:
            X -= 7 - Fraction(7 * (ts - 210000), 105000)
        X, Y = (int(v + Fraction(1, 2)) if v >= 0 else -int(-v + Fraction(1, 2)) for v in (X, Y))
        step = -(-ts // 600) + 1
        if 1 <= X <= 34 and 1 <= Y <= 34 and step < T:
            spikes.add((step, p * 34 * 34 + (X - 1) * 34 + (Y - 1)))
    return spikes


def test_authors_recipe_on_real_recordings_matches_exact_arithmetic(shared_data):
    source = TonicShaped(shared_data / "nmnist-small" / "Test")
    picks = [0, 10, 55, 99]
    ds = data.from_events([source[i] for i in picks], recipe="authors", sensor_size=(34, 34, 2))
    spikes = ds.batch_spikes(range(len(picks)), 540)
    for k, i in enumerate(picks):
        got = set(zip(*np.nonzero(spikes[k])))
        assert got == _authors_by_hand(source[i][0], 540), f"sample {i}"
    raw = data.from_events([source[i] for i in picks], sensor_size=(34, 34, 2), recipe="raw")
    assert not np.array_equal(raw.codes, ds.codes)  # the stabilisation moved events


def test_with_tonic_itself(shared_data, tmp_path):
    tonic = pytest.importorskip("tonic", reason="tonic not installed (pip install tonic)")

    class LocalNMNIST(tonic.datasets.NMNIST):
        def _check_exists(self) -> bool:  # tonic wants the 10,000-file archive; use the subset
            return True

    folder = tmp_path / LocalNMNIST.__name__  # tonic looks in save_to/<class name>/Test
    folder.mkdir()
    (folder / "Test").symlink_to(shared_data / "nmnist-small" / "Test")
    ds = LocalNMNIST(str(tmp_path), train=False)
    assert len(ds) == 100
    for recipe in data.RECIPES:
        native = data.load("nmnist", "test", data_dir=shared_data / "nmnist-small",
                           nmnist_recipe=recipe)
        got = data.from_events(ds, recipe=recipe)
        assert np.array_equal(got.labels, native.labels)
        assert np.array_equal(got.codes, native.codes), recipe


# ---------------------------------------------------------------------------------------------
# The config key


def test_nmnist_recipe_config_key():
    assert preset("nmnist-fc800").nmnist_recipe == "authors"
    assert preset("nmnist-fc800", nmnist_recipe="raw").nmnist_recipe == "raw"
    with pytest.raises(ConfigError, match="nmnist_recipe.*authors, raw"):
        preset("nmnist-fc800", nmnist_recipe="tonic")


def test_trainer_loads_with_the_configured_recipe(shared_data):
    from hm2bp.train import build

    root = str(shared_data / "nmnist-small")
    authors = build.load_split(preset("nmnist-fc800", data_dir=root), "test", None)
    raw = build.load_split(preset("nmnist-fc800", data_dir=root, nmnist_recipe="raw"), "test",
                             None)
    assert np.array_equal(authors.codes, data.load("nmnist", "test", data_dir=root).codes)
    assert np.array_equal(raw.codes, data.load("nmnist", "test", data_dir=root,
                                               nmnist_recipe="raw").codes)
