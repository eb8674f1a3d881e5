"""NIR export and import (hm2bp.nir): exact round trips, clear refusals, and real NIR clients
(snnTorch, Norse) running an exported mnist-mini network on the same test digits."""
from __future__ import annotations

import time

import numpy as np
import pytest

import hm2bp
from hm2bp import data
from hm2bp.model.layers import Conv2d, Dense, Pool2d, Reservoir

nir = pytest.importorskip("nir", reason="the nir package is not installed (pip install 'hm2bp[nir]')")
import hm2bp.nir as hnir  # noqa: E402


def _spikes(seed: int, B: int, T: int, n: int, rate: float = 0.15) -> np.ndarray:
    s = np.random.default_rng(seed).random((B, T, n)) < rate
    s[:, 0] = False  # SPEC 2: no input spike at t = 0
    return s


def _same_network(a: hm2bp.Network, b: hm2bp.Network, spikes: np.ndarray) -> None:
    assert a.layer_specs == b.layer_specs and a.input_shape == b.input_shape
    assert a.description.hyperparameters == b.description.hyperparameters
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb)
    ra, rb = a.infer(spikes), b.infer(spikes)
    assert np.array_equal(ra["counts"], rb["counts"]) and np.array_equal(ra["layer_spikes"], rb["layer_spikes"])


@pytest.mark.parametrize("w0", [1.0, 0.0])
def test_dense_round_trip_through_a_file_is_exact(tmp_path, w0):
    net = hm2bp.Network([30, 20, 6], vth=[2.0, 3.5], tau_m=50.0, tau_s=6.0, t_ref=3, lateral_inhibition=w0,
                        seed=4, dtype="float64")
    hnir.write(tmp_path / "net.nir", net, dt=1e-4)
    back = hnir.read(tmp_path / "net.nir", dtype="float64")
    _same_network(net, back, _spikes(1, 3, 80, 30))


def test_every_hyperparameter_survives_a_round_trip(tmp_path):
    # those NIR has no field for (targets, optimizer, regularization) travel in the metadata
    net = hm2bp.Network([12, 6, 4], vth=[2.0, 3.0], desired=20, undesired=3, margin=2, effect_ratio=False,
                        optimizer="sgd", reg_lambda=0.5, reg_beta=0.01, weight_limit=4.0, momentum=0.8,
                        b1=0.8, b2=0.99, eps=1e-6, t_ref=1, lateral_inhibition=0.5)
    hnir.write(tmp_path / "net.nir", net)
    back = hnir.read(tmp_path / "net.nir")
    assert back.description.hyperparameters == net.description.hyperparameters
    assert hnir.from_nir(hnir.to_nir(net), desired=25).desired == 25  # arguments win


def test_cnn_round_trip_is_exact_and_every_node_has_shapes(tmp_path):
    net = hm2bp.Network(input_shape=(1, 12, 12), layers=[Conv2d(3, 3, vth=2.0, padding=1), Pool2d(2, vth=1.0),
                                                         Conv2d(4, 3, vth=3.0), Pool2d(2, vth=1.5), Dense(5, vth=4.0)],
                        seed=2, init_w=0.8)
    graph = hnir.to_nir(net)
    kinds = [type(graph.nodes[k]).__name__ for k in graph.nodes]
    assert kinds == ["Input", "Conv2d", "CubaLIF", "SumPool2d", "CubaLIF", "Conv2d", "CubaLIF", "SumPool2d",
                     "CubaLIF", "Flatten", "Linear", "NIRGraph", "Output"]
    for name, node in graph.nodes.items():
        assert node.input_type["input"] is not None and node.output_type["output"] is not None, name
    assert list(graph.nodes["layer3_lif"].output_type["output"]) == [4, 2, 2]
    assert graph.nodes["layer0_lif"].metadata["fire_margin"] == 0.0  # convolutions fire at v > vth
    assert graph.nodes["layer1_lif"].metadata["fire_margin"] == 1e-6
    nir.write(tmp_path / "cnn.nir", graph)
    _same_network(net, hnir.from_nir(nir.read(tmp_path / "cnn.nir")), _spikes(2, 2, 60, 144, 0.3))


