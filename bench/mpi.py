"""Data-parallel training over MPI ranks (hm2bp.distributed), mnist-fc800 (784-800-10, T = 400):

    python -m bench mpi [--ranks 1,2] [--batch 32] [--json FILE]

For every R, R ranks (``mpirun -n R``; R = 1 a single process) train on the same mnist-10k
digits, each global batch split across them, each rank with cores / R engine threads. Reported
per R: training samples/s of the whole job, and per batch the engine's time (forward/backward of
the rank's share), the time in the one reduction (hm2bp.distributed.Communicator.sum, which
includes waiting for the slowest rank) and that reduction alone, timed back to back after a
barrier, on a buffer of the batch's size (the weights' gradient sums plus a few counts, float64).

From these it predicts a step at larger R: the engine time per sample measured here, divided
over R ranks, plus the reduction, modelled as the rank-order reduce-scatter + allgather it is:
2 (R - 1) / R buffers through each rank's link plus 2 (R - 1) message latencies; every rank
still runs the optimizer step over all weights for every batch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import SEED, load_mnist, machine_info

PREDICT_RANKS = (8, 32)
# Links for the prediction: (name, bytes/s per direction, latency in s), typical figures.
LINKS = (("100 Gb/s InfiniBand", 12e9, 2e-6), ("10 Gb/s Ethernet", 1.2e9, 30e-6))


def add_parser(sub: Any) -> None:
    p = sub.add_parser("mpi", help="data-parallel MPI training throughput and reduction cost")
    p.add_argument("--ranks", default="1,2", help="comma-separated rank counts")
    p.add_argument("--batch", type=int, default=32, help="global batch size")
    p.add_argument("--samples", type=int, default=256, help="digits per timed pass")
    p.add_argument("--repeats", type=int, default=3, help="timed passes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


# ---------------------------------------------------------------------------------------------
# one rank (python -m bench.mpi ...)


def rank_main(argv: list[str]) -> None:
    import hm2bp
    from hm2bp.cli import distributed
    from hm2bp.config import preset
    from hm2bp.train.sources import ImageSource, LearningStep

    p = argparse.ArgumentParser()
    for flag in ("--batch", "--samples", "--repeats", "--threads"):
        p.add_argument(flag, type=int, required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    dp = distributed.DataParallel(distributed.communicator("mpi"))
    comm = dp.comm
    cfg = preset("mnist-fc800", backend="cpu", threads=args.threads, batch_size=args.batch)
    net = hm2bp.Network(**{**cfg.network_kwargs("cpu"), "seed": SEED})
    digits = load_mnist("train", args.data_dir)
    digits = digits.subset(np.arange(args.samples))
    source = distributed.DistributedSource(ImageSource(digits, cfg.T, SEED), dp, len(cfg.layers) - 1)
    step = LearningStep(net, cfg.lr)
    initial = net.get_state()
    batches = [np.arange(k, k + args.batch) for k in range(0, args.samples - args.batch + 1, args.batch)]

    def one_pass() -> tuple[float, float, float]:
        net.set_state(initial)  # a network that learned the few digits would skip backward passes
        comm.comm.Barrier()
        engine0, reduce0, t0 = source.engine_seconds, dp.reduce_seconds, time.perf_counter()
        for idx in batches:
            source.train(step, idx, 0, None)
        return time.perf_counter() - t0, source.engine_seconds - engine0, dp.reduce_seconds - reduce0

    one_pass()  # warm-up
    passes = [one_pass() for _ in range(args.repeats)]
    size = sum(w.size for w in net.get_weights()) + 1 + 2 + args.batch + comm.size  # DistributedSource.train
    buffer = np.ones(size)
    comm.sum([buffer])
    comm.comm.Barrier()
    t0 = time.perf_counter()
    calls = 20
    for _ in range(calls):
        comm.sum([buffer])
    alone = (time.perf_counter() - t0) / calls
    rows = comm.comm.gather({"wall": [w for w, _, _ in passes], "engine": [e for _, e, _ in passes],
                             "reduce": [r for _, _, r in passes], "alone": alone}, root=0)
    if comm.is_root:
        n = len(batches)
        wall = [max(r["wall"][k] for r in rows) for k in range(args.repeats)]
        Path(args.out).write_text(json.dumps({
            "ranks": comm.size, "threads_per_rank": net.threads, "batch": args.batch, "batches": n,
            "buffer_bytes": 8 * size, "weights": sum(w.size for w in net.get_weights()),
            "train_samples_per_s": [n * args.batch / w for w in wall],
            "engine_ms_per_batch": 1e3 * float(np.median([np.mean([r["engine"][k] for r in rows]) / n
                                                          for k in range(args.repeats)])),
            "reduce_ms_per_batch": 1e3 * float(np.median([np.mean([r["reduce"][k] for r in rows]) / n
                                                          for k in range(args.repeats)])),
            "wall_ms_per_batch": 1e3 * float(np.median(wall)) / n,
            "reduction_alone_ms": 1e3 * max(r["alone"] for r in rows),
        }))


# ---------------------------------------------------------------------------------------------
# the table


def _run_ranks(R: int, args: argparse.Namespace, cores: int, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.mpi", "--batch", str(args.batch), "--samples", str(args.samples),
           "--repeats", str(args.repeats), "--threads", str(max(1, cores // R)), "--out", str(out)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    if R > 1:
        mpirun = shutil.which("mpirun", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        if mpirun is None:
            return {"ranks": R, "skipped": 'no mpirun (pip install ".[mpi]")'}
        version = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
        cmd = [mpirun, *(["--oversubscribe"] if "Open MPI" in version else []), "-n", str(R), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        return {"ranks": R, "skipped": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.read_text())


def predict(rows: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Step time at larger R, each rank as fast as the whole machine was at R = 1: its engine
    time per sample, divided over the ranks, plus what every rank does for the whole batch
    whatever R (the optimizer step over all weights, packing the buffer; R = 1's wall time less
    its engine and reduction time), plus the reduction through a link of the LINKS model."""
    base = next((r for r in rows if r.get("ranks") == 1 and "skipped" not in r), None)
    if base is None:
        return []
    per_sample = base["engine_ms_per_batch"] / 1e3 / batch
    fixed = (base["wall_ms_per_batch"] - base["engine_ms_per_batch"] - base["reduce_ms_per_batch"]) / 1e3
    size = base["buffer_bytes"]
    out = []
    for name, bandwidth, latency in LINKS:
        for R in PREDICT_RANKS:
            reduce_s = 2 * (R - 1) / R * size / bandwidth + 2 * (R - 1) * latency
            compute_s = per_sample * batch / R + fixed
            out.append({"link": name, "ranks": R, "compute_ms": 1e3 * compute_s, "step_ms": 1e3 * fixed,
                        "reduce_ms": 1e3 * reduce_s, "reduce_share": reduce_s / (reduce_s + compute_s),
                        "samples_per_s": batch / (reduce_s + compute_s)})
    return out


