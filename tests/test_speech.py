"""The speech front end (SPEC_SPEECH 2-3.5): BSA encoding, the glibc rand() clone, the reservoir
wiring generator, each against hand-derived cases and the authors' golden files."""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

import numpy as np
import pytest

from hm2bp import bsa, reservoir
from hm2bp.reference import bsa as ref_bsa

T_GOLDEN = 659  # the authors' CPU run simulated t = 0..658 (SPEC_SPEECH 4.2)


def read_dat(path: Path) -> np.ndarray:
    """A .dat sample (one line of frames per channel) as float32 values, as the authors parse it."""
    return np.array([[np.float32(x) for x in line.split()] for line in path.read_text().splitlines()])


def read_weight_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """An authors' weight file (SPEC_SPEECH 4.1): pre and post indices, weights, the printed weights."""
    rows = [line.split() for line in path.read_text().splitlines()]
    index = [lambda s: int(s.rsplit("_", 1)[1])] * 2
    pre = np.array([index[0](r[1]) for r in rows])
    post = np.array([index[1](r[2]) for r in rows])
    return pre, post, np.array([float(r[3]) for r in rows]), [r[3] for r in rows]


@pytest.fixture(scope="module")
def speech(shared_data: Path) -> Path:
    return shared_data / "authors" / "speech"


# ---- BSA (SPEC_SPEECH 2) ------------------------------------------------------------------

def first_signal_taps_above(level: float) -> int:
    """The fewest leading taps m of the kernel with k[0] + ... + k[m-1] > level."""
    k = ref_bsa.bsa_kernel()
    return int(np.argmax(np.cumsum(k) > level)) + 1


def test_bsa_kernel_is_the_normalised_gaussian_centred_at_12():
    k = ref_bsa.bsa_kernel()
    assert k.shape == (24,) and abs(k.sum() - 1) < 1e-15 and np.argmax(k) == 12
    assert k[11] == k[13] and k[0] < k[23]  # centre at L/2 = 12: asymmetric


@pytest.mark.parametrize("encode", [bsa.encode_bsa, ref_bsa.encode_bsa], ids=["engine", "reference"])
def test_bsa_hand_derived_cases(encode):
    # Zeros and negative values never fire: |s - k_j| - |s| = k_j for s <= 0, so e1 = e2 + 1.
    assert not encode(np.zeros((3, 20)), 300).any()
    assert not encode(-np.ones((2, 5)), 100).any()
    # One frame never fires: with m signal taps in the window, e1 - e2 >= 1 - 2 (k_0 + .. + k_{m-1})
    # and m <= 10 taps sum to about 0.35, so e1 - e2 > -0.6.
    assert not encode(np.full((4, 1), 1.0), 100).any()
    # A loud constant (s = 2e3 per step, far above the kernel) fires at every step whose window is
    # all signal (e1 = e2 - 1), then, with m signal taps left before the zero padding, while
    # k_0 + .. + k_{m-1} > 0.8: steps i = 0 .. 10n - m*, spike times t = i + 1.
    n = 5
    last = 10 * n - first_signal_taps_above(0.8) + 1
    spikes = encode(np.ones((1, n)), 200)
    np.testing.assert_array_equal(np.nonzero(spikes[:, 0])[0], np.arange(1, last + 1))
    # T clips: times >= T are dropped, earlier ones unchanged; t = 0 never fires.
    np.testing.assert_array_equal(encode(np.ones((1, n)), 20), spikes[:20])


def test_bsa_batches_channels_and_zero_padded_frames():
    rng = np.random.default_rng(3)
    analog = rng.uniform(0, 2.5e-4, size=(3, 6, 30))
    analog[1, :, 20:] = 0.0  # a shorter sample padded with zero frames: the same spikes as unpadded
    batch = bsa.encode_bsa(analog, 400)
    assert batch.shape == (3, 400, 6) and batch.dtype == np.bool_
    np.testing.assert_array_equal(batch, ref_bsa.encode_bsa(analog, 400))
    for b in range(3):
        np.testing.assert_array_equal(batch[b], bsa.encode_bsa(analog[b], 400, threads=1))
    np.testing.assert_array_equal(batch[1], bsa.encode_bsa(analog[1, :, :20], 400))


def test_bsa_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        bsa.encode_bsa(np.zeros(5), 10)
    with pytest.raises(ValueError, match="finite"):
        bsa.encode_bsa(np.array([[0.0, np.nan]]), 10)
    with pytest.raises(ValueError, match="T"):
        bsa.encode_bsa(np.zeros((2, 3)), 0)
    with pytest.raises(TypeError, match="real"):
        bsa.encode_bsa(np.array([["a"]]), 10)


def test_bsa_of_the_golden_sample(speech):
    # SPEC_SPEECH 4.2 / 6: 5065 input spikes, t = 1..658, channels 1-4, 46, 47, 76, 77 silent.
    analog = read_dat(speech / "f1_u10_c0.dat")
    assert analog.shape == (78, 68)
    spikes = bsa.encode_bsa(analog, T_GOLDEN)
    assert spikes.sum() == 5065
    np.testing.assert_array_equal(np.nonzero(~spikes.any(axis=0))[0], [1, 2, 3, 4, 46, 47, 76, 77])
    times = np.nonzero(spikes.any(axis=1))[0]
    assert times.min() == 1 and times.max() == 658
    np.testing.assert_array_equal(spikes, ref_bsa.encode_bsa(analog, T_GOLDEN))
    # float64 values of the same text: the same spikes (SPEC_SPEECH 2)
    text = [line.split() for line in (speech / "f1_u10_c0.dat").read_text().splitlines()]
    np.testing.assert_array_equal(bsa.encode_bsa(np.array(text, dtype=np.float64), T_GOLDEN), spikes)
    # the preset's T = 1000 adds nothing (the signal ends at 680 + 24)
    assert bsa.encode_bsa(analog, 1000).sum() == 5065


