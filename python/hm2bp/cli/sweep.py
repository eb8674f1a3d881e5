"""Many independent trainings at once: ``hm2bp-train --seeds 0-4 [--sweep lr=1e-3,5e-4 ...]``.

Every combination of the --sweep values (a grid, in the order given) is trained once per seed,
each run in its own directory <out>/<setting>-seed=<n> with its own metrics and checkpoint.
Under mpirun the runs go to the ranks through mpi4py's pool executor (rank 0 hands them out,
the other R - 1 ranks train); without MPI to --jobs local processes. A run that fails is
recorded with its reason and the others go on. At the end <out>/summary.md and summary.json
give, per setting, the final and best test accuracy as mean +- std over its seeds (sample
standard deviation, as the paper reports them) and the wall time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import itertools
import json
import math
import multiprocessing
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_io
from ..config import ConfigError, RunConfig, build_config
from .._suggest import did_you_mean
from ..config.files import MAX_CONFIG_BYTES, tomllib
from ..model.network import default_threads
from ..train import runstate
from ..train.trainer import Trainer

__all__ = ["add_arguments", "parse_seeds", "parse_sweep", "requested", "run", "summarize", "train_one"]

_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
STOP_FILE = ".stop"  # in the sweep directory: written when the sweep is interrupted
_worker_interrupted = False  # in a worker process: one of its runs was stopped by a signal
# Flags of hm2bp-train that are not config keys or that a sweep sets itself.
_NOT_OVERRIDES = {"preset", "seed"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", metavar="LIST",
                   help="train one run per seed (e.g. 0-4 or 0,3,7) and write summary.md/.json "
                        "with the accuracies' mean +- std")
    p.add_argument("--sweep", action="append", metavar="KEY=V1,V2",
                   help="train every value of a config key (repeat for a grid; TOML values, "
                        "e.g. lr=1e-3,5e-4 or vth=[20,8],[15,8]; or a TOML file of key = [values]), "
                        "once per --seeds seed")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="runs at once without MPI (default: one per core, at most one per run)")


def requested(args: argparse.Namespace) -> bool:
    return args.seeds is not None or bool(args.sweep)


# A sweep of more runs than this is a typo (0-99999999), not a plan.
MAX_RUNS = 10_000


def parse_seeds(text: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,3,7'; '1-3,9'."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,19})\s*(?:-\s*(\d{1,19})\s*)?", part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"invalid --seeds {safe_io.short(text)}: expected seeds like 0-4 or 0,3,7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi - lo + 1 + len(seeds) > MAX_RUNS:  # checked before the list is made
            raise ConfigError(f"invalid --seeds {safe_io.short(text)}: more than {MAX_RUNS} runs")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"invalid --seeds {safe_io.short(text)}: a seed is given twice")
    return seeds


def _split_values(text: str) -> list[str]:
    """Split at the commas outside brackets and quotes."""
    values, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    values.append(text[start:])
    return [v.strip() for v in values]


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: optimizer=adam,sgd


def parse_sweep(items: list[str]) -> dict[str, list[Any]]:
    """['lr=1e-3,5e-4', 'vth=[20,8],[15,8]'] -> {'lr': [0.001, 0.0005], 'vth': [[20, 8], [15, 8]]};
    an item without '=' names a TOML file of such lists (lr = [1e-3, 5e-4])."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if sep:
            if not values.strip():
                raise ConfigError(f"invalid --sweep {item!r}: expected KEY=V1,V2,... or a TOML file")
            pairs = [(key, [_value(v) for v in _split_values(values)], f"--sweep {item!r}")]
        else:
            pairs = [(k, v, f"{item}: {k}") for k, v in _sweep_file(item).items()]
        for key, values, where in pairs:
            key = key.strip().replace("-", "_")
            if key == "seed":
                raise ConfigError(f"{where}: sweep seeds with --seeds 0-4")
            if key not in _FIELDS or key == "preset":
                raise ConfigError(f"{where}: {key!r} is not a config key{did_you_mean(key, _FIELDS)}; allowed: "
                                  f"{', '.join(sorted(_FIELDS - {'preset', 'seed'}))}")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: expected a list of values, got {values!r}")
            if key in grid:
                raise ConfigError(f"{where}: {key} is swept twice")
            grid[key] = values
    return grid


