#!/usr/bin/env bash
# The GPU check: one device call (no network; the machine has nvcc, pybind11, scikit-build-core,
# cmake, ninja, numpy, torch, cupy, compute-sanitizer). Device time is scarce, so only CUDA work
# runs here (the CPU engine is tested and measured elsewhere), in this order:
#   1. build and install hm2bp (pip, no index; CUDA code for this GPU's architecture only)
#   2. tests/test_cuda.py, every kernel synchronized and checked (HM2BP_CUDA_SYNC=1)
#   3. speed: bench/gpu_bench.py (mnist-fc800, batch 1 to 1024, memory, kernel times), then
#      mnist-cnn on CUDA (python -m bench cnn --backends cuda)
#   4. compute-sanitizer on one FC and one CNN case: racecheck (shared memory), synccheck
#      (barriers), initcheck (reads of device memory nothing wrote), memcheck (bounds)
#   5. the rest: the main table's CUDA rows (hm2bp-cuda beside snnTorch on the same GPU)
# Steps 3 (cnn) and 5 need .device/ (bash bench/stage_device.sh here; the run carries .device).
#
# One deadline for everything: HM2BP_CHECK_DEADLINE_S (default 540) seconds after the start.
# Each step runs under `timeout` for the smaller of its own cap and the time left, and a step
# that would get less than 20 s is skipped, so the whole fits the deadline by construction
# (under a device call's 600 s). Every result line goes to $OUT/summary.txt as it comes, and
# the summary is printed on exit from a trap: a kill (SIGTERM, Ctrl-C) still prints it, and
# even SIGKILL leaves summary.txt. Logs and JSON go to $OUT (default /tmp/hm2bp_gpu_check).
#
#   bash bench/gpu_check.sh [--dry-run]
# --dry-run (on any machine, no GPU needed): runs every step's own command line in its checking
# form instead (pip install --dry-run, pytest --collect-only, the benchmarks' --dry-run, which
# validate their arguments) and fails if any of them does not parse. tests/test_bench.py runs it.
set -u -o pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
    --dry-run) DRY=1 ;;
    "") ;;
    *) echo "usage: bash bench/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
OUT_DIR=${OUT:-/tmp/hm2bp_gpu_check}
mkdir -p "$OUT_DIR"
export PATH=/usr/local/cuda/bin:$PATH
export PYTHONUNBUFFERED=1
export PIP_NO_INDEX=1  # the device machine has no network: fail at once instead of retrying
PY=${PYTHON:-python3}
REPO=$PWD
DEADLINE=$((SECONDS + ${HM2BP_CHECK_DEADLINE_S:-540}))
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"
status=0

note() { echo "$*" >>"$SUMMARY"; }
print_summary() {
    echo
    echo "=== summary ($((SECONDS)) s of ${HM2BP_CHECK_DEADLINE_S:-540} s$([ $DRY = 1 ] && echo ", dry run"))"
    cat "$SUMMARY"
}
trap print_summary EXIT
# A step runs in the background and the script waits for it, so that a signal reaches this
# trap at once (bash defers traps while a foreground command runs); the step is stopped too.
step_pid=
trap 'note "KILLED (signal) during: ${current:-?}"; [ -n "$step_pid" ] && kill -TERM "$step_pid" 2>/dev/null; exit 143' TERM INT HUP

# The checking form of a step's command line: the same arguments, nothing run.
dry_form() {
    local args=("$@") out=()
    if [ "${args[0]}" = compute-sanitizer ]; then
        case "${args[2]}" in racecheck | synccheck | initcheck | memcheck) ;; *) echo "false unknown-tool"; return ;; esac
        args=("${args[@]:5}")  # compute-sanitizer --tool NAME --error-exitcode N
    fi
    out=("${args[@]}")
    case " ${args[*]} " in
        *" -m pytest "*) out+=(--collect-only -q) ;;
        *" pip install "*) out+=(--dry-run --quiet) ;;
        *" -m bench "* | *"gpu_bench.py "*) out+=(--dry-run) ;;
        *) echo "false no-checking-form-for-this-step"; return ;;  # never run a step for real here
    esac
    printf '%q ' "${out[@]}"
}

# run_step NAME CAP_S LOG CMD...: runs CMD under the step's share of the deadline, logs to
# $OUT_DIR/LOG (its end is printed) and notes the outcome. Returns CMD's status.
run_step() {
    local name=$1 cap=$2 log="$OUT_DIR/$3" left rc t0=$SECONDS
    shift 3
    current=$name
    echo
    echo "=== $name ($(date +%T), log: $(basename "$log"))"
    if [ $DRY = 1 ]; then
        eval "$(dry_form "$@")" >"$log" 2>&1
        rc=$?
        [ $rc -ne 0 ] && { tail -5 "$log"; status=1; }
        note "$name: $([ $rc = 0 ] && echo parses || echo "DOES NOT PARSE (rc $rc)")"
        return $rc
    fi
    left=$((DEADLINE - SECONDS))
    [ "$cap" -gt "$left" ] && cap=$left
    if [ "$cap" -lt 20 ]; then
        note "$name: skipped (${left} s left before the deadline)"
        return 124
    fi
    timeout -k 5 "$cap" "$@" >"$log" 2>&1 &
    step_pid=$!
    wait "$step_pid"
    rc=$?
    step_pid=
    tail -n "${TAIL_LINES:-15}" "$log"
    [ $rc -ne 0 ] && status=1
    note "$name: rc $rc in $((SECONDS - t0)) s$([ $rc = 124 ] && echo " (TIMED OUT at $cap s)")"
    return $rc
}

