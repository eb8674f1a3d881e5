"""GPU benchmark of the CUDA engine: mnist-fc800 (784-800-10, T = 400) samples/s and memory.

    python bench/gpu_bench.py [--batches 1 32 256 1024] [--dtype float32] [--json FILE]

Times the trainer's paths, train_step_images (one Adam step, Poisson encoding inside the engine)
and infer_images, at each batch size: warm-up calls first (buffer allocation), then several
repeats of back-to-back steps, median samples/s. Each engine call copies its results to the
host, so it has finished on the device when it returns and a host clock times it correctly.
Also: device memory held by the engine (free memory before and after, via torch or cupy), the
copy bandwidth of the card, and, with torch's profiler, the time per kernel of a few training
steps. Expected numbers and their derivation: bench/GPU_NOTES.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LAYERS = [784, 800, 10]
VTH = [20.0, 8.0]
T_STEPS = 400
SEED = 0


def load_images(n: int, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST training digits: data_dir (default ../shared/data/mnist-10k), else the packaged
    mnist-mini, else noise."""
    from hm2bp import data

    mnist_dir = Path(data_dir) if data_dir else REPO.parent / "shared" / "data" / "mnist-10k"
    for name, kw in (("mnist", {"data_dir": mnist_dir}), ("mnist-mini", {})):
        try:
            ds = data.load(name, "train", download=False, **kw)
            if len(ds.labels) >= n:
                return ds.images.reshape(len(ds.labels), -1)[:n], ds.labels[:n].astype(np.int64), name
        except Exception as exc:  # missing files: try the next source
            print(f"[data] {name}: {exc}", file=sys.stderr)
    rng = np.random.default_rng(0)
    images = (rng.random((n, 784)) < 0.19) * rng.integers(1, 256, (n, 784))
    return images.astype(np.uint8), rng.integers(0, 10, n).astype(np.int64), "random"


class DeviceMemory:
    """Free device memory through torch or cupy (whichever imports), else unknown."""

    def __init__(self) -> None:
        self.query = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.init()
                self.query = lambda: torch.cuda.mem_get_info()[0]
                self.source = "torch"
        except Exception:
            pass
        if self.query is None:
            try:
                import cupy

                self.query = lambda: cupy.cuda.runtime.memGetInfo()[0]
                self.source = "cupy"
            except Exception:
                self.source = "unavailable"

    def free(self) -> int | None:
        return self.query() if self.query else None


def time_steps(step, batch: int, n_images: int, min_seconds: float, repeats: int) -> dict:
    """Median samples/s over repeats of back-to-back steps on consecutive batches."""
    starts = list(range(0, n_images - batch + 1, batch))
    cursor = [0]

    def run(k: int) -> None:
        for _ in range(k):
            step(starts[cursor[0] % len(starts)])
            cursor[0] += 1

    run(2)  # warm-up: allocation, first launches
    t0 = time.perf_counter()
    run(1)
    one = max(time.perf_counter() - t0, 1e-6)
    steps = max(1, int(min_seconds / one))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        rates.append(steps * batch / (time.perf_counter() - t0))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "steps_per_repeat": steps,
            "ms_per_step": 1e3 * batch / statistics.median(rates)}


