"""Tests of hm2bp.data: IDX / N-MNIST readers, data dir resolution, downloads (local server)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MNIST_10K = SHARED / "mnist-10k"
NMNIST_SMALL = SHARED / "nmnist-small"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"shared real data not found at {SHARED}")


@pytest.fixture(scope="session")
def data():
    import hm2bp.data as module

    return module


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
needs_debian_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist not installed ({DEBIAN_FASHION})")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path, data):
    # No test may see the user's data, cache, mirror or proxy settings, or the system's datasets.
    monkeypatch.setattr(data.catalog, "SYSTEM_DIRS", {})
    for var in ("HM2BP_DATA", "HM2BP_MIRROR", "http_proxy", "HTTP_PROXY", "https_proxy",
                "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ---------------------------------------------------------------------------------------------
# helpers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_mnist(directory: Path, split: str, images: np.ndarray, labels: np.ndarray,
                compress: bool = True, prefix: str = "") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = "train" if split == "train" else "t10k" if not prefix else "test"
    paths = []
    for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
        blob = idx_bytes(arr)
        path = directory / f"{prefix}{stem}-{kind}-ubyte{'.gz' if compress else ''}"
        path.write_bytes(gzip.compress(blob, mtime=0) if compress else blob)
        paths.append(path)
    return paths[0], paths[1]


def fake_digits(n: int, seed: int = 0, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, n_classes, n, dtype=np.uint8))


def event_bytes(events) -> bytes:
    out = bytearray()
    for x, y, p, ts in events:
        out += bytes([x, y, (p << 7) | (ts >> 16), (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def http_root(tmp_path):
    """Threaded HTTP server on 127.0.0.1 (free port) serving a fresh folder: (folder, url)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------------------------------------
# real shared data


@needs_shared
def test_mnist_10k_real_files(data):
    train = data.load("mnist", "train", data_dir=MNIST_10K, download=False)
    test = data.load("mnist", "test", data_dir=MNIST_10K, download=False)
    assert (len(train), len(test)) == (10000, 10000)
    assert np.bincount(train.labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070,
                                                  944, 978]
    for ds in (train, test):
        assert ds.is_images and ds.name == "mnist"
        assert ds.images.dtype == np.uint8 and ds.images.shape == (10000, 784)
        assert ds.image_shape == (28, 28) and ds.n_inputs == 784 and ds.n_classes == 10
        assert ds.labels.dtype == np.int64 and ds.labels.min() == 0 and ds.labels.max() == 9
        assert ds.images.min() == 0 and ds.images.max() == 255
        assert 25 < ds.images.mean() < 40  # MNIST's mean pixel is about 33
    sub = train.subset([5, 0, -1])
    assert len(sub) == 3 and np.array_equal(sub.images[1], train.images[0])
    assert np.array_equal(sub.labels, train.labels[[5, 0, 9999]])


@needs_shared
def test_nmnist_small_real_files(data):
    train = data.load("nmnist", "train", data_dir=NMNIST_SMALL)
    test = data.load("nmnist", "test", data_dir=NMNIST_SMALL)
    assert (len(train), len(test)) == (1000, 100)
    assert not train.is_images and train.n_inputs == 2312 and train.n_classes == 10
    assert set(train.labels.tolist()) == set(range(10)) == set(test.labels.tolist())
    spikes = train.batch_spikes([0, 1, 999], T=540)
    assert spikes.dtype == bool and spikes.shape == (3, 540, 2312)
    assert not spikes[:, 0].any() and spikes.sum() > 1000
    # without the stabilisation, the dataset agrees with binning the first file by hand
    # (the authors' recipe is checked event by event in test_events.py)
    first = sorted((NMNIST_SMALL / "Train" / "0").glob("*.bin"))[0]
    raw = np.fromfile(first, np.uint8).reshape(-1, 5).astype(np.int64)
    ts = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    step = (ts + 599) // 600 + 1
    keep = step < 540
    expected = np.zeros((540, 2312), bool)
    expected[step[keep], ((raw[:, 2] >> 7) * 1156 + raw[:, 0] * 34 + raw[:, 1])[keep]] = True
    raw_train = data.load("nmnist", "train", data_dir=NMNIST_SMALL, nmnist_recipe="raw")
    assert np.array_equal(raw_train.batch_spikes([0], T=540)[0], expected)
    assert not np.array_equal(spikes[0], expected)  # the default (authors') recipe moved events
    sub = train.subset([999, 0])
    assert np.array_equal(sub.batch_spikes([0, 1], T=100), train.batch_spikes([999, 0], T=100))
    assert len(train.subset([])) == 0 and train.subset((3, 4)).labels.tolist() == \
        train.labels[[3, 4]].tolist()
    with pytest.raises(IndexError, match="indices"):
        train.batch_spikes([1000])
    with pytest.raises(ValueError, match="T"):
        train.batch_spikes([0], T=0)


