"""Trainer: engine calls, schedule, boosting, metrics, checkpoints, resume and Ctrl-C."""

import json
import os
import signal
import time

import numpy as np
import pytest
from hm2bp import data, reference
from hm2bp.train import schedule
from hm2bp.config import ConfigError, preset
from hm2bp.train.checkpoint import load_checkpoint
from hm2bp.train.runstate import CheckpointError
from hm2bp.train.schedule import boost_weights, learning_rate
from hm2bp.train.sources import EncodedImageSource, EventSource, ImageSource, LearningStep, make_source
from hm2bp.train.trainer import Trainer

METRIC_KEYS = {"epoch", "train_loss", "train_accuracy", "test_accuracy", "best_test_accuracy",
               "seconds", "samples_per_s", "engine_seconds", "firing_rate", "lr"}

# Tiny real network on the bundled digits (SPEC spike rules, small sizes).
TINY = {"layers": [784, 30, 10], "T": 60, "vth": [5.0, 3.0], "desired": 10, "undesired": 2,
        "margin": 2, "train_size": 200, "test_size": 100, "batch_size": 4, "lr": 0.005, "seed": 7,
        "backend": "cpu"}


class FakeNet:
    """Records the trainer's engine calls. Training predicts the label for even sample
    indices and label+1 otherwise, so boosting has something to do."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.w = np.zeros((kwargs["layers"][1], kwargs["layers"][0]))
        self.step = np.array(0)

    def _out(self, predictions, B):
        return {"loss": 2.0, "predictions": predictions,
                "counts": np.zeros((B, 10), np.int64), "layer_spikes": np.array([3 * B, B])}

    def train_step_images(self, images, labels, lr, *, T, seed, sample_index, epoch=0,
                          sample_weights=None):
        weights = None if sample_weights is None else np.array(sample_weights)
        self.calls.append({"kind": "train", "idx": np.array(sample_index), "lr": lr, "T": T,
                           "seed": seed, "epoch": epoch, "weights": weights, "B": len(images)})
        self.w = self.w + lr
        self.step = self.step + 1
        wrong = np.asarray(sample_index) % 2 == 1
        return self._out(np.where(wrong, (labels + 1) % 10, labels), len(labels))

    def infer_images(self, images, *, T, seed, sample_index, epoch=0):
        self.calls.append({"kind": "infer", "idx": np.array(sample_index), "T": T, "seed": seed,
                           "epoch": epoch})
        return self._out(np.asarray(sample_index) % 10, len(images))

    def get_state(self):
        return {"weights_0": self.w.copy(), "step": self.step.copy()}

    def set_state(self, state):
        self.w, self.step = np.array(state["weights_0"]), np.array(state["step"])


def fake_trainer(out_dir=None, **overrides):
    cfg = preset("mnist-mini", **{"train_size": 50, "test_size": 20, "batch_size": 7,
                                  "epochs": 3, "seed": 5, "layers": [784, 8, 10], **overrides})
    return Trainer(cfg, out_dir, network_factory=FakeNet)


def test_learning_rate_schedule():
    assert [learning_rate(0.001, e) for e in (0, 1, 4)] == [0.001, 0.001, 0.0005]


def test_boost_weights_matches_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    predictions = np.where(rng.random(500) < 0.3, rng.integers(0, 10, 500), labels)
    weights = rng.uniform(0.5, 2.0, 500)
    ours = boost_weights(weights, labels, predictions)
    np.testing.assert_allclose(ours, schedule.boost_weights(weights, labels, predictions),
                               rtol=1e-13)
    assert np.all(ours[labels == predictions] == weights[labels == predictions])


def test_engine_calls_follow_the_spec():
    tr = fake_trainer()
    tr.fit()
    calls = tr.net.calls
    for e in range(3):
        train = [c for c in calls if c["kind"] == "train"][e * 8:(e + 1) * 8]
        order = np.concatenate([c["idx"] for c in train])
        np.testing.assert_array_equal(order, np.random.default_rng([5, e]).permutation(50))
        assert [c["B"] for c in train] == [7] * 7 + [1]
        assert {c["lr"] for c in train} == {tr.config.lr / np.sqrt(max(e, 1))}
        assert {(c["seed"], c["epoch"], c["T"]) for c in train} == {(5, 0, tr.config.T)}
    infer = [c for c in calls if c["kind"] == "infer"]
    assert {(c["seed"], c["epoch"]) for c in infer} == {(6, 0)}  # test set: seed + 1
    np.testing.assert_array_equal(np.concatenate([c["idx"] for c in infer[:1]]), np.arange(20))


def test_boosting_weights_are_kept_and_passed():
    tr = fake_trainer(epochs=2)
    tr.fit()
    train = [c for c in tr.net.calls if c["kind"] == "train"]
    first = np.concatenate([c["weights"] for c in train[:8]])
    assert np.all(first == 1.0)
    labels = tr.train_set.labels
    predictions = np.where(np.arange(50) % 2 == 1, (labels + 1) % 10, labels)
    after_one = boost_weights(np.ones(50), labels, predictions)
    for c in train[8:]:
        np.testing.assert_array_equal(c["weights"], after_one[c["idx"]])
    assert np.all(after_one[1::2] > 1.0) and np.all(after_one[::2] == 1.0)
    np.testing.assert_array_equal(tr.sample_weights,
                                  boost_weights(after_one, labels, predictions))


def test_no_boosting_and_reencode():
    tr = fake_trainer(epochs=2, boosting=False, reencode=True)
    tr.fit()
    train = [c for c in tr.net.calls if c["kind"] == "train"]
    assert all(c["weights"] is None for c in train)
    assert [c["epoch"] for c in train] == [0] * 8 + [1] * 8


def test_metrics_jsonl(tmp_path):
    tr = fake_trainer(tmp_path)
    result = tr.fit()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    best = 0.0
    for m in lines:
        assert METRIC_KEYS <= set(m)
        assert 0 <= m["train_accuracy"] <= 1 and 0 <= m["test_accuracy"] <= 1
        best = max(best, m["test_accuracy"])
        assert m["best_test_accuracy"] == best
        assert m["train_accuracy"] == 0.5 and m["train_loss"] == 2.0
        assert m["engine_seconds"] <= m["train_seconds"] <= m["seconds"]
        assert len(m["firing_rate"]) == 2
    assert result.final_test_accuracy == lines[-1]["test_accuracy"]
    assert result.best_test_accuracy == best and result.epochs_completed == 3


def test_trainer_overhead_is_small():
    tr = fake_trainer(train_size=2000, batch_size=1, epochs=1)
    m = tr.fit().history[0]
    per_batch = (m["train_seconds"] - m["engine_seconds"]) / 2000
    assert per_batch < 2e-4, f"trainer overhead {per_batch * 1e6:.0f} us per batch"


class FakeEvents:
    name, n_inputs, n_classes, is_images = "nmnist", 2312, 10, False

    def __init__(self, n):
        self.labels = np.arange(n) % 10

    def __len__(self):
        return len(self.labels)

    def batch_spikes(self, indices, T):
        out = np.zeros((len(indices), T, 2312), bool)
        out[np.arange(len(indices)), 1, indices] = True
        return out


def test_layer_mismatch_with_given_dataset():
    ds = data.load("mnist-mini", "test").subset(np.arange(10))
    with pytest.raises(ConfigError, match="layers"):
        Trainer(preset("mnist-mini", layers=[784, 8, 10]), train_set=FakeEvents(10),
                test_set=ds, network_factory=FakeNet)


def test_event_source_feeds_train_step():
    seen = []

    class Net:
        def train_step(self, spikes, labels, lr, sample_weights=None):
            seen.append((spikes.shape, spikes[:, 1].nonzero()[1].tolist(), labels.tolist()))
            return {"loss": 1.0, "predictions": labels, "layer_spikes": np.zeros(2, np.int64)}

        def infer(self, spikes):
            return {"predictions": np.zeros(len(spikes), np.int64),
                    "layer_spikes": np.zeros(2, np.int64)}

    ds, net = FakeEvents(6), Net()
    src = make_source(ds, net, T=5, seed=0)
    assert isinstance(src, EventSource)
    src.train(LearningStep(net, 0.1), np.array([4, 2]), 0, None)
    assert seen == [((2, 5, 2312), [4, 2], [4, 2])]
    assert src.infer(net, np.arange(3))["predictions"].shape == (3,)


def test_encoded_source_equals_image_fast_path():
    ds = data.load("mnist-mini", "train").subset(np.arange(4))
    kwargs = preset("mnist-mini", **TINY).network_kwargs()
    a, b = reference.Network(**kwargs), reference.Network(**kwargs)
    fast = make_source(ds, a, T=60, seed=9)
    slow = make_source(ds, b, T=60, seed=9, encode=reference.encode_poisson)
    assert type(fast) is ImageSource and type(slow) is EncodedImageSource
    idx = np.array([3, 0, 2])
    out_a = fast.train(LearningStep(a, 0.01), idx, 0, np.ones(3))
    out_b = slow.train(LearningStep(b, 0.01), idx, 0, np.ones(3))
    np.testing.assert_array_equal(out_a["counts"], out_b["counts"])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ---------------------------------------------------------------------------------------------
# Checkpoints and resume on real networks (engine and NumPy reference).

ENGINES = {"engine": None, "reference": reference.Network}


def same_state(a, b):
    sa, sb = a.get_state(), b.get_state()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.fixture(scope="module", params=sorted(ENGINES))
def straight(request, tmp_path_factory):
    """An uninterrupted 2-epoch run."""
    out = tmp_path_factory.mktemp(f"straight-{request.param}")
    tr = Trainer(preset("mnist-mini", epochs=2, **TINY), out,
                 network_factory=ENGINES[request.param])
    tr.fit()
    return request.param, tr


def without_timing(history):
    drop = {"seconds", "train_seconds", "engine_seconds", "eval_seconds", "samples_per_s"}
    return [{k: v for k, v in m.items() if k not in drop} for m in history]


def test_resume_gives_identical_weights(straight, tmp_path):
    engine, full = straight
    factory = ENGINES[engine]
    first = Trainer(preset("mnist-mini", epochs=1, **TINY), tmp_path, network_factory=factory)
    first.fit()
    resumed = Trainer.resume(tmp_path, epochs=2, network_factory=factory)
    assert resumed.epoch == 1 and resumed.config.epochs == 2
    result = resumed.fit()
    same_state(resumed.net, full.net)
    np.testing.assert_array_equal(resumed.sample_weights, full.sample_weights)
    assert without_timing(result.history) == without_timing(full.history)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_ctrl_c_saves_last_completed_epoch(straight, tmp_path):
    engine, full = straight
    factory = ENGINES[engine]

    def interrupt(epoch, done, total):
        if epoch == 1 and done >= total // 2:
            raise KeyboardInterrupt

    tr = Trainer(preset("mnist-mini", epochs=2, **TINY), tmp_path, network_factory=factory,
                 on_batch=interrupt)
    result = tr.fit()
    assert result.interrupted and result.epochs_completed == 1
    _, meta, arrays = load_checkpoint(tmp_path)
    assert meta["epoch"] == 1 and int(arrays["epoch"]) == 1
    assert meta["test_accuracy"] == full.history[0]["test_accuracy"]
    resumed = Trainer.resume(tmp_path, network_factory=factory)
    resumed.fit()
    same_state(resumed.net, full.net)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_resumes_exactly(tmp_path, sig):
    """SIGTERM / SIGHUP mid-epoch: the last completed epoch is saved and the resumed run
    ends bit-identical to the uninterrupted one."""
    full = Trainer(preset("mnist-mini", epochs=2, **TINY))
    full.fit()

    def terminate(epoch, done, total):
        if epoch == 1 and done >= total // 2:
            os.kill(os.getpid(), sig)

    tr = Trainer(preset("mnist-mini", epochs=2, **TINY), tmp_path, on_batch=terminate)
    result = tr.fit()
    assert result.interrupted and result.signal == sig and result.epochs_completed == 1
    resumed = Trainer.resume(tmp_path)
    resumed.fit()
    same_state(resumed.net, full.net)
    np.testing.assert_array_equal(resumed.sample_weights, full.sample_weights)


def test_ctrl_c_in_first_epoch_keeps_initial_state(tmp_path):
    def interrupt(epoch, done, total):
        raise KeyboardInterrupt

    tr = fake_trainer(tmp_path)
    tr.on_batch = interrupt
    result = tr.fit()
    assert result.interrupted and result.epochs_completed == 0
    _, meta, arrays = load_checkpoint(tmp_path)
    assert meta["epoch"] == 0 and np.all(arrays["net.weights_0"] == 0)
    assert np.all(arrays["sample_weights"] == 1.0)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_checkpoint_files(tmp_path):
    fake_trainer(tmp_path, epochs=1).fit()
    # no temporaries, and the .lock deleted at the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "checkpoint.npz", "metrics.csv",
                                                          "metrics.jsonl"]
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as f:
        assert {"net.weights_0", "net.step", "sample_weights", "epoch", "__meta__"} <= set(f.files)
        meta = json.loads(f["__meta__"].tobytes())
    assert meta["epoch"] == 1 and meta["version"] == 2 and meta["config"]["seed"] == 5
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing-here")


def test_resume_checks_data_and_trims_metrics(tmp_path):
    fake_trainer(tmp_path, epochs=1).fit()
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # an epoch that never got checkpointed
        fh.write(json.dumps({"epoch": 2}) + "\n")
    with Trainer.resume(tmp_path, network_factory=FakeNet) as tr:
        assert [m["epoch"] for m in tr.history] == [1]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    small = data.load("mnist-mini", "train").subset(np.arange(10))
    with pytest.raises(CheckpointError, match="50 train"):
        Trainer.resume(tmp_path, network_factory=FakeNet, train_set=small)


# ---------------------------------------------------------------------------------------------


def test_short_real_training_run():
    """The engine learns: one epoch on 1000 bundled digits with a small net."""
    cfg = preset("mnist-mini", **{**TINY, "train_size": 1000, "test_size": 500, "epochs": 1,
                                  "lr": 0.01, "layers": [784, 100, 10]})
    t0 = time.perf_counter()
    result = Trainer(cfg).fit()
    assert result.final_test_accuracy >= 0.70, result.history
    assert time.perf_counter() - t0 < 60
