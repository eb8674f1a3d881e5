"""`python -m bench tta --budget 600`: test accuracy against training wall time.

hm2bp (CPU engine, mnist-fc800 network and settings) and snnTorch (the peers.py recipe, same
784-800-10 network, T and batch) each train on the mnist-10k training digits for the same
wall-time budget. The clock runs only while training (encoding included: hm2bp encodes inside
the engine with train_step_images, snnTorch gets hm2bp.encode_poisson spikes converted to
torch); it is paused while the fixed subset of the first 1000 test digits is evaluated at
t = 0, every --eval-every seconds of training and at the end. Both use the same training order
(the trainer's default_rng([seed, epoch]) permutation) and the same spikes (seed 0 for
training, seed 1 for test digits, as hm2bp.trainer does). hm2bp uses the SPEC-5 learning-rate
schedule lr0 / sqrt(max(epoch, 1)) and per-epoch boosting like hm2bp.trainer; snnTorch uses
its recipe's constant Adam learning rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import common
from .common import Skipped

FRAMEWORKS = ("hm2bp-cpu", "snntorch")
TEST_SEED = common.SEED + 1  # hm2bp.trainer: test spikes use seed + 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tta", help="time-to-accuracy: hm2bp vs snnTorch, same wall budget")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per framework")
    p.add_argument("--eval-every", type=float, help="training seconds between evaluations "
                   "(default budget/10)")
    p.add_argument("--eval-size", type=int, default=1000, help="fixed test digits (first N)")
    p.add_argument("--batch", type=int, default=32,
                   help="batch size of both (default 32; the paper preset uses 1)")
    p.add_argument("--T", type=int, default=common.T_STEPS)
    p.add_argument("--hidden", type=int, default=common.LAYERS[1])
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                   help="comma-separated subset of " + ",".join(FRAMEWORKS))
    p.add_argument("--json", default="bench-tta.json", help="output JSON file")
    p.add_argument("--png", default="bench-tta.png", help="output plot (matplotlib)")
    p.add_argument("--data-dir", help=f"mnist-10k folder (default {common.DEFAULT_DATA_DIR})")


class _Hm2bp:
    """hm2bp engine with the mnist-fc800 preset network (engine-side Poisson encoding)."""

    def __init__(self, layers: list[int], T: int, batch: int) -> None:
        hm2bp = common.import_engine()
        config = common.hm2bp_module("config")
        cfg = config.preset("mnist-fc800", layers=layers, T=T, batch_size=batch)
        self.net = hm2bp.Network(**cfg.network_kwargs("cpu"))
        self.lr0, self.T, self.seed = cfg.lr, T, cfg.seed
        self.boosting = cfg.boosting
        self.facts = {"preset": "mnist-fc800", "batch": batch, "lr0": cfg.lr,
                      "dtype": cfg.dtype, "boosting": cfg.boosting,
                      "threads": hm2bp.build_info().get("threads")}

    def train(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, epoch: int,
              weights: np.ndarray | None) -> np.ndarray:
        lr = self.lr0 / np.sqrt(max(epoch, 1))  # SPEC 5
        out = self.net.train_step_images(images, labels, lr, T=self.T, seed=self.seed,
                                         sample_index=idx, epoch=0, sample_weights=weights)
        return np.asarray(out["predictions"])

    def predict(self, images: np.ndarray, first: int) -> np.ndarray:
        out = self.net.infer_images(images, T=self.T, seed=TEST_SEED, sample_index=first)
        return np.asarray(out["predictions"])


class _Peer:
    """snnTorch (peers.py recipe) fed with the contract spikes as torch tensors."""

    def __init__(self, name: str, layers: list[int], T: int, batch: int) -> None:
        self.runner, facts = common.make_runner(name, layers=layers, T=T)
        self.T = T
        self.boosting = False
        self.facts = {"batch": batch, **facts}

    def train(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, epoch: int,
              weights: np.ndarray | None) -> np.ndarray:
        spikes = common.encode_poisson(images, self.T, common.SEED, idx)
        self.runner.train(self.runner.prepare(spikes, labels))
        return np.full(len(idx), -1)  # no per-sample predictions from a training step

    def predict(self, images: np.ndarray, first: int) -> np.ndarray:
        spikes = common.encode_poisson(images, self.T, TEST_SEED, first)
        return self.runner.infer(self.runner.prepare(spikes, np.zeros(len(images), np.int64)))[
            "predictions"]


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray, batch: int = 100) -> float:
    correct = 0
    for k in range(0, len(labels), batch):
        correct += int(np.sum(model.predict(images[k:k + batch], k) == labels[k:k + batch]))
    return correct / len(labels)


def run(model: Any, train: Any, test_images: np.ndarray, test_labels: np.ndarray, budget: float,
        eval_every: float, batch: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Train until `budget` training seconds; evaluate at 0, every eval_every s and the end."""
    n = len(train.labels)
    images, labels = train.images, train.labels.astype(np.int64)
    weights = np.ones(n)
    curve = []
    clock, seen, epoch = 0.0, 0, 0

    def point() -> None:
        t = time.perf_counter()
        acc = evaluate(model, test_images, test_labels)
        curve.append({"train_s": round(clock, 2), "samples_seen": seen, "epoch": epoch,
                      "test_accuracy": acc, "eval_s": round(time.perf_counter() - t, 2)})
        log(f"  t={clock:7.1f}s  samples {seen:7d}  epoch {epoch}  test acc {100 * acc:6.2f}%")

    point()
    next_eval = eval_every
    while clock < budget:
        order = np.random.default_rng([common.SEED, epoch]).permutation(n)  # as hm2bp.trainer
        predictions = np.full(n, -1)
        for start in range(0, n - batch + 1, batch):
            idx = order[start:start + batch]
            t = time.perf_counter()
            predictions[idx] = model.train(images[idx], labels[idx], idx, epoch,
                                           weights[idx] if model.boosting else None)
            clock += time.perf_counter() - t
            seen += len(idx)
            if clock >= next_eval or clock >= budget:
                point()
                next_eval = clock + eval_every
            if clock >= budget:
                break
        else:
            if model.boosting:  # SPEC 5, once per epoch, as hm2bp.trainer
                weights = common.hm2bp_module("train.schedule").boost_weights(weights, labels,
                                                                        predictions)
            epoch += 1
    if curve[-1]["train_s"] != round(clock, 2):
        point()
    return curve


