"""Nothing a file can do to us (issue 25): no writes through links, no reads outside what was
asked, readers that neither block nor run away, memory bounded by the data present, atomic
exports, checks at every entry point, a replaced run directory detected, outputs that follow
the umask.

The CLI tests enumerate the path and integer options from the argparse definitions, so that a
new option is covered without a new test."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hm2bp
from hm2bp import cli, data, safe_io
from helpers import one_line_error
from hm2bp.cli import main as cli_main
from hm2bp.config import ConfigError, build_config, preset
from hm2bp.interop import authors
from hm2bp.model import limits
from hm2bp.train import runstate, validation
from hm2bp.train.checkpoint import load_checkpoint
from hm2bp.train.trainer import Trainer

TINY = {"layers": [784, 30, 10], "T": 60, "vth": [5.0, 3.0], "desired": 10, "undesired": 2,
        "margin": 2, "train_size": 200, "test_size": 100, "batch_size": 4, "lr": 0.005,
        "seed": 7, "backend": "cpu", "threads": 1}
TINY_TOML = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items()) + '\npreset = "mnist-mini"\n'
MAIN = {"hm2bp-train": "train_main", "hm2bp-eval": "eval_main", "hm2bp-export": "export_main"}


def command(prog: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from hm2bp.cli import {MAIN[prog]} as m; "
                                  f"sys.exit(m(sys.argv[1:]))"]


def run_cli(prog: str, argv: list[str]) -> int:
    """The exit code of a CLI run in this process (argparse's errors exit through SystemExit)."""
    try:
        return getattr(cli, MAIN[prog])(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML + "epochs = 1\n")
    return path


# ---------------------------------------------------------------------------------------------
# 1. Links and our own temporaries


def test_symlinked_lock_is_never_written_through(tmp_path, tiny_toml, capsys):
    run = tmp_path / "run"
    run.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    (run / ".lock").symlink_to(notes)
    assert cli.train_main(["--config", str(tiny_toml), "--out", str(run), "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, ".lock", "symbolic link")
    assert notes.read_text() == "my notes\n"
    assert (run / ".lock").is_symlink()  # not ours to delete either


@pytest.mark.parametrize("name", ["metrics.jsonl", "metrics.csv", "checkpoint.npz", "best.npz"])
def test_symlinked_output_files_are_never_written_through(tmp_path, tiny_toml, capsys, name):
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (run / name).symlink_to(target)
    code = cli.train_main(["--config", str(tiny_toml), "--out", str(run), "--quiet"])
    err = capsys.readouterr().err
    assert target.read_text() == "keep me\n"
    if code != 0:  # refused in one line, naming the file (or the run it seems to hold)
        assert name in one_line_error(err) or "already holds a run" in err
    assert not (run / ".lock").exists()


def test_stale_temporary_cleanup_deletes_only_our_own(tmp_path, tiny_toml):
    run = tmp_path / "run"
    run.mkdir()
    user = [".notes.tmp", ".checkpoint.npz.abc123.tmp", ".x.hm2bp-1-zz.tmp", "keep.tmp"]
    for name in user:
        (run / name).write_text("user data")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ours = run / f".checkpoint.npz.hm2bp-{dead.pid}-0123456789ab.tmp"
    ours.write_text("left by a killed writer")
    live = run / f".checkpoint.npz.hm2bp-{os.getpid()}-0123456789ab.tmp"
    live.write_text("a writer that still runs")
    assert cli.train_main(["--config", str(tiny_toml), "--out", str(run), "--quiet"]) == 0
    assert all((run / name).read_text() == "user data" for name in user)
    assert not ours.exists() and live.exists()


# ---------------------------------------------------------------------------------------------
# 3. Special files for every path option of every CLI


def _path_actions(parser) -> list:
    pathy = re.compile(r"FILE|DIR|TOML|NPZ|PATH")
    return [a for a in parser._actions if a.metavar and pathy.search(str(a.metavar))]


PARSERS = {"hm2bp-train": cli_main._train_parser, "hm2bp-eval": cli_main._eval_parser,
           "hm2bp-export": cli_main._export_parser}


def _special(kind: str, tmp_path: Path, stack: contextlib.ExitStack) -> str:
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return str(path)
    if kind == "zero":
        return "/dev/zero"
    if kind == "directory":
        path = tmp_path / "a-directory"
        path.mkdir()
        return str(path)
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    stack.callback(server.close)
    return str(path)


def _argv(prog: str, action, value: str, good_run: Path, tmp_path: Path) -> list[str]:
    """A command line that is valid except for `value` given to `action`."""
    flag = action.option_strings[0] if action.option_strings else None
    given = [flag, value] if flag else [value]
    out = str(tmp_path / "out.file")
    if prog == "hm2bp-train":
        rest = [] if flag == "--resume" else ["--epochs", "1", "--train-size", "100", "--test-size",
                                               "50", "--quiet"]
        if flag not in ("--out", "--resume"):
            rest += ["--out", str(tmp_path / "run")]
        return given + rest
    if prog == "hm2bp-eval":
        if flag in ("--authors-checkpoint",):
            return given + ["--preset", "mnist-mini"]
        if flag == "--config":
            return given + ["--authors-checkpoint", str(tmp_path / "missing.txt")]
        if flag is None:
            return given
        return [str(good_run), *given]
    if flag is None:
        return given + ["--nir", out]
    return [str(good_run), *given]


@pytest.mark.parametrize("kind", ["fifo", "zero", "directory", "socket"])
@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_special_files_are_refused_for_every_path_option(prog, kind, good_run, tmp_path, capsys):
    actions = _path_actions(PARSERS[prog]())
    assert actions, prog
    for action in actions:
        if kind == "directory" and "DIR" in str(action.metavar):
            continue  # a directory is what it asks for
        if prog == "hm2bp-export" and action.dest == "nir":
            pytest.importorskip("nir", reason="the nir package is not installed")
        with contextlib.ExitStack() as stack:
            where = tmp_path / f"{action.dest}-{kind}"
            where.mkdir()
            value = _special(kind, where, stack)
            argv = _argv(prog, action, value, good_run, where)
            signal.alarm(20)  # a reader that blocks would hang the test: fail it instead
            try:
                t0 = time.perf_counter()
                code = run_cli(prog, argv)
                seconds = time.perf_counter() - t0
            finally:
                signal.alarm(0)
            err = capsys.readouterr().err
            assert code == 2, (prog, argv, code, err)
            one_line_error(err)
            assert seconds < 3.0, (prog, argv, seconds)  # 1 s on a quiet machine
        assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)  # never replaced


def test_safe_io_refuses_special_files_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", Path("/dev/zero"), tmp_path):
        t0 = time.perf_counter()
        with pytest.raises(safe_io.FileRefusedError, match="not a regular file"):
            safe_io.read_bytes(path, 1 << 20)
        assert time.perf_counter() - t0 < 1.0
    big = tmp_path / "big"
    with big.open("wb") as fh:
        fh.truncate(10 << 20)  # sparse: no disk used
    with pytest.raises(safe_io.FileRefusedError, match="more than"):
        safe_io.read_bytes(big, 1 << 20)


# ---------------------------------------------------------------------------------------------
# 5. Huge numbers and deep or large configs: exit 2, one short line


def _int_actions(parser) -> list:
    return [a for a in parser._actions
            if a.type is int or getattr(a.type, "__name__", "") == "integer"]


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_400_digit_numbers_for_every_integer_option(prog, good_run, tmp_path, capsys):
    actions = _int_actions(PARSERS[prog]())
    if prog != "hm2bp-export":
        assert actions, prog
    for action in actions:
        for digits in ("9" * 400, "-" + "9" * 400):
            argv = [action.option_strings[0], digits]
            if prog == "hm2bp-eval":
                argv = [str(good_run), *argv]
            elif prog == "hm2bp-export":
                argv = [str(good_run), "--nir", str(tmp_path / "x.nir"), *argv]
            else:
                argv += ["--out", str(tmp_path / "run")]
            assert run_cli(prog, argv) == 2, argv
            one_line_error(capsys.readouterr().err, action.option_strings[0].lstrip("-")[:4])


@pytest.mark.parametrize("key", ["epochs", "T", "seed", "train_size", "batch_size", "threads",
                                 "t_ref", "desired", "eval_batch_size"])
def test_400_digit_numbers_in_a_config(tmp_path, capsys, key):
    toml = tmp_path / "c.toml"
    toml.write_text(f'preset = "mnist-mini"\n{key} = {"9" * 400}\n')
    assert cli.train_main(["--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys.readouterr().err, key)
    toml.write_text(f'preset = "mnist-mini"\nlayers = [784, {"9" * 400}, 10]\n')
    assert cli.train_main(["--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys.readouterr().err, "layers")


@pytest.mark.parametrize("text", [
    "layers = " + "[" * 10_000 + "]" * 10_000,
    "x = " + "{a = " * 5_000 + "1" + "}" * 5_000,
    "[network]\nlayer = " + "[" * 2_000 + "]" * 2_000,
    'dataset = "' + "m" * 300_000 + '"',
    "layers = [784, " + "1e999, " * 3 + "10]",
    "T = " + "9" * 5_000,
])
def test_deep_or_large_configs_are_one_short_line(tmp_path, capsys, text):
    toml = tmp_path / "c.toml"
    toml.write_text(text + "\n")
    assert cli.train_main(["--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys.readouterr().err, "hm2bp-train: error:")


def test_a_config_file_larger_than_a_config_is_refused_unread(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    with toml.open("wb") as fh:
        fh.write(b'dataset = "')
        fh.truncate(100 << 20)
    assert cli.train_main(["--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys.readouterr().err, "c.toml", "MiB")


@pytest.mark.parametrize("payload", [
    "[" * 100_000 + "]" * 100_000, '{"version": 1, "x": "' + "y" * 3_000_000 + '"}',
    '{"version": 1, "epoch": ' + "9" * 5_000 + "}",
], ids=["deep", "3MB", "5000-digit"])
def test_v1_json_metadata_is_one_line(run_copy, capsys, payload):
    """A version-1 checkpoint (npz without __meta__ and checkpoint.json beside it)."""
    arrays = runstate.read_npz(run_copy / "checkpoint.npz")
    arrays.pop("__meta__")
    np.savez(run_copy / "checkpoint.npz", **arrays)
    (run_copy / "checkpoint.json").write_text(payload)
    assert cli.eval_main([str(run_copy)]) == 2
    one_line_error(capsys.readouterr().err, "checkpoint")


# ---------------------------------------------------------------------------------------------
# 2. NIR files: nothing outside the file, nothing unexpected in it


@pytest.fixture
def nir_file(tmp_path) -> Path:
    pytest.importorskip("nir", reason="the nir package is not installed")
    from hm2bp.interop import nir as hnir

    net = hm2bp.Network([12, 6, 3], vth=[2.0, 3.0], seed=1)
    path = tmp_path / "net.nir"
    hnir.write(path, net, dt=1e-4)
    return path


def _weight_path(h5) -> str:
    found = []
    h5.visit(lambda name: found.append(name) if name.endswith("weight") else None)
    return found[0]


def _mutate_nir(path: Path, how: str, tmp_path: Path) -> None:
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(72, dtype=np.float64).tobytes())
    with h5py.File(path, "r+") as f:
        name = _weight_path(f)
        shape, dtype = f[name].shape, f[name].dtype
        del f[name]
        if how == "external_storage":
            f.create_dataset(name, shape=shape, dtype=dtype,
                             external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        elif how == "external_link":
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["w"] = np.ones(shape)
            f[name] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/w")
        elif how == "soft_link":
            f["node/copy"] = np.ones(shape)
            f[name] = h5py.SoftLink("/node/copy")
        elif how == "string_dtype":
            f[name] = np.array(["a"] * int(np.prod(shape)), dtype="S1").reshape(shape)
        elif how == "compound_dtype":
            f[name] = np.zeros(shape, dtype=[("a", "f8"), ("b", "i4")])
        elif how == "complex_dtype":
            f[name] = np.zeros(shape, dtype=np.complex128)
        elif how == "huge_shape":
            f.create_dataset(name, shape=(2**31, 2**20), dtype="f8", chunks=(1, 1024))
        elif how == "wrong_shape":
            f[name] = np.ones((2, 2, 2, 2, 2))
        elif how == "deep_groups":
            g = f["node"]
            for _ in range(200):
                g = g.create_group("g")
            f[name] = np.ones(shape)


@pytest.mark.parametrize("how", ["external_storage", "external_link", "soft_link", "string_dtype",
                                 "compound_dtype", "complex_dtype", "huge_shape", "wrong_shape",
                                 "deep_groups"])
def test_nir_mutations_are_refused_before_reading(nir_file, tmp_path, how):
    from hm2bp.interop import nir as hnir

    _mutate_nir(nir_file, how, tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        hnir.read(nir_file)
    assert time.perf_counter() - t0 < 5
    assert str(nir_file) in str(info.value) and "\n" not in str(info.value)


def test_nir_special_and_oversized_files(tmp_path):
    pytest.importorskip("nir", reason="the nir package is not installed")
    from hm2bp.interop import nir as hnir

    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", "/dev/zero", tmp_path):
        with pytest.raises(ValueError, match="regular file"):
            hnir.read(path)


def test_nir_byte_fuzz_is_one_error_type(nir_file, tmp_path):
    from hm2bp.interop import nir as hnir

    base = nir_file.read_bytes()
    rng = np.random.default_rng(25)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(60):
        blob = bytearray(base)
        for _ in range(int(rng.integers(1, 16))):
            blob[int(rng.integers(len(blob)))] = int(rng.integers(256))
        path = tmp_path / f"f{trial}.nir"
        path.write_bytes(bytes(blob))
        try:
            hnir.read(path)
            outcomes["loaded"] += 1
        except ValueError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0


def test_nir_non_finite_time_constants(tmp_path, run_copy, capsys):
    pytest.importorskip("nir", reason="the nir package is not installed")
    from hm2bp.interop import nir as hnir

    out = tmp_path / "x.nir"
    for dt in ("1e308", "inf", "nan", "1e-320"):
        assert cli.export_main([str(run_copy), "--nir", str(out), "--dt", dt]) == 2
        one_line_error(capsys.readouterr().err, "dt")
        assert not out.exists()
    net = hm2bp.Network([12, 6, 3], vth=[2.0, 3.0], seed=1)
    graph = hnir.to_nir(net, dt=1.0)
    graph.nodes["layer0_lif"].tau_mem = np.full(6, np.inf)
    with pytest.raises(ValueError, match="finite"):
        hnir.from_nir(graph)
    with pytest.raises(ValueError, match="dt"):
        hnir.from_nir(hnir.to_nir(net), dt=float("inf"))


# ---------------------------------------------------------------------------------------------
# The authors' text format


def test_authors_format_fuzz_and_special_files(tmp_path):
    shapes = [(4, 6), (3, 4)]
    weights = [np.linspace(-1, 1, 24).reshape(4, 6), np.linspace(-1, 1, 12).reshape(3, 4)]
    path = tmp_path / "ck.txt"
    authors.write_checkpoint(path, weights, shapes)
    base = path.read_text()
    rng = np.random.default_rng(3)
    tokens = base.split()
    for trial in range(200):
        t = list(tokens)
        k = int(rng.integers(len(t)))
        t[k] = rng.choice(["nan", "inf", "-inf", "1e999", "0x10", "", "1" * 500, "1e-999", "\x00"])
        if rng.random() < 0.2:
            t = t[:int(rng.integers(len(t)))]
        path.write_text(" ".join(t))
        try:
            authors.read_checkpoint(path, shapes)
        except ValueError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400
    os.mkfifo(tmp_path / "fifo")
    for special in (tmp_path / "fifo", "/dev/zero", tmp_path):
        with pytest.raises(ValueError, match="regular file"):
            authors.read_checkpoint(special, shapes)
    with path.open("wb") as fh:
        fh.truncate(200 << 20)
    with pytest.raises(ValueError, match="more than"):
        authors.read_checkpoint(path, shapes)


# ---------------------------------------------------------------------------------------------
# 4. Memory follows the data present, not the header


def _peak_rss_mib(code: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    wrapper = (code + "\nimport resource, sys\n"
               "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True,
                          timeout=120)
    rss = float(re.search(r"RSS ([\d.]+)", proc.stderr).group(1))
    return rss, proc


BASELINE = "import numpy, gzip, hm2bp.data"


@pytest.mark.parametrize("claim", [2**31 - 1, 3_000_000])
def test_gzip_idx_claiming_more_than_present(tmp_path, claim):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as gz:
        gz.write((0x803).to_bytes(4, "big") + claim.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        zeros = bytes(1 << 20)
        for _ in range(200):  # 200 MB of zeros: about 200 KB of gzip
            gz.write(zeros)
    base, _ = _peak_rss_mib(BASELINE)
    rss, proc = _peak_rss_mib(
        BASELINE + "\ntry:\n    hm2bp.data.read_idx_images(__import__('sys').argv[1])\n"
        "except hm2bp.data.DatasetError as e:\n    print('refused', e)", str(path))
    assert "refused" in proc.stdout, proc.stderr
    assert rss - base < 260, (rss, base)  # at most about the 200 MB really there


def test_huge_nmnist_sample_is_refused_unread(tmp_path):
    path = tmp_path / "00001.bin"
    with path.open("wb") as fh:
        fh.truncate(100 << 20)
    base, _ = _peak_rss_mib(BASELINE)
    rss, proc = _peak_rss_mib(
        BASELINE + "\ntry:\n    hm2bp.data.read_nmnist_events(__import__('sys').argv[1])\n"
        "except hm2bp.data.DatasetError as e:\n    print('refused', e)", str(path))
    assert "refused" in proc.stdout, proc.stderr
    assert rss - base < 50, (rss, base)


def test_empty_nmnist_sample_is_refused(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(b"")
    with pytest.raises(data.DatasetError, match="empty"):
        data.read_nmnist_events(path)


# ---------------------------------------------------------------------------------------------
# 6. Full disk: exports and saves keep the previous file and say so


def _with_fsize(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


@pytest.mark.parametrize("what", ["nir", "authors"])
def test_full_disk_export_keeps_the_old_file(good_run, tmp_path, what):
    if what == "nir":
        pytest.importorskip("nir", reason="the nir package is not installed")
        argv = [*command("hm2bp-export"), str(good_run), "--nir"]
    else:
        argv = [*command("hm2bp-eval"), str(good_run), "--limit", "20", "--export-authors-checkpoint"]
    target = tmp_path / "exported"
    target.write_text("the previous export\n")
    proc = subprocess.run([*argv, str(target)], capture_output=True, text=True, timeout=180,
                          preexec_fn=_with_fsize(8192))
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc.stderr, str(target), "intact")
    assert target.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]  # no temporary left


def test_full_disk_during_a_save_names_the_file(run_copy):
    proc = subprocess.run([*command("hm2bp-train"), "--resume", str(run_copy), "--epochs", "2",
                           "--quiet"], capture_output=True, text=True, timeout=180,
                          preexec_fn=_with_fsize(16384))
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc.stderr, str(run_copy), "intact")
    assert "checkpoint.npz" in line or "best.npz" in line
    assert load_checkpoint(run_copy)[1]["epoch"] == 1
    assert not (run_copy / ".lock").exists()


# ---------------------------------------------------------------------------------------------
# 7. Checks every entry point makes


def test_network_api_estimates_memory_first(monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 64 << 20)
    with pytest.raises(MemoryError, match="needs about"):
        hm2bp.Network([784, 8000, 10], vth=[1.0, 1.0])


def test_eval_authors_checkpoint_estimates_memory_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 64 << 20)
    toml = tmp_path / "big.toml"
    toml.write_text('preset = "mnist-mini"\nlayers = [784, 8000, 10]\n')
    ck = tmp_path / "ck.txt"
    ck.write_text("0 " * 10)
    assert cli.eval_main(["--authors-checkpoint", str(ck), "--config", str(toml)]) == 2
    one_line_error(capsys.readouterr().err, "memory")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_api_detects_non_finite_weights_after_a_step(dtype):
    rng = np.random.default_rng(0)
    spikes = rng.random((2, 40, 20)) < 0.3
    net = hm2bp.Network([20, 10, 4], vth=[1.0, 1.0], init_w=1e30 if dtype == "float32" else 1e200,
                        desired=10, undesired=2, margin=2, dtype=dtype)
    with pytest.raises(FloatingPointError, match="not finite"):
        for _ in range(3):
            net.train_step(spikes, np.array([0, 1]), 0.01)


def test_api_detects_non_finite_weights_at_construction():
    with pytest.raises(ValueError, match="finite"):
        hm2bp.Network([20, 10, 4], vth=[1.0, 1.0], init_w=1e300)


# ---------------------------------------------------------------------------------------------
# 8. A run directory replaced under a running training; metrics without duplicates


def test_replaced_run_directory_is_detected(tmp_path):
    toml = tmp_path / "long.toml"
    toml.write_text(TINY_TOML.replace("train_size = 200", "train_size = 40")
                    .replace("test_size = 100", "test_size = 20") + "epochs = 100000\n")
    run = tmp_path / "run"
    proc = subprocess.Popen([*command("hm2bp-train"), "--config", str(toml), "--out", str(run),
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.1)
        for attempt in range(20):  # the run may create a file while rmtree empties the folder
            try:
                shutil.rmtree(run)
                break
            except OSError:
                time.sleep(0.05)
        run.mkdir()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    one_line_error(err, str(run), "replaced")
    assert list(run.iterdir()) == []  # nothing written into the new directory


def test_resume_keeps_one_metrics_line_per_epoch(run_copy):
    path = run_copy / "metrics.jsonl"
    record = json.loads(path.read_text().splitlines()[0])
    path.write_text("".join(json.dumps({**record, "train_loss": k}) + "\n" for k in range(3)))
    assert cli.train_main(["--resume", str(run_copy), "--epochs", "2", "--quiet"]) == 0
    epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines()]
    assert epochs == [1, 2]
    csv_epochs = [line.split(",")[0] for line in (run_copy / "metrics.csv").read_text().splitlines()[1:]]
    assert csv_epochs == ["1", "2"]


# ---------------------------------------------------------------------------------------------
# 9. Quiet damage


@pytest.mark.parametrize("entry", ["eval", "resume", "export"])
def test_damaged_best_checkpoint_is_detected(run_copy, capsys, entry):
    best = run_copy / validation.BEST_FILE
    assert best.exists()
    best.write_bytes(best.read_bytes()[:200])
    if entry == "eval":
        code = cli.eval_main([str(run_copy)])
    elif entry == "resume":
        code = cli.train_main(["--resume", str(run_copy), "--epochs", "2", "--quiet"])
    else:
        pytest.importorskip("nir", reason="the nir package is not installed")
        code = cli.export_main([str(run_copy), "--nir", str(run_copy / "x.nir")])
    assert code == 2
    one_line_error(capsys.readouterr().err, "best.npz")


# ---------------------------------------------------------------------------------------------
# 10. Modes and leftovers


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path, tiny_toml, umask):
    old = os.umask(umask)
    try:
        run = tmp_path / "run"
        assert cli.train_main(["--config", str(tiny_toml), "--out", str(run), "--quiet"]) == 0
        ck = run / "ck.txt"
        assert cli.eval_main([str(run), "--limit", "10", "--export-authors-checkpoint", str(ck)]) == 0
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    files = ["checkpoint.npz", "best.npz", "metrics.csv", "metrics.jsonl", "ck.txt"]
    assert {f: oct(stat.S_IMODE((run / f).stat().st_mode)) for f in files} == \
        {f: oct(want) for f in files}
    assert not (run / ".lock").exists()


def test_lock_is_removed_after_a_failed_start(tmp_path, capsys):
    run = tmp_path / "run"
    toml = tmp_path / "bad.toml"
    toml.write_text('preset = "mnist-mini"\ntrain_size = 100000\n')
    assert cli.train_main(["--config", str(toml), "--out", str(run)]) == 2
    capsys.readouterr()
    assert not (run / ".lock").exists()
    with pytest.raises(ConfigError):
        Trainer(build_config("mnist-mini", None, train_size=100000), run)
    assert not (run / ".lock").exists()


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path, tiny_toml):
    run = tmp_path / "run"
    code = ("import sys, os; from pathlib import Path; from hm2bp.runstate import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); os.kill(os.getpid(), 9)")
    run.mkdir()
    subprocess.run([sys.executable, "-c", code, str(run)], check=False, timeout=60)
    assert (run / ".lock").exists()
    assert cli.train_main(["--config", str(tiny_toml), "--out", str(run), "--quiet"]) == 0
    assert not (run / ".lock").exists()
