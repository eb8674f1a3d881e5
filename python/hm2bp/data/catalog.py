"""``load(name, split)``: one split of a dataset by name, from wherever its files are.

Files are looked up in an explicit ``data_dir``, else under ``$HM2BP_DATA``, else in a user cache
(``$XDG_CACHE_HOME/hm2bp`` or ``~/.cache/hm2bp``), else where an operating-system package installs
them (:data:`SYSTEM_DIRS`: Debian's ``dataset-fashion-mnist``); missing IDX files are downloaded
from the datasets' public mirrors and checked against their published MD5 sums (download.py;
``HM2BP_MIRROR`` overrides the mirrors). MNIST and Fashion-MNIST files share their names: a file
whose MD5 sum is known as the other dataset's is refused (:data:`KNOWN_FILES`). N-MNIST has no
stable direct URL and must be unpacked by hand (events.py reads it). ``mnist-mini`` (6,000
training and 1,000 test digits) ships inside the package (``_data/``), so the project works
without any download.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import os
from pathlib import Path

import numpy as np

from .datasets import DATASETS, N_CLASSES, SPLITS, DatasetError, EventDataset, ImageDataset, check_choice
from .download import IDX_FILES, MD5, fetch_missing, missing_message
from .events import load_nmnist
from .idx import read_idx_images, read_idx_labels
from .speech import load_speech

__all__ = ["KNOWN_FILES", "SYSTEM_DIRS", "load", "resolve_data_dir"]

_IMAGE_SHAPE = (28, 28)
_SUBDIR = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "emnist-balanced": "emnist",
           "nmnist": "nmnist", "spoken-letters": "spoken-letters"}
# MD5 sum -> (dataset, file) of MNIST and Fashion-MNIST files beyond the downloads' gzip files
# (MD5): Debian's recompressed gzip files (dataset-fashion-mnist 0.0~git20200523) and the
# uncompressed contents, which every copy of a file shares. Both datasets use the same four
# file names, so a folder of the other dataset's files is told apart by these sums alone.
KNOWN_FILES: dict[str, tuple[str, str]] = {
    **{md5: (name, f) for name in ("mnist", "fashion-mnist") for f, md5 in MD5[name].items()},
    "cf8536b0aa1a6ac5fa3f23001093305c": ("fashion-mnist", "train-images-idx3-ubyte.gz"),
    "10bea18fdb374794d4bb42e356e600c9": ("fashion-mnist", "train-labels-idx1-ubyte.gz"),
    "f78720b4224f21cce2f2ccf2d7a94c9a": ("fashion-mnist", "t10k-images-idx3-ubyte.gz"),
    "0d30e22e447f3c33dab9ed536400ac01": ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"),
    "f4a8712d7a061bf5bd6d2ca38dc4d50a": ("fashion-mnist", "train-images-idx3-ubyte"),
    "9018921c3c673c538a1fc5bad174d6f9": ("fashion-mnist", "train-labels-idx1-ubyte"),
    "8181f5470baa50b63fa0f6fddb340f0a": ("fashion-mnist", "t10k-images-idx3-ubyte"),
    "15d484375f8d13e6eb1aabb0c3f46965": ("fashion-mnist", "t10k-labels-idx1-ubyte"),
    "2646ac647ad5339dbf082846283269ea": ("mnist", "t10k-images-idx3-ubyte"),
    "27ae3e4e09519cfbb04c329615203637": ("mnist", "t10k-labels-idx1-ubyte"),
}
# Folders where operating-system packages put an IDX dataset, used when neither data_dir nor
# $HM2BP_DATA is given and the user cache lacks the files (`apt-get install dataset-fashion-mnist`).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hm2bp"


def _find(directory: Path, base: str) -> Path | None:
    for candidate in (directory / f"{base}.gz", directory / base):
        if candidate.is_file():
            return candidate
    return None


def _has_files(name: str, directory: Path) -> bool:
    if name == "nmnist":
        return (directory / "Train").is_dir() or (directory / "Test").is_dir()
    if name == "spoken-letters":
        return (directory / "train").is_dir() or (directory / "test").is_dir()
    return any(_find(directory, b) for split in SPLITS for b in IDX_FILES[name][split])


def _has_all_files(name: str, directory: Path) -> bool:
    return all(_find(directory, b) for split in SPLITS for b in IDX_FILES[name][split])


def resolve_data_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding (or to receive) the files of dataset ``name``.

    Base folder: ``data_dir``, else ``$HM2BP_DATA``, else the user cache, unless it lacks files
    that a folder of SYSTEM_DIRS has in full (then that folder). A base folder may be a root with
    per-dataset subfolders (mnist/, fashion-mnist/, emnist/, nmnist/) or hold the files directly;
    the subfolder wins when both have files, and downloads go to the subfolder.
    """
    name = check_choice(name, DATASETS, "name")
    if name == "mnist-mini":
        raise ValueError("name: 'mnist-mini' is bundled with the package and has no data directory")
    sub = _SUBDIR[name]
    given = data_dir if data_dir is not None else os.environ.get("HM2BP_DATA") or None
    if given is None:
        cache = _cache_dir() / sub
        systems = [d for d in SYSTEM_DIRS.get(name, ()) if _has_all_files(name, d)]
        return systems[0] if systems and not _has_all_files(name, cache) else cache
    base = Path(given).expanduser()
    if not _has_files(name, base / sub) and _has_files(name, base):
        return base
    return base / sub