# ---- glibc rand() and the generator (SPEC_SPEECH 3.3-3.5) ---------------------------------------

def glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("the C library here is not glibc")
    return ctypes.CDLL(ctypes.util.find_library("c"))


@pytest.mark.parametrize("seed", [0, 1, 5, 12345, 2**31 - 1, 2**31 + 7, 2**32 - 1])
def test_glibc_rand_clone_equals_the_c_library(seed):
    libc = glibc()
    libc.srand(ctypes.c_uint(seed))
    ours = reservoir.GlibcRand(seed)
    assert [ours.rand() for _ in range(3000)] == [libc.rand() for _ in range(3000)]


def test_glibc_rand_refuses_bad_seeds():
    for seed in (-1, 2**32, 1.5):
        with pytest.raises(ValueError, match="seed"):
            reservoir.GlibcRand(seed)


def test_generator_statistics_of_seed_5():
    # SPEC_SPEECH 3.3-3.4: the golden reservoir's counts
    w = reservoir.generate()
    np.testing.assert_array_equal(np.nonzero(w.inhibitory)[0],
                                  [2, 14, 20, 21, 33, 38, 42, 47, 48, 51, 62, 73, 89, 96, 97, 98, 99, 103, 105,
                                   110, 114, 115, 117, 124])
    assert (w.recurrent == 1).sum() == 745 and (w.recurrent == -1).sum() == 213
    assert np.count_nonzero(np.diag(w.recurrent)) == 57
    # the sign of a recurrent synapse is the pre-synaptic neuron's type (columns are pre)
    assert (w.recurrent[:, w.inhibitory] <= 0).all() and (w.recurrent[:, ~w.inhibitory] >= 0).all()
    values, counts = np.unique(w.input, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {-24: 3, -16: 54, -8: 987, 0: 135 * 78 - 2101, 8: 992,
                                                           16: 63, 24: 2}
    assert len(w.input_synapses.pre) == 78 * 32
    assert [m.shape for m in w.trained] == [(64, 135), (26, 64)]
    assert all((-1 <= m).all() and (m <= 1).all() for m in w.trained)


def test_generator_reproduces_the_authors_weight_files(speech):
    w = reservoir.generate(seed=5)
    for name, synapses in [("r_weights_info.txt", w.input_synapses),
                           ("r_weights_recurrent_info.txt", w.recurrent_synapses)]:
        pre, post, weight, _ = read_weight_file(speech / name)
        np.testing.assert_array_equal(pre, synapses.pre, err_msg=name)
        np.testing.assert_array_equal(post, synapses.post, err_msg=name)
        np.testing.assert_array_equal(weight, synapses.weight, err_msg=name)
    for name, matrix in [("h_weights_info.txt", w.trained[0]), ("o_weights_info.txt", w.trained[1])]:
        pre, post, weight, printed = read_weight_file(speech / name)
        n_pre, n_post = matrix.shape[1], matrix.shape[0]
        np.testing.assert_array_equal(pre, np.repeat(np.arange(n_pre), n_post), err_msg=name)  # pre-major
        np.testing.assert_array_equal(post, np.tile(np.arange(n_post), n_pre), err_msg=name)
        # printed like C++ `ostream << double` (6 significant digits): every line, character for character
        assert [f"{x:.6g}" for x in matrix.T.ravel()] == printed, name
    # the summed matrices of the two reservoir files
    pre, post, weight, _ = read_weight_file(speech / "r_weights_info.txt")
    w_in = np.zeros((135, 78))
    np.add.at(w_in, (post, pre), weight)
    np.testing.assert_array_equal(w_in, w.input)
    pre, post, weight, _ = read_weight_file(speech / "r_weights_recurrent_info.txt")
    w_rec = np.zeros((135, 135))
    w_rec[post, pre] = weight
    np.testing.assert_array_equal(w_rec, w.recurrent)


def test_generator_other_seeds_and_shapes():
    a, b = reservoir.generate(seed=6), reservoir.generate(seed=5)
    assert not np.array_equal(a.recurrent, b.recurrent)
    small = reservoir.generate(n_in=4, trained=(3,), seed=9, grid=(2, 2, 2), inhibitory=0.5, fan_out=3,
                               input_weight=2.0, recurrent_weight=0.5)
    assert small.input.shape == (8, 4) and small.recurrent.shape == (8, 8) and small.trained[0].shape == (3, 8)
    assert np.abs(small.input).sum() <= 4 * 3 * 2.0 and set(np.unique(small.recurrent)) <= {-0.5, 0.0, 0.5}
    np.testing.assert_array_equal(reservoir.grid_coordinates((2, 2, 3))[7], [1, 0, 1])  # (x*2 + y)*3 + z = 7
