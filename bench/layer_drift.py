"""Continue a run from a checkpoint for a few hundred updates, with one setting changed, and watch
each layer's activity: a fast test of whether a change keeps a layer from falling silent.

    python -m bench.layer_drift RUN [--updates 500] [--every 100] [--lr LR] [--set KEY=VALUE ...]
                                    [--scale LAYER=K ...] [--threads 1]

A full-data epoch of a spiking CNN takes 10-20 minutes on 2 cores; the conv layer of the
Fashion-MNIST CNNs falls silent after some thousands of updates (bench/RESULTS.md). Started from
a checkpoint taken just before that (RUN: a run directory or its best.npz / checkpoint.npz), the
same network collapses within a few hundred updates, so a change can be tried in minutes. The
probe trains the run's next epoch in its order (same split, encoding keys and boosting weights;
lr: the run's schedule for that epoch unless --lr) and prints, every --every updates, the train
accuracy of those updates, the spikes per neuron and image of every layer, and the share of
conv and dense neurons at the silent-neuron fixed point (`bench.silent_units`).

--set KEY=VALUE changes a run setting (a RunConfig key: desired=50, reg_lambda=10, ...; values
as TOML). --scale LAYER=K (LAYER: 0-based index of a conv or dense layer among those layers)
multiplies that layer's weights and vth by K and divides its Adam moments by K and K^2 (its
gradients are K times smaller): the same network, the same spikes, Adam's steps of the same size
in weight units and so K times smaller against its weights (its relative learning rate divided
by K; what `init_w` and `vth` scaled together do in a config from the start). With SPEC 5's
regularization on (reg_lambda > 0) the scaled layer's penalty differs: it is not scale-free.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from hm2bp.config.files import tomllib
from hm2bp.train import validation
from hm2bp.train.build import build_network, load_split
from hm2bp.train.checkpoint import load_checkpoint, restore_network
from hm2bp.train.schedule import epoch_order, learning_rate

from .silent_units import fixed_point_share


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: {what} needs KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def scaled(config: Any, arrays: dict[str, np.ndarray], scale: dict[int, float]) -> tuple[Any, dict[str, np.ndarray]]:
    """The config and checkpoint arrays with conv/dense layer k's weights, vth and Adam moments
    scaled by scale[k] (see the module's doc)."""
    if not scale:
        return config, arrays
    if config.layer is None:
        vth = list(config.vth)
        for k, factor in scale.items():
            vth[k] *= factor
        config = config.replace(vth=vth)
    else:
        tables = [dict(t) for t in config.layer]
        trainable = [t for t in tables if t["type"] in ("conv2d", "dense")]
        for k, factor in scale.items():
            trainable[k]["vth"] = trainable[k]["vth"] * factor
        config = config.replace(layer=tables)
    arrays = dict(arrays)
    for k, factor in scale.items():
        for name, power in (("weights", 1), ("moment1", -1), ("moment2", -2)):
            key = f"net.{name}_{k}"
            if key not in arrays:
                raise SystemExit(f"error: --scale {k}: the checkpoint has no {key}")
            arrays[key] = arrays[key] * factor ** power
    return config, arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layer_drift", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run directory or checkpoint file of hm2bp-train (image datasets)")
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, help="learning rate (default: the run's schedule for its next epoch)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a run setting")
    parser.add_argument("--scale", action="append", default=[], metavar="LAYER=K",
                        help="slow conv/dense layer LAYER down K times relative to its weights")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    config, _, arrays = load_checkpoint(args.run)
    changes = {k: tomllib.loads(f"v = {v}")["v"] for k, v in _pairs(args.set, "--set").items()}
    scale = {int(k): float(v) for k, v in _pairs(args.scale, "--scale").items()}
    config = config.replace(threads=args.threads, **changes)
    config, arrays = scaled(config, arrays, scale)
    net = build_network(config, "cpu", None)
    restore_network(net, arrays)
    train = load_split(config.replace(download=False), "train", config.train_size)
    if not train.is_images:
        print(f"error: {config.dataset} is an event dataset; this probe runs image datasets", file=sys.stderr)
        return 2
    train, _ = validation.split(train, config.val_split, config.seed)  # the trainer's split
    epoch = int(arrays["epoch"])  # epochs completed: the next one's 0-based index
    lr = args.lr if args.lr is not None else learning_rate(config.lr, min(epoch, config.epochs - 1),
                                                             config.lr_rule, config.epochs)
    order = epoch_order(len(train.labels), config.seed, epoch, mode=config.order)
    weights, B = arrays["sample_weights"], config.batch_size
    sizes = net.layers[1:]
    print(f"{args.run}: epoch {epoch + 1} of the run, lr {lr:g}, batch {B}, changes {changes or '-'}, "
          f"scale {scale or '-'}")
    print("updates  seconds  train acc  spikes per neuron and image (per layer)  at the fixed point (conv/dense)")
    start, correct, seen, spikes = time.perf_counter(), 0, 0, np.zeros(len(sizes))
    for u in range(args.updates):
        idx = order[(u * B) % len(order):][:B]
        r = net.train_step_images(train.images[idx], train.labels[idx], lr, T=config.T, seed=config.seed,
                                  sample_index=idx, epoch=epoch, sample_weights=weights[idx])
        correct += int(np.sum(r["predictions"] == train.labels[idx]))
        seen += len(idx)
        spikes += r["layer_spikes"]
        if (u + 1) % args.every == 0:
            rates = " ".join(f"{s / seen / n:.2f}" for s, n in zip(spikes, sizes))
            fixed = " ".join(f"{v:.2f}" for v in fixed_point_share(net).values())
            print(f"{u + 1:7d}  {time.perf_counter() - start:7.0f}  {correct / seen:9.3f}  {rates:>40s}  {fixed}",
                  flush=True)
            correct, seen, spikes = 0, 0, np.zeros(len(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
