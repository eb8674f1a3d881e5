// The one primitive behind the forward current and the S-PSP rows (the GPU form of the CPU's
// sum_rows): out[row, o] = sum over the set bits d of mask[row] (ascending) of M[d, o].
//
// - forward current: rows (b, t), bits = inputs firing at step t, M = W^T (n_in, n_out);
// - S-PSP rows:      rows (b, i), bits = spike times of input i, M = the traces K_b (T, n_out).
//
// One warp owns one row and 32 consecutive columns o (one per lane); a block of warps shares a
// tile of M[d0:d0+dn, o0:o0+32] in shared memory, so each spike costs one conflict-free shared
// load per lane instead of an L2 gather. The row's mask words are loaded once (lane k holds
// word k) and broadcast with shuffles; zero words are skipped. Summing in ascending d from 0
// makes the result bit-identical to the CPU's sum_rows, whatever the chunking.
#pragma once
#include <cstdint>

namespace hm2bp {
namespace cuda {

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kTileCols = 32;        // columns per tile: one per lane
constexpr int kMaxChunkRows = 1024;  // rows of M per tile: at most 32 mask words, one per lane
constexpr int kRowsPerWarp = 4;      // rows a warp sums together (independent loads in flight)
constexpr int kTileThreads = 256;    // threads of the tiled kernels (8 warps)

inline int column_tiles(int n) { return (n + kTileCols - 1) / kTileCols; }  // tiles of n columns

// Where a thread of a tiled kernel (grid x = column tile) works: its lane (its column of the
// tile), its warp, the block's warps, the tile's first column o0 and the thread's column o.
// (Out-parameters, not a returned struct: the kernels then compile exactly as with the five
// declarations inline.)
__device__ __forceinline__ void tile_thread(int& lane, int& warp, int& nwarps, int& o0, int& o)
{
    lane = threadIdx.x & 31;
    warp = threadIdx.x >> 5;
    nwarps = blockDim.x >> 5;
    o0 = blockIdx.x * kTileCols;
    o = o0 + lane;
}

// Loads rows [d0, d0 + dn) of M (row stride ldm) and columns [o0, o0 + 32) into tile; columns
// at or past n_cols are zero. Called by all threads of the block.
template <class Real>
__device__ __forceinline__ void load_tile(Real* tile, const Real* M, size_t ldm, int d0, int dn, int o0,
                                          int n_cols)
{
    const int lane = threadIdx.x & 31;
    const int nwarps = blockDim.x >> 5;
    const bool valid = o0 + lane < n_cols;
    const Real* src = M + static_cast<size_t>(d0) * ldm + o0 + lane;
#pragma unroll 4
    for (int d = threadIdx.x >> 5; d < dn; d += nwarps)
        tile[d * kTileCols + lane] = valid ? src[static_cast<size_t>(d) * ldm] : Real(0);
}

// Adds to acc (this lane's column) the tile rows named by the set bits of the row's mask words;
// lane k holds word k of the chunk (0 past its end). All 32 lanes must call it together.
template <class Real>
__device__ __forceinline__ void add_masked_rows(uint32_t mine, const Real* tile, int lane, Real& acc)
{
    uint32_t nonzero = __ballot_sync(kFullWarp, mine != 0u);
    while (nonzero) {
        const int k = __ffs(nonzero) - 1;
        nonzero &= nonzero - 1;
        uint32_t bits = __shfl_sync(kFullWarp, mine, k);
        const Real* column = tile + k * 32 * kTileCols + lane;
        while (bits) {
            const int bit = __ffs(bits) - 1;
            bits &= bits - 1;
            acc += column[bit * kTileCols];
        }
    }
}

}  // namespace cuda
}  // namespace hm2bp
