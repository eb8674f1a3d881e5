"""A/B speed of two builds of hm2bp, measured alternately in one run (this machine drifts by
25% over minutes, so builds timed one after the other compare the machine, not the code).

    pip install --no-deps --target /tmp/a <old checkout>; pip install --no-deps --target /tmp/b .
    python -m bench.ab /tmp/a /tmp/b [--net fc800|cnn] [--rounds 6] [--batch 32] [--threads 2]
                                     [--clock wall|cpu] [--json FILE]
                                     [--interleave [--chunk-seconds 0.25] [--pairs 8] [--paths P,...]
                                      [--trained N]]

Each round runs the network's benchmark once per build (in a fresh process, PYTHONPATH set to
that build's folder, the order A B in even rounds and B A in odd ones) and records its
samples/s per path: `python -m bench.engine` for mnist-fc800 (train_step, train_step_images,
infer, forward, trainer), `python -m bench cnn` for mnist-cnn (cnn-train, cnn-infer; no peer
rows; its cnn-trainer path, as the trainer trains, is timed with --interleave only).
Prints, per path, the median of the per-round ratios B / A and their range. --clock cpu times
by the benchmark process's CPU time (with --threads 1: the engine's work, which a loaded
machine disturbs far less than the wall clock). The builds must be plain installs (pip
--target), and the Python running this must have no editable install of hm2bp: an editable
install's import hook would load the same build on both sides (checked before the first round).

--interleave: this VM's speed swings by +-25% within seconds, more than a few percent of code
change, so rounds of whole benchmark processes seconds apart resolve little. With the flag both
builds run at once in two worker processes that keep their network and data (each sleeps on its
pipe while the other runs); each round is --pairs pairs of chunks, one per build and path, the
same samples and --chunk-seconds long (A's speed sets the call count), in the order A B, then B A.
A round's ratio is A's time over B's for the same work; the median and range over rounds are
printed as without the flag, so that the two builds are compared a fraction of a second apart.
Every round starts fresh workers (a process's memory placement is part of its speed).

--trained N: the training paths restart from the initial weights after each pass over the
--samples digits, so by default they time the first few hundred samples of a training from
random weights, where the output layer is silent and few hidden neurons fire; newer engines gain
most there, presumably by skipping spike-driven work (mnist-fc800 at batch 1, 2026-12-07: 1.64x 281e671 on those samples, 1.27x over a
whole first epoch on 10,000 digits). With N both workers first train their network on N other
digits (untimed; the engines train bit for bit alike) and restart there instead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import T_STEPS, Repeats, path_calls

ROOT = Path(__file__).resolve().parents[1]


def check_build_loads(build: str) -> None:
    """Exit with a message unless `python` with PYTHONPATH=build imports hm2bp from `build`: an
    editable install of hm2bp in this Python's environment (its import hook takes precedence over
    PYTHONPATH) would load that one build on both sides."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([build, str(ROOT)])}
    found = subprocess.run([sys.executable, "-c", "import hm2bp; print(hm2bp.__file__)"], env=env, cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if not found or Path(build).resolve() not in Path(found).resolve().parents:
        sys.exit(f"python -m bench.ab: {sys.executable} imports hm2bp from {found or 'nowhere'}, not from {build}; "
                 f"run it with a Python that has no (editable) install of hm2bp")


def run_engine_bench(build: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        common = ["--samples", str(args.samples), "--repeats", str(args.repeats), "--min-seconds",
                  str(args.min_seconds), "--clock", args.clock, "--json", out.name]
        if args.net == "cnn":
            cmd = [sys.executable, "-m", "bench", "cnn", "--batches", str(args.batch), "--peers", "", *common]
        else:
            cmd = [sys.executable, "-m", "bench.engine", "--batch", str(args.batch), *common]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([build, str(ROOT)])}
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        result = json.loads(Path(out.name).read_text())
    if args.net == "cnn":
        (row,) = [r for r in result["rows"] if r["backend"] == "cpu"]
        return {"cnn-train": row["train_samples_per_s"]["median"], "cnn-infer": row["infer_samples_per_s"]["median"]}
    return {path: r["median"] for path, r in result["samples_per_s"].items()}


def workload(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark's paths as bench.engine / bench cnn build them."""
    if args.net == "cnn":
        from .cnn import workload as cnn_workload

        return cnn_workload("cpu", args.batch, args.threads, args.samples, None, args.trained)
    from .engine import workload as fc_workload

    return fc_workload(args.threads, args.batch, args.samples, "float32", T_STEPS, args.trained)


def worker(args: argparse.Namespace) -> int:
    """An interleaved side: build the workload, warm each path up, report the seconds of one call
    per path, then answer each line "PATH CALLS" on stdin with the seconds those calls took."""
    try:
        w = workload(args)
    except ValueError as exc:  # e.g. --trained beyond the digits on disk
        sys.exit(f"python -m bench.ab: {exc}")
    calls = {path: path_calls(w, path, args.batch) for path in w["steps"]}
    timers = {path: Repeats(step, calls[path][0], calls[path][1], min_seconds=0.0, restart=w["restart"][path],
                            clock=args.clock) for path, step in w["steps"].items()}
    for timer in timers.values():
        timer.warm_up(1)
    print(json.dumps({"seconds": {path: timer.timed(2) / 2 for path, timer in timers.items()},
                      "samples": {path: calls[path][1] for path in timers}}), flush=True)
    for line in sys.stdin:
        path, calls = line.split()
        print(repr(timers[path].timed(int(calls))), flush=True)
    return 0


class Side:
    """One build's interleaved worker process."""

    def __init__(self, build: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, "-m", "bench.ab", build, build, "--worker", "--net", args.net, "--batch",
               str(args.batch), "--samples", str(args.samples), "--clock", args.clock, "--trained", str(args.trained)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([build, str(ROOT)])}
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = json.loads(self._line())
        self.call_seconds: dict[str, float] = first["seconds"]
        self.call_samples: dict[str, int] = first["samples"]  # a batch, or a trainer path's run of them

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"python -m bench.ab: a worker stopped (exit {self.proc.wait()})")
        return line

    def run(self, path: str, calls: int) -> float:
        self.proc.stdin.write(f"{path} {calls}\n")
        self.proc.stdin.flush()
        return float(self._line())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def interleaved(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    """Per round and build, samples/s per path from alternating chunks (see the module doc).
    Each round starts fresh workers, so that a process's own luck (where its memory landed)
    is drawn again every round, as without --interleave."""
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    paths: list[str] = []
    for r in range(args.rounds):
        sides = {"a": Side(args.a, args), "b": Side(args.b, args)}
        try:
            if not paths:  # the network's paths, as the first worker reports them
                paths = list(sides["a"].call_seconds)
                unknown = set(args.paths or ()) - set(paths)
                if unknown:
                    sys.exit(f"python -m bench.ab: --paths {','.join(sorted(unknown))}: the {args.net} paths are "
                             f"{','.join(paths)}")
                paths = [p for p in paths if not args.paths or p in args.paths]
            calls = {p: max(1, round(args.chunk_seconds / sides["a"].call_seconds[p])) for p in paths}
            seconds = {name: dict.fromkeys(paths, 0.0) for name in sides}
            for pair in range(args.pairs):
                for path in paths:
                    for name in ("a", "b") if (r + pair) % 2 == 0 else ("b", "a"):
                        seconds[name][path] += sides[name].run(path, calls[path])
        finally:
            for side in sides.values():
                side.close()
        for name in sides:
            runs[name].append({p: calls[p] * args.pairs * sides["a"].call_samples[p] / seconds[name][p]
                               for p in paths})
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{p} {runs['b'][-1][p] / runs['a'][-1][p]:.3f}" for p in paths), flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="folder with build A (pip install --target)")
    p.add_argument("b", help="folder with build B")
    p.add_argument("--net", choices=("fc800", "cnn"), default="fc800", help="mnist-fc800 or mnist-cnn")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--interleave", action="store_true", help="both builds in live workers, timed in alternating "
                                                                 "short chunks (see the module doc)")
    p.add_argument("--chunk-seconds", type=float, default=0.25, help="--interleave: length of one chunk")
    p.add_argument("--pairs", type=int, default=8, help="--interleave: chunk pairs per round")
    p.add_argument("--paths", type=lambda v: [x for x in v.split(",") if x], default=None,
                   help="--interleave: comma-separated paths to time (default: all of the network's)")
    p.add_argument("--trained", type=int, default=0, metavar="N",
                   help="--interleave: train the network on N other digits first (untimed, the same in both builds), "
                        "so that training paths time a network in training rather than its first samples")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.paths and not args.interleave:
        p.error("--paths needs --interleave (without it each round runs the whole benchmark)")
    if args.trained and not (args.interleave or args.worker):
        p.error("--trained needs --interleave")
    if args.trained < 0:
        p.error(f"--trained must be >= 0, got {args.trained}")
    if args.worker:
        return worker(args)
    for build in (args.a, args.b):
        check_build_loads(build)
    if args.interleave:
        runs = interleaved(args)
        return report(args, runs)
    runs = {"a": [], "b": []}
    for r in range(args.rounds):
        for name in ("a", "b") if r % 2 == 0 else ("b", "a"):
            runs[name].append(run_engine_bench(getattr(args, name), args))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{path} {runs['b'][-1][path] / runs['a'][-1][path]:.3f}" for path in runs["a"][-1]), flush=True)
    return report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> int:
    """Print (and with --json write) per path the median and range of the per-round ratios."""
    summary = {}
    for path in runs["a"][0]:
        ratios = [b[path] / a[path] for a, b in zip(runs["a"], runs["b"])]
        summary[path] = {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios), "a_samples_per_s": [a[path] for a in runs["a"]],
                         "b_samples_per_s": [b[path] for b in runs["b"]]}
    how = f"{args.pairs} interleaved chunk pairs each" if args.interleave else "alternating"
    print(f"B / A samples/s ({args.net}, batch {args.batch}, {args.clock} clock, {args.rounds} rounds, {how})")
    for path, s in summary.items():
        print(f"  {path:<20} median {s['ratio_median']:.3f}  range {s['ratio_min']:.3f}-{s['ratio_max']:.3f}  "
              f"A median {statistics.median(s['a_samples_per_s']):.0f}/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "paths": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