@needs_shared
def test_mnist_mini_bundled(data):
    train, test = data.load("mnist-mini", "train"), data.load("mnist-mini", "test", data_dir="/x")
    assert (len(train), len(test)) == (6000, 1000)
    assert train.images.shape == (6000, 784) and train.n_classes == 10
    t10k = data.load("mnist", "test", data_dir=MNIST_10K, download=False)
    assert np.array_equal(test.images, t10k.images[:1000])
    assert np.array_equal(test.labels, t10k.labels[:1000])
    train10k = data.load("mnist", "train", data_dir=MNIST_10K, download=False)
    assert np.array_equal(train.images, train10k.images[:6000])
    assert np.array_equal(train.labels, train10k.labels[:6000])


def test_mnist_mini_without_shared_data(data):
    test = data.load("mnist-mini", "test")
    assert len(test) == 1000 and test.labels.max() <= 9 and test.images.dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# N-MNIST binning and errors


def test_nmnist_binning_hand_built(data, tmp_path):
    events = [
        (1, 2, 0, 0),             # step 1, input 1*34+2 = 36 (x-major)
        (1, 2, 0, 0),             # same step and input: collapses into the spike above
        (1, 2, 1, 600),           # step ceil(600/600)+1 = 2, polarity 1: input 1156 + 36
        (33, 33, 1, 1799),        # step ceil(1799/600)+1 = 4, input 2311
        (0, 0, 0, 540 * 600 - 1200),  # step 539: last step kept at T = 540
        (0, 0, 0, 540 * 600 - 1199),  # step 540: dropped at T = 540
        (5, 5, 0, 2**23 - 1),     # largest timestamp: dropped
    ]
    folder = tmp_path / "Train" / "3"
    folder.mkdir(parents=True)
    (folder / "00001.bin").write_bytes(event_bytes(events))
    (tmp_path / "Train" / "7").mkdir()
    # a sample without spikes (its only event lies beyond any T; a 0-byte file is refused)
    (tmp_path / "Train" / "7" / "00002.bin").write_bytes(event_bytes([(5, 5, 0, 2**23 - 1)]))
    ds = data.load("nmnist", "train", data_dir=tmp_path, nmnist_recipe="raw")
    assert ds.labels.tolist() == [3, 7]
    spikes = ds.batch_spikes([0, 1], T=540)
    expected = np.zeros((540, 2312), bool)
    expected[1, 36] = expected[2, 1156 + 36] = expected[4, 2311] = expected[539, 0] = True
    assert np.array_equal(spikes[0], expected) and not spikes[1].any()
    assert ds.batch_spikes([0], T=3).sum() == 2  # only steps 1 and 2 fit in T = 3
    assert ds.batch_spikes([0], T=541)[0, 540, 0]  # a longer window keeps the step-540 event
    ev = data.read_nmnist_events(folder / "00001.bin")
    assert ev["p"].tolist() == [0, 0, 1, 1, 0, 0, 0] and ev["t"][-1] == 2**23 - 1
    assert ev["x"].tolist() == [1, 1, 1, 33, 0, 0, 5] and ev["y"].tolist()[:4] == [2, 2, 2, 33]
    codes = data.bin_events(ev, recipe="raw", T=540)
    assert codes.tolist() == [1 * 2312 + 36, 2 * 2312 + 1192, 4 * 2312 + 2311, 539 * 2312]


@pytest.mark.parametrize("payload, what", [
    (event_bytes([(1, 1, 0, 10), (34, 0, 0, 20)]), "x: values 1..34 outside 0..33"),
    (event_bytes([(1, 1, 0, 10)]) + b"\x00\x01", "multiple of 5"),
])
def test_nmnist_bad_file(data, tmp_path, payload, what):
    folder = tmp_path / "Test" / "4"
    folder.mkdir(parents=True)
    bad = folder / "00009.bin"
    bad.write_bytes(payload)
    with pytest.raises(data.DatasetError, match=what) as info:
        data.load("nmnist", "test", data_dir=tmp_path)
    assert str(bad) in str(info.value)