def _idx_paths(name: str, split: str, root: Path, download: bool) -> tuple[Path, Path]:
    bases = IDX_FILES[name][split]
    missing = [b for b in bases if _find(root, b) is None]
    if missing:
        if not download:
            raise DatasetError(missing_message(name, split, root, missing, "download=False"))
        fetch_missing(name, split, root, missing)
    found = [_find(root, b) for b in bases]
    if None in found:  # a mirror served the archive without the expected members
        raise DatasetError(missing_message(name, split, root, missing, "not found after download"))
    return found[0], found[1]


def _check_identity(name: str, path: Path) -> None:
    """Refuse a file that its MD5 sum identifies as another dataset's (KNOWN_FILES)."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    known = KNOWN_FILES.get(digest.hexdigest())
    if known is not None and known[0] != name:
        raise DatasetError(f"{path} is the {known[0]} file {known[1]} (by its MD5 sum), not "
                           f"{name}'s; point --data-dir at the {name} files")


def _make_image_dataset(name: str, split: str, images: np.ndarray, labels: np.ndarray,
                        images_src: object, labels_src: object) -> ImageDataset:
    if len(images) != len(labels):
        raise DatasetError(f"{images_src} has {len(images)} images but {labels_src} has "
                           f"{len(labels)} labels; the files do not belong together, download "
                           f"them again")
    if images.shape[1:] != _IMAGE_SHAPE:
        raise DatasetError(f"{images_src}: images are {images.shape[1]}x{images.shape[2]}, "
                           f"expected {_IMAGE_SHAPE[0]}x{_IMAGE_SHAPE[1]} for {name}")
    n_classes = N_CLASSES[name]
    if labels.size and labels.max() >= n_classes:
        raise DatasetError(f"{labels_src}: label {labels.max()} out of range 0..{n_classes - 1} "
                           f"for {name}; wrong file for this dataset?")
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return ImageDataset(name, split, flat, labels.astype(np.int64), _IMAGE_SHAPE, n_classes)


def _load_mini(split: str) -> ImageDataset:
    # chained joinpath: namespace packages on 3.11 accept one segment per call
    resource = importlib.resources.files(__package__).joinpath("_data").joinpath("mnist_mini.npz")
    try:
        blob = resource.read_bytes()
    except OSError as exc:
        raise DatasetError(f"bundled dataset {resource} is missing ({exc}); reinstall hm2bp or "
                           f"regenerate it with tools/make_mini_dataset.py") from exc
    with np.load(io.BytesIO(blob)) as npz:
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    src = f"{resource}[{split}]"
    return _make_image_dataset("mnist-mini", split, images, labels, src, src)


def load(name: str, split: str, data_dir: str | os.PathLike[str] | None = None,
         download: bool = True, nmnist_recipe: str = "authors") -> ImageDataset | EventDataset:
    """Load one split of a dataset; see the module docstring for where files come from.
    nmnist_recipe: how N-MNIST events become spikes, one of RECIPES (bin_events)."""
    name = check_choice(name, DATASETS, "name")
    split = check_choice(split, SPLITS, "split")
    if name == "mnist-mini":
        return _load_mini(split)
    root = resolve_data_dir(name, data_dir)
    if name == "nmnist":
        return load_nmnist(root, split, nmnist_recipe)
    if name == "spoken-letters":
        return load_speech(root, split)
    images_path, labels_path = _idx_paths(name, split, root, download)
    for path in (images_path, labels_path):
        _check_identity(name, path)
    images = read_idx_images(images_path)
    if name == "emnist-balanced":  # EMNIST stores images transposed; make them upright like MNIST
        images = images.transpose(0, 2, 1)
    return _make_image_dataset(name, split, images, read_idx_labels(labels_path),
                               images_path, labels_path)
