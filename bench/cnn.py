"""The spiking CNN (mnist-cnn, 28x28-15C5-P2-40C5-P2-300-10, T = 400; SPEC_CNN 0):

    python -m bench cnn [--batches 1,32] [--threads 2] [--json FILE]

hm2bp's training and inference samples/s on mnist-10k digits, per batch size and backend (CPU;
CUDA when this build sees a GPU and implements the layers), beside the authors' CUDA code on a
Titan XP (fixed row from their log: 1,632 s per 60,000-sample epoch, about 37 samples/s at
batch 1; not measured here), and the peer row: snnTorch training the same network shape by BPTT
(bench.peers, its CNN tutorial's recipe) on the same Poisson spikes, float32, on --peer-device (auto:
the GPU when torch sees one).
Training runs the preset's own path: augmented digits (one
displacement map per epoch) Poisson-encoded in C++, one Adam step per batch; inference the
engine's own encoding. Training restarts from the initial weights before every pass over the
samples (untimed), as in bench.engine.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from .common import (SEED, Skipped, load_mnist, machine_info, peak_rss_mb, pretrain, sequence_batches, summarize,
                     throughput)

AUTHORS_SAMPLES_PER_S = 60000 / 1632  # SPEC_CNN 7: their log, mean epoch time, Titan XP, batch 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cnn", help="mnist-cnn training and inference speed")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--samples", type=int, default=96, help="distinct digits cycled through")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--peers", default="snntorch-cnn",
                   help="comma-separated peer rows (bench.peers builders; '' for none)")
    p.add_argument("--peer-batch", type=int, default=32, help="batch size of the peer rows")
    p.add_argument("--backends", default="cpu,cuda",
                   help="comma-separated hm2bp backends (cuda only where this build sees a GPU)")
    # SUPPRESS: without the flag here, python -m bench's own --peer-device (before `cnn`) holds
    p.add_argument("--peer-device", choices=("auto", "cpu", "cuda"), default=argparse.SUPPRESS,
                   help="torch device of the peer rows (default auto: cuda when torch sees a GPU)")
    p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS,
                   help="check the arguments and stop")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time hm2bp's repeats by wall clock or by this process's CPU time (common.CLOCKS)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def workload(backend: str, batch: int, threads: int | None, samples: int, data_dir: str | None,
             trained: int = 0) -> dict[str, Any]:
    """The benchmark's network, data and paths, as bench.engine.workload: the preset's own
    training path (augmented digits encoded in C++, one Adam step per batch) and inference by the
    engine's own encoding; trained: first that many other digits trained untimed (as there)."""
    import hm2bp
    from hm2bp import augment  # the path builds from before the sub-packages also have (bench.ab)
    from hm2bp.config import preset

    cfg = preset("mnist-cnn", backend=backend)
    net = hm2bp.Network(**{**cfg.network_kwargs(backend), "threads": threads, "seed": SEED})
    train = load_mnist("train", data_dir)
    images, labels = train.images[:samples], train.labels[:samples].astype(np.int64)
    aug = cfg.augmentation()

    def train_on(part: slice) -> None:
        idx = np.arange(part.start, part.stop)
        rates = augment.augment(train.images[idx], SEED, 0, idx, aug)
        net.train_step(augment.encode_rates(rates, cfg.T, SEED, idx, 0), train.labels[idx].astype(np.int64), cfg.lr)

    pretrain(train, samples, trained, train_on, batch)
    initial = net.get_state()

    def train_step(k: int) -> None:
        train_on(slice(k, k + batch))

    def infer_step(k: int) -> None:
        net.infer_images(images[k:k + batch], T=cfg.T, seed=SEED, sample_index=k)

    # cnn-trainer: as the trainer trains, G batches a call: one train_steps_images (augmentation
    # and encoding inside the engine call) where the build has it, else cnn-train's calls
    G = sequence_batches(batch, min(16, samples))

    def trainer(k: int) -> None:
        if hasattr(net, "train_steps_images"):
            idx = np.arange(k, k + G * batch)
            net.train_steps_images(images[idx], labels[idx], cfg.lr, batch_size=batch, T=cfg.T, seed=SEED,
                                   sample_index=idx, epoch=0, augment=aug)
        else:
            for j in range(k, k + G * batch, batch):
                train_step(j)

    return {"net": net, "steps": {"cnn-train": train_step, "cnn-infer": infer_step, "cnn-trainer": trainer},
            "starts": list(range(0, samples - batch + 1, batch)),
            "per_call": {"cnn-trainer": (list(range(0, samples - G * batch + 1, G * batch)), G * batch)},
            "restart": {"cnn-train": lambda: net.set_state(initial), "cnn-infer": None,
                        "cnn-trainer": lambda: net.set_state(initial)}}


