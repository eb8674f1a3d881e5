"""What a new user trips on first: a mistyped preset or key gets a suggestion, --resume with
fewer epochs than the run has done is refused with what to do instead, a trained run loads as a
Network (hm2bp.load)."""

import numpy as np
import pytest

import hm2bp
from hm2bp.train import build, checkpoint, runstate
from hm2bp import config as hconfig
from hm2bp.cli import train_main
from hm2bp.config import ConfigError, build_config
from hm2bp.config.doc import to_toml
from hm2bp.layers import from_dict

TINY = dict(layers=[784, 30, 10], T=60, vth=[5.0, 3.0], desired=10, undesired=2, margin=2, epochs=2,
            batch_size=4, lr=0.005, seed=7, backend="cpu", train_size=200, test_size=100)


def test_a_mistyped_preset_gets_the_closest_name(capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--preset", "mnist-fc80"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown preset 'mnist-fc80' (did you mean 'mnist-fc800'?)" in err and "Traceback" not in err


def test_mistyped_config_keys_get_the_closest_name(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('preset = "mnist-mini"\n[training]\nepoch = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key \[training\] 'epoch' \(did you mean 'epochs'\?\)"):
        build_config(None, str(path))
    path.write_text('preset = "mnist-fc8000"\n')
    with pytest.raises(ConfigError, match=r"did you mean 'mnist-fc800'\?"):
        build_config(None, str(path))
    with pytest.raises(ValueError, match=r"unknown key 'chanels' for conv2d \(did you mean 'channels'\?\)"):
        from_dict({"type": "conv2d", "chanels": 4, "kernel": 3, "vth": 1.0}, "layer[0]")
    path.write_text("xyz = 1\n")  # nothing close: no suggestion
    with pytest.raises(ConfigError) as info:
        build_config(None, str(path))
    assert "did you mean" not in str(info.value)


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(hconfig.preset("mnist-mini", **TINY)))
    run = tmp_path / "run"
    assert train_main(["--config", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert train_main(["--resume", str(run), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{run} has already completed 2 epochs, more than --epochs 1" in err
    assert "--epochs N with N > 2" in err and f"hm2bp-eval {run}" in err


# -- a trained run as a Python object -------------------------------------------------------------

CNN_LAYERS = [{"type": "conv2d", "channels": 3, "kernel": 5, "vth": 5.0}, {"type": "pool2d", "size": 4, "vth": 2.0},
              {"type": "dense", "n": 10, "vth": 5.0}]


def _nmnist_folder(root) -> None:
    """A tiny N-MNIST tree (Train/ and Test/, 2 recordings per class) of random events."""
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for label in range(10):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for k in range(2):
                x, y, p = rng.integers(0, 34, 300), rng.integers(0, 34, 300), rng.integers(0, 2, 300)
                ts = np.sort(rng.integers(0, 100_000, 300))
                (folder / f"{k:05d}.bin").write_bytes(b"".join(
                    bytes([a, b, (c << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF]) for a, b, c, t in
                    zip(x.tolist(), y.tolist(), p.tolist(), ts.tolist())))


@pytest.mark.parametrize("kind", ["fc", "cnn", "nmnist"])
def test_load_a_run_as_a_network(tmp_path, kind, capsys):
    values = {**TINY, "epochs": 1}
    if kind == "cnn":
        values.update(layers=None, vth=None, input_shape=[1, 28, 28], layer=CNN_LAYERS)
        values = {k: v for k, v in values.items() if v is not None}
    if kind == "nmnist":
        _nmnist_folder(tmp_path / "nmnist")
        values.update(dataset="nmnist", data_dir=str(tmp_path / "nmnist"), layers=[2312, 30, 10], train_size=None,
                      test_size=None)
        values = {k: v for k, v in values.items() if v is not None}
    preset = "nmnist-fc800" if kind == "nmnist" else "mnist-mini"
    config = tmp_path / "run.toml"
    config.write_text(to_toml(hconfig.preset(preset, **values)))
    run = tmp_path / "run"
    assert train_main(["--config", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()

    net = hm2bp.load(run)
    stored = checkpoint.load_checkpoint(run)
    assert net.config == stored[0] and net.config.dataset == ("nmnist" if kind == "nmnist" else "mnist-mini")
    for k, w in enumerate(net.get_weights()):
        assert np.array_equal(w, stored[2][f"net.weights_{k}"])
    # ready for forward and evaluation: the test split through the run's own encoding
    test = build.load_split(net.config, "test", net.config.test_size)
    spikes = test.batch_spikes(np.arange(4), T=net.config.T) if kind == "nmnist" else \
        hm2bp.encode_poisson(test.images[:4], net.config.T, seed=0, sample_index=0)
    assert net.infer(spikes)["counts"].shape == (4, 10)
    text = repr(net)
    assert text.startswith("Network(input_shape=") and ("Conv2d(" if kind == "cnn" else "Dense(") in text

    # save / load round-trips exactly: description, state, the run's config, the results
    saved = tmp_path / "net.npz"
    net.save(saved)
    again = hm2bp.load(saved)
    assert again.config == net.config and again.description == net.description and again.dtype == net.dtype
    _assert_same_state(again, net)
    assert np.array_equal(again.infer(spikes)["counts"], net.infer(spikes)["counts"])
    plain = hm2bp.Network.load(saved, backend="cpu", threads=1)
    assert plain.config is None and repr(plain) == repr(net).replace(f"threads={net.threads}", "threads=1")


def _assert_same_state(a, b) -> None:
    sa, sb = a.get_state(), b.get_state()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_saved_network_trains_on_exactly_as_the_original(tmp_path, dtype):
    """The optimizer state travels too: a step after load equals the step without it."""
    rng = np.random.default_rng(3)
    layers = [hm2bp.layers.Reservoir(18, vth=5.0, grid=(3, 3, 2), seed=2), hm2bp.layers.Dense(12, vth=4.0),
              hm2bp.layers.Dense(4, vth=3.0)]
    net = hm2bp.Network(layers, input_shape=(6, 1, 1), dtype=dtype, seed=5, desired=8, undesired=1, margin=1,
                        reg_lambda=0.0)
    spikes = rng.random((3, 40, 6)) < 0.3
    labels = np.array([0, 1, 3])
    net.train_step(spikes, labels, lr=0.01)
    net.save(tmp_path / "net.npz")
    loaded = hm2bp.Network.load(tmp_path / "net.npz")
    assert loaded.config is None and loaded.description == net.description
    _assert_same_state(loaded, net)
    for n in (net, loaded):
        n.train_step(spikes, labels, lr=0.01)
    _assert_same_state(loaded, net)


def test_a_bad_network_file_is_refused_in_one_line(tmp_path):
    from hm2bp.model.network_file import NetworkFileError
    with pytest.raises(NetworkFileError, match="no saved network at .*missing.npz"):
        hm2bp.Network.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(NetworkFileError, match=r"bad.npz: damaged or not an hm2bp network file"):
        hm2bp.Network.load(bad)
    run = tmp_path / "run"
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(hconfig.preset("mnist-mini", **{**TINY, "epochs": 1})))
    assert train_main(["--config", str(config), "--out", str(run), "--quiet"]) == 0
    with pytest.raises(NetworkFileError, match=r"a training run's checkpoint: load it with hm2bp.load"):
        hm2bp.Network.load(run / "checkpoint.npz")
    net = hm2bp.load(run)
    state = net.get_state()
    state["weights_0"] = state["weights_0"][:, :5]  # a file whose state does not fit its layers
    from hm2bp.model import state_file
    from hm2bp.model.network_file import FORMAT
    meta = {"format": FORMAT, "version": 1, "config": None, "network": {
        "input_shape": [784, 1, 1], "layers": [{"type": "dense", "n": 30, "vth": 5.0}, {"type": "dense", "n": 10, "vth": 3.0}],
        "init_w": 1.0, "seed": 0, "dtype": "float32", "hyperparameters": {}}}
    state_file.write(tmp_path / "odd.npz", state, meta, what="network file")
    with pytest.raises(NetworkFileError, match=r"odd.npz: .*weights_0"):
        hm2bp.load(tmp_path / "odd.npz")


def test_a_damaged_run_is_refused_in_one_line(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(runstate.CheckpointError, match="checkpoint.npz"):
        hm2bp.load(tmp_path)


# -- other frameworks' layouts --------------------------------------------------------------------

def test_time_first_spikes_give_the_same_results():
    rng = np.random.default_rng(0)
    spikes = rng.random((3, 60, 20)) < 0.2  # (B, T, n_in)
    spikes[:, 0] = False
    labels = np.array([0, 2, 1])
    a, b = (hm2bp.Network([20, 12, 3], vth=[1.0, 1.5], desired=10, seed=1) for _ in range(2))
    tf = np.swapaxes(spikes, 0, 1)  # (T, B, n_in), as snnTorch, SpikingJelly and Norse hold them
    assert np.array_equal(a.infer(tf, time_first=True)["counts"], a.infer(spikes)["counts"])
    for x, y in zip(a.forward(tf, time_first=True), a.forward(spikes), strict=True):
        assert x.shape[:2] == (60, 3) and np.array_equal(x, np.swapaxes(y, 0, 1))
    a.train_step(spikes, labels, lr=0.01)
    b.train_step(tf, labels, lr=0.01, time_first=True)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb)
    with pytest.raises(ValueError, match=r"\(T, B, n_in\) with time_first=True"):
        a.infer(tf[0], time_first=True)


@pytest.mark.parametrize("sensor", [(34, 34, 2), (5, 3, 2)])
def test_tonic_frames_flatten_in_hm2bps_event_order(sensor):
    """tonic's ToFrame gives (T, p, y, x); hm2bp's events land at (p * width + x) * height + y,
    the order bin_events (and so hm2bp's own N-MNIST data) uses."""
    width, height, polarities = sensor
    rng = np.random.default_rng(1)
    frames = (rng.random((6, polarities, height, width)) < 0.1).astype(np.int16) * 2  # counts, tonic's dtype
    spikes = hm2bp.data.from_frames(frames)
    assert spikes.shape == (1, 6, polarities * width * height) and spikes.dtype == bool
    t, p, y, x = np.nonzero(frames)
    events = np.zeros(len(t), dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t * hm2bp.data.NMNIST_STEP_US
    codes = hm2bp.data.bin_events(events, sensor, recipe="raw", T=7)  # step ceil(t / 600 us) + 1: frame + 1
    want = np.zeros((7, polarities * width * height), bool)
    want.reshape(-1)[codes] = True
    assert np.array_equal(spikes[0], want[1:]) and spikes.sum() == len(t)
    assert np.array_equal(hm2bp.data.from_frames(frames[None])[0], spikes[0])  # a batch (B, T, p, y, x)


def test_plot_titles_name_the_network_a_run_trained():
    from hm2bp.cli.plot import _network_name

    cnn = hconfig.preset("mnist-cnn")
    net = build.build_network(cnn, "cpu", None)
    assert _network_name(cnn, net) == "mnist-cnn 28x28-15C5-P2-40C5-P2-300-10"
    custom = cnn.replace(dataset="mnist-mini", layer=[{"type": "conv2d", "channels": 8, "kernel": 5, "vth": 5.0},
                                                      {"type": "dense", "n": 10, "vth": 10.0}])
    assert _network_name(custom, build.build_network(custom, "cpu", None)) == "28x28-8C5-10, from preset mnist-cnn"
