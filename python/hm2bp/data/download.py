"""Downloading the IDX datasets from their public mirrors, MD5-checked, atomically (a temp file
renamed only when complete); ``HM2BP_MIRROR`` overrides the mirrors."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .datasets import SPLITS, DatasetError
from .progress import LoadProgress

__all__ = ["IDX_FILES", "MD5", "MIRRORS", "fetch_missing", "missing_message"]

_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_FILES = {
    "mnist": _MNIST_FILES,
    "fashion-mnist": _MNIST_FILES,
    "emnist-balanced": {s: (f"emnist-balanced-{s}-images-idx3-ubyte",
                            f"emnist-balanced-{s}-labels-idx1-ubyte") for s in SPLITS},
}


# Base URLs tried in order; HM2BP_MIRROR (comma-separated base URLs) replaces them for all datasets.
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    "emnist-balanced": ["https://biometrics.nist.gov/cs_links/EMNIST/"],
}
# Published MD5 of every remote file (the same lists torchvision verifies against).
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    # NIST publishes EMNIST only as one archive of all splits; the balanced files are extracted.
    "emnist-balanced": {"gzip.zip": "58c8d27c78d21e728a6bc7b3cc06412e"},
}
_ARCHIVE = {"emnist-balanced": "gzip.zip"}
_TIMEOUT_S = 60.0


def _mirrors(name: str) -> list[str]:
    override = os.environ.get("HM2BP_MIRROR", "")
    urls = [u.strip() for u in override.split(",") if u.strip()] or MIRRORS[name]
    return [u if u.endswith("/") else u + "/" for u in urls]


def missing_message(name: str, split: str, root: Path, missing: Sequence[str], why: str) -> str:
    files = ", ".join(f"{b}.gz" for b in missing)
    if name in _ARCHIVE:
        source = (f"extract them from the gzip/ folder of {_ARCHIVE[name]} "
                  f"({MIRRORS[name][0]}{_ARCHIVE[name]})")
    else:
        source = f"download them from {MIRRORS[name][0]}"
    return (f"{name} {split} files missing: {why}.\n"
            f"Put these files into {root}: {files} (gzip or uncompressed, with or without .gz) - "
            f"{source} - or point --data-dir / HM2BP_DATA at a folder that already has them.")


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download url to dest via a temp file in the same folder; rename only if the MD5 matches."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": "hm2bp"})
        with (os.fdopen(fd, "wb") as out,
              urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp):
            size = int(resp.headers.get("Content-Length") or 0)
            bar = LoadProgress(f"downloading {dest.name}", size, unit="MB")
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            bar.close()
        if digest.hexdigest() != md5:
            raise DatasetError(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5} "
                               f"(corrupt download or wrong file on the mirror)")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _extract(archive: Path, root: Path, bases: Sequence[str]) -> None:
    """Extract <base>.gz members (any folder inside the zip) atomically into root."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {Path(m).name: m for m in zf.namelist()}
            for base in bases:
                member = members.get(f"{base}.gz")
                if member is None:
                    raise DatasetError(f"{archive}: has no member {base}.gz; the archive is not "
                                       f"the expected one, delete it and download it again")
                fd, tmp = tempfile.mkstemp(prefix=f".{base}.gz.", suffix=".part", dir=root)
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(member) as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.replace(tmp, root / f"{base}.gz")
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a valid zip archive ({exc}); delete it and download "
                           f"it again") from exc


def fetch_missing(name: str, split: str, root: Path, missing: Sequence[str]) -> None:
    archive = _ARCHIVE.get(name)
    remote = [archive] if archive else [f"{b}.gz" for b in missing]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(missing_message(name, split, root, missing,
                                            f"cannot create {root} ({exc})")) from exc
    for fname in remote:
        if (root / fname).is_file():  # an archive left by an interrupted extraction
            continue
        errors = []
        for base_url in _mirrors(name):
            try:
                _fetch(base_url + fname, root / fname, MD5[name][fname])
                break
            except (OSError, DatasetError) as exc:  # URLError, HTTPError, timeouts are OSErrors
                errors.append(f"{base_url}{fname}: {exc}")
        else:
            raise DatasetError(missing_message(name, split, root, missing,
                                                "download failed (" + "; ".join(errors) + ")"))
    if archive:
        _extract(root / archive, root, [b for s in SPLITS for b in IDX_FILES[name][s]])
        (root / archive).unlink()
