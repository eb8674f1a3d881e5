"""The spoken-letter network (SPEC_SPEECH 5: 78-135-64-26, the authors' fixed reservoir, T = 1000):

    python -m bench speech [--batches 1,128] [--threads 2] [--dat FILE ...] [--json FILE]

hm2bp's training and inference samples/s per batch size and backend (CPU; CUDA when this build
sees a GPU) on cochleagram samples that the engine BSA-encodes itself (train_step_bsa,
infer_bsa: encoding included in the time), and the BSA encoding alone (hm2bp.encode_bsa).
Samples: the .dat files given with --dat (one line of frames per channel), else the authors'
TI46 sample f1_u10_c0 (68 frames, 5065 input spikes, 4901 reservoir spikes) from the shared
data folder, cycled through. Training is SGD with momentum as committed (SPEC_SPEECH 5), the
hidden and output layers starting from the authors' initial weights (seed 5) before every pass
over the samples (untimed).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .common import Skipped, machine_info, peak_rss_mb, summarize, throughput

T_SPEECH = 1000
LR = 0.001
# The authors' speech network and training as committed (SPEC_SPEECH 5)
HYPER = dict(lateral_inhibition=0.0, optimizer="sgd", momentum=0.9, effect_ratio=False, reg_lambda=0.0,
             desired=45, undesired=15, margin=5)
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "authors" / "speech" / "f1_u10_c0.dat"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("speech", help="spoken-letter network (reservoir) training and inference speed")
    p.add_argument("--batches", default="1,128", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--samples", type=int, default=128, help="samples cycled through")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--dat", nargs="*", default=None, help=".dat samples (default: the authors' TI46 sample)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def load_samples(paths: list[str] | None, n: int) -> np.ndarray:
    """n analog samples (n, 78, frames), zero-padded to the longest (zero frames add no spikes)."""
    if not paths:
        if not GOLDEN.is_file():
            raise Skipped(f"no --dat samples and the authors' sample is not at {GOLDEN}")
        paths = [str(GOLDEN)]
    analog = [np.loadtxt(p, dtype=np.float64, ndmin=2) for p in paths]
    frames = max(a.shape[1] for a in analog)
    out = np.zeros((n, analog[0].shape[0], frames))
    for k in range(n):
        a = analog[k % len(analog)]
        out[k, :, :a.shape[1]] = a
    return out


def measure(backend: str, batch: int, threads: int | None, analog: np.ndarray, repeats: int,
            min_seconds: float) -> dict[str, Any]:
    import hm2bp
    from hm2bp.model.layers import Dense, Reservoir
    from hm2bp.model.reservoir import generate

    net = hm2bp.Network(input_shape=(78, 1, 1), layers=[Reservoir(), Dense(64, 20.0), Dense(26, 5.0)], **HYPER,
                        backend=backend, threads=threads)
    net.set_weights(generate().trained)
    initial = net.get_state()
    labels = np.arange(len(analog)) % 26
    starts = list(range(0, len(analog) - batch + 1, batch))

    def train_step(k: int) -> None:
        net.train_step_bsa(analog[k:k + batch], labels[k:k + batch], LR, T=T_SPEECH)

    def infer_step(k: int) -> None:
        net.infer_bsa(analog[k:k + batch], T=T_SPEECH)

    return {
        "backend": backend, "batch": batch, "threads": net.threads,
        "train_samples_per_s": summarize(throughput(train_step, starts, batch, warmup=1, repeats=repeats,
                                                    min_seconds=min_seconds, restart=lambda: net.set_state(initial))),
        "infer_samples_per_s": summarize(throughput(infer_step, starts, batch, warmup=1, repeats=repeats,
                                                    min_seconds=min_seconds)),
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_bsa(analog: np.ndarray, threads: int | None, repeats: int, min_seconds: float) -> dict[str, Any]:
    import hm2bp

    batch = len(analog)
    return summarize(throughput(lambda _: hm2bp.encode_bsa(analog, T_SPEECH, threads), [0], batch, warmup=1,
                                repeats=repeats, min_seconds=min_seconds))


def main(args: argparse.Namespace) -> int:
    import hm2bp

    batches = [int(b) for b in args.batches.split(",")]
    if args.samples < max(batches):
        raise SystemExit(f"--samples must be at least the largest batch size {max(batches)}")
    try:
        analog = load_samples(args.dat, args.samples)
    except Skipped as exc:
        raise SystemExit(f"bench speech: {exc}") from None
    backends = ["cpu"] + (["cuda"] if hm2bp.cuda_available() else [])
    rows = [measure(backend, batch, args.threads, analog, args.repeats, args.min_seconds)
            for backend in backends for batch in batches]
    bsa = measure_bsa(analog, args.threads, args.repeats, args.min_seconds)
    spikes = hm2bp.encode_bsa(analog[:1], T_SPEECH)
    print(f"speech network (78-135-64-26, reservoir fixed, T={T_SPEECH}, SGD), {len(analog)} samples of "
          f"{analog.shape[2]} frames ({int(spikes.sum())} input spikes in the first); samples/s median (min-max)")
    print(f"{'row':<22}{'batch':>6}{'train':>24}{'infer':>24}")
    for r in rows:
        tr, inf = r["train_samples_per_s"], r["infer_samples_per_s"]
        print(f"{'hm2bp-' + r['backend'] + ' (' + str(r['threads']) + ' thr)':<22}{r['batch']:>6}"
              f"{tr['median']:>10.1f} ({tr['min']:.1f}-{tr['max']:.1f})"
              f"{inf['median']:>10.1f} ({inf['min']:.1f}-{inf['max']:.1f})")
    print(f"BSA encoding alone (hm2bp.encode_bsa, batch {len(analog)}): {bsa['median']:.0f} samples/s "
          f"({bsa['min']:.0f}-{bsa['max']:.0f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "bsa_samples_per_s": bsa, "T": T_SPEECH, "frames": analog.shape[2],
                       "machine": machine_info()}, f, indent=1)
    return 0
