"""The spoken-letter .dat reader and folder layout (SPEC_SPEECH 1, 7.1) and its refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hm2bp.data import DatasetError
from hm2bp.data.speech import SpeechFileError, read_speech, speech_files, spike_codes


def _write(path: Path, rows: list[list[float]] | str) -> Path:
    text = rows if isinstance(rows, str) else "".join(
        "   ".join(f"{v:.7e}" for v in row) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _sample(frames: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1e-6, 3e-4, size=(78, frames))


def test_golden_sample(shared_data):
    a = read_speech(shared_data / "authors" / "speech" / "f1_u10_c0.dat")
    assert a.shape == (78, 68) and a.dtype == np.float32
    # SPEC_SPEECH 1.1: all values > 0, min 4.5e-7, max 2.47e-4, mean 4.95e-5
    assert a.min() > 0
    assert a.min() == pytest.approx(4.5e-7, rel=0.05)
    assert a.max() == pytest.approx(2.47e-4, rel=0.01)
    assert a.mean() == pytest.approx(4.95e-5, rel=0.01)


def test_values_are_parsed_as_float32(tmp_path):
    x = _sample()
    got = read_speech(_write(tmp_path / "x.dat", x))
    assert got.shape == (78, 5)
    np.testing.assert_array_equal(got, np.array([[float(f"{v:.7e}") for v in r] for r in x],
                                                dtype=np.float32))


def test_any_whitespace_and_no_final_newline(tmp_path):
    x = _sample(3)
    text = "\n".join("\t ".join(repr(float(v)) for v in row) for row in x)  # no final newline
    np.testing.assert_array_equal(read_speech(_write(tmp_path / "x.dat", text)),
                                  x.astype(np.float32))


@pytest.mark.parametrize("case, message", [
    ("blank_middle", "line 3 is blank"),
    ("blank_end", "line 79 is blank"),
    ("spaces_only", "line 1 is blank"),
    ("unequal", "line 2 has 4 values, line 1 has 5"),
    ("nan", "line 7, value 2: 'nan' is not a finite float32 number"),
    ("inf", "line 7, value 2: '-inf' is not a finite float32 number"),
    ("overflow", "line 7, value 2: '1e39' is not a finite float32 number"),
    ("word", "line 4: 'abc' is not a number"),
    ("77", "77 lines, expected 78"),
    ("79", "79 lines, expected 78"),
    ("empty", "0 lines, expected 78"),
    ("binary", "not a text file"),
])
def test_malformed_files_are_refused(tmp_path, case, message):
    lines = ["   ".join(f"{v:.7e}" for v in row) for row in _sample()]
    if case == "blank_middle":
        lines.insert(2, "")
        lines.pop()
    elif case == "blank_end":
        lines.append("")
    elif case == "spaces_only":
        lines[0] = "   \t "
    elif case == "unequal":
        lines[1] = " ".join(lines[1].split()[:4])
    elif case in ("nan", "inf", "overflow"):
        tokens = lines[6].split()
        tokens[1] = {"nan": "nan", "inf": "-inf", "overflow": "1e39"}[case]
        lines[6] = " ".join(tokens)
    elif case == "word":
        lines[3] += " abc"
        lines[3] = " ".join(lines[3].split()[1:])
    elif case == "77":
        lines.pop()
    elif case == "79":
        lines.append(lines[0])
    elif case == "empty":
        lines = []
    path = tmp_path / "bad.dat"
    if case == "binary":
        path.write_bytes(b"\x00\xff" * 40)
    else:
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(SpeechFileError) as err:
        read_speech(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(SpeechFileError, match="cannot read it"):
        read_speech(tmp_path / "none.dat")
    with pytest.raises(SpeechFileError, match="not a regular file"):
        read_speech(tmp_path)


def test_folder_layout_sorted_complete_labels_from_folders(tmp_path):
    split = tmp_path / "train"
    # created out of order; names that sort differently as text and as numbers
    for label, name in [(10, "m1_u2_c10.dat"), (2, "f2_u10_c2.dat"), (2, "f2_u1_c2.dat"),
                        (0, "f1_u10_c0.dat"), (25, "m8_u1_c25.dat")]:
        _write(split / str(label) / name, _sample(2))
    _write(split / "3" / "speakers" / "f1" / "f1_u1_c3.dat", _sample(2))  # inherits label 3
    _write(split / "3" / ".hidden.dat", "junk")
    _write(split / ".cache" / "x.dat", "junk")
    (split / "README").write_text("loose files beside the label folders are not samples")
    got = [(label, str(p.relative_to(split))) for label, p in speech_files(split)]
    assert got == [(0, "0/f1_u10_c0.dat"), (2, "2/f2_u10_c2.dat"), (2, "2/f2_u1_c2.dat"),
                   (3, "3/speakers/f1/f1_u1_c3.dat"), (10, "10/m1_u2_c10.dat"),
                   (25, "25/m8_u1_c25.dat")]


@pytest.mark.parametrize("make, message", [
    (lambda s: (s / "26").mkdir(parents=True), "unexpected folder '26'"),
    (lambda s: (s / "05").mkdir(parents=True), "unexpected folder '05'"),
    (lambda s: _write(s / "4" / "notes.txt", "x"), "not a .dat file"),
    (lambda s: s.mkdir(), "no samples"),
    (lambda s: None, "no such folder"),
])
def test_bad_folders_are_refused(tmp_path, make, message):
    split = tmp_path / "train"
    make(split)
    with pytest.raises(DatasetError, match=message):
        speech_files(split)


def test_spike_codes_keep_every_spike():
    analog = np.zeros((78, 3))
    seen = {}

    def encode(a, T):
        seen["T"] = T
        out = np.zeros((T, a.shape[0]), dtype=bool)
        out[1, 5] = out[30, 77] = out[30, 0] = True  # 30 = the last step of 3 frames
        return out

    codes = spike_codes(analog, encode)
    assert seen["T"] == 31  # spike times 1 .. 10 * frames
    assert codes.dtype == np.int32
    assert codes.tolist() == [1 * 78 + 5, 30 * 78 + 0, 30 * 78 + 77]