def test_cubalif_parameters_and_metadata():
    net = hm2bp.Network([8, 5, 3], vth=[2.0, 3.0], t_ref=2)
    graph = hnir.to_nir(net, dt=0.5, metadata={"T": 200})
    lif = graph.nodes["layer0_lif"]
    assert np.all(lif.tau_syn == 4.0) and np.all(lif.tau_mem == 32.0) and np.all(lif.r == 64.0)
    assert np.all(lif.w_in == 1.0) and np.all(lif.v_leak == 0.0) and np.all(lif.v_threshold == 2.0)
    lateral = graph.nodes["layer1_lif"].nodes["lateral"].weight
    assert np.array_equal(lateral, -(1.0 - np.eye(3)))
    meta = graph.metadata
    assert meta["dt"] == 0.5 and meta["t_ref"] == 2 and meta["delay_steps"] == 1 and meta["T"] == 200
    assert meta["fire_margin"] == 1e-6 and "t = 0" in meta["first_step"] and "Poisson" in meta["input_encoding"]


def test_reservoir_exports_its_fixed_weights_as_a_recurrent_subgraph():
    net = hm2bp.Network(input_shape=(6, 1, 1), layers=[Reservoir(8, 5.0, grid=(2, 2, 2), seed=3), Dense(4, 2.0),
                                                       Dense(3, 1.0)], dtype="float64")
    w_in, w_rec = net.reservoir_weights()[0]
    graph = hnir.to_nir(net)
    assert [type(graph.nodes[k]).__name__ for k in graph.nodes] == ["Input", "Linear", "NIRGraph", "Linear",
                                                                     "CubaLIF", "Linear", "NIRGraph", "Output"]
    assert list(graph.nodes) == sorted(graph.nodes)  # the chain order nir.read gives back (issue 26)
    assert np.array_equal(graph.nodes["layer0"].weight, w_in)
    sub = graph.nodes["layer0_lif"]
    assert np.array_equal(sub.nodes["recurrent"].weight, w_rec) and ("recurrent", "lif") in sub.edges
    assert sub.nodes["lif"].metadata["hm2bp_layer"] == "reservoir" and np.all(sub.nodes["lif"].v_threshold == 5.0)
    assert np.array_equal(graph.nodes["layer1"].weight, net.get_weights()[0])
    with pytest.raises(ValueError, match="only the output neurons may have a recurrent connection"):
        hnir.from_nir(graph)


def _graph(**lif_changes) -> object:
    g = hnir.to_nir(hm2bp.Network([8, 5, 3], vth=[2.0, 3.0], lateral_inhibition=0.0))
    for key, value in lif_changes.items():
        setattr(g.nodes["layer0_lif"], key, np.full(5, value))
    return g


@pytest.mark.parametrize("change, message", [
    (dict(r=1.0), "node 'layer0_lif': r = 1, hm2bp's neuron needs 64"),
    (dict(w_in=2.0), "node 'layer0_lif': w_in = 2"),
    (dict(v_leak=0.5), "node 'layer0_lif': v_leak"),
    (dict(tau_syn=9.0), "different tau_syn or tau_mem"),
])
def test_import_names_the_node_that_does_not_fit(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        hnir.from_nir(_graph(**change))


def test_import_refusals():
    g = _graph()
    g.nodes["layer0_lif"].v_threshold = np.arange(5.0)
    with pytest.raises(ValueError, match="node 'layer0_lif': hm2bp needs one v_threshold per layer"):
        hnir.from_nir(g)
    g = _graph()
    g.nodes["layer0"] = nir.Affine(weight=g.nodes["layer0"].weight, bias=np.ones(5))
    with pytest.raises(ValueError, match="node 'layer0': hm2bp neurons have no bias"):
        hnir.from_nir(g)
    g = _graph()
    del g.metadata["dt"]
    with pytest.raises(ValueError, match="pass dt="):
        hnir.from_nir(g)
    g = _graph()
    g.nodes["odd"] = nir.LIF(tau=np.ones(5), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5))
    g.edges = [("layer0", "odd") if e == ("layer0", "layer0_lif") else ("odd", "layer0_lif") if e == ("layer0_lif", "layer1") else e
               for e in g.edges] + [("layer0_lif", "layer1")]
    with pytest.raises(ValueError, match="node 'odd' is a LIF"):
        hnir.from_nir(g)
    with pytest.raises(ValueError, match="Pool2d 2, stride 2.*cuts its last window on the 5x5 map"):
        hnir.to_nir(hm2bp.Network(input_shape=(1, 5, 5), layers=[Pool2d(2, vth=1.0), Dense(3, vth=1.0)]))


