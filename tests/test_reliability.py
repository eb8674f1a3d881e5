"""Nothing lost, nothing crashes (issue 14): atomic run state, the run-directory lock,
signals, the divergence guard, engine limits, one-line CLI errors and durable metrics.

Each test guards a class of failure; the kill -9 loop and the signal tests run the real
hm2bp-train in a subprocess."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import hm2bp
import numpy as np
import pytest
from hm2bp import cli
from hm2bp.model import limits
from hm2bp.train import build, checkpoint, runstate
from hm2bp.config import ConfigError, RunConfig, build_config, preset
from hm2bp.train.checkpoint import load_checkpoint
from hm2bp.train.runstate import CheckpointError
from hm2bp.train.trainer import DivergenceError, Trainer
from helpers import one_line_error

TINY = {"layers": [784, 30, 10], "T": 60, "vth": [5.0, 3.0], "desired": 10, "undesired": 2,
        "margin": 2, "train_size": 200, "test_size": 100, "batch_size": 4, "lr": 0.005,
        "seed": 7, "backend": "cpu"}
# Many short epochs with a larger state: most wall time is spent saving, so random kills
# land inside saves often.
KILL_TOML = """
preset = "mnist-mini"
[network]
layers = [784, 100, 10]
T = 30
vth = [5.0, 3.0]
desired = 10
undesired = 2
margin = 2
[training]
epochs = 100000
batch_size = 4
lr = 0.002
seed = 7
backend = "cpu"
threads = 1
[data]
train_size = 20
test_size = 10
"""
TRAIN = [sys.executable, "-c",
         "import sys; from hm2bp.cli import train_main; sys.exit(train_main(sys.argv[1:]))"]
EVAL = [sys.executable, "-c",
        "import sys; from hm2bp.cli import eval_main; sys.exit(eval_main(sys.argv[1:]))"]


@pytest.fixture
def kill_toml(tmp_path) -> Path:
    path = tmp_path / "kill.toml"
    path.write_text(KILL_TOML)
    return path


def state_of(run: Path) -> tuple[dict, dict]:
    meta, arrays = runstate.read_state(run / runstate.STATE_FILE)
    return meta, arrays


# ---------------------------------------------------------------------------------------------
# 1. One atomic run state, checked in full when read


def test_state_is_one_file_with_metadata_inside(good_run):
    names = sorted(p.name for p in good_run.iterdir())
    assert names == ["best.npz", "checkpoint.npz", "metrics.csv", "metrics.jsonl"]  # .lock: deleted at the end
    config, meta, arrays = load_checkpoint(good_run)
    assert meta["epoch"] == 1 and int(arrays["epoch"]) == 1 and meta["version"] == 2
    assert config.T == 60


def test_crash_at_the_rename_keeps_the_previous_state(tmp_path, monkeypatch):
    """A save that dies before its rename leaves the previous epoch's state whole."""
    out = tmp_path / "run"
    Trainer(preset("mnist-mini", epochs=1, **TINY), out).fit()
    before = (out / "checkpoint.npz").read_bytes()
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("checkpoint.npz"):
            raise OSError(errno.EIO, "simulated power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        Trainer.resume(out, epochs=2).fit()
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "checkpoint.npz").read_bytes() == before
    assert not list(out.glob(".*.tmp"))
    assert load_checkpoint(out)[1]["epoch"] == 1
    # metrics.jsonl got epoch 2's line before the failed save: resume trims it
    with Trainer.resume(out, epochs=2) as tr:
        assert [m["epoch"] for m in tr.history] == [1]


def _rewrite(run: Path, meta_change=None, array_change=None) -> None:
    meta, arrays = state_of(run)
    if meta_change:
        meta = meta_change(meta)
    if array_change:
        array_change(arrays)
    runstate.write_state(run / runstate.STATE_FILE, arrays, meta)


def _drop(d, key):
    d.pop(key)
    return d


def _set(d, key, value):
    d[key] = value
    return d