def main(args: argparse.Namespace) -> int:
    from hm2bp.model.network import default_threads

    cores = default_threads()
    ranks = [int(r) for r in args.ranks.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for R in ranks:
            rows.append(_run_ranks(R, args, cores, Path(tmp) / f"r{R}.json"))
    load = os.getloadavg()
    print(f"data-parallel mnist-fc800 (784-800-10, T=400) training, global batch {args.batch}, "
          f"{args.samples} digits x {args.repeats} passes; {cores} cores, load average {load[0]:.1f}")
    print(f"{'ranks':>5} {'thr/rank':>8} {'samples/s median (min-max)':>28} {'engine ms':>10} "
          f"{'reduce ms':>10} {'alone ms':>9} {'reduce share':>13}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['ranks']:>5}   skipped: {r['skipped']}")
            continue
        rate = r["train_samples_per_s"]
        print(f"{r['ranks']:>5} {r['threads_per_rank']:>8} {np.median(rate):>12.1f} ({min(rate):.1f}-{max(rate):.1f})"
              f"{'':>6}{r['engine_ms_per_batch']:>10.2f} {r['reduce_ms_per_batch']:>10.2f} "
              f"{r['reduction_alone_ms']:>9.2f} {r['reduce_ms_per_batch'] / r['wall_ms_per_batch']:>12.1%}")
    if rows and "buffer_bytes" in rows[0]:
        print(f"reduced per batch: {rows[0]['buffer_bytes'] / 1e6:.2f} MB ({rows[0]['weights']} float64 "
              f"gradient sums + counts); ms are per batch, engine and reduce averaged over the ranks")
    prediction = predict(rows, args.batch)
    for p in prediction:
        print(f"predicted R={p['ranks']:<3} {p['link']:<20} compute {p['compute_ms']:6.2f} ms (step "
              f"{p['step_ms']:.2f} of it) + reduce "
              f"{p['reduce_ms']:6.2f} ms per batch of {args.batch} (reduce {p['reduce_share']:.0%}), "
              f"{p['samples_per_s']:.0f} samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "prediction": prediction, "load_avg_end": load,
                                               "machine": machine_info()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    rank_main(sys.argv[1:])
