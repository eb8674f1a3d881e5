"""Build python/hm2bp/data/_data/mnist_mini.npz, the bundled "mnist-mini" dataset.

train = the first 6,000 training digits of ../shared/data/mnist-10k, test = the first 1,000
digits of the official t10k test set (the two never overlap). The output is byte-for-byte
deterministic: same arrays as np.savez_compressed, but with fixed zip timestamps.

    python tools/make_mini_dataset.py [--src DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 6000, 1000


def _data_module():
    # Load the dataset catalog as a bare module of a stand-in package: hm2bp itself imports the
    # compiled engine, not needed here, and so does hm2bp.data's __init__ (augmentation).
    folder = REPO / "python/hm2bp/data"
    package = types.ModuleType("hm2bp_data")
    package.__path__ = [str(folder)]  # its relative imports (.datasets) resolve in the folder
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location("hm2bp_data.catalog", folder / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    return module


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(value), allow_pickle=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=REPO.parent / "shared/data/mnist-10k")
    parser.add_argument("--out", type=Path, default=REPO / "python/hm2bp/data/_data/mnist_mini.npz")
    args = parser.parse_args()
    data = _data_module()
    arrays = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        ds = data.load("mnist", split, data_dir=args.src, download=False)
        arrays[f"{split}_images"] = ds.images[:n].reshape(n, *ds.image_shape)
        arrays[f"{split}_labels"] = ds.labels[:n].astype(np.uint8)
    _save_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): "
          f"{N_TRAIN} train / {N_TEST} test digits from {args.src}")


if __name__ == "__main__":
    main()
