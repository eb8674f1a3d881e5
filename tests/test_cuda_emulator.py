"""The CUDA kernels on a machine without a GPU (CI has none): tools/cuda_emulator compiles csrc/cuda
for a SIMT emulator on the host (one fiber per CUDA thread; warp collectives and barriers
rendezvous, and a deadlock or a warp split between collectives aborts; device memory is poisoned
on allocation, shared memory for every block; launches a GPU would refuse abort) and runs
tests/test_cuda.py against it, less its slowest parts: `python tools/cuda_emulator/run.py PKG
tests/test_cuda.py` after build.sh runs them all. It checks the kernels' logic and their
arithmetic against the CPU engine, not the GPU's memory ordering or speed. A second run (marked
slow; CI runs it) uses AddressSanitizer, blocks and threads in shuffled order and an H100's 132
SMs. The emulator's own GPU-like behaviour is tested on small kernels first."""
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
# Left out of the AddressSanitizer run too (ASan's fiber switches make it ~6x slower): the wide
# float32/chunked cases, the ten-seed float32 sweep and the fused-versus-split steps, which take
# the same kernels as the cases kept.
ASAN_SKIPS = ["test_wide_layers_big_batches_and_chunked_tiles_match_cpu[2]",
              "test_wide_layers_big_batches_and_chunked_tiles_match_cpu[3]",
              "test_float32_matches_cpu_away_from_ties",
              "test_train_step_is_forward_backward_plus_apply_gradients"]
GPU_ONLY = ["test_cuda_spikes_from_cupy_and_torch[cupy]", "test_cuda_spikes_from_cupy_and_torch[torch]",
            "test_torch_spikes_are_read_after_the_kernel_that_writes_them[False]",
            "test_torch_spikes_are_read_after_the_kernel_that_writes_them[True]",
            "test_host_memory_posing_as_cuda_spikes_is_refused_not_read"]

pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None or importlib.util.find_spec("pybind11") is None,
                       reason="the emulator build needs g++ and the pybind11 headers"),
]


