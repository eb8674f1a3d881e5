// A dense connection's forward pass on the device: the input current of SPEC 1, a masked sum
// over a shared tile (masked_sum.cuh). Its backward pass: dense_spsp_rows.cuh.
#pragma once
#include <cstdint>

#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

// current[row, o] = sum_i W[o, i] s_in[row, i] over rows (b, t), i ascending (bit-identical to
// the CPU). Grid: x = column tile of 32 outputs, y = a range of rows_per_block rows. Dynamic
// shared memory: chunk_rows x 32 Reals; wt is W^T (n_in, n_out).
template <class Real>
__global__ void __launch_bounds__(kTileThreads) current_kernel(const uint32_t* step_mask, int step_words,
                                                              size_t rows, size_t rows_per_block,
                                                              const Real* wt, int n_in, int n_out,
                                                              int chunk_rows, Real* current)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    Real* tile = reinterpret_cast<Real*>(smem_raw);
    int lane, warp, nwarps, o0, o;
    tile_thread(lane, warp, nwarps, o0, o);
    const size_t row_begin = blockIdx.y * rows_per_block;
    const size_t row_end = row_begin + rows_per_block < rows ? row_begin + rows_per_block : rows;
    const int n_chunks = (n_in + chunk_rows - 1) / chunk_rows;
    const int chunk_words = chunk_rows / 32;

    if (n_chunks == 1) {
        load_tile(tile, wt, n_out, 0, n_in, o0, n_out);
        __syncthreads();
    }
    for (size_t group = row_begin; group < row_end; group += static_cast<size_t>(nwarps) * kRowsPerWarp) {
        const size_t first = group + static_cast<size_t>(warp) * kRowsPerWarp;
        Real acc[kRowsPerWarp];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r] = Real(0);
        for (int c = 0; c < n_chunks; ++c) {
            const int d0 = c * chunk_rows;
            if (n_chunks > 1) {
                __syncthreads();
                load_tile(tile, wt, n_out, d0, min(chunk_rows, n_in - d0), o0, n_out);
                __syncthreads();
            }
            const int w0 = c * chunk_words;
            const int n_words = min(chunk_words, step_words - w0);
            uint32_t mine[kRowsPerWarp];
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r)
                mine[r] = (first + r < row_end && lane < n_words) ? step_mask[(first + r) * step_words + w0 + lane] : 0u;
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r) add_masked_rows(mine[r], tile, lane, acc[r]);
        }
        if (o < n_out) {
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r)
                if (first + r < row_end) current[(first + r) * n_out + o] = acc[r];
        }
    }
}

}  // namespace cuda
}  // namespace hm2bp
