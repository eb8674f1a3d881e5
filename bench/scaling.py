"""`python -m bench scaling`: how the hm2bp engine's cost grows with the problem.

One sweep per knob around the mnist-fc800 base point (hidden 800, T 400, 1x rate, batch 32),
the other knobs held at the base:
- hidden size 200, 400, 800, 1600;
- time steps 100, 200, 400, 800;
- input firing rate 0.5x, 1x, 2x the MNIST rate: spikes from the contract RNG with
  rate = scale * p / (5.5 * 255), our own encoder (common.encode_rate_scaled); scaling the
  images instead would clip bright pixels at 255 and not double their rate;
- batch size 1, 8, 32, 128.
Each point records train and inference samples/s (median of repeats) and the spike traffic
per sample, spikes x fan-out = sum over layers of (spikes entering the layer) x (its neurons),
averaged over the timed training batches. If the engine's cost is linear in that traffic,
seconds per sample / (spikes x fan-out) is flat across points; the JSON gives that number
(ns per spike-synapse event) and the plot shows time per sample against the traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .common import Skipped

BASE = {"hidden": 800, "T": 400, "rate": 1.0, "batch": 32}
SWEEPS = {
    "hidden": [200, 400, 800, 1600],
    "T": [100, 200, 400, 800],
    "rate": [0.5, 1.0, 2.0],
    "batch": [1, 8, 32, 128],
}
LABELS = {"hidden": "hidden neurons", "T": "time steps T", "rate": "input rate (x MNIST)",
          "batch": "batch size"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scaling", help="hm2bp engine sweeps: hidden, T, input rate, batch")
    p.add_argument("--json", default="bench-scaling.json", help="output JSON file")
    p.add_argument("--png", default="bench-scaling.png", help="output plot (matplotlib)")
    p.add_argument("--row", default="hm2bp-cpu", choices=common.HM2BP_ROWS + ("numpy",),
                   help="implementation to sweep (default hm2bp-cpu; numpy for smoke tests)")
    p.add_argument("--quick", action="store_true", help="1 repeat of >= 0.2 s per point")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--min-samples", type=int, default=64,
                   help="distinct digits per point (at least one batch)")
    p.add_argument("--sweeps", default=",".join(SWEEPS),
                   help="comma-separated subset of " + ",".join(SWEEPS))
    p.add_argument("--values", help="override sweep values, e.g. 'hidden=50,100;T=50'")
    p.add_argument("--base", help="override the base point, e.g. 'T=60,batch=2' (smoke tests)")
    p.add_argument("--data-dir", help=f"mnist-10k folder (default {common.DEFAULT_DATA_DIR})")


def traffic_per_sample(spikes: np.ndarray, layer_spikes: np.ndarray, layers: list[int],
                       n_samples: int) -> float:
    """Spikes x fan-out per sample: input spikes x layers[1] + sum_l spikes of layer l x
    layers[l + 1] (the output layer has no fan-out)."""
    entering = [spikes.sum() / len(spikes)] + [s / n_samples for s in layer_spikes[:-1]]
    return float(sum(n * fan for n, fan in zip(entering, layers[1:])))


def measure_point(row: str, point: dict[str, Any], args: argparse.Namespace,
                  images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    layers = [784, int(point["hidden"]), 10]
    T, B = int(point["T"]), int(point["batch"])
    n = max(B, args.min_samples // B * B)
    if point["rate"] == 1.0:
        spikes = common.encode_poisson(images[:n], T, common.SEED, 0)
    else:
        spikes = common.encode_rate_scaled(images[:n], T, common.SEED, 0, point["rate"])
    runner, facts = common.make_runner(row, layers=layers, T=T)
    batches = [runner.prepare(spikes[k:k + B], labels[k:k + B]) for k in range(0, n, B)]
    seen = {"samples": 0, "layer_spikes": np.zeros(len(layers) - 1)}

    def train(batch: Any) -> None:
        out = runner.train(batch)
        seen["samples"] += B
        seen["layer_spikes"] += np.asarray(out["layer_spikes"], dtype=np.float64)

    timing = dict(warmup=1, repeats=args.repeats, min_seconds=args.min_seconds,
                  sync=getattr(runner, "sync", None))
    tr = common.summarize(common.throughput(train, batches, B, restart=getattr(runner, "restart", None), **timing))
    inf = common.summarize(common.throughput(runner.infer, batches, B, **timing))
    hidden_spikes = seen["layer_spikes"] / seen["samples"]
    traffic = traffic_per_sample(spikes, seen["layer_spikes"], layers, seen["samples"])
    return {
        **point,
        "train_samples_per_s": tr["median"], "train_spread": [tr["min"], tr["max"]],
        "infer_samples_per_s": inf["median"], "infer_spread": [inf["min"], inf["max"]],
        "input_spikes_per_sample": float(spikes.sum() / n),
        "layer_spikes_per_sample": hidden_spikes.tolist(),
        "spikes_x_fanout_per_sample": traffic,
        "neuron_steps_per_sample": sum(layers[1:]) * T,
        "train_ns_per_spike_fanout": 1e9 / (tr["median"] * traffic) if traffic else None,
        "threads": facts.get("threads"),
    }


def _parse_values(text: str | None) -> dict[str, list[float]]:
    sweeps = {k: list(v) for k, v in SWEEPS.items()}
    if not text:
        return sweeps
    for part in text.split(";"):
        key, _, vals = part.partition("=")
        if key not in SWEEPS or not vals:
            raise SystemExit(f"--values: expected 'name=v1,v2;...' with names from "
                             f"{','.join(SWEEPS)}, got {part!r}")
        sweeps[key] = [float(v) if key == "rate" else int(v) for v in vals.split(",")]
    return sweeps


def _lstsq(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, float]:
    A = np.stack([np.ones_like(y)] + columns, axis=1)
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    resid = y - A @ coef
    total = np.sum((y - y.mean()) ** 2)
    return coef, float(1.0 - np.sum(resid**2) / total) if total > 0 else 1.0


def fit_cost(sweeps: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Least-squares models of train seconds per sample over the points at the base batch
    (the batch sweep changes per-call overheads, not work per sample):
    - traffic: s = a + b * spikes_x_fanout;
    - traffic+steps: s = a + b * spikes_x_fanout + c * neuron_steps (O x T scans);
    - rate_sweep_ns_per_event: b from the rate sweep alone, where only the traffic changes.
    """
    fits: dict[str, Any] = {}
    pts = [p for key, points in sweeps.items() if key != "batch" for p in points]
    if len(pts) < 3:
        return fits
    y = np.array([1.0 / p["train_samples_per_s"] for p in pts])
    traffic = np.array([p["spikes_x_fanout_per_sample"] for p in pts], dtype=np.float64)
    steps = np.array([p["neuron_steps_per_sample"] for p in pts], dtype=np.float64)
    coef, r2 = _lstsq([traffic], y)
    fits["traffic"] = {"a_ms": coef[0] * 1e3, "b_ns_per_event": coef[1] * 1e9, "r2": r2,
                       "points": len(pts)}
    if len(pts) > 3:
        coef, r2 = _lstsq([traffic, steps], y)
        fits["traffic+steps"] = {"a_ms": coef[0] * 1e3, "b_ns_per_event": coef[1] * 1e9,
                                 "c_ns_per_neuron_step": coef[2] * 1e9, "r2": r2}
    rate = sweeps.get("rate", [])
    if len(rate) >= 2:
        x = np.array([p["spikes_x_fanout_per_sample"] for p in rate], dtype=np.float64)
        yr = np.array([1.0 / p["train_samples_per_s"] for p in rate])
        fits["rate_sweep_ns_per_event"] = float(np.polyfit(x, yr, 1)[0] * 1e9)
    return fits