def _sweep_file(path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(safe_io.read_text(path, MAX_CONFIG_BYTES, what="--sweep file", error=ConfigError))
    except FileNotFoundError:
        raise ConfigError(f"invalid --sweep {safe_io.short(path)}: expected KEY=V1,V2,... or a TOML file "
                          f"(not found)") from None
    except RecursionError:
        raise ConfigError(f"--sweep {path}: not a sweep: arrays or tables nested too deeply") from None
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:  # tomllib's errors are ValueErrors
        raise ConfigError(f"--sweep {path}: not a readable TOML file ({safe_io.short(str(exc), 200)})") from None


def _label(setting: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in setting.items()) or "(base)"


def _dirname(setting: dict[str, Any], seed: int | None) -> str:
    parts = [f"{k}={json.dumps(v)}" for k, v in setting.items()]
    parts += [] if seed is None else [f"seed={seed}"]
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", "-".join(parts)).strip("_") or "run"


def train_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One run of a sweep (in a worker process or rank): never raises, a failure is a record."""
    record = _record(spec)
    t0 = time.perf_counter()
    global _worker_interrupted
    if _worker_interrupted or Path(spec["stop_file"]).exists():  # the sweep was stopped before this run
        return {**record, "status": "not started", "error": "the sweep was interrupted", "seconds": 0.0}
    try:
        config = build_config(spec["preset"], spec["config_file"], **spec["overrides"])
        result = Trainer(config, spec["out"]).fit()
        record.update(
            status="interrupted" if result.interrupted else "ok",
            final_test_accuracy=result.final_test_accuracy,
            best_test_accuracy=result.best_test_accuracy, best_epoch=result.best_epoch,
            epochs=result.epochs_completed)
        if result.interrupted:  # a Ctrl-C reaches the workers too: this one starts no more runs
            _worker_interrupted = True
            record["error"] = f"stopped by {signal.Signals(result.signal).name}"
    except BaseException as exc:  # noqa: BLE001 (a failed run must not stop the others)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}".replace("\n", " "))
    record["seconds"] = time.perf_counter() - t0
    return record


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def summarize(records: list[dict[str, Any]], settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting: seeds, runs that completed, final and best test accuracy mean and sample
    std over them, mean wall time per run."""
    rows = []
    for setting in settings:
        runs = [r for r in records if r["setting"] == setting]
        ok = [r for r in runs if r["status"] == "ok"]
        final = _mean_std([r["final_test_accuracy"] for r in ok])
        best = _mean_std([r["best_test_accuracy"] for r in ok])
        rows.append({
            "setting": setting, "seeds": [r["seed"] for r in runs], "runs": len(runs), "completed": len(ok),
            "final_test_accuracy_mean": final[0], "final_test_accuracy_std": final[1],
            "best_test_accuracy_mean": best[0], "best_test_accuracy_std": best[1],
            "seconds_mean": float(np.mean([r["seconds"] for r in runs])) if runs else None,
        })
    return rows


def _percent(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _markdown(title: str, rows: list[dict[str, Any]], records: list[dict[str, Any]], wall: float) -> str:
    lines = [f"# {title}", "",
             f"{len(records)} runs, wall time {wall:.1f} s. Test accuracy in %: mean ± sample std "
             f"over the seeds whose run completed.", "",
             "| setting | seeds | completed | final test accuracy | best test accuracy | s per run |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {_label(row['setting'])} | {','.join(map(str, row['seeds']))} | "
                     f"{row['completed']}/{row['runs']} | "
                     f"{_percent(row['final_test_accuracy_mean'], row['final_test_accuracy_std'])} | "
                     f"{_percent(row['best_test_accuracy_mean'], row['best_test_accuracy_std'])} | "
                     f"{row['seconds_mean']:.1f} |")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Runs that did not complete:", ""]
        lines += [f"- {r['name']}: {r['status']}: {r.get('error', '')}" for r in failed]
    return "\n".join(lines) + "\n"


def _base_overrides(args: argparse.Namespace) -> dict[str, Any]:
    # Every hm2bp-train flag named after a config key, so new flags join sweeps on their own.
    return {k: v for k, v in vars(args).items() if k in _FIELDS - _NOT_OVERRIDES and v is not None}


def _specs(args: argparse.Namespace, out: Path) -> tuple[list[dict], list[dict]]:
    grid = parse_sweep(args.sweep or [])
    if args.seeds is not None and args.seed is not None:
        raise ConfigError("--seed and --seeds cannot be combined: list every seed in --seeds")
    seeds: list[int | None] = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    base = _base_overrides(args)
    runs = len(seeds) * math.prod(len(v) for v in grid.values())
    if runs > MAX_RUNS:  # before the grid is expanded
        raise ConfigError(f"--sweep and --seeds ask for {runs} runs, more than {MAX_RUNS}")
    settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    specs, names = [], set()
    for setting in settings:
        for seed in seeds:
            name = _dirname(setting, seed)
            if name in names:
                name = f"{name}-{len(names)}"
            names.add(name)
            overrides = {**base, **setting, **({} if seed is None else {"seed": seed})}
            specs.append({"name": name, "setting": setting, "seed": seed, "out": str(out / name),
                          "preset": args.preset, "config_file": args.config, "overrides": overrides,
                          "stop_file": str(out / STOP_FILE)})
    for spec in specs:  # every config is checked before any run starts
        build_config(spec["preset"], spec["config_file"], **spec["overrides"])
    return specs, settings


def run(args: argparse.Namespace, comm: Any) -> int:
    """hm2bp-train --seeds/--sweep: every run, then the summary (module doc). A failure before
    the runs start is raised on rank 0 (hm2bp-train then aborts the waiting workers)."""
    use_mpi = comm is not None and comm.size > 1
    if use_mpi and not comm.is_root:
        from mpi4py.futures import MPICommExecutor

        with MPICommExecutor(comm.comm, root=0):  # a worker: trains what rank 0 hands out
            pass
        return _finish(comm, 0)
    if args.resume:
        raise ConfigError("--seeds/--sweep start new runs; resume one of them with --resume <its directory>")
    if args.plot:
        raise ConfigError("--plot draws one run; it cannot be combined with --seeds/--sweep")
    if args.jobs is not None and (args.jobs < 1 or use_mpi):
        raise ConfigError("--jobs must be >= 1" if not use_mpi else
                          "--jobs is for local processes; under mpirun the runs go to the ranks")
    out = Path(args.out) if args.out else runstate.make_run_dir(Path("runs"), f"{args.preset or 'sweep'}-sweep")
    out.mkdir(parents=True, exist_ok=True)
    (out / STOP_FILE).unlink(missing_ok=True)
    specs, settings = _specs(args, out)
    jobs = None
    if not use_mpi:
        cores = default_threads()
        jobs = min(args.jobs or cores, len(specs))
        for spec in specs:  # the cores shared between the runs at once
            spec["overrides"].setdefault("threads", max(1, cores // jobs))
    where = f"{comm.size - 1} MPI worker rank(s)" if use_mpi else f"{jobs} local processes"
    print(f"{len(specs)} runs ({len(settings)} setting(s) x {len(specs) // len(settings)} seed(s)) on "
          f"{where}, in {out}", flush=True)
    t0 = time.perf_counter()
    records, signum = _execute(specs, comm if use_mpi else None, jobs)
    wall = time.perf_counter() - t0
    rows = summarize(records, settings)
    title = f"hm2bp sweep: {args.preset or args.config or 'mnist-mini'}"
    text = _markdown(title, rows, records, wall)
    runstate.atomic_write(out / "summary.md", lambda fh: fh.write(text.encode()))
    runstate.atomic_write(out / "summary.json", lambda fh: fh.write(json.dumps(
        {"title": title, "wall_seconds": wall, "settings": rows, "runs": records}, indent=1).encode()))
    print(text, end="", flush=True)
    failed = [r for r in records if r["status"] != "ok"]
    if signum is not None:
        print(f"interrupted ({signal.Signals(signum).name}): {len(failed)} of {len(records)} runs did not "
              f"complete; continue one with hm2bp-train --resume <its directory>", file=sys.stderr)
        return _finish(comm if use_mpi else None, 128 + int(signum))
    if failed:
        print(f"hm2bp-train: error: {len(failed)} of {len(records)} runs did not complete "
              f"(see {out / 'summary.md'})", file=sys.stderr)
    return _finish(comm if use_mpi else None, 2 if failed else 0)


def _execute(specs: list[dict], comm: Any, jobs: int | None) -> tuple[list[dict[str, Any]], int | None]:
    if comm is not None:
        from mpi4py.futures import MPICommExecutor

        with MPICommExecutor(comm.comm, root=0) as executor:
            return _collect(executor, specs)
    # spawn: a fresh interpreter per worker (the engine's thread pools must not be forked)
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs,
                                                mp_context=multiprocessing.get_context("spawn")) as executor:
        return _collect(executor, specs)


def _collect(executor: concurrent.futures.Executor, specs: list[dict]) -> tuple[list[dict[str, Any]], int | None]:
    """Every run's record, in the order of specs, and the signal that interrupted the sweep
    (None): after SIGINT/SIGTERM/SIGHUP no run starts, and the running ones (which a Ctrl-C
    reaches too) save their last epoch and report interrupted."""
    futures = [executor.submit(train_one, spec) for spec in specs]
    records, signum = [], None
    for spec, future in zip(specs, futures):
        while True:
            try:
                records.append(future.result())
                break
            except KeyboardInterrupt as exc:
                signum = signum or getattr(exc, "signum", signal.SIGINT)
                Path(spec["stop_file"]).touch()  # runs already queued to a worker see it and return
                for f in futures:
                    f.cancel()
            except concurrent.futures.CancelledError:
                records.append({**_record(spec), "status": "not started", "error": "the sweep was interrupted",
                                "seconds": 0.0})
                break
            except Exception as exc:  # the worker itself died (e.g. killed, out of memory)
                records.append({**_record(spec), "status": "failed",
                                "error": f"worker lost: {type(exc).__name__}: {exc}", "seconds": 0.0})
                break
    return records, signum


def _record(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("name", "setting", "seed", "out")}


def _finish(comm: Any, code: int) -> int:
    """Under MPI all ranks are done: finalize, so that the exit code is returned as is (not an
    abort of the job, which hm2bp-train does for a rank that fails alone)."""
    if comm is not None:
        from mpi4py import MPI

        MPI.Finalize()
    return code
