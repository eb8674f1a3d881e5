"""Training UX: progress lines without a terminal, the validation split and best.npz, metrics.csv
and TensorBoard scalars (also across a resume), --print-config, plots in each format."""

import csv
import io
import json
import re
import sys

import numpy as np
import pytest
from hm2bp import config as hconfig
from hm2bp import data
from hm2bp.train import build, checkpoint, metrics_log, runstate, sources, trainer, validation
from hm2bp.cli import train_main
from hm2bp.config import PRESETS, RunConfig, build_config
from hm2bp.config.doc import to_toml
from hm2bp.cli.progress import ProgressLines, format_duration

TINY = dict(preset="mnist-mini", layers=[784, 30, 10], T=60, vth=[5.0, 3.0], desired=10, undesired=2,
            margin=2, epochs=3, batch_size=4, lr=0.005, seed=7, backend="cpu", train_size=200,
            test_size=100)
TIMING = ("seconds", "train_seconds", "engine_seconds", "eval_seconds", "samples_per_s")


def tiny(**changes) -> RunConfig:
    return hconfig.preset("mnist-mini", **{**TINY, **changes})


def tiny_toml(tmp_path, **changes):
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(tiny(**changes)))
    return str(path)


def without_timing(records):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in records]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -- progress ---------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_lines_every_interval_with_rates_and_etas():
    clock, out = FakeClock(), io.StringIO()
    p = ProgressLines(out, interval=30, clock=clock)
    p(0, 0, 1000, 4)
    clock.now = 10.0
    p(0, 100, 1000, 4)  # before the first interval: nothing
    assert out.getvalue() == ""
    clock.now = 40.0
    p(0, 400, 1000, 4)  # 10 samples/s: 60 s left in the epoch, 3 more epochs of 100 s
    clock.now = 50.0
    p(0, 500, 1000, 4)  # within 30 s of the last line: nothing
    line, = out.getvalue().splitlines()
    assert line == ("epoch 1/4  400/1000 samples  10.0 samples/s  epoch eta 1m00s  "
                    "run eta 6m00s")
    clock.now = 120.0
    p(1, 0, 1000, 4)  # epoch 1 took 120 s including its evaluation: the run estimate uses that
    clock.now = 170.0
    p(1, 500, 1000, 4)
    assert out.getvalue().splitlines()[-1] == ("epoch 2/4  500/1000 samples  10.0 samples/s  "
                                               "epoch eta 50s  run eta 4m50s")
    with pytest.raises(ValueError, match="interval"):
        ProgressLines(out, interval=0)


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3600 * 5 + 120, 86400 * 2 + 3600 * 4)] == [
        "0s", "59s", "1m01s", "59m59s", "5h02m", "2d04h"]