DAMAGE = {
    "meta is a list": (lambda m: [m], None, "not an hm2bp checkpoint"),
    "no config": (lambda m: _drop(m, "config"), None, "lacks 'config'"),
    "config without T": (lambda m: _set(m, "config", _drop(dict(m["config"]), "T")), None,
                         "config lacks T"),
    "config value of the wrong type": (
        lambda m: _set(m, "config", _set(dict(m["config"]), "T", "60")), None, "T"),
    "newer version": (lambda m: _set(m, "version", 99), None, "version 99"),
    "float epoch": (lambda m: _set(m, "epoch", 1.5), None, "'epoch'"),
    "accuracy above 1": (lambda m: _set(m, "test_accuracy", 3.0), None, "accuracy"),
    "epochs disagree": (lambda m: _set(m, "epoch", 2), None, "does not match"),
    "negative second moment": (None, lambda a: a["net.moment2_0"].__setitem__((0, 0), -1e-3),
                               "negative"),
    "NaN weight": (None, lambda a: a["net.weights_1"].__setitem__((0, 0), np.nan), "NaN"),
    "float step": (None, lambda a: a.__setitem__("net.step", np.float64(3.0)), "step"),
    "extra array": (None, lambda a: a.__setitem__("junk", np.zeros(2)), "junk"),
    "boost weights of another size": (
        None, lambda a: a.__setitem__("sample_weights", np.ones(7)), "sample_weights"),
    "weights of another shape": (
        None, lambda a: a.__setitem__("net.weights_0", np.zeros((31, 784))), "weights_0"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_loader_names_file_and_problem(run_copy, case, capsys):
    meta_change, array_change, fragment = DAMAGE[case]
    _rewrite(run_copy, meta_change, array_change)
    damaged = (run_copy / "checkpoint.npz").read_bytes()
    with pytest.raises(CheckpointError, match="checkpoint") as info:
        config, _, arrays = load_checkpoint(run_copy)
        checkpoint.restore_network(build.build_network(config, "cpu", None), arrays)
    assert fragment in str(info.value)
    # the tools refuse it in one line, and never overwrite it
    assert cli.eval_main([str(run_copy)]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-eval: error:", fragment)
    assert cli.train_main(["--resume", str(run_copy), "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-train: error:", fragment)
    assert (run_copy / "checkpoint.npz").read_bytes() == damaged


def test_version_1_two_file_checkpoints_are_still_read(run_copy):
    meta, arrays = state_of(run_copy)
    meta["version"] = 1
    np.savez(run_copy / "checkpoint.npz", **arrays)
    (run_copy / "checkpoint.json").write_text(json.dumps(meta))
    assert load_checkpoint(run_copy)[1]["epoch"] == 1
    assert cli.eval_main([str(run_copy)]) == 0


# ---------------------------------------------------------------------------------------------
# Crashes at random moments: kill -9 loop


def _kill_trials(kill_toml: Path, tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    seen = {"no state yet": 0, "killed mid-save": 0, "resumed": 0, "unloadable": 0,
            "epochs saved": 0}
    for k in range(trials):
        out = tmp_path / f"kill{k}"
        proc = subprocess.Popen([*TRAIN, "--config", str(kill_toml), "--out", str(out),
                                 "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.8, 2.5))  # the first ~1 s is start-up
        proc.kill()
        proc.communicate()
        seen["killed mid-save"] += bool(list(out.glob(".*.tmp")))  # a temporary not renamed
        if not (out / runstate.STATE_FILE).exists():
            seen["no state yet"] += 1
            continue
        try:
            epoch = load_checkpoint(out)[1]["epoch"]
            tr = Trainer.resume(out, epochs=epoch + 1)  # also trims metrics past the state
            assert len(tr.history) == epoch
            assert not tr.fit().interrupted
            seen["resumed"] += 1
            seen["epochs saved"] += epoch
        except CheckpointError:
            seen["unloadable"] += 1
    return seen


def test_kill_9_at_random_moments_leaves_a_resumable_run(kill_toml, tmp_path):
    seen = _kill_trials(kill_toml, tmp_path, trials=8, seed=1)
    print(f"kill -9 trials: {seen}")
    assert seen["unloadable"] == 0 and seen["resumed"] >= 6, seen


@pytest.mark.slow
def test_kill_9_loop_long(kill_toml, tmp_path):
    seen = _kill_trials(kill_toml, tmp_path, trials=80, seed=2)
    print(f"kill -9 trials: {seen}")
    assert seen["unloadable"] == 0 and seen["resumed"] >= 70, seen


# ---------------------------------------------------------------------------------------------
# Signals: SIGTERM / SIGHUP like Ctrl-C; a second Ctrl-C during a save waits for it


def _start_and_wait_for_epochs(kill_toml: Path, out: Path, epochs: int) -> subprocess.Popen:
    proc = subprocess.Popen([*TRAIN, "--config", str(kill_toml), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= epochs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_and_tell_how_to_resume(kill_toml, tmp_path, sig):
    out = tmp_path / "run"
    proc = _start_and_wait_for_epochs(kill_toml, out, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    line = one_line_error(err, f"interrupted ({signal.Signals(sig).name})",
                          f"hm2bp-train --resume {out}")
    epoch = load_checkpoint(out)[1]["epoch"]
    assert f"epoch {epoch} saved" in line and epoch >= 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == epoch


def test_second_ctrl_c_during_a_save_waits_for_it(tmp_path, monkeypatch):
    real_write = runstate.write_state
    calls = []

    def write_with_two_ctrl_c(path, arrays, meta, **kw):
        calls.append((Path(path).name, meta["epoch"]))
        if calls[-1] == ("best.npz", 1):  # the first save of epoch 1
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handlers run now, in the middle of the save
        real_write(path, arrays, meta, **kw)

    monkeypatch.setattr(runstate, "write_state", write_with_two_ctrl_c)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a job started in the background (&)
    result = Trainer(preset("mnist-mini", epochs=3, **TINY), out).fit()
    assert result.interrupted and result.signal == signal.SIGINT
    # epoch 1 saved once, completely (its best.npz, then its checkpoint)
    assert result.epochs_completed == 1
    assert calls == [("checkpoint.npz", 0), ("best.npz", 1), ("checkpoint.npz", 1)]
    assert load_checkpoint(out)[1]["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is before  # restored


# ---------------------------------------------------------------------------------------------
# 2. The run-directory lock and collision-free default directories


def test_two_runs_in_one_directory(kill_toml, tmp_path, capsys):
    out = tmp_path / "run"
    first = _start_and_wait_for_epochs(kill_toml, out, 1)
    try:
        for args in (["--config", str(kill_toml), "--out", str(out)], ["--resume", str(out)]):
            assert cli.train_main(args) == 2
            one_line_error(capsys.readouterr().err, "in use by another run",
                           f"pid {first.pid}")
        with pytest.raises(runstate.RunDirError, match=f"pid {first.pid}"):
            Trainer(preset("mnist-mini", **TINY), out)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, len(lines) + 1))  # one writer only
    # once the holder is gone, the directory can be resumed
    epoch = load_checkpoint(out)[1]["epoch"]
    assert cli.train_main(["--resume", str(out), "--epochs", str(epoch + 1), "--quiet"]) == 0


def test_default_directories_never_collide(tmp_path):
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(runstate.make_run_dir(tmp_path, "x")))
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16 and all(p.is_dir() for p in made)


def test_lock_is_released_when_the_holder_dies(tmp_path):
    code = ("import sys, os; from pathlib import Path; from hm2bp.runstate import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False, timeout=60)
    lock = runstate.RunLock(tmp_path)
    lock.acquire()
    assert lock.held
    lock.release()


# ---------------------------------------------------------------------------------------------
# 3. Limits before anything is allocated


@pytest.mark.parametrize("key,value", [
    ("T", 2**31 - 1), ("T", 2**31), ("T", 2**63), ("t_ref", 2**31 - 1), ("layers", [784, 2**31, 10]),
    ("layers", [784, 2**20, 10]), ("desired", 2**40), ("batch_size", 2**31),
    ("eval_batch_size", 2**62), ("threads", 10**6), ("epochs", 2**64), ("train_size", 2**70),
    ("tau_m", 1e300), ("vth", [1e-300, 8.0]), ("lr", 1e39), ("seed", 2**64),
])
def test_huge_values_are_refused_before_the_engine(key, value, tmp_path, capsys):
    """In a subprocess: whatever the value, exit 2 and one line, never a crash or a
    multi-GB allocation."""
    toml = tmp_path / "c.toml"
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    toml.write_text(f'preset = "mnist-mini"\n{key} = {text}\n')
    proc = subprocess.run([*TRAIN, "--config", str(toml), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    one_line_error(proc.stderr, "hm2bp-train: error:")


def test_memory_estimate_refuses_with_the_estimate(monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 200 * 2**20)
    cfg = preset("mnist-mini", layers=[784, 40000, 10], backend="cpu")
    with pytest.raises(ConfigError, match=r"need about \d+\.\d GiB .* only 200\.0 MiB"):
        Trainer(cfg)
    assert limits.engine_bytes([784, 400, 10], 200, 2, 8, 2, "float32") < 64 * 2**20


def test_engine_api_checks_its_integers():
    net = hm2bp.Network([20, 10, 4], [2.0, 2.0], desired=10, undesired=2, margin=2)
    images = np.zeros((1, 20), np.uint8)
    for T in (2**31 - 1, 2**31, 2**64):
        with pytest.raises(ValueError, match="T"):
            net.infer_images(images, T=T, seed=0, sample_index=0)
    with pytest.raises(ValueError, match="seed"):
        net.infer_images(images, T=20, seed=2**64, sample_index=0)
    for bad in ([20, 2**31, 4], [2**16, 2**16, 4]):
        with pytest.raises(ValueError, match="layers|elements"):
            hm2bp.Network(bad, [2.0, 2.0])
    with pytest.raises(ValueError, match="threads"):
        hm2bp.Network([20, 4], [2.0], threads=10**6)
    with pytest.raises(ValueError, match="tau_m"):
        hm2bp.Network([20, 4], [2.0], tau_m=1e300)


# ---------------------------------------------------------------------------------------------
# 4. Divergence guard


def test_diverging_run_stops_and_keeps_the_last_good_state(tmp_path, capsys):
    out = tmp_path / "run"
    toml = tmp_path / "c.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()))
    assert cli.train_main(["--config", str(toml), "--out", str(out), "--lr", "1e6"]) == 2
    one_line_error(capsys.readouterr().err, "diverged", "is kept", "smaller lr")
    config, meta, arrays = load_checkpoint(out)  # finite, loadable
    assert meta["epoch"] == 0
    assert cli.eval_main([str(out)]) == 0


@pytest.mark.parametrize("sequences", [False, True], ids=["per-batch", "sequences"])
def test_divergence_mid_run_never_writes_a_non_finite_state(tmp_path, monkeypatch, sequences):
    out = tmp_path / "run"
    tr = Trainer(preset("mnist-mini", epochs=3, **TINY), out)
    assert tr.train_source.sequences  # the engine's sequence call, unless told otherwise
    tr.train_source.sequences = sequences
    method = "train_batches" if sequences else "train"
    real = getattr(tr.train_source, method)

    def poisoned(step, idx, epoch, *args):
        result = real(step, idx, epoch, *args)
        if epoch == 1:
            net = step.net
            w = net.get_weights()
            w[0][0, 0] = np.nan
            net._engine.set_param("weights", 0, w[0])  # what an overflow in the engine does
        return result

    setattr(tr.train_source, method, poisoned)
    # found by the network's own check after the step (or, at the latest, by the epoch's snapshot)
    with pytest.raises(DivergenceError, match="epoch 2: .*(weights_0|weights are not finite).*epoch 1 .* is kept"):
        tr.fit()
    assert load_checkpoint(out)[1]["epoch"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("sequences", [False, True], ids=["per-batch", "sequences"])
def test_non_finite_loss_stops_the_epoch(tmp_path, sequences):
    tr = Trainer(preset("mnist-mini", epochs=2, **TINY), tmp_path / "run")
    tr.train_source.sequences = sequences
    tr.train_source.train = lambda *a: {"loss": float("nan"), "predictions": 0,
                                        "layer_spikes": 0}
    tr.train_source.train_batches = lambda *a: {"loss": np.array([1.0, float("nan")]), "predictions": np.zeros(8),
                                                "layer_spikes": np.zeros((2, 2), dtype=np.int64)}
    with pytest.raises(DivergenceError, match="loss"):
        tr.fit()
    assert load_checkpoint(tmp_path / "run")[1]["epoch"] == 0


def test_set_weights_and_set_state_check_the_engine_dtype():
    small = [np.zeros((4, 20))]
    for dtype, ok in (("float32", False), ("float64", True)):
        net = hm2bp.Network([20, 4], [2.0], dtype=dtype)
        huge = [np.full((4, 20), 1e300)]
        if ok:
            net.set_weights(huge)
        else:
            with pytest.raises(ValueError, match="infinite in float32"):
                net.set_weights(huge)
        net.set_weights(small)
    state = net.get_state()
    state["moment2_0"] = np.full((4, 20), -1.0)
    with pytest.raises(ValueError, match="negative"):
        net.set_state(state)
    state = net.get_state()
    state["step"] = np.float64(2.5)
    with pytest.raises(ValueError, match="step"):
        net.set_state(state)


# ---------------------------------------------------------------------------------------------
# 5. One-line errors everywhere; durable metrics


def test_cut_metrics_line_is_dropped_with_a_warning(run_copy, capsys):
    with open(run_copy / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_loss": 1')  # a full disk cut the line
    assert cli.train_main(["--resume", str(run_copy), "--epochs", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "hm2bp-train: warning:" in err and "line 2" in err and "Traceback" not in err
    lines = [json.loads(x) for x in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]


def test_append_line_is_all_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    runstate.append_line(path, {"epoch": 1})
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        runstate.append_line(path, {"epoch": 2, "pad": "x" * 100})
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_text() == '{"epoch": 1}\n'


@pytest.mark.parametrize("content,named", [(b"\x00\xff\xfe binary \x89PNG", "c.toml"),
                                           (b"[network]\nT = [", "c.toml"),
                                           (b"T = 1e999", "T = inf")])
def test_bad_toml_files_are_one_line(tmp_path, capsys, content, named):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    assert cli.train_main(["--config", str(path)]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-train: error:", named)
    assert cli.train_main(["--config", str(tmp_path)]) == 2  # a directory
    one_line_error(capsys.readouterr().err, "hm2bp-train: error:")


@pytest.mark.parametrize("payload", [b"", b"PK\x03\x04garbage", b"\x00" * 1000])
def test_damaged_checkpoint_bytes_are_one_line(run_copy, capsys, payload):
    (run_copy / "checkpoint.npz").write_bytes(payload)
    assert cli.eval_main([str(run_copy)]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-eval: error:", "checkpoint.npz")


def test_eval_into_a_closed_pipe(good_run):
    proc = subprocess.Popen([*EVAL, str(good_run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head` exiting at once
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and proc.returncode == 128 + signal.SIGPIPE, err


def test_eval_limit_is_checked(good_run, capsys):
    assert cli.eval_main([str(good_run), "--limit", "-5"]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-eval: error:", "--limit")


def test_debug_shows_the_traceback(capsys):
    assert cli.train_main(["--batch-size", "0", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("hm2bp-train: error:")


# ---------------------------------------------------------------------------------------------
# 7. Absolute data paths in the run state


def test_relative_data_dir_is_stored_absolute(tmp_path, monkeypatch, capsys):
    from hm2bp import data

    mini = {s: data.load("mnist-mini", s) for s in ("train", "test")}
    folder = tmp_path / "work" / "digits"
    folder.mkdir(parents=True)
    for split, stem in (("train", "train"), ("test", "t10k")):
        ds = mini[split]
        for kind, arr, magic in (("images-idx3", ds.images.reshape(-1, 28, 28), 0x803),
                                 ("labels-idx1", ds.labels.astype(np.uint8), 0x801)):
            head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            (folder / f"{stem}-{kind}-ubyte").write_bytes(head + arr.tobytes())
    toml = tmp_path / "c.toml"
    toml.write_text('dataset = "mnist"\n' + "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in {**TINY, "epochs": 1}.items()))
    monkeypatch.chdir(tmp_path / "work")
    out = tmp_path / "run"
    assert cli.train_main(["--config", str(toml), "--data-dir", "digits", "--out", str(out),
                           "--quiet"]) == 0
    assert load_checkpoint(out)[0].data_dir == str(folder)
    monkeypatch.chdir(tmp_path)  # elsewhere: eval and resume still find the data
    assert cli.eval_main([str(out)]) == 0
    assert cli.train_main(["--resume", str(out), "--epochs", "2", "--quiet"]) == 0


def test_run_config_roundtrip_is_complete():
    cfg = build_config("mnist-mini")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