PROBE = r"""
// Kernels that show what the emulator does where a GPU would refuse a launch or leave memory
// undefined; main(argv[1]) picks the case.
#include <cstdio>
#include <cstring>

__global__ void record_order(int* order, int* next)
{
    if (threadIdx.x == 0) order[(*next)++] = blockIdx.x + gridDim.x * blockIdx.y;
}

__global__ void read_before_write(float* seen)
{
    __shared__ float tile[64];
    seen[blockIdx.x * 64 + threadIdx.x] = tile[threadIdx.x];  // what an earlier block left: undefined
    __syncthreads();
    tile[threadIdx.x] = 1.0f;
}

__global__ void dynamic_tile(int* out)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    smem_raw[threadIdx.x] = 1;
    out[threadIdx.x] = smem_raw[threadIdx.x];
}

int main(int, char** argv)
{
    static int order[64], next = 0, out[32];
    static float seen[4 * 64];
    const char* c = argv[1];
    if (!std::strcmp(c, "order")) simt::launch(record_order, dim3(16, 4), dim3(32), 0, order, &next);
    if (!std::strcmp(c, "grid-y")) simt::launch(record_order, dim3(1, 65536), dim3(32), 0, order, &next);
    if (!std::strcmp(c, "grid-z")) simt::launch(record_order, dim3(1, 1, 65536), dim3(32), 0, order, &next);
    if (!std::strcmp(c, "smem")) simt::launch(dynamic_tile, dim3(1), dim3(32), 48 * 1024 + 16, out);
    if (!std::strcmp(c, "smem-optin") || !std::strcmp(c, "smem-over-optin")) {
        if (cudaFuncSetAttribute(dynamic_tile, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) != cudaSuccess)
            return 3;
        simt::launch(dynamic_tile, dim3(1), dim3(32), 100 * 1024, out);
        if (!std::strcmp(c, "smem-over-optin")) simt::launch(dynamic_tile, dim3(1), dim3(32), 100 * 1024 + 16, out);
    }
    if (!std::strcmp(c, "static")) simt::launch(read_before_write, dim3(4), dim3(64), 0, seen);
    for (int i = 0; i < next; ++i) std::printf("%d ", order[i]);
    for (int i = 0; i < 4 * 64 && !std::strcmp(c, "static"); ++i) std::printf("%g ", seen[i]);
    std::printf("done\n");
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PROBE compiled against the emulator as build.sh compiles the engine (patch.sh first)."""
    tmp = tmp_path_factory.mktemp("probe")
    src = tmp / "probe.cpp"
    src.write_text(PROBE)
    subprocess.run(["bash", str(EMULATOR / "patch.sh"), str(src)], check=True, timeout=60)
    exe = tmp / "probe"
    build = subprocess.run(["g++", "-std=c++17", "-O1", "-I", str(EMULATOR / "fake"), "-include",
                            str(EMULATOR / "simt.hpp"), str(src), "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    return exe


def _probe(exe: Path, case: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), case], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SIMT_SHUFFLE": "0", **env})


def test_emulator_runs_blocks_in_shuffled_order(probe: Path) -> None:
    in_order = _probe(probe, "order")
    assert in_order.stdout.split()[:-1] == [str(i) for i in range(64)]
    orders = {_probe(probe, "order", SIMT_SHUFFLE=seed).stdout for seed in ("1", "2")}
    assert len(orders) == 2  # the seed picks the order
    for out in orders:
        assert sorted(map(int, out.split()[:-1])) == list(range(64)) and out != in_order.stdout


@pytest.mark.parametrize("case, message", [
    ("grid-y", "grid too large"),
    ("grid-z", "grid too large"),
    ("smem", "dynamic shared memory over the kernel's limit"),
    ("smem-over-optin", "dynamic shared memory over the kernel's limit"),
])
def test_emulator_refuses_launches_a_gpu_refuses(probe: Path, case: str, message: str) -> None:
    run = _probe(probe, case)
    assert run.returncode != 0 and "done" not in run.stdout
    assert f"simt emulator: launch refused: {message}" in run.stderr


def test_emulator_takes_dynamic_shared_memory_after_the_opt_in(probe: Path) -> None:
    run = _probe(probe, "smem-optin")
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr


def test_static_shared_arrays_are_fresh_poison_in_every_block(probe: Path) -> None:
    # On a GPU a block's shared memory starts undefined; carrying the previous block's values
    # (1.0 here) would hide a read before the write.
    seen = _probe(probe, "static").stdout.split()[:-1]
    assert len(seen) == 4 * 64 and all(v in ("nan", "-nan") for v in seen), seen[60:70]


def _build(dest: Path, *flags: str) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    build = subprocess.run(["bash", str(EMULATOR / "build.sh"), str(REPO), str(dest), *flags],
                           capture_output=True, text=True, env=env, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]


def _run_test_cuda(pkg: Path, env: dict[str, str] | None = None, skip: list[str] | None = None
                   ) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(EMULATOR / "run.py"), str(pkg),
                          str(REPO / "tests" / "test_cuda.py"), "-q", "-p", "no:cacheprovider",
                          *[f"--deselect=tests/test_cuda.py::{name}" for name in SLOWEST + GPU_ONLY + (skip or [])]],
                         capture_output=True, text=True, cwd=REPO, timeout=1800, env={**os.environ, **(env or {})})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "'cuda_device': 'SIMT emulator'" in run.stdout  # the kernels ran, not skipped
    assert " passed" in run.stdout and "skipped" not in run.stdout
    return run


def test_cuda_kernels_under_the_simt_emulator(tmp_path: Path) -> None:
    _build(tmp_path)
    _run_test_cuda(tmp_path / "pkg", {"SIMT_SHUFFLE": "0"})


@pytest.mark.slow
def test_cuda_kernels_shuffled_on_132_sms_under_address_sanitizer(tmp_path: Path) -> None:
    # Blocks and threads in shuffled order (a dependency between blocks, or a missing barrier,
    # shows), the launch geometry of an H100 SXM's 132 SMs, and every host-side access of the
    # emulated device and shared memory bounds-checked.
    # Python is no C++ program: libstdc++ is preloaded with the ASan runtime, whose __cxa_throw
    # interceptor needs it at start-up (else the engine's first exception aborts)
    libs = [subprocess.run(["g++", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
            for lib in ("libasan.so", "libstdc++.so")]
    if not all(os.path.isabs(lib) for lib in libs):
        pytest.skip("g++ has no AddressSanitizer runtime")
    _build(tmp_path, "-fsanitize=address", "-fno-omit-frame-pointer")
    # (large shadow clears by memset, not mmap: fewer system calls per fiber switch)
    _run_test_cuda(tmp_path / "pkg", {"SIMT_SHUFFLE": "1", "SIMT_SMS": "132", "LD_PRELOAD": " ".join(libs),
                                      "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:clear_shadow_mmap_threshold=4194304"},
                   ASAN_SKIPS)