def plot(result: dict[str, Any], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, res in result["runs"].items():
        if "curve" in res:
            ax.plot([p["train_s"] for p in res["curve"]],
                    [100 * p["test_accuracy"] for p in res["curve"]], "o-", label=name)
    s, m = result["settings"], result["machine"]
    ax.set_xlabel("training wall time (s, evaluation excluded)")
    ax.set_ylabel(f"test accuracy on the first {s['eval_size']} test digits (%)")
    ax.set_title(f"time to accuracy, 784-{s['hidden']}-10, T={s['T']}, batch {s['batch']}\n"
                 f"{m['cpu_model']}, {m['cores']} cores", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    names = args.frameworks.split(",")
    if any(n not in FRAMEWORKS for n in names):
        raise SystemExit(f"--frameworks: expected names from {','.join(FRAMEWORKS)}")
    eval_every = args.eval_every or args.budget / 10
    layers = [784, args.hidden, 10]
    train = common.load_mnist("train", args.data_dir)
    test = common.load_mnist("test", args.data_dir)
    if args.eval_size > len(test):
        raise SystemExit(f"--eval-size must be <= {len(test)}, got {args.eval_size}")
    test_images = test.images[:args.eval_size]
    test_labels = test.labels[:args.eval_size].astype(np.int64)
    result: dict[str, Any] = {"machine": common.machine_info(), "settings": {
        "budget_s": args.budget, "eval_every_s": eval_every, "eval_size": args.eval_size,
        "batch": args.batch, "T": args.T, "hidden": args.hidden,
        "train_digits": len(train), "data": str(args.data_dir or common.DEFAULT_DATA_DIR),
        "clock": "training only (encoding included), paused during evaluation"}, "runs": {}}
    for name in names:
        print(f"[tta] {name}: {args.budget:g} s budget", file=sys.stderr, flush=True)
        try:
            model = (_Hm2bp(layers, args.T, args.batch) if name == "hm2bp-cpu"
                     else _Peer(name, layers, args.T, args.batch))
        except Skipped as exc:
            result["runs"][name] = {"skipped": str(exc)}
            print(f"  skipped: {exc}")
            continue
        t0 = time.perf_counter()
        curve = run(model, train, test_images, test_labels, args.budget, eval_every,
                    args.batch, lambda s: print(s, flush=True))
        result["runs"][name] = {
            **model.facts, "curve": curve, "wall_s": round(time.perf_counter() - t0, 1),
            "final_accuracy": curve[-1]["test_accuracy"],
            "best_accuracy": max(p["test_accuracy"] for p in curve),
            "train_samples_per_s": curve[-1]["samples_seen"] / max(curve[-1]["train_s"], 1e-9),
        }
    result["machine"]["load_avg_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.png)
    for name, res in result["runs"].items():
        if "curve" in res:
            print(f"{name}: final {100 * res['final_accuracy']:.2f}%  best "
                  f"{100 * res['best_accuracy']:.2f}%  after {res['curve'][-1]['train_s']:.0f} s"
                  f" ({res['curve'][-1]['samples_seen']} samples, "
                  f"{res['train_samples_per_s']:.1f} samples/s)")
    print(f"wrote {args.json} and {args.png}")
    return 0
