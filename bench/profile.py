"""A fixed amount of engine training to profile per phase:

    perf record -e cpu-clock -F 4000 -o perf.data python -m bench.profile --net cnn --samples 80 [--trained N]
    perf report -i perf.data --dso <the _core .so> --sort sym,srcline --stdio -g none

Trains `samples` mnist-10k training digits (the presets' networks: mnist-cnn with its
augmentation, or mnist-fc800, T = 400), one thread by default, `batch` at a time, after one
untimed warm-up batch, and prints the process CPU time per sample. perf's cpu-clock samples
are taken only while this process runs, so each function's (or source line's) share of them
holds on a loaded machine, where wall-clock times do not. The installed module is stripped:
for names and lines, link the build's objects again without `strip` (and with -g). Under
`valgrind --tool=callgrind --toggle-collect='*CpuEngine*run*'` the same run gives instruction
counts, for a build without AVX-512 (valgrind 3.19 and older cannot run it).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .common import LAYERS, SEED, VTH, load_mnist, pretrain


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--net", choices=("cnn", "fc800"), default="cnn")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--trained", type=int, default=0, metavar="N",
                   help="first train (unprofiled) on N other digits, so that the profile is of a network in "
                        "training, not of the first samples from random weights (see python -m bench.ab --trained)")
    args = p.parse_args(argv)

    import hm2bp
    from hm2bp import augment
    from hm2bp.config import preset

    train = load_mnist("train")
    n = args.samples + args.batch  # the warm-up batch first
    images, labels = train.images[:n + args.trained], train.labels[:n + args.trained].astype(np.int64)
    if args.net == "cnn":
        cfg = preset("mnist-cnn", backend="cpu")
        net = hm2bp.Network(**{**cfg.network_kwargs("cpu"), "threads": args.threads, "seed": SEED})
        idx = np.arange(n + args.trained)
        spikes = augment.encode_rates(augment.augment(images, SEED, 0, idx, cfg.augmentation()), cfg.T, SEED, idx, 0)
        lr = cfg.lr
    else:
        net = hm2bp.Network(layers=list(LAYERS), vth=list(VTH), threads=args.threads, seed=SEED)
        spikes = hm2bp.encode_poisson(images, 400, SEED, 0)
        lr = 1e-3
    pretrain(images, n, args.trained, lambda b: net.train_step(spikes[b], labels[b], lr), args.batch)
    net.train_step(spikes[:args.batch], labels[:args.batch], lr)
    t0 = time.process_time()
    for k in range(args.batch, n - args.batch + 1, args.batch):
        net.train_step(spikes[k:k + args.batch], labels[k:k + args.batch], lr)
    print(f"{args.net} batch {args.batch}{f' after {args.trained} digits' if args.trained else ''}: {(time.process_time() - t0) / args.samples * 1e3:.2f} ms CPU per sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
