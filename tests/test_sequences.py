"""Network.train_steps_images (several consecutive batches in one engine call) against the same
batches trained one call each, bit for bit: weights, both Adam moments, the step counter, losses,
predictions, counts and spike counts; and the trainer's use of it against its per-batch path."""
import numpy as np
import pytest

import hm2bp
from hm2bp.data import augment as aug
from hm2bp.data.datasets import ImageDataset
from hm2bp.layers import Conv2d, Dense, Pool2d

T, SEED, LR = 40, 3, 0.01
TIMING = ("seconds", "train_seconds", "engine_seconds", "eval_seconds", "samples_per_s")


def make_net(kind: str, dtype: str, threads: int) -> hm2bp.Network:
    """Small nets whose hidden dense layer has >= 64 units: the CPU engine splits its step's rows
    among the threads (the column-sum turns), as in mnist-fc800 and mnist-cnn."""
    if kind == "fc":
        return hm2bp.Network(layers=[64, 80, 5], vth=[3.0, 3.0], dtype=dtype, threads=threads, seed=1)
    return hm2bp.Network(input_shape=(1, 12, 12), layers=[Conv2d(3, 3, vth=2.0), Pool2d(2, vth=1.0),
                                                          Dense(64, vth=2.0), Dense(5, vth=3.0)],
                         dtype=dtype, threads=threads, seed=1)


def per_batch(net, images, labels, idx, weights, batch_size, epoch, config):
    """What the sequence call must equal: one train_step_images (or, augmented, train_step on
    encode_rates(augment(...))) per batch."""
    results = []
    for s in range(0, len(images), batch_size):
        part = slice(s, s + batch_size)
        w = None if weights is None else weights[part]
        if config is None:
            results.append(net.train_step_images(images[part], labels[part], LR, T=T, seed=SEED,
                                                 sample_index=idx[part], epoch=epoch, sample_weights=w))
        else:
            rates = aug.augment(images[part], SEED, epoch, idx[part], config)
            spikes = aug.encode_rates(rates, T, SEED, idx[part], epoch)
            results.append(net.train_step(spikes, labels[part], LR, sample_weights=w))
    return results


@pytest.mark.parametrize("kind", ["fc", "cnn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_sequence_trains_as_its_batches_one_call_each(kind, dtype, threads):
    rng = np.random.default_rng([threads, len(kind), len(dtype)])
    n_in = 64 if kind == "fc" else 144
    for batch_size in (1, 2, 3):
        for weighted in (False, True):
            for epoch in (0, 2):  # re-encoded epochs key the spikes (and maps) by epoch
                n = 7
                images = rng.integers(0, 256, (n, n_in), dtype=np.uint8)
                labels = rng.integers(0, 5, n)
                idx = rng.permutation(100)[:n]
                weights = rng.uniform(0.5, 2.0, n) if weighted else None
                config = None if kind == "fc" else aug.AugmentConfig(mode="sample" if batch_size == 2 else "epoch")
                a, b = make_net(kind, dtype, threads), make_net(kind, dtype, threads)
                ref = per_batch(a, images, labels, idx, weights, batch_size, epoch, config)
                out = b.train_steps_images(images, labels, LR, batch_size=batch_size, T=T, seed=SEED,
                                           sample_index=idx, epoch=epoch, sample_weights=weights, augment=config)
                assert out["loss"].tolist() == [r["loss"] for r in ref]
                assert np.array_equal(out["predictions"], np.concatenate([r["predictions"] for r in ref]))
                assert np.array_equal(out["counts"], np.concatenate([r["counts"] for r in ref]))
                assert np.array_equal(out["layer_spikes"], np.stack([r["layer_spikes"] for r in ref]))
                assert out["layer_spikes"].sum(axis=0).min() > 0  # every layer fired: the comparison means something
                state_a, state_b = a.get_state(), b.get_state()
                assert state_a.keys() == state_b.keys()
                for key in state_a:
                    assert np.array_equal(state_a[key], state_b[key]), key


def test_a_sequence_stops_at_the_step_that_diverges():
    net = make_net("fc", "float32", 1)
    images = np.full((6, 64), 255, dtype=np.uint8)
    with pytest.raises(FloatingPointError, match="not finite"):
        net.train_steps_images(images, np.zeros(6, dtype=np.int64), 1e30, batch_size=1, T=T, seed=SEED,
                               sample_index=0)


def test_a_sequence_checks_its_arguments():
    net = make_net("fc", "float64", 1)
    images = np.zeros((4, 64), dtype=np.uint8)
    with pytest.raises(ValueError, match="labels must be 4"):
        net.train_steps_images(images, np.zeros(3, dtype=np.int64), LR, batch_size=2, T=T, seed=0, sample_index=0)
    with pytest.raises(ValueError, match="batch_size"):
        net.train_steps_images(images, np.zeros(4, dtype=np.int64), LR, batch_size=0, T=T, seed=0, sample_index=0)
    with pytest.raises(ValueError, match="square"):
        hm2bp.Network(layers=[60, 5], vth=[3.0]).train_steps_images(
            np.zeros((2, 60), dtype=np.uint8), np.zeros(2, dtype=np.int64), LR, batch_size=1, T=T, seed=0,
            sample_index=0, augment=aug.AugmentConfig())


def digits(n: int, seed: int, split: str) -> ImageDataset:
    """Random 28 x 28 images with a class-dependent bright square (no data files needed)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28))
    for k, label in enumerate(labels):
        images[k, 2 + 2 * label:8 + 2 * label, 6:20] = 250
    return ImageDataset("digits", split, images.reshape(n, -1).astype(np.uint8), labels.astype(np.int64),
                        (28, 28), 10)


@pytest.mark.parametrize("case", ["fc-b1-boost", "fc-b3-reencode", "cnn-augmented-b1", "cnn-augmented-b2"])
def test_the_trainer_trains_sequences_as_its_per_batch_path(tmp_path, case):
    from hm2bp.config import preset
    from hm2bp.train.trainer import Trainer

    kw = dict(T=60, desired=10, undesired=2, margin=2, epochs=2, lr=0.005, seed=5, backend="cpu", threads=2,
              batch_size=int(case[-1]) if case[-1].isdigit() else int(case.split("-b")[1][0]))
    if case.startswith("fc"):
        kw.update(layers=[784, 30, 10], vth=[5.0, 3.0], boosting="boost" in case, reencode="reencode" in case)
    else:
        kw.update(input_shape=[1, 28, 28], reg_lambda=0.0, reg_beta=0.0, lr_rule="sqrt_plus1", order="authors",
                  layer=[{"type": "conv2d", "channels": 4, "kernel": 5, "vth": 3.0, "init_w": 0.5},
                         {"type": "pool2d", "size": 4, "vth": 1.0}, {"type": "dense", "n": 10, "vth": 5.0}],
                  augment_distortion=3.4, augment_scale=12.0, augment_rotation=12.0)
    runs = []
    for sequences in (False, True):
        tr = Trainer(preset("mnist-mini", **kw), tmp_path / str(sequences), train_set=digits(30, 1, "train"),
                     test_set=digits(12, 2, "test"))
        assert tr.train_source.sequences
        tr.train_source.sequences = sequences
        result = tr.fit()
        runs.append(([{k: v for k, v in m.items() if k not in TIMING} for m in result.history], tr.net.get_state()))
    (history_a, state_a), (history_b, state_b) = runs
    assert history_a == history_b
    assert history_a[-1]["firing_rate"][0] > 0
    for key in state_a:
        assert np.array_equal(state_a[key], state_b[key]), key