def test_train_prints_progress_lines_when_stderr_is_a_file(tmp_path, capsys):
    # capsys' stderr is not a terminal: plain lines instead of a redrawn bar
    assert train_main(["--config", tiny_toml(tmp_path, epochs=1), "--out", str(tmp_path / "r"),
                       "--progress-interval", "1e-9"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines and all(re.fullmatch(r"epoch 1/1  \d+/200 samples  [\d.]+ samples/s  epoch eta "
                                      r"\S+  run eta \S+", x) for x in lines), lines
    assert "\r" not in captured.err and "samples/s  epoch eta" not in captured.out
    assert train_main(["--config", tiny_toml(tmp_path, epochs=1), "--out", str(tmp_path / "q"),
                       "--progress-interval", "1e-9", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert train_main(["--config", tiny_toml(tmp_path), "--progress-interval", "0"]) == 2
    assert "--progress-interval" in capsys.readouterr().err


# -- validation split -------------------------------------------------------------------------

def test_val_split_is_a_deterministic_stratified_function_of_the_seed():
    ds = data.load("mnist-mini", "train").subset(np.arange(500))
    train, val = validation.split(ds, 0.1, seed=3)
    again_train, again_val = validation.split(ds, 0.1, seed=3)
    _, other_val = validation.split(ds, 0.1, seed=4)
    assert len(val) == 50 and len(train) == 450
    np.testing.assert_array_equal(val.images, again_val.images)
    np.testing.assert_array_equal(train.labels, again_train.labels)
    assert not np.array_equal(val.images, other_val.images)
    # disjoint, together the whole set, every class in proportion
    rows = {r.tobytes() for r in np.concatenate([train.images, val.images])}
    assert len(rows) == len({r.tobytes() for r in ds.images})
    assert set(np.unique(val.labels)) == set(range(10))
    assert validation.split(ds, 0.0, seed=3) == (ds, None)
    with pytest.raises(hconfig.ConfigError, match="val_split"):
        validation.split(ds.subset(np.arange(5)), 0.01, seed=0)
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(hconfig.ConfigError, match="val_split"):
            tiny(val_split=bad)


def test_val_split_picks_the_best_epoch_and_keeps_its_weights(tmp_path):
    run = tmp_path / "run"
    # float64: this float32 run diverges (an overflow in the lateral-inhibition term)
    t = trainer.Trainer(tiny(val_split=0.2, epochs=4, dtype="float64"), run)
    assert (len(t.train_set), len(t.validation.dataset)) == (160, 40)
    measured = []
    scripted = iter([0.3, 0.6, 0.5, 0.6])  # the best is epoch 2 (the first of two ties)
    after_epoch = t.validation.after_epoch

    def scripted_after_epoch(evaluate, epoch, test_accuracy):
        measured.append(evaluate(t.validation.source))
        return after_epoch(lambda source: next(scripted), epoch, test_accuracy)

    t.validation.after_epoch = scripted_after_epoch
    result = t.fit()
    history = result.history
    assert [m["val_accuracy"] for m in history] == [0.3, 0.6, 0.5, 0.6]
    assert [m["best_epoch"] for m in history] == [1, 2, 2, 2] and result.best_epoch == 2
    assert history[-1]["best_val_accuracy"] == 0.6
    assert history[-1]["test_accuracy_at_best"] == history[1]["test_accuracy"]
    assert result.best_test_accuracy == max(m["test_accuracy"] for m in history)  # still reported
    # the validation accuracy is that of the held-out samples
    assert measured[-1] == sources.evaluate(t.net, t.validation.source, 10)["accuracy"]
    assert 0 < measured[-1] < 1

    # best.npz is a whole checkpoint of epoch 2: it evaluates to that epoch's test accuracy
    config, meta, arrays = checkpoint.load_checkpoint(run / validation.BEST_FILE)
    assert meta["epoch"] == 2 and meta["test_accuracy"] == history[1]["test_accuracy"]
    assert checkpoint.load_checkpoint(run)[1]["epoch"] == 4
    assert not list(run.glob(".*.tmp"))
    net = build.build_network(config, "cpu", None)
    checkpoint.restore_network(net, arrays)
    assert sources.evaluate(net, t.test_source, 10)["accuracy"] == history[1]["test_accuracy"]


def test_resume_with_val_split_is_exact(tmp_path):
    whole = trainer.Trainer(tiny(val_split=0.1), tmp_path / "whole").fit()
    part = tmp_path / "part"
    assert trainer.Trainer(tiny(val_split=0.1, epochs=1), part).fit().epochs_completed == 1
    resumed = trainer.Trainer.resume(part, epochs=3).fit()
    assert without_timing(resumed.history) == without_timing(whole.history)
    for name in (runstate.STATE_FILE, validation.BEST_FILE):
        a = checkpoint.load_checkpoint(tmp_path / "whole" / name)
        b = checkpoint.load_checkpoint(part / name)
        assert a[1]["epoch"] == b[1]["epoch"]
        assert a[2].keys() == b[2].keys()
        for key in a[2]:
            np.testing.assert_array_equal(a[2][key], b[2][key])
    # the held-out samples are part of the stored run: another split cannot resume it
    _, meta, arrays = checkpoint.load_checkpoint(part)
    meta["n_val"] = 5
    runstate.write_state(part / runstate.STATE_FILE, arrays, meta)
    with pytest.raises(runstate.CheckpointError, match="validation samples"):
        trainer.Trainer.resume(part)


def test_checkpoint_without_val_split_still_loads(tmp_path):
    run = tmp_path / "run"
    trainer.Trainer(tiny(epochs=1), run).fit()
    _, meta, arrays = checkpoint.load_checkpoint(run)
    del meta["config"]["val_split"]  # a run stored before the key existed
    runstate.write_state(run / runstate.STATE_FILE, arrays, meta)
    assert checkpoint.load_checkpoint(run)[0].val_split == 0.0
    assert trainer.Trainer.resume(run, epochs=2).fit().epochs_completed == 2


def test_mnist_mini_run_with_a_stored_data_dir_still_loads(tmp_path):
    # older versions ignored --data-dir for mnist-mini and stored it; it is refused now
    run = tmp_path / "run"
    trainer.Trainer(tiny(epochs=1), run).fit()
    _, meta, arrays = checkpoint.load_checkpoint(run)
    meta["config"]["data_dir"] = str(tmp_path / "ignored")
    runstate.write_state(run / runstate.STATE_FILE, arrays, meta)
    assert checkpoint.load_checkpoint(run)[0].data_dir is None
    with pytest.raises(hconfig.ConfigError, match="data_dir"):
        checkpoint.load_checkpoint(run)[0].replace(data_dir=str(tmp_path))


# -- metrics files ----------------------------------------------------------------------------

def test_metrics_csv_matches_jsonl_and_has_no_duplicates_after_resume(tmp_path):
    run = tmp_path / "run"
    trainer.Trainer(tiny(epochs=2), run).fit()
    jsonl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == metrics_log.csv_columns(jsonl[0])
    for r, m in zip(rows, jsonl):
        assert float(r["test_accuracy"]) == m["test_accuracy"]  # floats round-trip exactly
        assert float(r["firing_rate_2"]) == m["firing_rate"][1]
    # a crash after epoch 3's metrics were written but before its checkpoint
    epoch3 = {**jsonl[-1], "epoch": 3}
    runstate.append_line(run / "metrics.jsonl", epoch3)
    runstate.append_text(run / "metrics.csv", metrics_log.csv_row(epoch3, list(rows[0])))
    trainer.Trainer.resume(run, epochs=4).fit()
    rows = read_csv(run / "metrics.csv")
    jsonl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] == [m["epoch"] for m in jsonl]
    assert [float(r["train_loss"]) for r in rows] == [m["train_loss"] for m in jsonl]
    # a run from before metrics.csv existed gets one on resume
    (run / "metrics.csv").unlink()
    trainer.Trainer.resume(run, epochs=5).fit()
    assert [int(r["epoch"]) for r in read_csv(run / "metrics.csv")] == [1, 2, 3, 4, 5]


def test_tensorboard_scalars_survive_a_resume(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert train_main(["--config", tiny_toml(tmp_path, epochs=2), "--out", str(run), "--log",
                       "tensorboard", "--quiet"]) == 0
    assert train_main(["--resume", str(run), "--epochs", "3", "--log", "tensorboard", "--quiet"]) == 0
    acc = EventAccumulator(str(run / metrics_log.TENSORBOARD_DIR))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"accuracy/test", "accuracy/train", "loss/train", "run/lr", "firing_rate/1"} <= set(tags)
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    test = acc.Scalars("accuracy/test")
    assert [e.step for e in test] == [1, 2, 3]
    assert [e.value for e in test] == pytest.approx([m["test_accuracy"] for m in history])


def test_tensorboard_missing_is_one_line(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorboard"] + ["tensorboard"]:
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    assert train_main(["--config", tiny_toml(tmp_path), "--out", str(tmp_path / "r"), "--log",
                       "tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install tensorboard" in err[0]
    with pytest.raises(metrics_log.TensorBoardError):
        metrics_log.MetricsLog(tmp_path, ("tensorboard",))


# -- print-config -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_print_config_round_trips_every_preset(name, tmp_path, capsys):
    assert train_main(["--preset", name, "--print-config"]) == 0
    path = tmp_path / "printed.toml"
    path.write_text(capsys.readouterr().out)
    assert build_config(config_file=path) == build_config(name)


def test_print_config_round_trips_files_and_flags(tmp_path, capsys):
    source = tmp_path / "in.toml"
    source.write_text('preset = "mnist-cnn"\nlr = 0.0025\neps = 1e-10\n[data]\ndata_dir = "/d/a \\"b\\""\n'
                      '[[network.layer]]\ntype = "conv2d"\nchannels = 4\nkernel = 5\nvth = 5.0\n'
                      '[[network.layer]]\ntype = "dense"\nn = 10\nvth = 8\n')
    args = ["--config", str(source), "--epochs", "7", "--val-split", "0.05", "--seed", "3",
            "--threads", "2", "--train-size", "100"]
    assert train_main(args + ["--print-config"]) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out)
    text = printed.read_text()
    network = text[text.index("[network]"):text.index("[[network.layer]]")].splitlines()
    assert not [line for line in network if line.startswith(("layers =", "vth ="))], \
        "a layer stack derives layers and vth: they are not printed beside the [[network.layer]] tables"
    want = build_config(None, source, epochs=7, val_split=0.05, seed=3, threads=2, train_size=100)
    assert build_config(config_file=printed) == want
    assert want.layer[1] == {"type": "dense", "n": 10, "vth": 8} and want.data_dir == '/d/a "b"'
    # printing writes no run directory
    assert not (tmp_path / "runs").exists()


def test_print_config_of_a_stored_run(tmp_path, capsys):
    run = tmp_path / "run"
    trainer.Trainer(tiny(epochs=1), run).fit()
    assert train_main(["--resume", str(run), "--epochs", "5", "--print-config"]) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out)
    assert build_config(config_file=printed) == tiny(epochs=1).replace(epochs=5)


# -- plots ------------------------------------------------------------------------------------

MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_plots_in_each_format(fmt, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    assert train_main(["--config", tiny_toml(tmp_path, epochs=2, val_split=0.1), "--out", str(run),
                       "--plot", "--plot-format", fmt, "--quiet"]) == 0
    for name in ("curves", "raster"):
        blob = (run / f"{name}.{fmt}").read_bytes()
        assert blob.startswith(MAGIC[fmt]), name
        if fmt == "svg":
            assert "run (784-30-10, from preset mnist-mini, T 60, mnist-mini)" in blob.decode()  # the run's name
        if fmt == "png":  # print resolution: pHYs of 300 dpi (11811 pixels per metre)
            k = blob.index(b"pHYs")
            assert int.from_bytes(blob[k + 4:k + 8], "big") == 11811
    assert not list(run.glob("*.png")) or fmt == "png"


def test_raster_names_the_output_classes(tmp_path):
    pytest.importorskip("matplotlib")
    from hm2bp.cli import plot

    assert plot.class_names("fashion-mnist", 10)[9] == "ankle boot"
    assert plot.class_names("emnist-balanced", 47)[36:] == list("abdefghnqrt")
    assert plot.class_names("mnist", 10) == [str(c) for c in range(10)]
    out = np.zeros((20, 3), dtype=bool)
    out[[2, 5, 9], 1] = True
    path = plot.plot_raster(np.zeros((20, 4), bool), [out], tmp_path / "r.svg", "t", ["cat", "dog", "eel"])
    text = path.read_text()
    assert all(f"{name} ({k})" in text for name, k in (("cat", 0), ("dog", 3), ("eel", 0)))
    with pytest.raises(ValueError, match="format"):
        plot.plot_raster(np.zeros((20, 4), bool), [out], tmp_path / "r.jpg")


def test_eval_split_val_reproduces_the_runs_validation_accuracy(tmp_path, capsys):
    from hm2bp.cli import eval_main

    run = tmp_path / "run"
    history = trainer.Trainer(tiny(val_split=0.2, epochs=1, dtype="float64"), run).fit().history
    capsys.readouterr()
    assert eval_main([str(run), "--split", "val"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("accuracy"))
    assert line.startswith(f"accuracy {100 * history[-1]['val_accuracy']:.2f}% (")
    assert "/40)" in line  # the 40 held-out samples
    assert eval_main([str(run), "--split", "train"]) == 0
    assert "/160)" in capsys.readouterr().out
    plain = tmp_path / "plain"
    trainer.Trainer(tiny(epochs=1, dtype="float64"), plain).fit()
    assert eval_main([str(plain), "--split", "val"]) == 2
    assert "held out no validation set" in capsys.readouterr().err
