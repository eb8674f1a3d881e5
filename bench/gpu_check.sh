#!/usr/bin/env bash
# The GPU check, in one call on the device machine (no network; it has nvcc, pybind11,
# scikit-build-core, cmake, ninja, numpy, torch, cupy, compute-sanitizer):
#   1. build and install hm2bp with CUDA (pip install --no-build-isolation .)
#   2. the CUDA and engine tests (every kernel synchronized and checked: HM2BP_CUDA_SYNC=1)
#   3. compute-sanitizer on small cases (FC and CNN): racecheck (shared-memory tiles), memcheck (bounds)
#   4. the main table (python -m bench): hm2bp-cuda beside hm2bp-cpu and snnTorch on the same
#      GPU, when bench/stage_device.sh staged .device/ here and the run carried it
#   5. bench/gpu_bench.py: mnist-fc800 samples/s at batch 1, 32, 256, 1024, memory, kernel times
#   6. python -m bench cnn: mnist-cnn samples/s on CPU and CUDA at batch 1, 32, 256 (with .device/)
# Logs and gpu_bench.json go to $OUT (or /tmp/hm2bp_gpu_check); the summary prints last.
# Designed to finish in about 8-9 minutes; each step has its own time limit.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-/tmp/hm2bp_gpu_check}
mkdir -p "$OUT_DIR"
export PATH=/usr/local/cuda/bin:$PATH
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0
summary=()
step() { echo; echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT_DIR/machine.txt"
{ nvcc --version | tail -2; $PY --version; } 2>&1 | tee -a "$OUT_DIR/machine.txt"

step "build (log: build.log)"
t0=$SECONDS
if ! timeout 420 $PY -m pip install --no-build-isolation --no-deps -v . >"$OUT_DIR/build.log" 2>&1; then
    echo "BUILD FAILED; last lines of build.log:"
    tail -60 "$OUT_DIR/build.log"
    exit 1
fi
grep -E "hm2bp: CUDA|ptxas (error|warning)|warning:" "$OUT_DIR/build.log" | head -20
echo "built in $((SECONDS - t0)) s"
cd /tmp  # import the installed package, not the source tree
if ! $PY -c "import hm2bp, sys; i = hm2bp.build_info(); print(i); sys.exit(0 if hm2bp.cuda_available() else 1)"; then
    echo "CUDA NOT AVAILABLE after the build"; exit 1
fi
cd - >/dev/null

step "tests (log: pytest.log)"
HM2BP_CUDA_SYNC=1 timeout 300 $PY -m pytest tests/test_cuda.py tests/test_engine.py -q -rs -p no:cacheprovider \
    --durations=5 2>&1 | tee "$OUT_DIR/pytest.log"
rc=$?
[ $rc -ne 0 ] && status=1
summary+=("tests: $(tail -1 "$OUT_DIR/pytest.log") (rc $rc)")

step "main table (log: main.log)"
if [ -d .device/mnist-10k ]; then
    PYTHONPATH=$PWD/.device/py${PYTHONPATH:+:$PYTHONPATH} timeout 240 $PY -m bench --rows hm2bp-cuda,hm2bp-cpu,snntorch \
        --data-dir .device/mnist-10k --repeats 3 --min-seconds 1 --json "$OUT_DIR/main_gpu.json" 2>&1 | tee "$OUT_DIR/main.log"
    rc=$?
    [ $rc -ne 0 ] && status=1
    summary+=("main table: rc $rc, $(grep -E '/ snntorch train' "$OUT_DIR/main.log" | tr '\n' ';')")
else
    summary+=("main table: skipped (.device/ not staged: bash bench/stage_device.sh, then carry .device)")
fi

step "compute-sanitizer (log: sanitizer.log)"
if command -v compute-sanitizer >/dev/null; then
    : >"$OUT_DIR/sanitizer.log"
    for tool in racecheck memcheck; do
        echo "--- $tool" | tee -a "$OUT_DIR/sanitizer.log"
        timeout 150 compute-sanitizer --tool $tool --error-exitcode 99 $PY -m pytest -q -x -p no:cacheprovider \
            "tests/test_cuda.py::test_float64_matches_cpu_and_reference[3]" \
            "tests/test_cuda.py::test_float64_matches_cpu_and_reference[5]" \
            "tests/test_cuda.py::test_wide_layers_big_batches_and_chunked_tiles_match_cpu[2]" \
            "tests/test_cuda.py::test_every_output_element_is_written" \
            "tests/test_cuda.py::test_cnn_float64_matches_cpu_and_reference[1]" >>"$OUT_DIR/sanitizer.log" 2>&1
        rc=$?
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed|failed" "$OUT_DIR/sanitizer.log" | tail -2
        [ $rc -ne 0 ] && status=1
        summary+=("$tool: rc $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT_DIR/sanitizer.log" | tail -1)")
    done
else
    summary+=("compute-sanitizer: not found")
fi

step "benchmark (log: bench.log)"
timeout 330 $PY bench/gpu_bench.py --json "$OUT_DIR/gpu_bench.json" 2>&1 | tee "$OUT_DIR/bench.log"
rc=$?
[ $rc -ne 0 ] && status=1
summary+=("bench: rc $rc")

step "mnist-cnn speed (log: cnn.log)"
if [ -d .device/mnist-10k ]; then
    timeout 180 $PY -m bench cnn --data-dir .device/mnist-10k --batches 1,32,256 --repeats 2 --min-seconds 1 \
        --json "$OUT_DIR/cnn.json" 2>&1 | tee "$OUT_DIR/cnn.log"
    rc=$?
    [ $rc -ne 0 ] && status=1
    summary+=("mnist-cnn: rc $rc, $(grep -E '^hm2bp-cuda' "$OUT_DIR/cnn.log" | tr -s ' ' | tr '\n' ';')")
else
    summary+=("mnist-cnn: skipped (.device/ not staged)")
fi

step "summary"
printf '%s\n' "${summary[@]}"
exit $status
