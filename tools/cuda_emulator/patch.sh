#!/usr/bin/env bash
# Rewrites CUDA sources in place for the SIMT emulator's shared memory (simt.hpp):
#   extern __shared__ __align__(16) unsigned char smem_raw[];  ->  a pointer to the block's dynamic shared memory
#   __shared__ T name[n];                                      ->  SIMT_STATIC_SHARED(T, name, n)
# and fails if any other __shared__ declaration is left (the emulator would not poison it).
#   patch.sh FILE...
set -euo pipefail
for f in "$@"; do
    sed -i -e 's/extern __shared__ __align__(16) unsigned char smem_raw\[\];/unsigned char* smem_raw = simt::dynamic_smem();/' \
        -e 's/^\(\s*\)__shared__ \([A-Za-z_][A-Za-z0-9_:<>]*\) \([A-Za-z_][A-Za-z0-9_]*\)\[\([^]]*\)\];/\1SIMT_STATIC_SHARED(\2, \3, \4);/' "$f"
done
if grep -n '__shared__' "$@"; then
    echo "patch.sh: __shared__ declarations the emulator cannot take (above)" >&2
    exit 1
fi
