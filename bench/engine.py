"""Engine benchmark (mnist-fc800, SPEC 7): how fast hm2bp.Network trains and infers.

    python -m bench.engine [--threads N] [--batch 32] [--dtype float32] [--json FILE]

Measures, on Poisson-encoded mnist-10k training digits, 784-800-10, T = 400:
- train_step         : one Adam step per batch on pre-encoded spikes (encoding not timed)
- train_step_images  : uint8 images Poisson-encoded inside the engine, one call per batch
- trainer            : as the trainer trains: runs of consecutive batches (~64 samples) per
                       engine call (train_steps_images), or where a build lacks it one
                       train_step_images per batch
- infer              : output counts and predictions only
- forward            : all layers' spike trains returned as bool arrays
and the peak resident memory of this process (ru_maxrss; run it alone to read it cleanly).
Training restarts from the initial weights before every pass over the samples (untimed; see
common.throughput), so the numbers are those of a network still learning them.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from .common import (LAYERS, SEED, T_STEPS, VTH, load_mnist, machine_info, path_calls, peak_rss_mb, pretrain,
                     sequence_batches, summarize, throughput)


def workload(threads: int | None, batch: int, samples: int, dtype: str, T: int, trained: int = 0) -> dict[str, Any]:
    """The benchmark's network, data and paths: {"net", "steps" (path -> step(k) for the batch
    starting at sample k), "starts", "per_call" (path -> its own starts and samples per call,
    for paths that train several batches a call), "restart" (path -> None or the untimed reset
    to the initial weights)}. Shared by measure() and bench.ab's interleaved workers.
    trained: first train the network (untimed) on that many other digits, so that the paths run
    a network in training, not its first samples from random weights (restarts return there)."""
    import hm2bp

    digits = load_mnist("train")
    images = digits.images[:samples]
    labels = digits.labels[:samples].astype(np.int64)
    spikes = hm2bp.encode_poisson(images, T, SEED, 0)
    net = hm2bp.Network(layers=list(LAYERS), vth=list(VTH), dtype=dtype, threads=threads, seed=SEED)
    steps = {
        "train_step": lambda k: net.train_step(spikes[k:k + batch], labels[k:k + batch], 1e-3),
        "train_step_images": lambda k: net.train_step_images(images[k:k + batch], labels[k:k + batch], 1e-3,
                                                             T=T, seed=SEED, sample_index=k),
        "infer": lambda k: net.infer(spikes[k:k + batch]),
        "forward": lambda k: net.forward(spikes[k:k + batch]),
    }
    # trainer: as hm2bp.train's trainer trains (a run of consecutive batches per engine call where
    # the build has train_steps_images, else one train_step_images per batch), G batches a call
    G = sequence_batches(batch, min(64, samples))

    def trainer(k: int) -> None:
        part = slice(k, k + G * batch)
        if hasattr(net, "train_steps_images"):
            net.train_steps_images(images[part], labels[part], 1e-3, batch_size=batch, T=T, seed=SEED,
                                   sample_index=k)
        else:
            for j in range(k, k + G * batch, batch):
                steps["train_step_images"](j)

    steps["trainer"] = trainer
    pretrain(digits, samples, trained, lambda part: net.train_step_images(
        digits.images[part], digits.labels[part].astype(np.int64), 1e-3, T=T, seed=SEED,
        sample_index=part.start), batch)
    initial = net.get_state()

    def restart() -> None:
        net.set_state(initial)

    return {"net": net, "spikes": spikes, "steps": steps, "starts": list(range(0, samples - batch + 1, batch)),
            "per_call": {"trainer": (list(range(0, samples - G * batch + 1, G * batch)), G * batch)},
            "restart": {name: restart if name.startswith("train") else None for name in steps}}


def measure(threads: int | None, batch: int, samples: int, repeats: int, dtype: str, T: int,
            min_seconds: float, clock: str = "wall") -> dict:
    w = workload(threads, batch, samples, dtype, T)
    net, spikes, starts = w["net"], w["spikes"], w["starts"]
    results = {name: summarize(throughput(step, *path_calls(w, name, batch), warmup=1, repeats=repeats,
                                          min_seconds=min_seconds, restart=w["restart"][name], clock=clock))
               for name, step in w["steps"].items()}
    info = net.infer(spikes[:batch])
    return {
        "network": "mnist-fc800", "layers": list(LAYERS), "T": T, "batch": batch, "dtype": dtype,
        "threads": net.threads, "samples": samples, "clock": clock,
        "input_spikes_per_sample": float(spikes.sum() / samples),
        "hidden_spikes_per_sample": float(info["layer_spikes"][0] / batch),
        "samples_per_s": results, "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: all cores)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--samples", type=int, default=512, help="distinct digits cycled through")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=2.0, help="minimum duration of one repeat")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--T", type=int, default=T_STEPS)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time repeats by wall clock or by this process's CPU time (see common.CLOCKS)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.samples < args.batch:
        p.error("--samples must be at least --batch")

    result = measure(args.threads, args.batch, args.samples, args.repeats, args.dtype, args.T, args.min_seconds,
                     args.clock)
    result["machine"] = machine_info()
    print(f"mnist-fc800, T={result['T']}, batch {result['batch']}, {result['dtype']}, "
          f"{result['threads']} thread(s); {result['input_spikes_per_sample']:.0f} input and "
          f"{result['hidden_spikes_per_sample']:.0f} hidden spikes per sample")
    print(f"{'path':<20}{'samples/s (median, ' + args.clock + ')':>26}{'min':>10}{'max':>10}")
    for name, r in result["samples_per_s"].items():
        print(f"{name:<20}{r['median']:>26.0f}{r['min']:>10.0f}{r['max']:>10.0f}")
    print(f"peak memory (process RSS): {result['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
