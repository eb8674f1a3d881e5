"""How many neurons of each layer a network never fires, on a sample of its training images.

    python -m bench.silent_units RUN [--images 128] [--init] [--json FILE]

HM2-BP gives a neuron that never fires only a fallback gradient: its S-PSPs would all be zero,
and SPEC 4's 0.1 rule gives each of its active inputs the same small S-PSP instead, so all those
weights move together, by a delta that the samples' errors mostly cancel. A unit that falls
silent on every input therefore tends to stay silent (under Adam with the weight regularization
its weights then shrink to zero: docs/algorithm.md, section 5). This reports, per
layer, the mean spike count per neuron and image, the share of neurons silent on every one of
the images ("never fire": the frozen units) and the share of (neuron, image) pairs without a
spike. --init reports the same for the run's network at its initial weights (the run's config
and seed, nothing trained), for a before/after view.

For the conv and dense layers it also reports the share of neurons whose input weights sum to
about -2 vth ("at the fixed point"). A silent neuron's side term is 0.5 / vth times that sum
(SPEC 4, SPEC_CNN 3.3: a conv neuron's sum over its filter, at positions away from the border),
so its gradient is scaled by 1 + 0.5 * sum / vth, which vanishes there: a neuron that its
deltas push towards silence drifts down to that sum and then no delta moves it. Within
--tolerance (default 0.1) of zero is counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import hm2bp
from hm2bp import data
from hm2bp.reference.dense import side_term
from hm2bp.train.build import build_network, load_network


def layer_silence(net: Any, spikes: np.ndarray, batch: int = 32) -> list[dict[str, float]]:
    """Per layer: mean spikes per neuron and image, share of neurons silent on every image, share
    of silent (neuron, image) pairs; spikes is (B, T, n_in) as Network.forward takes it."""
    counts: list[list[np.ndarray]] = []
    for start in range(0, len(spikes), batch):
        layers = net.forward(spikes[start:start + batch])
        if not counts:
            counts = [[] for _ in layers]
        for k, trains in enumerate(layers):
            counts[k].append(trains.sum(axis=1, dtype=np.int64))
    rows = []
    for per_batch in counts:
        c = np.concatenate(per_batch)  # (images, n_l)
        rows.append({"neurons": int(c.shape[1]), "mean_count": float(c.mean()),
                     "never_fire": float(np.mean(c.max(axis=0) == 0)),
                     "silent_pairs": float(np.mean(c == 0))})
    return rows


def fixed_point_share(net: Any, tolerance: float = 0.1) -> dict[int, float]:
    """Per conv or dense layer (its index in net.layer_specs): the share of its neurons whose
    silent-neuron gradient factor 1 + 0.5 * sum(W[o]) / vth is within tolerance of zero."""
    trainable = [k for k, spec in enumerate(net.layer_specs)
                 if isinstance(spec, (hm2bp.layers.Dense, hm2bp.layers.Conv2d))]
    weights = net.get_weights()
    if len(trainable) != len(weights):  # a stack with a reservoir: its weights are not in get_weights
        return {}
    shares = {}
    for k, w in zip(trainable, weights):
        w = np.asarray(w, dtype=np.float64).reshape(len(w), -1)  # a conv filter: all its weights
        silent = np.zeros(len(w))
        factor = 1.0 + side_term(w, np.zeros_like(w), silent, net.layer_specs[k].vth)
        shares[k] = float(np.mean(np.abs(factor) < tolerance))
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.silent_units", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run directory (or checkpoint file) of hm2bp-train")
    parser.add_argument("--images", type=int, default=128, help="training images to run (default 128)")
    parser.add_argument("--init", action="store_true", help="the run's network at its initial weights")
    parser.add_argument("--seed", type=int, default=7, help="seed of the image sample and its encoding")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="how close to 0 a silent neuron's gradient factor counts as the fixed point")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    net = load_network(args.run)
    config = net.config
    if args.init:
        net = build_network(config, "auto", None)
    train = data.load(config.dataset, "train", data_dir=config.data_dir, download=False)
    if not train.is_images:
        print(f"error: {config.dataset} is an event dataset; this reports image datasets only",
              file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(train.labels), size=min(args.images, len(train.labels)), replace=False))
    images = train.images[idx].reshape(len(idx), -1)
    spikes = hm2bp.encode_poisson(images, T=config.T, seed=args.seed, sample_index=idx)
    rows = layer_silence(net, spikes)
    for k, share in fixed_point_share(net, args.tolerance).items():
        rows[k]["at_fixed_point"] = share
    state = "initial weights" if args.init else "trained weights"
    print(f"{args.run} ({state}), {len(idx)} training images of {config.dataset}")
    print("layer  neurons  spikes/neuron/image  never fire  silent pairs  at the fixed point")
    for k, row in enumerate(rows):
        fixed = f"{row['at_fixed_point']:17.3f}" if "at_fixed_point" in row else f"{'-':>17s}"
        print(f"{k:5d}  {row['neurons']:7d}  {row['mean_count']:19.2f}  {row['never_fire']:10.3f}  "
              f"{row['silent_pairs']:12.3f}  {fixed}")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "init": args.init, "images": len(idx),
                                         "layers": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
