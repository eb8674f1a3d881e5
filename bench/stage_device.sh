#!/usr/bin/env bash
# Stages, in .device/ (git-ignored), what bench/gpu_check.sh needs on the device machine but
# which does not travel there by itself: the mnist-10k digits of the main table (../shared stays
# behind) and the pure-Python snnTorch package (the device has torch but no snnTorch), so that
# the main table's hm2bp-cuda row is measured beside snnTorch on the same GPU. Then:
#   device run: command "bash bench/gpu_check.sh", carry [".device"]
set -eu -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
data=${HM2BP_MNIST_DIR:-../shared/data/mnist-10k}
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
du -sh .device