def test_import_of_a_foreign_graph_without_hm2bp_metadata():
    """A plain CubaLIF graph (as another tool writes it): no refractory period, dt given."""
    rng = np.random.default_rng(0)
    n = np.array
    nodes = {"in": nir.Input(input_type={"input": n([6])}),
             "fc": nir.Affine(weight=rng.normal(size=(4, 6)), bias=np.zeros(4)),
             "lif": nir.CubaLIF(tau_syn=np.full(4, 2e-3), tau_mem=np.full(4, 1e-2), r=np.full(4, 10.0),
                                v_leak=np.zeros(4), v_threshold=np.full(4, 1.5)),
             "out": nir.Output(output_type={"output": n([4])})}
    net = hnir.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")]), dt=1e-3)
    assert (net.tau_s, net.tau_m, net.t_ref, net.lateral_inhibition, net.vth) == (2.0, 10.0, 0, 0.0, [1.5])


# -- real clients ------------------------------------------------------------------------------

T_CLIENT = 200  # the mnist-mini preset's


def _client_counts(module, spikes: np.ndarray, steps: int) -> np.ndarray:
    """Output spike counts of a NIR-imported torch module (both clients' modules take (x, state)
    per time step and return (spikes, state)) over the first `steps` of the input."""
    import torch

    x = torch.as_tensor(spikes, dtype=torch.float32)
    total, state = 0, None
    with torch.no_grad():
        for t in range(steps):
            y, state = module(x[:, t], state)
            total = total + y
    return total.numpy()


def _unbatched_counts(module, spikes: np.ndarray, shape: tuple[int, ...], steps: int) -> np.ndarray:
    """_client_counts one sample at a time, each step's input shaped `shape` (no batch axis)."""
    import torch

    counts = []
    with torch.no_grad():
        for sample in torch.as_tensor(spikes, dtype=torch.float32):
            total, state = 0, None
            for t in range(steps):
                y, state = module(sample[t].reshape(shape), state)
                total = total + y
            counts.append(total.numpy())
    return np.array(counts)


def _clients(net: hm2bp.Network, path) -> dict:
    """The network exported to a .nir file (steps of 1e-4 s, what snnTorch's importer assumes)
    and read back by each installed client, as a user would."""
    pytest.importorskip("torch", reason="torch is not installed (pip install 'hm2bp[nir,torch]')")
    hnir.write(path, net, dt=1e-4)
    out = {}
    try:
        from snntorch.import_nir import import_from_nir
        out["snntorch"] = import_from_nir(nir.read(path))
    except ImportError:
        pass
    try:
        import norse.torch
        out["norse"] = norse.torch.from_nir(nir.read(path), dt=1e-4)
    except ImportError:
        pass
    if not out:
        pytest.skip("neither snnTorch (pip install snntorch==1.0.0) nor Norse (pip install --no-deps "
                    "norse==1.1.0) is installed")
    return out


def test_node_names_sort_in_the_order_of_the_chain():
    """nir.read returns a file's nodes sorted by name; nirtorch (snnTorch's importer) needs a
    recurrent subgraph after its input in that order."""
    net = hm2bp.Network(input_shape=(1, 12, 12), layers=[Conv2d(2, 3, vth=1.0), Pool2d(2, vth=1.0)]
                        + [Dense(3, vth=1.0)] * 10, seed=0)
    graph = hnir.to_nir(net)
    assert list(graph.nodes) == sorted(graph.nodes)
    assert "layer01_lif_flatten" in graph.nodes and list(graph.nodes)[-2] == "layer11_lif"


@pytest.mark.parametrize("w0", [1.0, 0.0])
def test_clients_reproduce_hm2bp_spike_for_spike_without_refractory_period(tmp_path, w0):
    """Through a .nir file, with and without the output layer's lateral inhibition. With t_ref = 0
    the only remaining difference is the frame: hm2bp delays each layer by one step, so its
    counts over T steps are the clients' over the first T - n_layers steps."""
    net = hm2bp.Network([40, 25, 6], vth=[1.0, 1.5], t_ref=0, lateral_inhibition=w0, init_w=0.6, seed=3,
                        dtype="float64")
    spikes = _spikes(5, 16, 80, 40, 0.2)
    want = net.infer(spikes)["counts"]
    assert want.sum() > 100  # the comparison has spikes to compare
    for name, module in _clients(net, tmp_path / "net.nir").items():
        got = _client_counts(module, spikes, 80 - net.n_layers)
        assert np.array_equal(got, want), name


