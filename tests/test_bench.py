"""Tests of bench/: the NumPy HM2-BP row equals hm2bp.reference (what makes that row honest),
the custom-rate encoder, the table/JSON smoke path and the skipped-row mechanism."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root
from bench import common  # noqa: E402
from bench.numpy_hm2bp import NumpyHM2BP, k_trace  # noqa: E402

ref = common.hm2bp_module("reference")
REPO = common.REPO
HAS_DATA = (common.DEFAULT_DATA_DIR / "train-images-idx3-ubyte.gz").exists()
needs_data = pytest.mark.skipif(not HAS_DATA, reason=f"no {common.DEFAULT_DATA_DIR}")


def _engine_ok() -> bool:
    try:
        common.import_engine()
        return True
    except common.Skipped:
        return False


def _refractory_trains(rng: np.random.Generator, B: int, T: int, O: int, density: float,
                       t_ref: int = 2) -> np.ndarray:
    """Random post trains that respect the refractory period (as real ones do)."""
    s = rng.random((B, T, O)) < density
    s[:, 0] = False
    for b in range(B):
        for o in range(O):
            last = -t_ref - 1
            for t in np.flatnonzero(s[b, :, o]):
                if t - last <= t_ref:
                    s[b, t, o] = False
                else:
                    last = t
    return s


@pytest.mark.parametrize("density", [0.002, 0.02, 0.2])
def test_k_trace_gives_reference_spsp(density: float) -> None:
    # T = 700 > 4 tau_m: long gaps exercise the window start lb = tp - 4 tau_m
    rng = np.random.default_rng(int(density * 1000))
    s_out = _refractory_trains(rng, 2, 700, 6, density)
    s_in = rng.random((2, 700, 9)) < 0.05
    s_in[:, 0] = False
    K = k_trace(s_out, 64.0, 8.0, 2)
    for b in range(2):
        want = ref.spsp_matrix(s_out[b], s_in[b], 64.0, 8.0, 2)
        got = K[b].T @ s_in[b].astype(np.float64)
        silent = np.ix_(s_out[b].sum(0) == 0, s_in[b].sum(0) != 0)
        got[silent] = 0.1  # the 0.1 rule is a fix-up outside K
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


CASES = [
    # (layers, vth, lateral inhibition, effect ratio, input rate, T)
    ([30, 20, 5], [5.0, 3.0], 1.0, True, 0.05, 400),
    ([30, 20, 5], [5.0, 3.0], 0.0, True, 0.05, 120),
    ([30, 20, 5], [5.0, 3.0], 1.0, False, 0.05, 400),
    ([40, 25, 6], [2.0, 1.5], 1.0, True, 0.1, 400),  # busy network: many spikes, revival
    ([30, 20, 15, 5], [5.0, 4.0, 3.0], 1.0, True, 0.08, 300),
]


def _case(case: int) -> tuple[dict, np.ndarray, np.ndarray]:
    layers, vth, w0, er, rate, T = CASES[case]
    kw = dict(layers=layers, vth=vth, lateral_inhibition=w0, effect_ratio=er, desired=10,
              undesired=2, margin=1, seed=case)
    rng = np.random.default_rng(100 + case)
    spikes = rng.random((4, T, layers[0])) < rate
    spikes[:, 0] = False
    return kw, spikes, rng.integers(0, layers[-1], 4)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_numpy_hm2bp_matches_reference(case: int) -> None:
    kw, spikes, labels = _case(case)
    want_net, got_net = ref.Network(**kw), NumpyHM2BP(**kw)
    for want, got in zip(want_net.forward(spikes), got_net.forward(spikes)):
        np.testing.assert_array_equal(got, want)
    for want, got in zip(want_net.gradients(spikes, labels), got_net.gradients(spikes, labels)):
        scale = max(np.abs(want).max(), 1e-300)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)
    weights = np.linspace(0.5, 1.5, len(labels))
    want_out = want_net.train_step(spikes, labels, 0.01, weights)
    got_out = got_net.train_step(spikes, labels, 0.01, weights)
    for key in ("predictions", "counts", "layer_spikes"):
        np.testing.assert_array_equal(got_out[key], want_out[key])
    assert got_out["loss"] == pytest.approx(want_out["loss"], rel=1e-12)
    for want, got in zip(want_net.get_weights(), got_net.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_cases_cover_revival_and_lateral_factor() -> None:
    # a silent label neuron next to active outputs (revival + lateral factor both matter) and
    # a busy network with several active outputs per sample must both be among the cases
    revival = lateral = False
    for case in range(len(CASES)):
        kw, spikes, labels = _case(case)
        counts = NumpyHM2BP(**kw).forward(spikes)[-1].sum(axis=1)
        silent_label = counts[np.arange(len(labels)), labels] == 0
        revival |= bool((silent_label & (counts.sum(axis=1) > 0)).any())
        lateral |= bool(kw["lateral_inhibition"] and ((counts > 0).sum(axis=1) >= 3).any())
    assert revival and lateral


def test_rate_scaled_encoder() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 50), dtype=np.uint8)
    same = common.encode_rate_scaled(images, 200, 7, 5, 1.0)
    np.testing.assert_array_equal(same, ref.encode_poisson(images, 200, 7, 5, 0))
    double = common.encode_rate_scaled(images, 2000, 7, 5, 2.0)
    single = common.encode_rate_scaled(images, 2000, 7, 5, 1.0)
    assert not double[:, 0].any()
    assert double.sum() / single.sum() == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="rate_scale"):
        common.encode_rate_scaled(images, 10, 0, 0, 0.0)


def test_throughput_restarts_before_every_pass_untimed() -> None:
    calls: list[str] = []

    def restart() -> None:
        calls.append("restart")
        time.sleep(0.05)  # must not count

    rates = common.throughput(lambda b: calls.append(b), ["a", "b", "c"], 2, warmup=1, repeats=4,
                              min_seconds=0.0, restart=restart)
    assert calls == ["a", "b", "c", "restart", "a", "b"]  # warm-up "a", then one step per repeat
    assert all(r > 2 / 0.05 for r in rates)


def test_table_marks_skipped_rows_and_ratios() -> None:
    from bench.__main__ import AUTHORS_ROW, _targets, format_table

    rows = [
        {"name": "hm2bp-cpu", "device": "cpu", "threads": 2, "train_samples_per_s": 500.0,
         "train_spread": [490.0, 510.0], "infer_samples_per_s": 2000.0,
         "infer_spread": [1900.0, 2100.0], "peak_mb": 60.0},
        {"name": "numpy", "device": "cpu", "threads": "BLAS", "train_samples_per_s": 10.0,
         "train_spread": [9.0, 11.0], "infer_samples_per_s": 40.0, "infer_spread": [39.0, 41.0],
         "peak_mb": 700.0},
        {"name": "snntorch", "skipped": "snntorch not importable: ImportError: x"},
        dict(AUTHORS_ROW),
    ]
    text = format_table(rows)
    assert "snntorch  skipped: snntorch not importable" in text
    assert "50x" in text  # numpy vs hm2bp-cpu
    assert "authors-cuda *" in text and "64-90" in text
    lines = _targets(rows)
    assert lines[0].startswith("hm2bp-cpu / snntorch: not measured")
    assert lines[1] == "hm2bp-cpu / numpy train = 50x (target >= 50x: met)"
    assert len(lines) == 2  # no CUDA row measured: no CUDA ratio


def test_cuda_row_gets_a_ratio_to_snntorch_on_its_device() -> None:
    from bench.__main__ import _targets

    rows = [{"name": "hm2bp-cuda", "device": "NVIDIA H200", "train_samples_per_s": 9000.0},
            {"name": "hm2bp-cpu", "device": "cpu", "train_samples_per_s": 3000.0},
            {"name": "snntorch", "device": "cuda", "train_samples_per_s": 300.0}]
    lines = _targets(rows)
    assert lines[0] == "hm2bp-cpu / snntorch train = 10x (target >= 100x: NOT met)"
    assert lines[-1] == "hm2bp-cuda / snntorch train = 30x (snntorch on cuda)"


def test_missing_peer_is_skipped_not_faked(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import peers

    monkeypatch.setitem(sys.modules, "snntorch", None)  # import now raises ImportError
    if importlib.util.find_spec("torch") is None:
        with pytest.raises(common.Skipped, match="torch not importable"):
            peers.make("snntorch", [784, 10, 10], 20, 1)
    else:
        with pytest.raises(common.Skipped, match="snntorch not importable"):
            peers.make("snntorch", [784, 10, 10], 20, 1)


def _run_bench(args: list[str], tmp_path: Path, env_extra: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_data
def test_quick_table_smoke_json(tmp_path: Path) -> None:
    # snntorch is hidden by a stub package on PYTHONPATH: its row must come back skipped
    stub = tmp_path / "stub" / "snntorch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('hidden by test_bench')\n")
    out = tmp_path / "bench.json"
    pythonpath = os.pathsep.join([str(tmp_path / "stub"), os.environ.get("PYTHONPATH", "")])
    proc = _run_bench(["--quick", "--json", str(out), "--rows", "hm2bp-cpu,numpy,snntorch",
                       "--samples", "4", "--batch", "2", "--repeats", "2", "--min-seconds",
                       "0", "--T", "60", "--hidden", "20"], tmp_path,
                      {"PYTHONPATH": pythonpath})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    for key in ("cpu_model", "cores", "python", "numpy", "torch", "date", "git_commit"):
        assert key in result["machine"]
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"hm2bp-cpu", "numpy", "snntorch", "authors-cuda"}
    numpy_row = rows["numpy"]
    assert "skipped" not in numpy_row, numpy_row
    for key in ("train_samples_per_s", "infer_samples_per_s", "peak_mb"):
        assert numpy_row[key] > 0
    # hidden by the stub, or already missing its torch (a fresh venv without the bench extra)
    reason = rows["snntorch"].get("skipped", "")
    assert "hidden by test_bench" in reason or "torch not importable" in reason, rows["snntorch"]
    if _engine_ok():
        assert rows["hm2bp-cpu"]["train_samples_per_s"] > 0
        # repeats interleaved: each row's repeat r between the other's repeats r and r + 1
        for mode in ("train", "infer"):
            a, b = rows["hm2bp-cpu"]["repeat_started"][mode], rows["numpy"]["repeat_started"][mode]
            assert a[0] <= b[0] <= a[1] <= b[1], (mode, a, b)
    else:
        assert "hm2bp engine not importable" in rows["hm2bp-cpu"]["skipped"]
    assert rows["authors-cuda"]["measured"] is False
    assert "numpy" in proc.stdout and "skipped" in proc.stdout


@needs_data
def test_scaling_smoke(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    proc = _run_bench(["scaling", "--row", "numpy", "--quick", "--sweeps", "hidden,rate",
                       "--values", "hidden=10,20;rate=0.5,2", "--base", "T=60,batch=2,hidden=20",
                       "--min-samples", "2",
                       "--json", str(js), "--png", str(png)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(js.read_text())
    assert [p["hidden"] for p in result["sweeps"]["hidden"]] == [10, 20]
    rate = result["sweeps"]["rate"]
    assert rate[1]["input_spikes_per_sample"] > 3 * rate[0]["input_spikes_per_sample"]
    assert all(p["spikes_x_fanout_per_sample"] > 0 for p in rate)
    assert png.stat().st_size > 0


@needs_data
def test_tta_smoke(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    if not _engine_ok():
        pytest.skip("hm2bp engine not built")
    js, png = tmp_path / "t.json", tmp_path / "t.png"
    proc = _run_bench(["tta", "--budget", "1", "--eval-every", "0.5", "--eval-size", "20",
                       "--T", "60", "--hidden", "20", "--batch", "4", "--json", str(js),
                       "--png", str(png)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(js.read_text())["runs"]
    curve = runs["hm2bp-cpu"]["curve"]
    assert curve[0]["train_s"] == 0 and curve[-1]["train_s"] >= 1
    assert all(0 <= p["test_accuracy"] <= 1 for p in curve)
    assert "curve" in runs["snntorch"] or "skipped" in runs["snntorch"]
    assert png.stat().st_size > 0


@needs_data
def test_cnn_bench_smoke(tmp_path: Path) -> None:
    js = tmp_path / "cnn.json"
    proc = _run_bench(["cnn", "--batches", "2", "--samples", "2", "--repeats", "1", "--min-seconds", "0",
                       "--peer-batch", "2", "--json", str(js)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(js.read_text())["rows"]
    cpu = next(r for r in rows if r["backend"] == "cpu")
    assert cpu["batch"] == 2 and cpu["train_samples_per_s"]["median"] > 0 and cpu["infer_samples_per_s"]["median"] > 0
    assert "authors-cuda" in proc.stdout
    peer = next(r for r in rows if r["backend"] == "snntorch-cnn")
    assert "skipped" in peer or peer["train_samples_per_s"]["median"] > 0


def test_bridge_bench_smoke_times_the_rows_asked_for(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if not _engine_ok():
        pytest.skip("hm2bp engine not built")
    js = tmp_path / "bridge.json"
    proc = _run_bench(["bridge", "--batches", "2", "--batch", "2", "--rounds", "1", "--threads", "1", "--T", "40",
                       "--only", "NetworkOptimizer", "--json", str(js)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(js.read_text())
    assert result["T"] == 40 and "T = 40" in proc.stdout
    rows = result["rows"]
    assert set(rows) == {"native train_step", "engine calls of a step", "bridge, NetworkOptimizer",
                         "stored, NetworkOptimizer"}
    assert rows["native train_step"]["wall_ratio"] == 1.0 and all(r["wall_s"][0] > 0 for r in rows.values())


def test_speech_bench_smoke(tmp_path: Path) -> None:
    dat = tmp_path / "a.dat"
    rng = np.random.default_rng(0)
    dat.write_text("\n".join("   ".join(f"{x:.7e}" for x in row) for row in rng.uniform(0, 2e-4, (78, 20))) + "\n")
    js = tmp_path / "speech.json"
    proc = _run_bench(["speech", "--batches", "2", "--samples", "2", "--repeats", "1", "--min-seconds", "0",
                       "--dat", str(dat), "--json", str(js)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(js.read_text())
    cpu = next(r for r in result["rows"] if r["backend"] == "cpu")
    assert cpu["batch"] == 2 and cpu["train_samples_per_s"]["median"] > 0 and cpu["infer_samples_per_s"]["median"] > 0
    assert result["T"] == 1000 and result["frames"] == 20 and result["bsa_samples_per_s"]["median"] > 0


def test_cnn_bench_checks_its_batches_before_measuring(tmp_path: Path) -> None:
    # batch 256 of the default 96 samples: refused at once (it used to stop only after the
    # smaller batches had been measured); the dry run says so too
    for extra in ([], ["--dry-run"]):
        proc = _run_bench(["cnn", "--batches", "1,32,256", "--backends", "cuda", *extra], tmp_path)
        assert proc.returncode != 0 and "--samples (96) must be at least every batch size" in proc.stderr
    proc = _run_bench(["cnn", "--batches", "1,32,256", "--samples", "256", "--backends", "cuda", "--dry-run"],
                      tmp_path)
    assert proc.returncode == 0 and "arguments OK" in proc.stdout, proc.stderr
    proc = _run_bench(["cnn", "--backends", "tpu", "--dry-run"], tmp_path)
    assert proc.returncode != 0 and "--backends must name cpu and/or cuda" in proc.stderr


def test_gpu_check_dry_run_parses_every_step(tmp_path: Path) -> None:
    # bench/gpu_check.sh runs where device time is scarce: each step's own command line must
    # parse here (pip --dry-run, pytest --collect-only, the benchmarks' --dry-run)
    if importlib.util.find_spec("hm2bp") is None:
        pytest.skip("hm2bp is not installed")
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"], cwd=REPO,
                          env={**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=600)
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    steps = [line.split(":")[0] for line in summary]
    assert steps == ["build", "CUDA tests", "fc800 speed (gpu_bench)", "mnist-cnn speed (CUDA)",
                     "compute-sanitizer racecheck", "compute-sanitizer synccheck",
                     "compute-sanitizer initcheck", "compute-sanitizer memcheck", "main table (CUDA rows)"]
    assert all(line.endswith(": parses") for line in summary), summary
    assert "=== summary" in proc.stdout  # printed by the exit trap


def test_gpu_check_prints_its_summary_when_killed(tmp_path: Path) -> None:
    # A "python" that hangs stands in for a build; a SIGTERM (a device call running out of
    # time) must end the step at once and still print the summary.
    import signal

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && exec echo "Python (fake)"\nexec sleep 60\n')
    fake.chmod(0o755)
    proc = subprocess.Popen(["bash", str(REPO / "bench" / "gpu_check.sh")], cwd=REPO, text=True,
                            env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": str(fake),
                                 "HM2BP_CHECK_DEADLINE_S": "50"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(3)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - start < 10 and proc.returncode == 143
    assert "=== summary" in out and "KILLED (signal) during: build" in out
    assert "KILLED (signal) during: build" in (tmp_path / "out" / "summary.txt").read_text()


@pytest.mark.skipif(not _engine_ok(), reason="hm2bp engine not built")
def test_silent_units_counts_frozen_neurons() -> None:
    # A hidden layer whose threshold no input can reach never fires, and nor does the output
    # it alone drives; at a reachable threshold the counts are the spike trains' sums.
    import hm2bp
    from bench.silent_units import layer_silence
    spikes = np.random.default_rng(0).random((5, 50, 20)) < 0.3
    silent = hm2bp.Network(layers=[20, 6, 3], vth=[1e9, 1.0], seed=1, threads=1)
    assert [row["never_fire"] for row in layer_silence(silent, spikes, batch=2)] == [1.0, 1.0]
    live = hm2bp.Network(layers=[20, 6, 3], vth=[0.5, 0.5], init_w=2.0, seed=1, threads=1)
    rows = layer_silence(live, spikes, batch=2)
    trains = live.forward(spikes)
    for row, train in zip(rows, trains):
        counts = train.sum(axis=1)
        assert row["mean_count"] == pytest.approx(counts.mean())
        assert row["never_fire"] == pytest.approx(np.mean(counts.max(axis=0) == 0))
        assert row["silent_pairs"] == pytest.approx(np.mean(counts == 0))
    assert rows[0]["never_fire"] < 1.0


@pytest.mark.skipif(not _engine_ok(), reason="hm2bp engine not built")
def test_silent_units_finds_the_neurons_at_the_silent_fixed_point() -> None:
    # A silent neuron's gradient factor 1 + 0.5 * sum(W[o]) / vth is 0 when its weights sum
    # to -2 vth; conv filters are summed over all their weights.
    import hm2bp
    from bench.silent_units import fixed_point_share
    net = hm2bp.Network(layers=[20, 4, 3], vth=[1.0, 0.5], seed=1, threads=1)
    w_hidden, w_out = (np.array(w) for w in net.get_weights())
    w_hidden[:] = 0.05
    w_hidden[0] = -2.0 / 20            # sum -2 = -2 vth: factor 0
    w_hidden[1] = -1.95 / 20           # factor 0.025: within the default tolerance 0.1
    w_hidden[2] = -1.0 / 20            # factor 0.5
    w_out[:] = -0.02 / 4               # each output sums -0.02: factor 0.98
    net.set_weights([w_hidden, w_out])
    assert fixed_point_share(net) == {0: 0.5, 1: 0.0}
    assert fixed_point_share(net, tolerance=0.01) == {0: 0.25, 1: 0.0}
    conv = hm2bp.Network(layers=[hm2bp.layers.Conv2d(2, 3, vth=2.0), hm2bp.layers.Dense(2, vth=1.0)],
                         input_shape=(1, 5, 5), seed=1, threads=1)
    w_conv, w_dense = (np.array(w) for w in conv.get_weights())
    w_conv[0] = -4.0 / 9               # filter sum -4 = -2 vth
    w_conv[1] = 0.1
    conv.set_weights([w_conv, w_dense])
    assert fixed_point_share(conv)[0] == 0.5


@pytest.mark.skipif(not _engine_ok(), reason="hm2bp engine not built")
def test_layer_drift_scale_keeps_the_network_and_its_spikes() -> None:
    # --scale K multiplies a layer's weights and vth by K and divides its Adam moments by K and
    # K^2: a power of two changes no spike, its gradients are K times smaller, and Adam's next
    # step is the same in weight units (K times smaller against the weights).
    from bench.layer_drift import scaled
    from hm2bp.config import RunConfig
    from hm2bp.train.build import build_network
    config = RunConfig.from_dict({
        "dataset": "mnist", "input_shape": [1, 28, 28], "T": 40, "threads": 1, "lr": 0.01,
        "lateral_inhibition": 0.0, "reg_lambda": 0.0, "reg_beta": 0.0,
        "layer": [{"type": "conv2d", "channels": 3, "kernel": 3, "vth": 1.0, "init_w": 1.0},
                  {"type": "pool2d", "size": 2, "vth": 0.5}, {"type": "dense", "n": 10, "vth": 2.0}]})
    net = build_network(config, "cpu", None)
    spikes = np.random.default_rng(0).random((4, 40, 784)) < 0.2
    labels = np.array([0, 1, 2, 3])
    net.train_step(spikes, labels, 0.01)
    arrays = {f"net.{k}": np.array(v) for k, v in net.get_state().items()}
    config4, arrays4 = scaled(config, arrays, {0: 4.0})
    assert config4.layer[0]["vth"] == 4.0 and config4.layer[2]["vth"] == 2.0
    assert np.array_equal(arrays4["net.moment2_0"], arrays["net.moment2_0"] / 16)
    net4 = build_network(config4, "cpu", None)
    net4.set_state({k[len("net."):]: v for k, v in arrays4.items()})
    for a, b in zip(net.forward(spikes), net4.forward(spikes)):
        assert np.array_equal(a, b)
    before = [np.array(w) for w in net4.get_weights()]
    net.train_step(spikes, labels, 0.01)
    net4.train_step(spikes, labels, 0.01)
    step = net.get_weights()[0] - arrays["net.weights_0"]
    assert np.abs(step).max() > 0
    np.testing.assert_allclose(net4.get_weights()[0] - before[0], step, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(net4.get_weights()[1], net.get_weights()[1], rtol=1e-5, atol=1e-7)


def test_curves_reads_runs_and_probes_and_draws_them(tmp_path: Path) -> None:
    from bench.curves import main, read_series
    run = tmp_path / "metrics.jsonl"
    run.write_text("".join(json.dumps({"epoch": e, "val_accuracy": 0.5 + 0.1 * e}) + "\n" for e in (1, 2)))
    probes = tmp_path / "probe.jsonl"
    probes.write_text("".join(json.dumps({"probe": name, "metrics": [{"epoch": 1, "val_accuracy": v}]}) + "\n"
                              for name, v in (("a", 0.4), ("b", 0.45))))
    assert read_series(f"run={run}") == ("run", [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.7}])
    assert read_series(f"b={probes}:b") == ("b", [{"epoch": 1, "val_accuracy": 0.45}])
    with pytest.raises(ValueError, match="has no probe 'c'"):
        read_series(f"c={probes}:c")
    with pytest.raises(ValueError, match="LABEL=FILE"):
        read_series(str(run))
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install 'hm2bp[plot]'): the figure is not drawn")
    out = tmp_path / "curves.png"
    assert main([str(out), f"run={run}", f"a={probes}:a"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main([str(tmp_path / "x.png"), f"run={run}", "--metric", "test_accuracy"]) == 2


@needs_data
@pytest.mark.skipif(not _engine_ok(), reason="hm2bp engine not built")
def test_ab_interleaved_times_the_same_work_on_both_sides(tmp_path: Path) -> None:
    """bench.ab --interleave: two live workers answer alternating chunks; a build against itself
    gives positive rates for each path asked for, per round."""
    build = Path(common.import_engine().__file__).resolve().parents[1]
    if not (build / "hm2bp" / "__init__.py").exists():
        pytest.skip("hm2bp is installed editable: bench.ab needs a plain install (pip install --target)")
    out = tmp_path / "ab.json"
    cmd = [sys.executable, "-m", "bench.ab", str(build), str(build), "--interleave", "--net", "fc800", "--batch", "1",
           "--samples", "2", "--rounds", "2", "--pairs", "2", "--chunk-seconds", "0.001", "--paths", "train_step,infer",
           "--threads", "1", "--json", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    if "no (editable) install" in done.stderr or "imports hm2bp from" in done.stderr:
        pytest.skip(f"this Python cannot load a plain build: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    paths = json.loads(out.read_text())["paths"]
    assert set(paths) == {"train_step", "infer"}
    for p in paths.values():
        assert len(p["a_samples_per_s"]) == len(p["b_samples_per_s"]) == 2
        assert min(p["a_samples_per_s"] + p["b_samples_per_s"]) > 0
    bad = subprocess.run(cmd[:-2] + ["--paths", "train"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "the fc800 paths are train_step" in bad.stderr
    unpaired = subprocess.run([a for a in cmd if a != "--interleave"], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
    assert unpaired.returncode == 2 and "--paths needs --interleave" in unpaired.stderr
    trained = subprocess.run(cmd + ["--trained", "3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    too_many = subprocess.run(cmd + ["--trained", "99999"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert too_many.returncode != 0 and "--trained 99999: only 9998 digits after the timed 2" in too_many.stderr


@needs_data
@pytest.mark.skipif(not _engine_ok(), reason="hm2bp engine not built")
def test_workload_trained_starts_from_a_network_in_training() -> None:
    """workload(trained=N): the network is first trained on the N digits after the timed ones,
    and a training path's restart returns there, not to the random initial weights."""
    import hm2bp

    from bench.engine import workload

    w = workload(1, 1, 2, "float32", 40, trained=3)
    digits = common.load_mnist("train")
    net = hm2bp.Network(layers=list(common.LAYERS), vth=list(common.VTH), threads=1, seed=common.SEED)
    for k in range(2, 5):
        net.train_step_images(digits.images[k:k + 1], digits.labels[k:k + 1].astype(np.int64), 1e-3, T=40,
                              seed=common.SEED, sample_index=k)
    w["steps"]["train_step"](0)
    w["restart"]["train_step"]()
    for trained, expected in zip(w["net"].get_weights(), net.get_weights()):
        np.testing.assert_array_equal(trained, expected)
