"""hm2bp-train / hm2bp-eval: output format, exit codes, resume, plots."""

import json
import re
import subprocess
import sys
from pathlib import Path

import hm2bp
import numpy as np
import pytest
from hm2bp import cli
from hm2bp.cli import eval_main, train_main
from hm2bp.cli.progress import Progress
from hm2bp.train import checkpoint, trainer

TINY_TOML = """
preset = "mnist-mini"
[network]
layers = [784, 30, 10]
T = 60
vth = [5.0, 3.0]
desired = 10
undesired = 2
margin = 2
[training]
epochs = 1
batch_size = 4
lr = 0.005
seed = 7  # seeds 3-6 overflow float32 (lateral-inhibition term) within 3 epochs: diverged
backend = "cpu"
[data]
train_size = 200
test_size = 100
"""
SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist-10k"
FINAL_LINE = re.compile(r"^test accuracy (\d+\.\d\d)% \(best (\d+\.\d\d)%\)$")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return str(path)


def last_line(text):
    return text.strip().splitlines()[-1]


def one_line_error(err, *fragments):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_then_eval(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--config", tiny, "--out", str(out), "--epochs", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "backend cpu" in stdout
    epoch_lines = [x for x in stdout.splitlines() if x.startswith("epoch ")]
    assert len(epoch_lines) == 2 and "samples/s" in epoch_lines[0]
    final = FINAL_LINE.match(last_line(stdout))
    assert final, last_line(stdout)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert f"{100 * metrics[-1]['test_accuracy']:.2f}" == final.group(1)
    assert f"{100 * metrics[-1]['best_test_accuracy']:.2f}" == final.group(2)

    # hm2bp-eval reproduces the final test accuracy (same test spikes) from dir or npz
    for target in (out, out / "checkpoint.npz"):
        assert eval_main([str(target)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        acc = next(x for x in lines if x.startswith("accuracy "))
        assert re.match(rf"accuracy {final.group(1)}% \(\d+/100\) in [\d.]+ s$", acc), acc
        matrix = lines[lines.index(acc) + 2:]
        assert len(matrix) == 11  # header + 10 classes
        rows = np.array([[int(v) for v in row.split()[1:]] for row in matrix[1:]])
        assert rows.shape == (10, 10) and rows.sum() == 100
        assert np.trace(rows) == int(re.search(r"\((\d+)/", acc).group(1))

    assert eval_main([str(out), "--split", "train", "--limit", "50"]) == 0
    assert "(" in capsys.readouterr().out


def test_resume_extends_a_run(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--config", tiny, "--out", str(out), "--quiet"]) == 0
    quiet = capsys.readouterr().out
    assert len(quiet.strip().splitlines()) == 1 and FINAL_LINE.match(quiet.strip())
    assert train_main(["--resume", str(out), "--epochs", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "after epoch 1 of 2" in stdout and FINAL_LINE.match(last_line(stdout))
    assert checkpoint.load_checkpoint(out)[1]["epoch"] == 2
    # nothing left to do: still prints the accuracy line
    assert train_main(["--resume", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "nothing to train" in stdout and FINAL_LINE.match(last_line(stdout))
    # the stored config cannot be changed on resume
    assert train_main(["--resume", str(out), "--lr", "0.1"]) == 2
    one_line_error(capsys.readouterr().err, "--lr", "--resume")
    # a finished run directory is not overwritten
    assert train_main(["--config", tiny, "--out", str(out)]) == 2
    one_line_error(capsys.readouterr().err, "--resume")


def test_ctrl_c_exits_with_resume_hint(tiny, tmp_path, capsys, monkeypatch):
    calls = []
    run_epoch = trainer.Trainer._run_epoch

    def interrupted_second_epoch(self, e):
        calls.append(e)
        if e == 1:
            raise KeyboardInterrupt
        return run_epoch(self, e)

    monkeypatch.setattr(trainer.Trainer, "_run_epoch", interrupted_second_epoch)
    out = tmp_path / "run"
    assert train_main(["--config", tiny, "--out", str(out), "--epochs", "3"]) == 130
    err = capsys.readouterr().err
    assert f"hm2bp-train --resume {out}" in err and "epoch 1" in err
    assert checkpoint.load_checkpoint(out)[1]["epoch"] == 1


@pytest.mark.parametrize("args,fragments", [
    (["--config", "missing.toml"], ["not found"]),
    (["--batch-size", "0"], ["batch_size"]),
    (["--lr", "-1"], ["lr"]),
    (["--threads", "0"], ["threads"]),
    (["--data-dir", "digits"], ["data_dir", "'mnist-mini' (the digits bundled", "--preset mnist-fc800"]),
])
def test_errors_are_one_line_exit_2(args, fragments, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_main(args) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-train: error:", *fragments)


def test_missing_data_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mnist.toml"
    path.write_text(f'preset = "mnist-fc800"\n[data]\ndownload = false\n'
                    f'data_dir = "{tmp_path / "none"}"\n')
    assert train_main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # the data layer's message says where to put which files, in one line
    one_line_error(err, "hm2bp-train: error: mnist train files missing", "Put these files")
    assert not (tmp_path / "runs").exists()  # a run that could not start leaves no directory


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST copy not present")
def test_real_mnist_files(tmp_path, capsys):
    path = tmp_path / "mnist.toml"
    path.write_text(TINY_TOML.replace('preset = "mnist-mini"', 'preset = "mnist-fc800"'))
    out = tmp_path / "run"
    assert train_main(["--config", str(path), "--data-dir", str(SHARED_MNIST), "--out", str(out),
                       "--quiet"]) == 0
    assert FINAL_LINE.match(capsys.readouterr().out.strip())
    config = checkpoint.load_checkpoint(out)[0]
    assert config.dataset == "mnist" and Path(config.data_dir).is_absolute()


def test_bad_toml_value_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[network]\nvth = [20.0, -8.0]\n')
    assert train_main(["--config", str(path)]) == 2
    one_line_error(capsys.readouterr().err, "vth")


@pytest.mark.skipif(hm2bp.cuda_available(), reason="a GPU is present")
def test_cuda_without_gpu(tiny, tmp_path, capsys):
    assert train_main(["--config", tiny, "--backend", "cuda", "--out", str(tmp_path)]) == 2
    one_line_error(capsys.readouterr().err, "cuda")


def test_eval_errors(tmp_path, capsys):
    assert eval_main([str(tmp_path)]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-eval: error:", "no checkpoint")


def test_plot_without_matplotlib(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert train_main(["--config", tiny, "--out", str(tmp_path / "r"), "--plot"]) == 2
    one_line_error(capsys.readouterr().err, "matplotlib")
    assert not (tmp_path / "r").exists()  # fails before training


def test_plot_writes_pngs(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert train_main(["--config", tiny, "--out", str(out), "--plot"]) == 0
    for name in ("curves.png", "raster.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_throttles():
    class Stream:
        text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Stream()
    bar = Progress(stream, max_hz=10)
    for done in range(1001):
        bar(0, done, 1000, 3)
    draws = stream.text.count("\r")
    assert 1 <= draws <= 2  # maybe one in between, and the final one
    assert "1000/1000" in stream.text and "samples/s" in stream.text and "epoch 1/3" in stream.text
    bar.clear()
    assert stream.text.endswith("\r")


def test_subprocess_smoke(tiny, tmp_path):
    """The real entry point: exit code, stdout format, no traceback."""
    code = "import sys; from hm2bp.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "--config", tiny, "--out",
                           str(tmp_path / "run"), "--train-size", "40", "--test-size", "20"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert FINAL_LINE.match(last_line(proc.stdout)), proc.stdout
    assert "Traceback" not in proc.stderr


def test_default_out_dir_uses_preset_name(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train_main(["--config", tiny, "--train-size", "20", "--test-size", "10",
                       "--quiet"]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("mnist-mini-")
    assert (runs[0] / "checkpoint.npz").exists()


def test_cli_module_has_entry_points():
    assert callable(cli.train_main) and callable(cli.eval_main)