def test_norse_runs_an_exported_cnn_spike_for_spike_without_refractory_period(tmp_path):
    """snnTorch 1.0 imports no SumPool2d; Norse does. NIR shapes carry no batch axis (Flatten
    flattens everything), so the torch modules run one sample at a time."""
    norse = pytest.importorskip("norse.torch", reason="Norse is not installed (pip install --no-deps norse==1.1.0)")
    net = hm2bp.Network(input_shape=(1, 12, 12), layers=[Conv2d(3, 3, vth=1.0, padding=1), Pool2d(2, vth=0.5),
                                                         Dense(4, vth=1.0)], t_ref=0, init_w=0.8, seed=2,
                        dtype="float64")
    spikes = _spikes(0, 4, 60, 144, 0.3)
    want = net.infer(spikes)["counts"]
    assert want.sum() > 50
    hnir.write(tmp_path / "cnn.nir", net, dt=1e-4)
    module = norse.from_nir(nir.read(tmp_path / "cnn.nir"), dt=1e-4)
    assert np.array_equal(_unbatched_counts(module, spikes, (1, 12, 12), 60 - net.n_layers), want)


def test_exported_mnist_mini_network_in_snntorch_and_norse(capsys, tmp_path):
    """Trains the mnist-mini preset's network (784-400-10, T = 200) for one epoch of the 6000
    bundled digits, exports it and runs the same 1000 test digits in hm2bp and in each client."""
    train, test = data.load("mnist-mini", "train"), data.load("mnist-mini", "test")
    net = hm2bp.Network([784, 400, 10], vth=[20.0, 8.0], reg_beta=0.04, seed=0)
    idx = np.random.default_rng(0).permutation(len(train))
    t0 = time.perf_counter()
    for start in range(0, len(idx), 8):
        b = idx[start:start + 8]
        net.train_step_images(train.images[b], train.labels[b], 0.005, T=T_CLIENT, seed=1, sample_index=b)
    images, labels = test.images, test.labels
    spikes = hm2bp.encode_poisson(images, T_CLIENT, seed=7, sample_index=0)
    accuracy = {"hm2bp": float(np.mean(net.infer(spikes)["predictions"] == labels))}
    for name, module in _clients(net, tmp_path / "net.nir").items():
        counts = _client_counts(module, spikes, T_CLIENT)
        accuracy[name] = float(np.mean(counts.argmax(axis=1) == labels))
    with capsys.disabled():
        print(f"\nNIR export, mnist-mini 784-400-10 T={T_CLIENT}, {len(labels)} test digits: "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items())
              + f" ({time.perf_counter() - t0:.0f} s)")
    assert accuracy["hm2bp"] > 0.85
    for name, value in accuracy.items():  # no refractory period there: more spikes, a few flips
        assert value > accuracy["hm2bp"] - 0.1, name


def test_hm2bp_export_writes_the_run_network(tmp_path, capsys):
    from hm2bp import cli
    from hm2bp.train import build, checkpoint

    run, toml = tmp_path / "run", tmp_path / "tiny.toml"
    toml.write_text('preset = "mnist-mini"\n[network]\nlayers = [784, 30, 10]\nT = 60\nvth = [5.0, 3.0]\n'
                    'desired = 10\nundesired = 2\nmargin = 2\n[training]\nepochs = 1\nbatch_size = 4\n'
                    'seed = 7\nbackend = "cpu"\n[data]\ntrain_size = 100\ntest_size = 50\n')
    assert cli.train_main(["--config", str(toml), "--out", str(run), "--quiet"]) == 0
    assert cli.export_main([str(run), "--nir", str(tmp_path / "run.nir"), "--dt", "1e-4"]) == 0
    assert "wrote" in capsys.readouterr().out
    graph = nir.read(str(tmp_path / "run.nir"))
    assert graph.metadata["T"] == 60 and graph.metadata["dt"] == 1e-4
    config, _, arrays = checkpoint.load_checkpoint(run)
    net = build.build_network(config, "cpu", None)
    checkpoint.restore_network(net, arrays)
    _same_network(net, hnir.from_nir(graph, dtype=config.dtype), _spikes(3, 2, 60, 784, 0.05))
    assert cli.export_main([str(tmp_path / "missing"), "--nir", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hm2bp-export: error: no checkpoint at") and "\n" not in err


@pytest.mark.parametrize("dt", [1.0, 1e-4, 1e-3, 0.37])
def test_time_constants_survive_any_step(dt):
    net = hm2bp.Network([8, 5, 3], vth=[2.0, 3.0], tau_m=63.123456789123, tau_s=7.3)
    back = hnir.from_nir(hnir.to_nir(net, dt=dt))
    assert (back.tau_m, back.tau_s) == (net.tau_m, net.tau_s)