echo "=== machine"
[ $DRY = 1 ] || { nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -2; $PY --version; } | tee "$OUT_DIR/machine.txt"
[ $DRY = 1 ] && echo "(dry run: nothing runs on a GPU)"
# CUDA code for this GPU only (a third of the compile time of the default three targets)
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
ARCH_FLAG=()
[[ "$cap" =~ ^[0-9]+$ ]] && ARCH_FLAG=(-Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$cap-real")

# 1. build (incremental on a warm machine: the build folder stays between calls)
TAIL_LINES=0 run_step build 300 build.log $PY -m pip install --no-build-isolation --no-deps -v . \
    -Cbuild-dir=build/gpu_check -Ccmake.define.HM2BP_CUDA=ON "${ARCH_FLAG[@]}"
rc=$?
if [ $DRY = 0 ]; then
    grep -E "hm2bp: CUDA|ptxas (error|warning)|warning:" "$OUT_DIR/build.log" | head -20
    if [ $rc -ne 0 ]; then
        tail -40 "$OUT_DIR/build.log"
        note "BUILD FAILED: nothing else runs"
        exit 1
    fi
    # import the installed package, not the source tree
    if ! (cd /tmp && $PY -c "import hm2bp, sys; print(hm2bp.build_info()); sys.exit(0 if hm2bp.cuda_available() else 1)"); then
        note "CUDA NOT AVAILABLE after the build: nothing else runs"
        exit 1
    fi
fi

# 2. the CUDA tests (hm2bp.torch's zero-copy path, the torch stream test and CuPy included)
run_step "CUDA tests" 150 pytest.log env HM2BP_CUDA_SYNC=1 $PY -m pytest tests/test_cuda.py -q -rs \
    -p no:cacheprovider --durations=5
[ $DRY = 0 ] && note "  $(tail -1 "$OUT_DIR/pytest.log")"

# 3. speed
run_step "fc800 speed (gpu_bench)" 120 bench.log $PY bench/gpu_bench.py --batches 1 32 256 1024 \
    --repeats 3 --min-seconds 0.5 --data-dir .device/mnist-10k --json "$OUT_DIR/gpu_bench.json"
[ $DRY = 0 ] && note "  $(grep -E '^batch' "$OUT_DIR/bench.log" | tr -s ' ' | tr '\n' ';')"
if [ -d .device/mnist-10k ] || [ $DRY = 1 ]; then
    run_step "mnist-cnn speed (CUDA)" 75 cnn.log env PYTHONPATH="$REPO/.device/py${PYTHONPATH:+:$PYTHONPATH}" \
        $PY -m bench cnn --backends cuda --data-dir .device/mnist-10k --samples 256 --batches 1,32,256 \
        --peer-device cuda --repeats 2 --min-seconds 1 --json "$OUT_DIR/cnn.json"
    [ $DRY = 0 ] && note "  $(grep -E '^(hm2bp-cuda|snntorch)' "$OUT_DIR/cnn.log" | tr -s ' ' | tr '\n' ';')"
else
    note "mnist-cnn speed: skipped (.device/ not staged: bash bench/stage_device.sh, then carry .device)"
fi

# 4. compute-sanitizer: one FC case (lateral inhibition, chunked tiles) and one CNN case per tool
SANITIZED=("tests/test_cuda.py::test_float64_matches_cpu_and_reference[3]"
           "tests/test_cuda.py::test_cnn_float64_matches_cpu_and_reference[1]")
if command -v compute-sanitizer >/dev/null || [ $DRY = 1 ]; then
    for tool in racecheck synccheck initcheck memcheck; do
        run_step "compute-sanitizer $tool" 60 "sanitizer_$tool.log" compute-sanitizer --tool $tool --error-exitcode 99 \
            $PY -m pytest -q -x -p no:cacheprovider "${SANITIZED[@]}"
        [ $DRY = 0 ] && note "  $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT_DIR/sanitizer_$tool.log" | tail -1)"
    done
else
    note "compute-sanitizer: not found"
fi

# 5. the rest: the main table's CUDA rows
if [ -d .device/mnist-10k ] || [ $DRY = 1 ]; then
    run_step "main table (CUDA rows)" 120 main.log env PYTHONPATH="$REPO/.device/py${PYTHONPATH:+:$PYTHONPATH}" \
        $PY -m bench --rows hm2bp-cuda,snntorch --peer-device cuda --data-dir .device/mnist-10k --repeats 3 \
        --min-seconds 1 --json "$OUT_DIR/main_gpu.json"
    [ $DRY = 0 ] && note "  $(grep -E '/ snntorch train' "$OUT_DIR/main.log" | tr '\n' ';')"
else
    note "main table: skipped (.device/ not staged)"
fi
current=done
exit $status
