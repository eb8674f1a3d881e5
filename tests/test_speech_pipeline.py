"""The spoken-letter pipeline end to end: the dataset in the authors' layout, the ti46 presets,
the authors' weight files as a Network and in hm2bp-eval, and (where espeak-ng and the speech
extra are installed) generation -> training a few steps -> evaluation."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hm2bp import data, encode_bsa
from hm2bp.cli import main as cli
from hm2bp.config import preset
from hm2bp.data.speech import read_speech
from hm2bp.interop.authors import (WeightFileError, read_speech_weights, read_weight_files,
                                   write_weight_files)
from hm2bp.model.layers import Dense, Reservoir
from hm2bp.model.reservoir import generate
from hm2bp.train.trainer import Trainer

from test_spoken_letters import needs_speech_tools


def _layout(root: Path, golden: Path, per_class: int = 1) -> Path:
    """root/{train,test}/<label>/*.dat: the golden sample, scaled per copy, in every class."""
    a = read_speech(golden)
    for split in ("train", "test"):
        for label in range(26):
            for k in range(per_class):
                path = root / split / str(label) / f"x{k}_c{label}.dat"
                path.parent.mkdir(parents=True, exist_ok=True)
                scaled = a * (0.5 + (label + k) / 26)
                path.write_text("".join("   ".join(f"{v:.7e}" for v in row) + "\n" for row in scaled))
    return root


def test_presets_are_the_authors_config():
    alpha = preset("ti46-alpha")
    assert alpha.layers == [78, 135, 64, 26] and alpha.vth == [20.0, 20.0, 5.0]
    assert (alpha.T, alpha.desired, alpha.undesired, alpha.margin) == (1000, 45, 15, 5)
    assert (alpha.optimizer, alpha.momentum, alpha.lr, alpha.lr_rule) == ("sgd", 0.9, 0.001, "sqrt_max1")
    assert (alpha.batch_size, alpha.epochs, alpha.order) == (128, 10, "authors")
    assert not alpha.effect_ratio and not alpha.boosting
    assert alpha.reg_lambda == alpha.reg_beta == alpha.lateral_inhibition == 0.0
    assert (alpha.tau_m, alpha.tau_s, alpha.t_ref) == (64.0, 8.0, 2)
    res = alpha.layer_stack()[0]
    assert isinstance(res, Reservoir) and (res.n, res.grid, res.seed, res.vth) == (135, (3, 3, 15), 5, 20.0)
    final = preset("ti46-final")
    assert final.layers == alpha.layers and final.T == 1000 and final.desired == 45
    assert final.optimizer == "adam" and final.effect_ratio and final.boosting
    assert final.reg_lambda == 10.0 and final.reg_beta == 0.04 and final.lateral_inhibition == 1.0


def test_dataset_in_the_authors_layout(tmp_path, shared_data):
    golden = shared_data / "authors" / "speech" / "f1_u10_c0.dat"
    root = _layout(tmp_path / "letters", golden)
    ds = data.load("spoken-letters", "train", data_dir=root)
    assert len(ds) == 26 and ds.n_inputs == 78 and ds.n_classes == 26
    assert ds.labels.tolist() == list(range(26))
    data.check_classes(ds)
    # each sample's spikes are BSA's, cut at the batch's T
    for T in (1000, 300):
        spikes = ds.batch_spikes([0, 13], T)
        for b, label in enumerate((0, 13)):
            expected = encode_bsa(read_speech(root / "train" / str(label) / f"x0_c{label}.dat"), T)
            np.testing.assert_array_equal(spikes[b], expected)
    # the golden sample itself: SPEC_SPEECH 6's 5065 input spikes, the last at t = 658
    one = tmp_path / "golden" / "train" / "0"
    one.mkdir(parents=True)
    shutil.copy(golden, one / golden.name)
    ds = data.load("spoken-letters", "train", data_dir=tmp_path / "golden")
    assert int(ds.batch_spikes([0], 1000).sum()) == 5065 and int(ds.batch_spikes([0], 658).sum()) < 5065


def test_missing_dataset_says_how_to_make_it(tmp_path):
    with pytest.raises(data.DatasetError, match="hm2bp-data spoken-letters DIR"):
        data.load("spoken-letters", "test", data_dir=tmp_path)
    bad = tmp_path / "bad" / "train" / "3"
    bad.mkdir(parents=True)
    (bad / "x.dat").write_text("1 2\n")
    with pytest.raises(data.DatasetError, match=r"x\.dat: 1 lines, expected 78"):
        data.load("spoken-letters", "train", data_dir=tmp_path / "bad")


def test_the_authors_weight_files_as_a_network(shared_data, tmp_path):
    folder = shared_data / "authors" / "speech"
    net = read_weight_files(folder, preset("ti46-alpha"), threads=1)
    files = read_speech_weights(folder)
    (w_in, w_rec), = net.reservoir_weights()
    np.testing.assert_array_equal(w_in, files.input)
    np.testing.assert_array_equal(w_rec, files.recurrent)
    hidden, output = net.get_weights()
    np.testing.assert_array_equal(hidden, files.hidden.astype(np.float32))
    np.testing.assert_array_equal(output, files.output.astype(np.float32))
    # the files are the seed-5 reservoir the preset generates (SPEC_SPEECH 3.5)
    seeded = generate(78, (64, 26), 5)
    np.testing.assert_array_equal(files.input, seeded.input)
    np.testing.assert_array_equal(files.recurrent, seeded.recurrent)
    np.testing.assert_allclose(files.hidden, seeded.trained[0], atol=5e-7)
    np.testing.assert_allclose(files.output, seeded.trained[1], atol=5e-7)
    # written from the network and read back: the same network
    write_weight_files(tmp_path / "w", net)
    again = read_weight_files(tmp_path / "w", preset("ti46-alpha"), threads=1)
    for a, b in zip(again.get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(again.reservoir_weights()[0], net.reservoir_weights()[0]):
        np.testing.assert_array_equal(a, b)


def test_weight_files_refuse_other_networks(shared_data):
    with pytest.raises(WeightFileError, match="this network has Dense, Dense"):
        read_weight_files(shared_data / "authors" / "speech", preset("mnist-mini"))
    assert isinstance(preset("ti46-alpha").layer_stack()[1], Dense)


def test_eval_with_the_authors_weight_files(tmp_path, shared_data, capsys):
    folder = shared_data / "authors" / "speech"
    root = _layout(tmp_path / "letters", folder / "f1_u10_c0.dat")
    rc = cli.eval_main(["--authors-weights", str(folder), "--preset", "ti46-alpha", "--data-dir",
                        str(root), "--threads", "1", "--export-authors-weights", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "authors' weight files" in out and "(78-135-64-26)" in out and "/26)" in out
    assert read_speech_weights(tmp_path / "out").output.shape == (26, 64)
    assert cli.eval_main(["--authors-weights", str(tmp_path / "none"), "--preset", "ti46-alpha",
                          "--data-dir", str(root)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli.eval_main(["--authors-weights", str(folder), "--data-dir", str(root)]) == 2
    assert "--authors-weights needs the network" in capsys.readouterr().err


@needs_speech_tools
def test_generation_to_training(tmp_path):
    """The whole pipeline on a few generated samples: espeak-ng -> Lyon -> .dat -> BSA ->
    reservoir -> a couple of training steps of ti46-alpha -> test accuracy."""
    from hm2bp.data import spoken_letters

    made = spoken_letters.generate(tmp_path / "letters", accents=("en-us",), variants=("m3", "f2"),
                                   renditions=1, test_variants=1, seed=0)
    assert len(made.utterances) == 52
    config = preset("ti46-alpha", data_dir=str(tmp_path / "letters"), epochs=1, batch_size=13,
                    threads=1)
    trainer = Trainer(config, tmp_path / "run")
    before = [w.copy() for w in trainer.net.get_weights()]
    reservoir = [w.copy() for w in trainer.net.reservoir_weights()[0]]
    result = trainer.fit()
    trainer.close()
    assert result.epochs_completed == 1 and 0.0 <= result.final_test_accuracy <= 1.0
    assert all(not np.array_equal(a, b) for a, b in zip(before, trainer.net.get_weights()))
    for a, b in zip(reservoir, trainer.net.reservoir_weights()[0]):
        np.testing.assert_array_equal(a, b)  # never trained
    assert (tmp_path / "run" / "checkpoint.npz").exists()
