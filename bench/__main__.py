"""`python -m bench`: what each trainer costs for the same result, side by side, in one run.

    python -m bench [--quick] [--json FILE] [--rows a,b,...]   main table (default)
    python -m bench scaling [--json FILE] [--png FILE]          hm2bp engine sweeps
    python -m bench tta --budget 600 [--json FILE] [--png FILE] time-to-accuracy
    python -m bench cnn [--batches 1,32] [--json FILE]           mnist-cnn speed
    python -m bench mpi [--ranks 1,2] [--json FILE]              data-parallel MPI training
    python -m bench speech [--batches 1,128] [--json FILE]       spoken-letter network speed
    python -m bench bridge [--batches 100] [--json FILE]         PyTorch bridge step vs train_step

Main table: every row trains and runs inference on the same Poisson-encoded mnist-10k training
digits (encoded once here, passed to each row as a file), same 784-800-10 network, T and batch.
Each row runs in its own child process (`python -m bench _row ...`) so that its peak memory is
the child's ru_maxrss (whole-process peak RSS: interpreter, framework, data and work) and no
row inherits another's threads, caches or allocator state. Converting the spikes to a
framework's input format happens once before timing and is not timed.

The rows' timed repeats are interleaved: repeat 1 of every row, then repeat 2 of every row, and
so on, one row working at a time while the others wait. A shared machine drifts between faster
and slower states over minutes; run one row after the other, a ratio between two rows would
compare two different states of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .common import Skipped

# The authors' CUDA code is not run here: the published log of their mnist-fc800 run on a
# Titan XP (SPEC 8), 670-940 s per 60k-sample epoch at batch 1.
AUTHORS_ROW = {
    "name": "authors-cuda",
    "measured": False,
    "train_samples_per_s": 77.0,
    "train_samples_per_s_range": [64.0, 90.0],
    "infer_samples_per_s": None,
    "peak_mb": None,
    "device": "Titan XP (published log, not measured here)",
    "note": "authors' HM2-BP CUDA code, mnist-fc800, batch 1: 670-940 s per 60k-sample epoch "
            "= 64-90 samples/s (SPEC 8); midpoint shown",
}

FULL = {"samples": 128, "batch": 32, "warmup": 1, "repeats": 5, "min_seconds": 2.0}
QUICK = {"samples": 32, "batch": 32, "warmup": 1, "repeats": 2, "min_seconds": 0.5}
ROW_TIMEOUT_S = 900


# ---------------------------------------------------------------------------------------------
# child process: one row

REPLY = "@bench "  # starts the child's protocol lines on stdout (a framework may print there too)


def _reply(message: dict[str, Any]) -> None:
    print(REPLY + json.dumps(message), flush=True)


def serve_row(args: argparse.Namespace) -> None:
    """Child: sets one row up and warms it up, replies {"ready": true} (or the row, skipped),
    then runs one timed repeat per "train" or "infer" line on stdin, replying {"rate": ...},
    and on "finish" replies the row's JSON."""
    row: dict[str, Any] = {"name": args.row}
    rss_start = common.peak_rss_mb()
    try:
        runner, facts = common.make_runner(args.row, layers=args.layers, T=args.T,
                                           threads=args.threads, peer_device=args.peer_device)
    except Skipped as exc:
        _reply({**row, "skipped": str(exc)})
        return
    row.update(facts)
    row["setup_mb"] = round(common.peak_rss_mb(), 1)
    data = np.load(args.samples_file)
    spikes, labels = data["spikes"], data["labels"]
    B = args.batch
    batches = [runner.prepare(spikes[k:k + B], labels[k:k + B])
               for k in range(0, len(labels) - B + 1, B)]
    sync = getattr(runner, "sync", None)
    timers = {
        "train": common.Repeats(runner.train, batches, B, min_seconds=args.min_seconds, sync=sync,
                                restart=getattr(runner, "restart", None)),
        "infer": common.Repeats(runner.infer, batches, B, min_seconds=args.min_seconds, sync=sync),
    }
    for timer in timers.values():
        timer.warm_up(args.warmup)
    _reply({"ready": True})
    rates: dict[str, list[float]] = {mode: [] for mode in timers}
    started: dict[str, list[float]] = {mode: [] for mode in timers}
    for line in sys.stdin:
        command = line.strip()
        if command == "finish":
            break
        started[command].append(round(time.time(), 3))
        rates[command].append(timers[command].repeat())
        _reply({"rate": rates[command][-1]})
    train, infer = common.summarize(rates["train"]), common.summarize(rates["infer"])
    out = runner.infer(batches[0])
    if "layer_spikes" in out:  # hm2bp and NumPy say how busy the network was
        row["spikes_per_sample"] = [round(int(n) / B, 1) for n in out["layer_spikes"]]
    row.update(
        train_samples_per_s=round(train["median"], 3),
        train_spread=[round(train["min"], 3), round(train["max"], 3)],
        infer_samples_per_s=round(infer["median"], 3),
        infer_spread=[round(infer["min"], 3), round(infer["max"], 3)],
        repeats=train["n"],
        repeat_started=started,  # unix times: shows the interleaving with the other rows
        peak_mb=round(common.peak_rss_mb(), 1),
        start_mb=round(rss_start, 1),
        peak_method="ru_maxrss of the row's own child process (whole-process peak RSS)",
    )
    if getattr(runner, "device", "cpu").startswith("cuda"):
        import torch

        row["device_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    _reply(row)


# ---------------------------------------------------------------------------------------------
# parent: the table


def _child_cmd(args: argparse.Namespace, name: str, samples_file: str) -> list[str]:
    cmd = [sys.executable, "-m", "bench", "_row", name, "--samples-file", samples_file,
           "--batch", str(args.batch), "--warmup", str(args.warmup),
           "--min-seconds", str(args.min_seconds),
           "--T", str(args.T), "--hidden", str(args.hidden), "--peer-device", args.peer_device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


class RowProcess:
    """One row's child process; its replies are read on a thread, so that a stuck child times
    out instead of stalling the table."""

    def __init__(self, name: str, cmd: list[str], stderr_path: str) -> None:
        self.name, self.stderr_path = name, stderr_path
        with open(stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=common.REPO, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                self.replies.put(json.loads(line[len(REPLY):]))
        self.replies.put(None)  # the child closed its output (exited)

    def ask(self, command: str | None, timeout_s: float) -> dict[str, Any]:
        """Sends `command` (None: only waits) and returns the reply, or the row as skipped with
        the reason when the child exits or times out first."""
        try:
            if command is not None:
                assert self.proc.stdin is not None
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()
            reply = self.replies.get(timeout=timeout_s)
        except queue.Empty:
            self.proc.kill()
            return {"name": self.name, "skipped": f"timed out after {timeout_s} s"}
        except BrokenPipeError:
            reply = None
        if reply is None:
            code = self.proc.wait()
            lines = Path(self.stderr_path).read_text().strip().splitlines()
            return {"name": self.name, "skipped": f"failed (exit {code}): {(lines or ['no output'])[-1]}"}
        return reply

    def close(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure_rows(args: argparse.Namespace, names: list[str]) -> list[dict[str, Any]]:
    """Starts one child per row (set-up and warm-up run at once, untimed), then times their
    repeats in turn: all rows' train repeat 1, all rows' repeat 2, ..., then the same for
    inference."""
    spikes, labels = common.bench_samples(args.samples, args.T, args.data_dir)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hm2bp-bench-") as tmp:
        samples_file = os.path.join(tmp, "samples.npz")
        np.savez(samples_file, spikes=spikes, labels=labels)
        print(f"[bench] setting up {', '.join(names)} ...", file=sys.stderr, flush=True)
        children = {name: RowProcess(name, _child_cmd(args, name, samples_file),
                                     os.path.join(tmp, name + ".err")) for name in names}
        live = []
        for name, child in children.items():
            reply = child.ask(None, ROW_TIMEOUT_S)
            if reply.get("ready"):
                live.append(name)
            else:
                rows[name] = reply
        for mode in ("train", "infer"):
            for r in range(args.repeats):
                print(f"[bench] {mode} repeat {r + 1}/{args.repeats}: {', '.join(live)}",
                      file=sys.stderr, flush=True)
                for name in list(live):
                    reply = children[name].ask(mode, ROW_TIMEOUT_S)
                    if "rate" not in reply:
                        rows[name] = reply
                        live.remove(name)
        for name in live:
            rows[name] = children[name].ask("finish", ROW_TIMEOUT_S)
        for child in children.values():
            child.close()
    return [rows[name] for name in names]


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _fmt_rate(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    spread = row.get(key.replace("_samples_per_s", "_spread"))
    rng = row.get(key + "_range")
    if rng:
        return f"{_num(rng[0])}-{_num(rng[1])}"
    if spread:
        return f"{_num(v)} ({_num(spread[0])}-{_num(spread[1])})"
    return _num(v)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3g}x" if a and b else "-"


def format_table(rows: list[dict[str, Any]]) -> str:
    """Text table: median (min-max) samples/s, peak MB and ratios per row."""
    by = {r["name"]: r for r in rows}
    numpy_train = by.get("numpy", {}).get("train_samples_per_s")
    cpu_train = by.get("hm2bp-cpu", {}).get("train_samples_per_s")
    cuda_train = by.get("hm2bp-cuda", {}).get("train_samples_per_s")
    head = ["row", "device", "thr", "train samples/s", "infer samples/s", "peak MB",
            "train vs numpy", "hm2bp-cpu / row"] + (["hm2bp-cuda / row"] if cuda_train else [])
    lines = []
    for r in rows:
        if "skipped" in r:
            lines.append([r["name"], "skipped: " + r["skipped"]])
            continue
        lines.append([
            r["name"] + ("" if r.get("measured", True) else " *"),
            str(r.get("device", "")).split(" (")[0][:14],
            str(r.get("threads", "-")).split(" ")[0][:8],
            _fmt_rate(r, "train_samples_per_s"),
            _fmt_rate(r, "infer_samples_per_s"),
            f"{r['peak_mb']:.0f}" if r.get("peak_mb") else "-",
            _ratio(r.get("train_samples_per_s"), numpy_train),
            _ratio(cpu_train, r.get("train_samples_per_s")),
        ] + ([_ratio(cuda_train, r.get("train_samples_per_s"))] if cuda_train else []))
    widths = [max(len(str(x[i])) for x in [head] + [l for l in lines if len(l) == len(head)])
              for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    for l in lines:
        out.append("  ".join(str(x).ljust(w) for x, w in zip(l, widths)) if len(l) == len(head)
                   else "  ".join(l))
    return "\n".join(out)


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    by = {r["name"]: r.get("train_samples_per_s") for r in rows if "skipped" not in r}
    out = []
    for peer, target in (("snntorch", 100), ("numpy", 50)):
        if by.get("hm2bp-cpu") and by.get(peer):
            ratio = by["hm2bp-cpu"] / by[peer]
            verdict = "met" if ratio >= target else "NOT met"
            out.append(f"hm2bp-cpu / {peer} train = {ratio:.3g}x (target >= {target}x: {verdict})")
        else:
            out.append(f"hm2bp-cpu / {peer}: not measured (a row was skipped)")
    if by.get("hm2bp-cuda") and by.get("snntorch"):  # no target: the targets are the CPU's
        device = next(r.get("device") for r in rows if r["name"] == "snntorch")
        out.append(f"hm2bp-cuda / snntorch train = {by['hm2bp-cuda'] / by['snntorch']:.3g}x "
                   f"(snntorch on {device})")
    return out


def main_table_rows(args: argparse.Namespace) -> list[str]:
    """The rows asked for, after filling args from the preset; SystemExit for bad arguments."""
    preset = QUICK if args.quick else FULL
    for k, v in preset.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.samples < args.batch:
        raise SystemExit(f"--samples must be >= --batch ({args.batch}), got {args.samples}")
    names = args.rows.split(",") if args.rows else list(common.ROWS)
    bad = [n for n in names if n not in common.ROWS]
    if bad:
        raise SystemExit(f"--rows: unknown {bad}; expected names from {', '.join(common.ROWS)}")
    return names


def main_table(args: argparse.Namespace) -> int:
    names = main_table_rows(args)
    if args.dry_run:
        print(f"dry run: bench main table, rows {names}: arguments OK")
        return 0
    t0 = time.perf_counter()
    machine = common.machine_info()
    machine["load_avg_start"] = os.getloadavg()
    rows = measure_rows(args, names) + [dict(AUTHORS_ROW)]
    machine["load_avg_end"] = os.getloadavg()
    settings = {
        "mode": "quick" if args.quick else "full", "layers": args.layers, "T": args.T,
        "batch": args.batch, "samples": args.samples, "warmup_batches": args.warmup,
        "repeats": args.repeats, "min_seconds_per_repeat": args.min_seconds,
        "order": "interleaved: repeat r of every row in turn, one row working at a time",
        "data": "mnist-10k train digits 0..samples-1, hm2bp.encode_poisson(seed=0)",
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(f"hm2bp bench ({settings['mode']}): layers {args.layers}, T={args.T}, batch "
          f"{args.batch}, {args.samples} samples, {args.repeats} repeats >= {args.min_seconds}s "
          f"after {args.warmup} warm-up batch(es); samples/s median (min-max)")
    print(f"machine: {machine['cpu_model']}, {machine['cores']} cores, python "
          f"{machine['python']}, numpy {machine['numpy']}, torch {machine['torch']}, load "
          f"{machine['load_avg_start'][0]:.2f} -> {machine['load_avg_end'][0]:.2f}")
    print(format_table(rows))
    print("* not measured here: " + AUTHORS_ROW["note"])
    print("peak MB: ru_maxrss of each row's child process (interpreter + framework + data).")
    for line in _targets(rows):
        print(line)
    print(f"total {settings['wall_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "settings": settings, "rows": rows}, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# CLI


def _sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--T", type=int, default=common.T_STEPS, help="time steps (default 400)")
    p.add_argument("--hidden", type=int, default=common.LAYERS[1],
                   help="hidden layer size (default 800; smaller only for smoke tests)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for hm2bp-cpu and the peers (default: all cores)")
    p.add_argument("--peer-device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="torch device of snnTorch/SpikingJelly/Norse (auto: cuda when torch "
                        "sees a GPU, else cpu)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI smoke size (< 3 min on 2 cores)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--rows", help=f"comma-separated subset of {','.join(common.ROWS)}")
    p.add_argument("--samples", type=int, help="distinct training digits cycled by every row")
    p.add_argument("--batch", type=int, help="batch size of every row (default 32)")
    p.add_argument("--warmup", type=int, help="untimed warm-up batches")
    p.add_argument("--repeats", type=int, help="timed repeats (median and min-max reported)")
    p.add_argument("--min-seconds", type=float, help="minimum duration of one timed repeat")
    p.add_argument("--data-dir", help=f"mnist-10k folder (default {common.DEFAULT_DATA_DIR})")
    p.add_argument("--dry-run", action="store_true",
                   help="check the arguments of the main table or `cnn` and stop (bench/gpu_check.sh --dry-run)")
    _sizes(p)
    sub = p.add_subparsers(dest="command", metavar="{scaling,tta,cnn,mpi,speech,bridge}")
    from . import bridge, cnn, mpi, scaling, speech, time_to_accuracy

    scaling.add_parser(sub)
    time_to_accuracy.add_parser(sub)
    cnn.add_parser(sub)
    mpi.add_parser(sub)
    speech.add_parser(sub)
    bridge.add_parser(sub)
    row = sub.add_parser("_row")  # internal: one row in a child process
    row.add_argument("row", choices=common.ROWS)
    for flag, kind in (("--samples-file", str), ("--batch", int), ("--warmup", int),
                       ("--min-seconds", float)):
        row.add_argument(flag, type=kind, required=True)
    _sizes(row)
    args = p.parse_args(argv)
    args.layers = [common.LAYERS[0], args.hidden, common.LAYERS[2]]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "_row":
        serve_row(args)
        return 0
    if args.dry_run and args.command not in (None, "cnn"):
        raise SystemExit(f"--dry-run: only the main table and `cnn` check their arguments, not {args.command}")
    if args.command == "scaling":
        from . import scaling

        return scaling.main(args)
    if args.command == "tta":
        from . import time_to_accuracy

        return time_to_accuracy.main(args)
    if args.command == "cnn":
        from . import cnn

        return cnn.main(args)
    if args.command == "mpi":
        from . import mpi

        return mpi.main(args)
    if args.command == "speech":
        from . import speech

        return speech.main(args)
    if args.command == "bridge":
        from . import bridge

        return bridge.main(args)
    return main_table(args)


if __name__ == "__main__":
    sys.exit(main())
