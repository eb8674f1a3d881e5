#!/usr/bin/env bash
# Stages, in .device/ (git-ignored), what bench/gpu_check.sh needs on the device machine but
# which does not travel there by itself: the mnist-10k digits of the main table (../shared stays
# behind) and the pure-Python snnTorch package (the device has torch but no snnTorch), so that
# the main table's hm2bp-cuda row is measured beside snnTorch on the same GPU. Then:
#   device run: command "bash bench/gpu_check.sh", carry [".device"]
set -eu -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the benchmarks' own default (bench/common.py), so a worktree finds the same data as they do
data=${HM2BP_MNIST_DIR:-$($PY -c "from bench import common; print(common.DEFAULT_DATA_DIR)")}
[ -d "$data" ] || { echo "mnist-10k not found at $data (set HM2BP_MNIST_DIR)"; exit 1; }
rm -rf .device
mkdir -p .device/py
cp -r "$data" .device/mnist-10k
for pkg in snntorch tqdm; do
    dir=$($PY -c "import $pkg, os; print(os.path.dirname($pkg.__file__))" 2>/dev/null) || {
        echo "$pkg is not importable here: pip install '.[bench]' first"; exit 1; }
    cp -r "$dir" .device/py/
done
find .device -name __pycache__ -prune -exec rm -rf {} +
# a device call carries at most 64 MiB of ignored paths in all
size_kb=$(du -sk .device | cut -f1)
echo "staged .device: $((size_kb / 1024)) MiB"
[ "$size_kb" -lt $((60 * 1024)) ] || { echo "too large to carry (keep it under 64 MiB)"; exit 1; }
