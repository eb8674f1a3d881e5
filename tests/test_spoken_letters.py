"""The open spoken-letter stand-in (SPEC_SPEECH 8): its plan, the pieces of its pipeline, and
the whole generator where espeak-ng and the `speech` extra are installed."""
from __future__ import annotations

import importlib.util
import shutil
import struct

import numpy as np
import pytest

from hm2bp.cli import data as data_cli
from hm2bp.data import spoken_letters as sl
from hm2bp.data.speech import read_speech, speech_files

needs_speech_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("lyon") is None
    or importlib.util.find_spec("scipy") is None,
    reason="needs the espeak-ng program (apt-get install espeak-ng) and the speech extra "
           "(pip install 'hm2bp[speech]')")


def test_plan_splits_by_voice_and_is_deterministic():
    p = sl.plan(accents=("en-us", "en-gb"), variants=("m1", "m2", "f1", "f2", "f3"), renditions=3,
                test_variants=2, seed=7)
    assert p == sl.plan(accents=("en-us", "en-gb"), variants=("m1", "m2", "f1", "f2", "f3"),
                        renditions=3, test_variants=2, seed=7)
    assert len(p) == 2 * 5 * 26 * 3
    train = {u.voice for u in p if u.split == "train"}
    test = {u.voice for u in p if u.split == "test"}
    assert len(test) == 2 * 2 and len(train) == 2 * 3 and not train & test
    # a test variant is never heard in training, with any accent
    assert not {v.split("+")[1] for v in train} & {v.split("+")[1] for v in test}
    assert len({u.relpath for u in p}) == len(p)
    assert all(sl.SPEEDS[0] <= u.speed <= sl.SPEEDS[1] and sl.PITCHES[0] <= u.pitch <= sl.PITCHES[1]
               for u in p)
    assert len({(u.speed, u.pitch) for u in p}) > len(p) // 2  # speeds and pitches vary
    assert p[0].relpath == f"train/0/{p[0].voice.replace('+', '_')}_u0_c0.dat"
    other = sl.plan(accents=("en-us", "en-gb"), variants=("m1", "m2", "f1", "f2", "f3"),
                    renditions=3, test_variants=2, seed=8)
    assert [(u.speed, u.pitch) for u in other] != [(u.speed, u.pitch) for u in p]


@pytest.mark.parametrize("kwargs, message", [
    ({"test_variants": 0}, "test_variants must be 1..1"),
    ({"test_variants": 2}, "test_variants must be 1..1"),
    ({"renditions": 0}, "renditions must be >= 1"),
    ({"accents": ()}, "at least one accent"),
])
def test_plan_refusals(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sl.plan(**{"variants": ("m1", "f1"), **kwargs})


def test_format_dat_reads_back(tmp_path):
    x = np.random.default_rng(0).uniform(0, 3e-4, size=(78, 7))
    path = tmp_path / "x.dat"
    path.write_text(sl.format_dat(x))
    assert path.read_text().splitlines()[0].count("   ") == 6
    np.testing.assert_allclose(read_speech(path), x, rtol=1e-7)


def test_trim_silence():
    x = np.zeros(12500)
    x[5000:6000] = np.sin(np.arange(1000))
    y = sl.trim_silence(x)
    pad = round(0.020 * 12500)
    assert 1000 <= len(y) <= 1000 + 2 * pad + 125
    np.testing.assert_array_equal(y[np.abs(y) > 0], x[np.abs(x) > 0])
    assert len(sl.trim_silence(np.zeros(100))) == 100


def test_wav_parsing():
    samples = np.array([0, 16384, -32768, 32767], dtype="<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    blob = (b"RIFF" + struct.pack("<I", 0x7FFFF000) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", 0x7FFFF000) + samples.tobytes())
    x, rate = sl._wav_samples(blob, "test")
    assert rate == 22050 and x.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
    with pytest.raises(sl.SpeechToolError, match="no WAVE data"):
        sl._wav_samples(b"garbage", "test")


def test_missing_espeak_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sl.shutil, "which", lambda name: None)
    with pytest.raises(sl.SpeechToolError, match="espeak-ng is not installed"):
        sl.espeak_program()
    assert data_cli.main(["spoken-letters", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hm2bp-data: error: espeak-ng is not installed (Debian/Ubuntu: apt-get")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@needs_speech_tools
def test_generate_resume_and_determinism(tmp_path):
    kwargs = dict(accents=("en-us",), variants=("m1", "f3"), renditions=1, test_variants=1,
                  seed=3, limit=2)
    full = sl.generate(tmp_path / "a", **kwargs)
    assert (full.written, full.skipped) == (4, 0)

    calls = []

    def stop_after_three(done, total, u):
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sl.generate(tmp_path / "b", progress=stop_after_three, **kwargs)
    made = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    assert not [p for p in made if p.name.startswith(".")]  # no temporary left behind
    resumed = sl.generate(tmp_path / "b", **kwargs)
    assert (resumed.written, resumed.skipped) == (1, 3)
    for u in full.utterances:
        assert (tmp_path / "a" / u.relpath).read_bytes() == (tmp_path / "b" / u.relpath).read_bytes()
    for split in ("train", "test"):
        files = speech_files(tmp_path / "a" / split)
        assert [label for label, _ in files] == [0, 1]
        for _, path in files:
            a = read_speech(path)
            assert a.shape[0] == 78 and 10 <= a.shape[1] <= 100
            # Lyon's output at the authors' scale (SPEC_SPEECH 8: max 1.8-3.0e-4 per sample)
            assert 5e-5 < a.max() < 1e-3 and (a >= 0).all()
    with pytest.raises(ValueError, match="made with other arguments"):
        sl.generate(tmp_path / "a", **{**kwargs, "seed": 4})


@needs_speech_tools
def test_cli_progress_and_unknown_variant(tmp_path, capsys):
    assert data_cli.main(["spoken-letters", str(tmp_path / "x"), "--accents", "en-us",
                          "--variants", "m1,f1", "--test-variants", "1", "--renditions", "1",
                          "--limit", "1"]) == 0
    err = capsys.readouterr().err
    assert "2/2 samples" in err and "1 training and 1 test samples (2 written" in err
    assert data_cli.main(["spoken-letters", str(tmp_path / "y"), "--variants", "m1,nosuchvoice"]) == 2
    assert "no voice variant 'nosuchvoice'" in capsys.readouterr().err