def test_nmnist_missing_gives_manual_instructions(data, tmp_path):
    with pytest.raises(data.DatasetError) as info:
        data.load("nmnist", "train", data_dir=tmp_path / "nowhere")
    msg = str(info.value)
    assert "Train.zip" in msg and str(tmp_path / "nowhere" / "nmnist") in msg
    assert "--data-dir" in msg and "HM2BP_DATA" in msg


# ---------------------------------------------------------------------------------------------
# IDX files


@pytest.mark.parametrize("compress", [True, False])
def test_idx_gzip_and_raw(data, tmp_path, compress):
    images, labels = fake_digits(7)
    write_mnist(tmp_path, "test", images, labels, compress=compress)
    ds = data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(ds.images, images.reshape(7, 784))
    assert np.array_equal(ds.labels, labels.astype(np.int64))


def test_idx_content_detected_by_magic_not_name(data, tmp_path):
    images, labels = fake_digits(3)
    # gzip data without .gz in the name, raw data with .gz in the name
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(labels))
    assert np.array_equal(data.read_idx_images(tmp_path / "train-images-idx3-ubyte"), images)
    assert np.array_equal(data.read_idx_labels(tmp_path / "train-labels-idx1-ubyte.gz"), labels)
    assert len(data.load("mnist", "train", data_dir=tmp_path, download=False)) == 3


@pytest.mark.parametrize("compress", [True, False])
def test_idx_bad_magic(data, tmp_path, compress):
    images, labels = fake_digits(4)
    img_path, lab_path = write_mnist(tmp_path, "train", images, labels, compress=compress)
    blob = idx_bytes(labels, magic=0x00000803)  # labels file claiming to hold images
    lab_path.write_bytes(gzip.compress(blob) if compress else blob)
    with pytest.raises(data.DatasetError, match="magic") as info:
        data.load("mnist", "train", data_dir=tmp_path, download=False)
    assert str(lab_path) in str(info.value) and "0x00000801" in str(info.value)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_truncated(data, tmp_path, compress):
    images, labels = fake_digits(4)
    img_path, _ = write_mnist(tmp_path, "train", images, labels, compress=compress)
    img_path.write_bytes(img_path.read_bytes()[:-100])
    with pytest.raises(data.DatasetError, match="truncated") as info:
        data.load("mnist", "train", data_dir=tmp_path, download=False)
    assert str(img_path) in str(info.value)


def test_idx_count_mismatch(data, tmp_path):
    images, _ = fake_digits(5)
    _, labels = fake_digits(4)
    img_path, lab_path = write_mnist(tmp_path, "train", images, labels)
    with pytest.raises(data.DatasetError, match="5 images but .* 4 labels") as info:
        data.load("mnist", "train", data_dir=tmp_path, download=False)
    assert str(img_path) in str(info.value) and str(lab_path) in str(info.value)


def test_idx_label_out_of_range(data, tmp_path):
    images, labels = fake_digits(5)
    labels[2] = 10
    write_mnist(tmp_path, "train", images, labels)
    with pytest.raises(data.DatasetError, match="label 10 out of range"):
        data.load("fashion-mnist", "train", data_dir=tmp_path, download=False)


def test_emnist_is_transposed_upright(data, tmp_path):
    images, labels = fake_digits(6, n_classes=47)
    write_mnist(tmp_path / "emnist", "test", images, labels, prefix="emnist-balanced-")
    ds = data.load("emnist-balanced", "test", data_dir=tmp_path, download=False)
    assert ds.n_classes == 47 and ds.image_shape == (28, 28)
    assert np.array_equal(ds.images.reshape(6, 28, 28), images.transpose(0, 2, 1))


# ---------------------------------------------------------------------------------------------
# data dir resolution


