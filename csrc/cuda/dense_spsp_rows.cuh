// A dense connection's backward pass on the device (SPEC 4; the CPU's DenseLayer::backward in
// cpu/dense.hpp): the S-PSP rows e = sum of the post traces K (spsp_traces.cuh) over each input's
// spike times, a masked sum over a shared tile (masked_sum.cuh), and from them the weight
// gradient and the pre-deltas.
#pragma once
#include <cstdint>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/spsp.hpp"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

template <class Real>
struct SpspRowsArgs {
    const Real* K;             // post traces (B, T, O)
    const uint32_t* pre_mask;  // pre neuron mask (B, N, time_words)
    const int* pre_counts;     // (B, N)
    const int* post_counts;    // (B, O), after revival
    const Real* dv;            // (B, O)
    const Real* side;          // (B, O)
    const Real* lat;           // (B, O) or null for ones
    const Real* wt;            // W^T (N, O)
    Real* grad_part;           // (groups, N, O), zeroed: sum over the group's samples of g
    Real* pd_part;             // (B, tiles_o, N) pre-delta per column tile, or null (input layer)
    int B, T, N, O;
    int time_words;
    int samples_per_group;
    int chunk_rows;
    bool use_effect_ratio;
};

// The S-PSP rows e[b, ., i] = sum over spike times t of i of K[b, t, .] (masked_sum with M = K_b
// in shared memory), then per connection the CPU's backward loop: g = weight_gradient(...)
// accumulated over the group's samples in order, and pre_delta[b, i] = sum_o dv R W.
// Grid: x = column tile of 32 post neurons, y = group of samples. Each (group, i, o) has one
// owner thread, so no atomics: results are the same on every run.
template <class Real>
__global__ void __launch_bounds__(kTileThreads, 2) spsp_rows_kernel(SpspRowsArgs<Real> a)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    Real* tile = reinterpret_cast<Real*>(smem_raw);
    int lane, warp, nwarps, o0, o;
    tile_thread(lane, warp, nwarps, o0, o);
    const bool valid = o < a.O;
    const int tiles_o = gridDim.x;
    const int b_begin = blockIdx.y * a.samples_per_group;
    const int b_end = min(a.B, b_begin + a.samples_per_group);
    const int n_chunks = (a.T + a.chunk_rows - 1) / a.chunk_rows;
    const int chunk_words = a.chunk_rows / 32;
    Real* grad = a.grad_part + static_cast<size_t>(blockIdx.y) * a.N * a.O;

    for (int b = b_begin; b < b_end; ++b) {
        const size_t bo = static_cast<size_t>(b) * a.O + (valid ? o : 0);
        const int n_o = valid ? a.post_counts[bo] : 0;
        const Real dv = valid ? a.dv[bo] : Real(0);
        const Real side = valid ? a.side[bo] : Real(0);
        const Real lat = (valid && a.lat) ? a.lat[bo] : Real(1);
        const Real* Kb = a.K + static_cast<size_t>(b) * a.T * a.O;
        if (n_chunks == 1) {
            __syncthreads();  // the previous sample's tile is no longer read
            load_tile(tile, Kb, a.O, 0, a.T, o0, a.O);
            __syncthreads();
        }
        for (int group = 0; group < a.N; group += nwarps * kRowsPerWarp) {
            const int first = group + warp * kRowsPerWarp;
            int n_i[kRowsPerWarp];
            Real acc[kRowsPerWarp];
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r) {
                n_i[r] = first + r < a.N ? a.pre_counts[static_cast<size_t>(b) * a.N + first + r] : 0;
                acc[r] = Real(0);
            }
            for (int c = 0; c < n_chunks; ++c) {
                const int d0 = c * a.chunk_rows;
                if (n_chunks > 1) {
                    __syncthreads();
                    load_tile(tile, Kb, a.O, d0, min(a.chunk_rows, a.T - d0), o0, a.O);
                    __syncthreads();
                }
                const int w0 = c * chunk_words;
                const int n_words = min(chunk_words, a.time_words - w0);
                uint32_t mine[kRowsPerWarp];
#pragma unroll
                for (int r = 0; r < kRowsPerWarp; ++r)
                    mine[r] = (n_i[r] > 0 && lane < n_words)
                                  ? a.pre_mask[(static_cast<size_t>(b) * a.N + first + r) * a.time_words + w0 + lane]
                                  : 0u;
#pragma unroll
                for (int r = 0; r < kRowsPerWarp; ++r) add_masked_rows(mine[r], tile, lane, acc[r]);
            }
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r) {
                const int i = first + r;
                if (i >= a.N) break;  // uniform over the warp
                const size_t io = static_cast<size_t>(i) * a.O + o;
                // a silent input (n_i = 0) adds no gradient, and its effect ratio is 1
                const Real e = spsp_value(acc[r], n_o, n_i[r]);
                if (n_i[r] > 0 && valid) grad[io] += weight_gradient(dv, e, side, lat);
                const Real pd_term = (a.pd_part && valid)
                                         ? pre_delta_term(dv, e, n_o, n_i[r], a.use_effect_ratio, a.wt[io])
                                         : Real(0);
                if (a.pd_part) {
                    Real pd = Real(0);
                    if (tiles_o == 1) {
                        // One tile holds the whole layer: add in the CPU's order, o ascending.
                        for (int k = 0; k < 32; ++k) {
                            const Real x = __shfl_sync(kFullWarp, pd_term, k);
                            if (o0 + k < a.O) pd += x;
                        }
                    } else {
                        pd = pd_term;
#pragma unroll
                        for (int k = 16; k > 0; k >>= 1) pd += __shfl_xor_sync(kFullWarp, pd, k);
                    }
                    if (lane == 0) a.pd_part[(static_cast<size_t>(b) * tiles_o + blockIdx.x) * a.N + i] = pd;
                }
            }
        }
    }
}

}  // namespace cuda
}  // namespace hm2bp