def copy_bandwidth_gbs() -> float | None:
    """Device-to-device copy, bytes read + written per second (METHOD.md's memory ceiling)."""
    try:
        import torch

        x = torch.empty(1 << 28, dtype=torch.float32, device="cuda").uniform_()  # 1 GiB
        y = torch.empty_like(x)
        for _ in range(3):
            y.copy_(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            y.copy_(x)
        torch.cuda.synchronize()
        gbs = 20 * 2 * x.numel() * 4 / (time.perf_counter() - t0) / 1e9
        del x, y
        torch.cuda.empty_cache()
        return gbs
    except Exception as exc:
        print(f"[bandwidth] skipped: {exc}", file=sys.stderr)
        return None


def kernel_profile(net, images, labels, batch: int, T: int, steps: int = 5) -> list[dict] | None:
    """Device time per kernel of `steps` training steps (torch profiler / CUPTI), largest first."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except Exception as exc:
        print(f"[profile] skipped: {exc}", file=sys.stderr)
        return None
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for k in range(steps):
                net.train_step_images(images[k * batch:(k + 1) * batch], labels[k * batch:(k + 1) * batch], 1e-3,
                                      T=T, seed=SEED, sample_index=k * batch)
            torch.cuda.synchronize()
        rows = []
        for e in prof.key_averages():
            us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
            if us > 0:
                rows.append({"kernel": e.key[:80], "calls": e.count, "us_per_step": us / steps})
        rows.sort(key=lambda r: -r["us_per_step"])
        return rows
    except Exception as exc:
        print(f"[profile] failed: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256, 1024])
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=0.6, help="duration of one repeat")
    p.add_argument("--profile-batch", type=int, default=256, help="batch of the per-kernel profile (0: none)")
    p.add_argument("--T", type=int, default=T_STEPS, help="time steps (the network's is 400)")
    p.add_argument("--json", metavar="FILE", help="write the results here (default $OUT/gpu_bench.json if set)")
    p.add_argument("--data-dir", help="mnist-10k folder (default ../shared/data/mnist-10k)")
    p.add_argument("--dry-run", action="store_true", help="check the arguments and stop")
    args = p.parse_args(argv)
    if min(args.batches) < 1 or args.repeats < 1 or args.T < 2:
        p.error("--batches and --repeats must be at least 1, --T at least 2")
    if args.dry_run:
        print(f"dry run: gpu_bench.py {' '.join(argv if argv is not None else sys.argv[1:])}: arguments OK")
        return 0

    import hm2bp

    info = hm2bp.build_info()
    if not hm2bp.cuda_available():
        print(f"no usable CUDA GPU (build_info: {info})", file=sys.stderr)
        return 1
    memory = DeviceMemory()
    n_images = max(4 * max(args.batches), 4096)
    images, labels, source = load_images(n_images, args.data_dir)
    n_images = len(labels)
    T = args.T
    result: dict = {"network": "mnist-fc800", "layers": LAYERS, "T": T, "dtype": args.dtype,
                    "data": source, "build": info, "memory_source": memory.source, "rows": []}
    result["copy_bandwidth_GBs"] = copy_bandwidth_gbs()

    for batch in args.batches:
        gc.collect()
        free_before = memory.free()
        net = hm2bp.Network(layers=LAYERS, vth=VTH, dtype=args.dtype, backend="cuda", seed=SEED)
        row: dict = {"batch": batch}
        row["train"] = time_steps(
            lambda k: net.train_step_images(images[k:k + batch], labels[k:k + batch], 1e-3, T=T, seed=SEED,
                                            sample_index=k),
            batch, n_images, args.min_seconds, args.repeats)
        row["infer"] = time_steps(
            lambda k: net.infer_images(images[k:k + batch], T=T, seed=SEED, sample_index=k),
            batch, n_images, args.min_seconds, args.repeats)
        probe = net.infer_images(images[:batch], T=T, seed=SEED, sample_index=0)
        row["hidden_spikes_per_sample"] = float(probe["layer_spikes"][0] / batch)
        row["output_spikes_per_sample"] = float(probe["layer_spikes"][1] / batch)
        free_after = memory.free()
        if free_before is not None and free_after is not None:
            row["device_memory_MB"] = (free_before - free_after) / 2**20
        if batch == args.profile_batch and n_images >= 5 * batch:
            row["kernels"] = kernel_profile(net, images, labels, batch, T)
        result["rows"].append(row)
        print(f"batch {batch:5d}: train {row['train']['median']:10.0f}/s  infer {row['infer']['median']:10.0f}/s",
              flush=True)
        del net

    spikes = hm2bp.encode_poisson(images[:256], T, SEED, 0)
    result["input_spikes_per_sample"] = float(spikes.sum() / 256)

    out = args.json or (os.path.join(os.environ["OUT"], "gpu_bench.json") if os.environ.get("OUT") else None)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    for row in result["rows"]:
        if row.get("kernels"):
            print(f"\nkernels, training batch {row['batch']} (us per step, device time):")
            for k in row["kernels"][:14]:
                print(f"  {k['us_per_step']:10.1f}  x{k['calls'] // 5:<3d} {k['kernel']}")
    print(f"\n{info.get('cuda_device')}, mnist-fc800 T={T} {args.dtype}, data {source}; "
          f"{result['input_spikes_per_sample']:.0f} input spikes/sample; copy bandwidth "
          f"{result['copy_bandwidth_GBs'] or float('nan'):.0f} GB/s")
    print(f"{'batch':>6} {'train/s':>10} {'(min-max)':>19} {'ms/step':>8} {'infer/s':>10} {'ms/step':>8} "
          f"{'hidden sp':>9} {'mem MB':>8}")
    for row in result["rows"]:
        tr, inf = row["train"], row["infer"]
        print(f"{row['batch']:>6} {tr['median']:>10.0f} {tr['min']:>9.0f}-{tr['max']:<9.0f} {tr['ms_per_step']:>8.2f} "
              f"{inf['median']:>10.0f} {inf['ms_per_step']:>8.2f} {row['hidden_spikes_per_sample']:>9.0f} "
              f"{row.get('device_memory_MB', float('nan')):>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