def test_system_copy_found_without_data_dir(data, tmp_path, monkeypatch):
    system, cache = tmp_path / "usr-share", tmp_path / "xdg-cache" / "hm2bp" / "fashion-mnist"
    monkeypatch.setattr(data.catalog, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "absent", system)})
    images, labels = fake_digits(3)
    write_mnist(system, "test", images, labels)
    # a system folder is used only when it has all four files
    assert data.resolve_data_dir("fashion-mnist") == cache
    write_mnist(system, "train", images, labels)
    assert data.resolve_data_dir("fashion-mnist") == system
    assert np.array_equal(data.load("fashion-mnist", "test", download=False).labels, labels)
    assert data.resolve_data_dir("mnist") == tmp_path / "xdg-cache" / "hm2bp" / "mnist"
    # an explicit folder, $HM2BP_DATA and a complete user cache come first
    assert data.resolve_data_dir("fashion-mnist", tmp_path / "mine") == tmp_path / "mine" / "fashion-mnist"
    monkeypatch.setenv("HM2BP_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir("fashion-mnist") == tmp_path / "env" / "fashion-mnist"
    monkeypatch.delenv("HM2BP_DATA")
    write_mnist(cache, "train", images, labels)
    write_mnist(cache, "test", images, labels)
    assert data.resolve_data_dir("fashion-mnist") == cache


@needs_debian_fashion
def test_debian_fashion_mnist_found_and_known(data, monkeypatch):
    monkeypatch.setattr(data.catalog, "SYSTEM_DIRS", {"fashion-mnist": (DEBIAN_FASHION,)})
    assert data.resolve_data_dir("fashion-mnist") == DEBIAN_FASHION
    ds = data.load("fashion-mnist", "test")
    assert len(ds) == 10000 and np.bincount(ds.labels).tolist() == [1000] * 10
    for path in DEBIAN_FASHION.glob("*.gz"):  # the sums in KNOWN_FILES, compressed and not
        assert data.KNOWN_FILES[md5(path)] == ("fashion-mnist", path.name)
        raw = hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest()
        assert data.KNOWN_FILES[raw] == ("fashion-mnist", path.name[:-3])


def test_known_files_cover_the_downloads(data):
    for name in ("mnist", "fashion-mnist"):
        for fname, digest in data.MD5[name].items():
            assert data.KNOWN_FILES[digest] == (name, fname)
    assert all(len(k) == 32 and set(k) <= set("0123456789abcdef") for k in data.KNOWN_FILES)


def test_other_datasets_files_are_refused(data, tmp_path, monkeypatch):
    images, labels = fake_digits(3)
    image_path, _ = write_mnist(tmp_path, "test", images, labels)
    monkeypatch.setitem(data.KNOWN_FILES, md5(image_path), ("mnist", "t10k-images-idx3-ubyte.gz"))
    assert len(data.load("mnist", "test", data_dir=tmp_path, download=False)) == 3
    with pytest.raises(data.DatasetError) as info:
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert str(info.value) == (f"{image_path} is the mnist file t10k-images-idx3-ubyte.gz (by its "
                               f"MD5 sum), not fashion-mnist's; point --data-dir at the "
                               f"fashion-mnist files")


@needs_shared
def test_real_mnist_refused_as_fashion(data, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((MNIST_10K / name).read_bytes())
        raw = tmp_path / "raw" / name[:-3]  # uncompressed copies are known too
        raw.parent.mkdir(exist_ok=True)
        raw.write_bytes(gzip.decompress((MNIST_10K / name).read_bytes()))
    for folder in (tmp_path, tmp_path / "raw"):
        with pytest.raises(data.DatasetError, match="is the mnist file t10k-images-idx3-ubyte"):
            data.load("fashion-mnist", "test", data_dir=folder, download=False)
        assert len(data.load("mnist", "test", data_dir=folder, download=False)) == 10000


@needs_debian_fashion
def test_real_fashion_refused_as_mnist(data):
    with pytest.raises(data.DatasetError, match="is the fashion-mnist file t10k-images-idx3-ubyte.gz"):
        data.load("mnist", "test", data_dir=DEBIAN_FASHION, download=False)


def test_resolution_order(data, tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    assert data.resolve_data_dir("mnist") == tmp_path / "xdg-cache" / "hm2bp" / "mnist"
    monkeypatch.setenv("HM2BP_DATA", str(env))
    assert data.resolve_data_dir("mnist") == env / "mnist"
    assert data.resolve_data_dir("emnist-balanced") == env / "emnist"
    assert data.resolve_data_dir("mnist", explicit) == explicit / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("HM2BP_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.resolve_data_dir("nmnist") == tmp_path / "home" / ".cache" / "hm2bp" / "nmnist"


def test_resolution_accepts_files_directly(data, tmp_path, monkeypatch):
    images, labels = fake_digits(2)
    write_mnist(tmp_path / "flat", "test", images, labels, compress=False)
    assert data.resolve_data_dir("mnist", tmp_path / "flat") == tmp_path / "flat"
    (tmp_path / "flat-nmnist" / "Test").mkdir(parents=True)
    monkeypatch.setenv("HM2BP_DATA", str(tmp_path / "flat-nmnist"))
    assert data.resolve_data_dir("nmnist") == tmp_path / "flat-nmnist"
    # a root with the per-dataset subfolder wins over files lying next to it
    write_mnist(tmp_path / "flat" / "mnist", "test", images, labels)
    assert data.resolve_data_dir("mnist", tmp_path / "flat") == tmp_path / "flat" / "mnist"


@needs_shared
def test_env_root_with_subfolders(data, tmp_path, monkeypatch):
    (tmp_path / "mnist").symlink_to(MNIST_10K, target_is_directory=True)
    monkeypatch.setenv("HM2BP_DATA", str(tmp_path))
    assert len(data.load("mnist", "test", download=False)) == 10000


def test_bad_name_or_split(data):
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist', 'emnist-balanced', 'nmnist'"):
        data.load("cifar10", "train")
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.load("mnist", "validation")


# ---------------------------------------------------------------------------------------------
# downloads (local server only)


def _serve_mnist(served: Path, split: str, data, monkeypatch, n: int = 9):
    images, labels = fake_digits(n, seed=1)
    paths = write_mnist(served, split, images, labels)
    for p in paths:
        monkeypatch.setitem(data.MD5["mnist"], p.name, md5(p))
    return images, labels


def test_download_good_checksum(data, tmp_path, http_root, monkeypatch):
    served, url = http_root
    images, labels = _serve_mnist(served, "train", data, monkeypatch)
    monkeypatch.setenv("HM2BP_MIRROR", f"{closed_port_url()},{url}")  # first mirror is down
    ds = data.load("mnist", "train", data_dir=tmp_path / "dl")
    assert np.array_equal(ds.images, images.reshape(-1, 784))
    target = tmp_path / "dl" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == ["train-images-idx3-ubyte.gz",
                                                        "train-labels-idx1-ubyte.gz"]
    for p in target.iterdir():
        assert md5(p) == md5(served / p.name)


def test_download_bad_checksum(data, tmp_path, http_root, monkeypatch):
    served, url = http_root
    _serve_mnist(served, "test", data, monkeypatch)
    monkeypatch.setitem(data.MD5["mnist"], "t10k-images-idx3-ubyte.gz", "0" * 32)
    monkeypatch.setenv("HM2BP_MIRROR", url)
    with pytest.raises(data.DatasetError, match="MD5 mismatch") as info:
        data.load("mnist", "test", data_dir=tmp_path / "dl")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert list((tmp_path / "dl" / "mnist").iterdir()) == []  # no bad file, no temp file


def test_download_emnist_archive(data, tmp_path, http_root, monkeypatch):
    served, url = http_root
    images, labels = fake_digits(5, n_classes=47)
    members = tmp_path / "members"
    for split in ("train", "test"):
        write_mnist(members, split, images, labels, prefix="emnist-balanced-")
    with zipfile.ZipFile(served / "gzip.zip", "w") as zf:
        for p in members.iterdir():
            zf.write(p, f"gzip/{p.name}")
    monkeypatch.setitem(data.MD5["emnist-balanced"], "gzip.zip", md5(served / "gzip.zip"))
    monkeypatch.setenv("HM2BP_MIRROR", url)
    ds = data.load("emnist-balanced", "train", data_dir=tmp_path / "dl")
    assert np.array_equal(ds.images.reshape(5, 28, 28), images.transpose(0, 2, 1))
    target = tmp_path / "dl" / "emnist"
    assert len(list(target.iterdir())) == 4 and not (target / "gzip.zip").exists()


def test_download_unreachable_lists_missing_files(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HM2BP_MIRROR", closed_port_url())
    monkeypatch.setenv("HM2BP_DATA", str(tmp_path / "root"))
    with pytest.raises(data.DatasetError) as info:
        data.load("fashion-mnist", "test")
    msg = str(info.value)
    target = tmp_path / "root" / "fashion-mnist"
    assert f"into {target}" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "train-" not in msg.split("\n")[1]  # only the requested split's files
    assert "--data-dir" in msg and "HM2BP_DATA" in msg and "download failed" in msg
    assert list(target.iterdir()) == []


def test_missing_without_download(data, tmp_path):
    images, labels = fake_digits(2)
    write_mnist(tmp_path, "test", images, labels)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DatasetError, match="download=False") as info:
        data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "t10k-images" not in str(info.value).split("\n")[1].split(":")[1]


# ---------------------------------------------------------------------------------------------
# Loader holes of issue 14: every one is a clear DatasetError, never a hang or a silent merge


def test_idx_header_with_zero_images(data, tmp_path):
    path = tmp_path / "x-images"
    path.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    with pytest.raises(data.DatasetError, match="none"):
        data.read_idx_images(path)


def _nmnist_tree(root: Path, labels=range(10), events=((1, 1, 0, 10),)) -> Path:
    for label in labels:
        folder = root / "Train" / str(label)
        folder.mkdir(parents=True)
        (folder / "00001.bin").write_bytes(event_bytes(events))
    return root


def test_nmnist_fifo_is_refused_not_read(data, tmp_path):
    root = _nmnist_tree(tmp_path)
    os.mkfifo(root / "Train" / "3" / "00002.bin")
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        error=pytest.raises(data.DatasetError, data.load, "nmnist", "train", data_dir=root)))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the loader blocked on a FIFO"
    assert "not a regular file" in str(result["error"].value)


@pytest.mark.parametrize("folder", ["05", "10", "five"])
def test_nmnist_label_folders_are_exactly_0_to_9(data, tmp_path, folder):
    root = _nmnist_tree(tmp_path)
    (root / "Train" / folder).mkdir()
    with pytest.raises(data.DatasetError, match=f"unexpected folder '{folder}'"):
        data.load("nmnist", "train", data_dir=root)
    (root / "Train" / folder).rmdir()
    (root / "Train" / "README.txt").write_text("loose files are not samples")
    assert len(data.load("nmnist", "train", data_dir=root)) == 10


def test_nmnist_empty_samples_are_refused(data, tmp_path):
    """A 0-byte recording is damage (issue 25), refused naming the file."""
    root = _nmnist_tree(tmp_path, events=())
    with pytest.raises(data.DatasetError, match=r"00001.bin: the file is empty \(0 bytes\)"):
        data.load("nmnist", "train", data_dir=root)


@pytest.mark.parametrize("field,value,match", [
    ("x", -1, "x: values"), ("y", 34, "y: values"), ("p", 2, "p: values"),
    ("t", -5, "negative"), ("t", 2**31, "int32"), ("t", 2**40, "int32"),
])
@pytest.mark.parametrize("recipe", ["authors", "raw"])
def test_bin_events_validates_fields(data, field, value, match, recipe):
    ev = np.zeros(2, dtype=[(f, np.int64) for f in "xytp"])
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 2], [3, 4], [0, 1], [10, 20]
    ev[field][1] = value
    if recipe == "authors" and match == "int32":  # the stabilisation moves such a late event
        assert len(data.bin_events(ev, recipe=recipe)) == 1  # off the sensor: dropped
        return
    with pytest.raises(data.DatasetError, match=match):
        data.bin_events(ev, recipe=recipe)
    if field == "t" and value > 0:  # late events are fine when T drops them
        assert len(data.bin_events(ev, recipe=recipe, T=540)) == 1


def test_stratified_sample(data):
    labels = np.repeat(np.arange(10), [100, 50, 120, 80, 90, 100, 100, 100, 100, 160])
    idx = data.stratified_sample(labels, 300, [3, 0])
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 300 == len(np.unique(idx)) and np.all(np.diff(idx) > 0)
    assert np.all(np.abs(counts - np.bincount(labels) * 0.3) < 1), counts
    np.testing.assert_array_equal(idx, data.stratified_sample(labels, 300, [3, 0]))
    assert not np.array_equal(idx, data.stratified_sample(labels, 300, [4, 0]))
    np.testing.assert_array_equal(data.stratified_sample(labels, len(labels), 0),
                                  np.arange(len(labels)))


def test_train_size_is_a_stratified_sample_of_class_sorted_nmnist(shared_data):
    from hm2bp.config import preset
    from hm2bp.train.build import load_split

    cfg = preset("nmnist-fc800", data_dir=str(shared_data / "nmnist-small"), train_size=300)
    full = np.bincount(load_split(cfg, "train", None).labels, minlength=10)
    ds = load_split(cfg, "train", 300)
    counts = np.bincount(ds.labels, minlength=10)  # every digit, not digits 0-2 only
    assert np.all(np.abs(counts - full * 300 / full.sum()) < 1), counts


def test_mnist_files_where_emnist_belongs(data, tmp_path):
    from hm2bp.config import preset
    from hm2bp.train.build import load_split

    images, labels = fake_digits(60)
    write_mnist(tmp_path / "emnist", "train", images, labels, prefix="emnist-balanced-")
    cfg = preset("emnist-fc800x2", data_dir=str(tmp_path), download=False)
    with pytest.raises(data.DatasetError, match="10 classes .* has 47"):
        load_split(cfg, "train", None)
