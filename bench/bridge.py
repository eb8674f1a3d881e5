"""`python -m bench bridge`: what a training step costs through the PyTorch bridge
(hm2bp.torch: HM2-BP's gradients into .grad, then torch's Adam or the engine's own step,
NetworkOptimizer) against hm2bp's own Network.train_step (the same forward, backward and Adam,
all in the engine), with the bridge's
parameters shared with the engine (its default on the CPU: (n_out, n_in) views of the engine's
transposed memory), shared in the engine's own orientation (layout="stored": contiguous (n_in,
n_out)), and as copies (share_weights=False: copied into the engine every step, gradients
transposed out).

Both train the same 784-800-10 network (float32, T = 200 unless --T, the paper's regularization) on the
same batches of the bundled mnist-mini digits from the same initial weights. The row "engine calls
of a step" times the engine calls a NetworkOptimizer step makes (gradients out, step from them) without
torch: the floor the bridge's Python adds to. The rounds are
interleaved (native, then each bridge variant, then again),
so that the ratios compare one state of a shared machine; the median round is reported, as wall
time and as the process's CPU time (all its threads): on a machine shared with other jobs the CPU
time with --threads 1 is the steadier measure of the work each step does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bridge", help="PyTorch bridge step against Network.train_step")
    p.add_argument("--batches", type=int, default=100, help="batches per timed round")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--T", type=int, default=200, help="time steps per sample (mnist-fc800's preset: 400)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    p.add_argument("--threads", type=int, default=None, help="engine and torch threads (default: all cores)")
    p.add_argument("--only", metavar="TEXT", help="time only the rows whose name contains TEXT (and the native "
                                                 "step), e.g. NetworkOptimizer: more rounds in the same time")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def main(args: argparse.Namespace) -> int:
    # hm2bp first, as docs/interop.md advises: its idle OpenMP threads then sleep (torch first
    # would start the shared runtime with spinning ones, whatever hm2bp asks after)
    import hm2bp
    import hm2bp.torch as ht
    import torch
    from hm2bp import data
    from hm2bp.model.network import default_threads

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    train = data.load("mnist-mini", "train")
    n = args.batches * args.batch
    spikes = hm2bp.encode_poisson(train.images[:n], T=args.T, seed=0, sample_index=0)
    labels = train.labels[:n].astype(np.int64)
    batches = [slice(k, k + args.batch) for k in range(0, n, args.batch)]
    spikes_t, labels_t = torch.from_numpy(spikes), torch.from_numpy(labels)

    def network() -> hm2bp.Network:
        return hm2bp.Network([784, 800, 10], vth=[20.0, 8.0], seed=0, threads=threads)

    def native() -> tuple[float, float]:
        net = network()
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            net.train_step(spikes[b], labels[b], lr=1e-3)
        return time.perf_counter() - t0, time.process_time() - c0

    def bridge(share: bool, layout: str = "canonical", engine_step: bool = False, **adam: Any) -> tuple[float, float]:
        model = ht.SpikingNetwork(network(), share_weights=share, layout=layout)
        opt = (ht.NetworkOptimizer(model, lr=1e-3) if engine_step
               else torch.optim.Adam(model.parameters(), lr=1e-3, **adam))
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            opt.zero_grad()
            ht.hm2bp_loss(model, spikes_t[b], labels_t[b]).backward()
            opt.step()
        return time.perf_counter() - t0, time.process_time() - c0

    def engine_calls() -> tuple[float, float]:
        """The engine's share of a NetworkOptimizer step, without torch or Network's checks: the
        gradients written into arrays made once, then the step from them, on shared weights (so
        each run recomputes the column sums). What is left of the bridge row is Python's."""
        model = ht.SpikingNetwork(network())
        engine = model.network._engine
        grads = [np.empty(p.shape[::-1], np.float32).T for p in model.network.get_weights()]  # stored layout
        bits = np.ascontiguousarray(spikes).view(np.uint8)
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            engine.run_dense(bits[b], "gradients", labels[b], None, 0.0, False, "mean", grads, True)
            engine.step_gradients(grads, 1e-3)
        return time.perf_counter() - t0, time.process_time() - c0

    rows = {"native train_step": native, "engine calls of a step": engine_calls,
            "bridge, NetworkOptimizer": lambda: bridge(True, engine_step=True),
            "stored, NetworkOptimizer": lambda: bridge(True, "stored", engine_step=True),
            "bridge, Adam()": lambda: bridge(True),
            "bridge, Adam(fused=True)": lambda: bridge(True, fused=True),
            "stored, Adam(fused=True)": lambda: bridge(True, "stored", fused=True),
            "copies, Adam()": lambda: bridge(False),
            "copies, Adam(fused=True)": lambda: bridge(False, fused=True)}
    if args.only:
        rows = {name: run for name, run in rows.items()
                if name in ("native train_step", "engine calls of a step") or args.only in name}
    for run in rows.values():  # warm-up: allocations, page faults, torch's lazy imports
        run()
    wall: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            w, c = run()
            wall[name].append(w)
            cpu[name].append(c)
    base_wall = statistics.median(wall["native train_step"])
    base_cpu = statistics.median(cpu["native train_step"])
    print(f"{args.batches} batches of {args.batch}, 784-800-10 float32, T = {args.T}, {threads} threads, "
          f"median of {args.rounds} interleaved rounds (torch {torch.__version__}, OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY')})")
    result = {}
    for name in rows:
        mw, mc = statistics.median(wall[name]), statistics.median(cpu[name])
        result[name] = {"wall_s": wall[name], "cpu_s": cpu[name], "wall_ratio": mw / base_wall,
                        "cpu_ratio": mc / base_cpu}
        print(f"  {name:26s} wall {mw:6.2f} s ({1000 * mw / args.batches:6.1f} ms/step, {mw / base_wall:4.2f}x)"
              f"   CPU {mc:6.2f} s ({mc / base_cpu:4.2f}x)   rounds (wall) "
              f"{', '.join(f'{v:.2f}' for v in wall[name])}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"batches": args.batches, "batch": args.batch, "T": args.T, "threads": threads,
                       "rows": result}, fh, indent=2)
    return 0