def describe_fits(fits: dict[str, Any]) -> list[str]:
    out = []
    if "traffic" in fits:
        f = fits["traffic"]
        out.append(f"train s/sample ~ {f['a_ms']:.3g} ms + {f['b_ns_per_event']:.3g} ns x "
                   f"(spikes x fan-out): R^2 = {f['r2']:.3f} over {f['points']} points")
    if "traffic+steps" in fits:
        f = fits["traffic+steps"]
        out.append(f"train s/sample ~ {f['a_ms']:.3g} ms + {f['b_ns_per_event']:.3g} ns x "
                   f"(spikes x fan-out) + {f['c_ns_per_neuron_step']:.3g} ns x (neurons x T): "
                   f"R^2 = {f['r2']:.3f}")
    if "rate_sweep_ns_per_event" in fits:
        out.append(f"rate sweep alone (only traffic changes): "
                   f"{fits['rate_sweep_ns_per_event']:.3g} ns per extra spike x fan-out")
    return out


def plot(result: dict[str, Any], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = result["sweeps"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (key, points) in zip(axes.flat, sweeps.items()):
        x = [p[key] for p in points]
        ax.plot(x, [p["train_samples_per_s"] for p in points], "o-", label="train")
        ax.plot(x, [p["infer_samples_per_s"] for p in points], "s--", label="inference")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel(LABELS[key])
        ax.set_ylabel("samples/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes.flat[4]
    for k, (key, points) in enumerate(sweeps.items()):
        if key == "batch":  # per-call overheads, shown in their own panel
            continue
        traffic = np.array([p["spikes_x_fanout_per_sample"] for p in points]) / 1e6
        ms = np.array([1e3 / p["train_samples_per_s"] for p in points])
        ax.plot(traffic, ms, "o", color=f"C{k}", label=f"{key} sweep")
        for p, x, y in zip(points, traffic, ms):
            ax.annotate(f"{p[key]:g}", (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    fit = result.get("fits", {}).get("traffic")
    if fit:
        xs = np.linspace(0, max(p["spikes_x_fanout_per_sample"] for pts in sweeps.values()
                                for p in pts) / 1e6 * 1.05, 2)
        ax.plot(xs, fit["a_ms"] + fit["b_ns_per_event"] * xs, "k:",
                label=f"fit: R^2 {fit['r2']:.2f}")
    ax.legend(fontsize=7)
    ax.set_xlabel("spikes x fan-out per sample (millions)")
    ax.set_ylabel(f"train ms per sample (batch {result['settings']['base']['batch']})")
    ax.grid(True, alpha=0.3)
    ax = axes.flat[5]
    pts = [p for points in sweeps.values() for p in points]
    ax.bar(range(len(pts)), [p["train_ns_per_spike_fanout"] or 0 for p in pts])
    ax.set_xticks(range(len(pts)), [p["label"] for p in pts], rotation=70, fontsize=7)
    ax.set_ylabel("train ns per spike x fan-out")
    ax.grid(True, axis="y", alpha=0.3)
    m = result["machine"]
    b = result["settings"]["base"]
    fig.suptitle(f"hm2bp scaling ({result['settings']['row']}), base hidden {b['hidden']}, "
                 f"T {b['T']}, {b['rate']:g}x rate, batch {b['batch']}; {m['cpu_model']}, "
                 f"{m['cores']} cores")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    if args.quick:
        args.repeats, args.min_seconds, args.min_samples = 1, 0.2, 16
    sweeps = _parse_values(args.values)
    chosen = args.sweeps.split(",")
    if any(k not in SWEEPS for k in chosen):
        raise SystemExit(f"--sweeps: expected names from {','.join(SWEEPS)}, got {args.sweeps}")
    base = dict(BASE)
    for part in filter(None, (args.base or "").split(",")):
        key, _, val = part.partition("=")
        if key not in BASE or not val:
            raise SystemExit(f"--base: expected 'name=value,...' with names from "
                             f"{','.join(BASE)}, got {part!r}")
        base[key] = float(val) if key == "rate" else int(val)
    ds = common.load_mnist("train", args.data_dir)
    need = max(max(sweeps["batch"]) if "batch" in chosen else base["batch"], args.min_samples)
    images, labels = ds.images[:need], ds.labels[:need].astype(np.int64)
    machine = common.machine_info()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"machine": machine, "settings": {
        "row": args.row, "base": base, "repeats": args.repeats, "min_seconds": args.min_seconds,
        "min_samples": args.min_samples,
        "rate_method": "own Poisson encoder with the contract RNG, rate = scale*p/(5.5*255)",
        "traffic": "spikes x fan-out = input spikes x hidden + hidden spikes x outputs, per "
                   "sample, averaged over the timed training batches"}, "sweeps": {}}
    try:
        for key in chosen:
            result["sweeps"][key] = []
            for value in sweeps[key]:
                point = {**base, key: value, "label": f"{key}={value:g}"}
                print(f"[scaling] {point['label']} ...", file=sys.stderr, flush=True)
                res = measure_point(args.row, point, args, images, labels)
                result["sweeps"][key].append(res)
                print(f"  {res['label']:>12}: train {res['train_samples_per_s']:9.1f}/s  infer "
                      f"{res['infer_samples_per_s']:9.1f}/s  spikes x fan-out "
                      f"{res['spikes_x_fanout_per_sample'] / 1e6:7.2f} M  "
                      f"{res['train_ns_per_spike_fanout']:.3g} ns/event", flush=True)
    except Skipped as exc:
        result["skipped"] = str(exc)
        print(f"scaling skipped: {exc}")
    result["settings"]["wall_s"] = round(time.perf_counter() - t0, 1)
    result["fits"] = fit_cost(result["sweeps"])
    for line in describe_fits(result["fits"]):
        print(line)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if any(result["sweeps"].values()):
        plot(result, args.png)
        print(f"wrote {args.json} and {args.png}")
    else:
        print(f"wrote {args.json}")
    return 0