def measure(backend: str, batch: int, threads: int | None, samples: int, repeats: int, min_seconds: float,
            data_dir: str | None, clock: str = "wall") -> dict[str, Any]:
    w = workload(backend, batch, threads, samples, data_dir)
    starts, steps, restart = w["starts"], w["steps"], w["restart"]
    result = {
        "backend": backend, "batch": batch, "threads": w["net"].threads, "clock": clock,
        "train_samples_per_s": summarize(throughput(steps["cnn-train"], starts, batch, warmup=1, repeats=repeats,
                                                    min_seconds=min_seconds, restart=restart["cnn-train"],
                                                    clock=clock)),
        "infer_samples_per_s": summarize(throughput(steps["cnn-infer"], starts, batch, warmup=1, repeats=repeats,
                                                    min_seconds=min_seconds, clock=clock)),
    }
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def measure_peer(name: str, batch: int, threads: int | None, samples: int, repeats: int,
                 min_seconds: float, data_dir: str | None, device: str = "auto") -> dict[str, Any]:
    """A peer framework's BPTT training and inference samples/s on the same spikes
    (unaugmented digits, hm2bp's Poisson encoding of epoch 0)."""
    import os

    import hm2bp
    from hm2bp.config import preset

    from . import peers

    T = preset("mnist-cnn").T
    runner, facts = peers.make(name, [784, 10], T, threads or os.cpu_count() or 1, device)
    train = load_mnist("train", data_dir)
    n = max(batch, samples - samples % batch)
    spikes = hm2bp.encode_poisson(train.images[:n], T, SEED, np.arange(n))
    labels = train.labels[:n].astype(np.int64)
    batches = [runner.prepare(spikes[k:k + batch], labels[k:k + batch]) for k in range(0, n, batch)]
    return {
        "backend": name, "batch": batch, "threads": facts["threads"], "facts": facts,
        "train_samples_per_s": summarize(throughput(runner.train, batches, batch, warmup=1,
                                                    repeats=repeats, min_seconds=min_seconds)),
        "infer_samples_per_s": summarize(throughput(runner.infer, batches, batch, warmup=1,
                                                    repeats=repeats, min_seconds=min_seconds)),
    }


def check_args(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    """The batch sizes and backends asked for; SystemExit with a one-line message for bad
    ones (before any measurement)."""
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        raise SystemExit(f"--batches must be comma-separated integers, got {args.batches!r}") from None
    backends = [b for b in args.backends.split(",") if b]
    if not backends or set(backends) - {"cpu", "cuda"}:
        raise SystemExit(f"--backends must name cpu and/or cuda, got {args.backends!r}")
    too_big = [b for b in batches + ([args.peer_batch] if args.peers else []) if not 1 <= b <= args.samples]
    if too_big:
        raise SystemExit(f"--samples ({args.samples}) must be at least every batch size, and batches at "
                         f"least 1: {too_big}")
    return batches, backends


def main(args: argparse.Namespace) -> int:
    batches, backends = check_args(args)
    if args.dry_run:
        print(f"dry run: bench cnn, backends {backends}, batches {batches}: arguments OK")
        return 0
    import hm2bp

    if "cuda" in backends and not hm2bp.cuda_available():
        if backends == ["cuda"]:
            raise SystemExit("--backends cuda: this build or machine has no usable CUDA GPU")
        backends.remove("cuda")  # the default asks for CUDA where there is one
    rows = []
    for backend in backends:
        for batch in batches:
            try:
                rows.append(measure(backend, batch, args.threads, args.samples, args.repeats, args.min_seconds,
                                    args.data_dir, args.clock))
            except NotImplementedError as exc:
                rows.append({"backend": backend, "batch": batch, "skipped": str(exc)})
    for name in filter(None, args.peers.split(",")):
        try:
            rows.append(measure_peer(name, args.peer_batch, args.threads, args.samples,
                                     args.repeats, args.min_seconds, args.data_dir, args.peer_device))
        except Skipped as exc:
            rows.append({"backend": name, "batch": args.peer_batch, "skipped": str(exc)})
    print("mnist-cnn (28x28-15C5-P2-40C5-P2-300-10, T=400), training samples/s median (min-max)")
    print(f"{'row':<22}{'batch':>6}{'train':>24}{'infer':>24}   x authors")
    for r in rows:
        name = f"hm2bp-{r['backend']}" if r["backend"] in backends else r["backend"]
        if "skipped" in r:
            print(f"{name:<22}{r['batch']:>6}   skipped: {r['skipped']}")
            continue
        tr, inf = r["train_samples_per_s"], r["infer_samples_per_s"]
        print(f"{name + ' (' + str(r['threads']) + ' thr)':<22}{r['batch']:>6}"
              f"{tr['median']:>10.1f} ({tr['min']:.1f}-{tr['max']:.1f})"
              f"{inf['median']:>10.1f} ({inf['min']:.1f}-{inf['max']:.1f})"
              f"   {tr['median'] / AUTHORS_SAMPLES_PER_S:.1f}x")
    print(f"{'authors-cuda *':<22}{1:>6}{AUTHORS_SAMPLES_PER_S:>10.1f}")
    print("* not measured here: their log, 1,632 s per 60,000-sample training epoch on a Titan XP")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "authors_samples_per_s": AUTHORS_SAMPLES_PER_S, "machine": machine_info()}, f,
                      indent=1)
    return 0
