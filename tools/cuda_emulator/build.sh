#!/usr/bin/env bash
# Builds hm2bp._core with the CUDA engine compiled for the SIMT emulator (no GPU needed) and
# lays out an importable package: PYTHONPATH=$DEST/pkg python -m pytest tests/test_cuda.py
#   build.sh REPO DEST [extra g++ flags, e.g. -fsanitize=address]
# Environment: PYTHON (default python3), the interpreter to build for (needs pybind11).
set -euo pipefail
PY=${PYTHON:-python3}
REPO=$(realpath "$1"); DEST=$2; shift 2
HERE=$(dirname "$(realpath "$0")")
rm -rf "$DEST/src" "$DEST/pkg"; mkdir -p "$DEST/src" "$DEST/pkg"
cp -r "$REPO/csrc" "$DEST/src/"
cd "$DEST/src/csrc/cuda"
# The only source changes: launches go to the emulator, shared memory to the emulator's blocks
# (patch.sh). engine.cu is the one CUDA translation unit (it includes the .cuh files): any other
# .cu file would not be built here, so there must be none.
test -z "$(find . -name '*.cu' ! -name engine.cu)"
mv engine.cu engine.cpp
grep -q 'kernel<<<grid, block, smem, stream_>>>(args...);' engine.cpp
sed -i 's/kernel<<<grid, block, smem, stream_>>>(args...);/simt::launch(kernel, grid, block, smem, args...);/' engine.cpp
bash "$HERE/patch.sh" engine.cpp *.cuh
# Two kernels have a dynamic shared array (current_kernel in dense_current.cuh, spsp_rows_kernel
# in dense_spsp_rows.cuh), two a static one (trace_kernel in spsp_traces.cuh, the reservoir's
# scan in reservoir.cuh), and no launch is left unpatched.
test "$(cat *.cuh | grep -c 'simt::dynamic_smem')" = 2
test "$(cat *.cuh | grep -c 'SIMT_STATIC_SHARED')" = 2
! grep -n '<<<' engine.cpp *.cuh || exit 1
cd "$DEST/src"
PYINC=$($PY -m pybind11 --includes)
SUFFIX=$($PY -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
COMMON="-std=c++17 -fPIC -ffp-contract=off -fopenmp -DHM2BP_WITH_CUDA -DHM2BP_VERSION=\"0.1.0\" -DHM2BP_CUDA_ARCHS=\"simt-emulator\" $PYINC"
g++ $COMMON -O3 -march=native -fno-loop-unroll-and-jam "$@" -c csrc/cpu/engine.cpp -o cpu.o &
g++ $COMMON -O2 "$@" -c csrc/bindings.cpp -o bindings.o &
g++ $COMMON -O2 "$@" -c csrc/augment_bindings.cpp -o augment_bindings.o &
g++ $COMMON -O2 "$@" -c csrc/model/train_steps.cpp -o train_steps.o &
g++ $COMMON -O2 -I "$HERE/fake" -include "$HERE/simt.hpp" "$@" -c csrc/cuda/engine.cpp -o cuda.o
wait
g++ -shared -fopenmp "$@" cpu.o bindings.o augment_bindings.o train_steps.o cuda.o -o "$DEST/pkg/_core$SUFFIX"
cp -r "$REPO/python/hm2bp" "$DEST/pkg/"
mv "$DEST/pkg/_core$SUFFIX" "$DEST/pkg/hm2bp/"
echo "built $DEST/pkg/hm2bp/_core$SUFFIX"
