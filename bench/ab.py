"""A/B speed of two builds of hm2bp, measured alternately in one run (this machine drifts by
25% over minutes, so builds timed one after the other compare the machine, not the code).

    pip install --no-deps --target /tmp/a <old checkout>; pip install --no-deps --target /tmp/b .
    python -m bench.ab /tmp/a /tmp/b [--net fc800|cnn] [--rounds 6] [--batch 32] [--threads 2]
                                     [--clock wall|cpu] [--json FILE]

Each round runs the network's benchmark once per build (in a fresh process, PYTHONPATH set to
that build's folder, the order A B in even rounds and B A in odd ones) and records its
samples/s per path: `python -m bench.engine` for mnist-fc800 (train_step, train_step_images,
infer, forward), `python -m bench cnn` for mnist-cnn (cnn-train, cnn-infer; no peer rows).
Prints, per path, the median of the per-round ratios B / A and their range. --clock cpu times
by the benchmark process's CPU time (with --threads 1: the engine's work, which a loaded
machine disturbs far less than the wall clock). The builds must be plain installs (pip
--target), and the Python running this must have no editable install of hm2bp: an editable
install's import hook would load the same build on both sides (checked before the first round).
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
    args = p.parse_args(argv)
    for build in (args.a, args.b):
        check_build_loads(build)
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for r in range(args.rounds):
        for name in ("a", "b") if r % 2 == 0 else ("b", "a"):
            runs[name].append(run_engine_bench(getattr(args, name), args))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{path} {runs['b'][-1][path] / runs['a'][-1][path]:.3f}" for path in runs["a"][-1]), flush=True)
    summary = {}
    for path in runs["a"][0]:
        ratios = [b[path] / a[path] for a, b in zip(runs["a"], runs["b"])]
        summary[path] = {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios), "a_samples_per_s": [a[path] for a in runs["a"]],
                         "b_samples_per_s": [b[path] for b in runs["b"]]}
    print(f"B / A samples/s ({args.net}, batch {args.batch}, {args.clock} clock, {args.rounds} alternating rounds)")
    for path, s in summary.items():
        print(f"  {path:<20} median {s['ratio_median']:.3f}  range {s['ratio_min']:.3f}-{s['ratio_max']:.3f}  "
              f"A median {statistics.median(s['a_samples_per_s']):.0f}/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "paths": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
