"""The authors' speech weight files (SPEC_SPEECH 4.1): the four golden files read, the round
trip, and the refusals."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hm2bp.interop.authors import (
    WEIGHT_FILES,
    SpeechWeights,
    WeightFileError,
    read_speech_weights,
    read_synapses,
    write_speech_weights,
    write_synapses,
)


@pytest.fixture(scope="module")
def golden(shared_data) -> SpeechWeights:
    return read_speech_weights(shared_data / "authors" / "speech")


def test_the_authors_four_files(golden, shared_data):
    W_in, W_rec, W_h, W_o = golden.input, golden.recurrent, golden.hidden, golden.output
    assert (W_in.shape, W_rec.shape, W_h.shape, W_o.shape) == ((135, 78), (135, 135), (64, 135),
                                                               (26, 64))
    # SPEC_SPEECH 3.3: 2496 synapses of +-8, duplicates summed: 2101 non-zero entries
    values, counts = np.unique(W_in[W_in != 0], return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {-24: 3, -16: 54, -8: 987, 8: 992,
                                                           16: 63, 24: 2}
    assert W_in.sum() == 8 * (992 + 2 * 63 + 3 * 2 - 987 - 2 * 54 - 3 * 3)
    nonzero_inputs = np.count_nonzero(W_in, axis=1)
    assert nonzero_inputs.min() == 6 and nonzero_inputs.max() == 26
    # 3.4: 958 synapses, 745 excitatory (+1) and 213 inhibitory (-1), 57 self-connections, the
    # sign set by the pre-synaptic neuron (24 inhibitory ones)
    assert np.count_nonzero(W_rec == 1) == 745 and np.count_nonzero(W_rec == -1) == 213
    assert np.count_nonzero(np.diag(W_rec)) == 57
    inhibitory = np.flatnonzero((W_rec < 0).any(axis=0))
    assert inhibitory.tolist() == [2, 14, 20, 21, 33, 38, 42, 47, 48, 51, 62, 73, 89, 96, 97, 98,
                                   99, 103, 105, 110, 114, 115, 117, 124]
    assert not (W_rec[:, inhibitory] > 0).any()
    # 4.1: the first lines of the dense files, W[post, pre]
    assert W_h[0, 0] == -0.133531 and W_h[1, 0] == -0.0442904 and W_h[2, 0] == -0.361354
    assert W_o[0, 0] == 0.638276 and W_o[1, 0] == 0.0643706 and W_o[2, 0] == -0.946419
    assert np.abs(W_h).max() <= 1 and np.abs(W_o).max() <= 1
    lines = {k: len((shared_data / "authors" / "speech" / f).read_text().splitlines())
             for k, (f, _, _) in WEIGHT_FILES.items()}
    assert lines == {"input": 2496, "recurrent": 958, "hidden": 8640, "output": 1664}


def test_rewriting_the_authors_files_as_they_print_reads_back_the_same(golden, tmp_path):
    write_speech_weights(tmp_path, golden, precision=6)
    again = read_speech_weights(tmp_path)
    for key in ("input", "recurrent", "hidden", "output"):
        np.testing.assert_array_equal(getattr(again, key), getattr(golden, key))
    # the dense files keep the authors' line order and text
    first = (tmp_path / "h_weights_info.txt").read_text().splitlines()[:2]
    assert first == ["0\treservoir_0\thidden_0_0\t-0.133531", "1\treservoir_0\thidden_0_1\t-0.0442904"]


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    W_in = rng.choice([-16.0, -8.0, 0.0, 8.0, 24.0], size=(9, 4))
    W_rec = rng.choice([-1.0, 0.0, 0.0, 1.0], size=(9, 9))
    W_h = rng.uniform(-1, 1, size=(5, 9)).astype(np.float32).astype(np.float64)  # an engine's float32
    W_o = rng.normal(size=(3, 5)) * 1e-9
    W_o[0, 0] = 0.0  # dense files keep zeros
    weights = SpeechWeights(W_in, W_rec, W_h, W_o)
    write_speech_weights(tmp_path, weights)
    again = read_speech_weights(tmp_path, (4, 9, 5, 3))
    for key in ("input", "recurrent", "hidden", "output"):
        np.testing.assert_array_equal(getattr(again, key), getattr(weights, key))
    out_lines = (tmp_path / "o_weights_info.txt").read_text().splitlines()
    assert len(out_lines) == 15 and out_lines[0] == "0\thidden_0_0\toutput_0\t0"
    assert len((tmp_path / "r_weights_info.txt").read_text().splitlines()) == np.count_nonzero(W_in)


def test_duplicates_add_blank_lines_and_bias_neurons_are_skipped(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("0 input_1 reservoir_2 8\n1\tinput_1\treservoir_2\t8\n\n"
                    "2 input_3 reservoir_0 -0.5\n3 input_4 reservoir_0 123\n")  # input_4: the bias
    W = read_synapses(path, "input", "reservoir", 4, 3)
    expected = np.zeros((3, 4))
    expected[2, 1], expected[0, 3] = 16, -0.5
    np.testing.assert_array_equal(W, expected)


def test_names_use_the_index_after_the_last_underscore(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("0 hidden_0_12 output_3 0.25\n")
    W = read_synapses(path, "hidden_0", "output", 13, 4)
    assert W[3, 12] == 0.25 and np.count_nonzero(W) == 1


@pytest.mark.parametrize("line, message", [
    ("0 input_1 reservoir_2", "expected 'index input_<i> reservoir_<j> weight'"),
    ("0 input_1 reservoir_2 8 9", "expected 'index input_<i> reservoir_<j> weight'"),
    ("x input_1 reservoir_2 8", "expected 'index input_<i> reservoir_<j> weight'"),
    ("0 hidden_1 reservoir_2 8", "neuron 'hidden_1' is not input_<index>"),
    ("0 input_1 output_2 8", "neuron 'output_2' is not reservoir_<index>"),
    ("0 input_x reservoir_2 8", "neuron 'input_x' is not input_<index>"),
    ("0 input_5 reservoir_2 8", "neuron 'input_5' is out of range (input has 4 neurons"),
    ("0 input_1 reservoir_3 8", "neuron 'reservoir_3' is out of range (reservoir has 3"),
    ("0 input_1 reservoir_2 nan", "weight 'nan' is not a finite number"),
    ("0 input_1 reservoir_2 1e999", "weight '1e999' is not a finite number"),
    ("0 input_1 reservoir_2 eight", "weight 'eight' is not a finite number"),
])
def test_malformed_lines_are_refused(tmp_path, line, message):
    path = tmp_path / "w.txt"
    path.write_text(f"0 input_0 reservoir_0 8\n{line}\n")
    with pytest.raises(WeightFileError) as err:
        read_synapses(path, "input", "reservoir", 4, 3)
    assert f"{path}: line 2: {message}" in str(err.value)


def test_missing_files_are_refused(tmp_path):
    with pytest.raises(WeightFileError, match="no such folder"):
        read_speech_weights(tmp_path / "none")
    with pytest.raises(WeightFileError, match="r_weights_info.txt: no such file"):
        read_speech_weights(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(WeightFileError, match="not a weight file"):
        read_synapses(tmp_path / "bin.txt", "input", "reservoir", 4, 3)
    # a file far larger than any weight file of that shape is refused before it is read, and a
    # FIFO without blocking (safe_io)
    (tmp_path / "big.txt").write_bytes(b" " * (2 << 20))
    with pytest.raises(WeightFileError, match="big.txt: weight file has 2 MiB, more than"):
        read_synapses(tmp_path / "big.txt", "input", "reservoir", 4, 3)
    os.mkfifo(tmp_path / "fifo.txt")
    with pytest.raises(WeightFileError, match="fifo.txt: weight file is a FIFO"):
        read_synapses(tmp_path / "fifo.txt", "input", "reservoir", 4, 3)


def test_writer_refuses_non_finite_weights(tmp_path):
    with pytest.raises(ValueError, match="not all finite"):
        write_synapses(tmp_path / "w.txt", np.array([[np.nan]]), "hidden_0", "output", dense=True)
    assert not (tmp_path / "w.txt").exists()
