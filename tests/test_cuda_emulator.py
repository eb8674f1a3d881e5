"""The CUDA kernels on a machine without a GPU (CI has none): tools/cuda_emulator compiles csrc/cuda
for a SIMT emulator on the host (one fiber per CUDA thread; warp collectives and barriers
rendezvous, and a deadlock or a warp split between collectives aborts; device memory is poisoned
on allocation) and runs tests/test_cuda.py against it, less its three slowest parts (about 5 of
its 6 minutes there; this takes about 45 s): `python tools/cuda_emulator/run.py PKG
tests/test_cuda.py` after build.sh runs them all. It checks the kernels' logic and their
arithmetic against the CPU engine, not the GPU's memory ordering or speed."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMULATOR = REPO / "tools" / "cuda_emulator"
SLOWEST = ["test_runs_are_reproducible", "test_mnist_digits_through_fc800",
           "test_wide_layers_big_batches_and_chunked_tiles_match_cpu[0]",  # batches of 96
           "test_wide_layers_big_batches_and_chunked_tiles_match_cpu[1]"]
# real device arrays (CuPy, PyTorch CUDA) need a GPU; the emulator checks the same path with
# host-backed __cuda_array_interface__ objects instead
GPU_ONLY = ["test_cuda_spikes_from_cupy_and_torch[cupy]", "test_cuda_spikes_from_cupy_and_torch[torch]",
            "test_torch_spikes_are_read_after_the_kernel_that_writes_them[False]",
            "test_torch_spikes_are_read_after_the_kernel_that_writes_them[True]"]

pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None or importlib.util.find_spec("pybind11") is None,
                       reason="the emulator build needs g++ and the pybind11 headers"),
]


def test_cuda_kernels_under_the_simt_emulator(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    build = subprocess.run(["bash", str(EMULATOR / "build.sh"), str(REPO), str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = subprocess.run([sys.executable, str(EMULATOR / "run.py"), str(tmp_path / "pkg"),
                          str(REPO / "tests" / "test_cuda.py"), "-q", "-p", "no:cacheprovider",
                          *[f"--deselect=tests/test_cuda.py::{name}" for name in SLOWEST + GPU_ONLY]],
                         capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "'cuda_device': 'SIMT emulator'" in run.stdout  # the kernels ran, not skipped
    assert " passed" in run.stdout and "skipped" not in run.stdout
