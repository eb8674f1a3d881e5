// SPEC 3 and 4 on the device: output loss, lateral factor, revival, S-PSP traces, side terms,
// and the S-PSP rows that give the weight gradient and the pre-deltas.
#pragma once
#include <cstdint>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/loss.hpp"
#include "../hm2bp/spsp.hpp"
#include "forward.cuh"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

// Predictions (first index on ties) for every sample; with labels, also SPEC 3's delta (times
// the sample weight) and cost. One thread per sample.
template <class Real>
__global__ void output_loss_kernel(const int* counts, int B, int O, const int* labels, const double* weights,
                                   CountTargets targets, Real* delta, double* cost, int* predictions)
{
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const int* c = counts + static_cast<size_t>(b) * O;
    predictions[b] = predicted_class(c, O);
    if (!labels) return;
    const int label = labels[b];
    const Real weight = Real(weights ? weights[b] : 1.0);
    Real sum = Real(0);
    for (int o = 0; o < O; ++o)
        delta[static_cast<size_t>(b) * O + o] = output_delta<Real>(c[o], o == label, targets, sum) * weight;
    cost[b] = double(sum);
}

// Revival (SPEC 4): a silent label neuron gets a spike every `interval` steps. Rewrites the
// output layer's neuron mask in place (the backward pass reads it; the forward outputs are
// already taken) and writes the post-revival counts. One thread per sample.
__global__ void revival_kernel(const int* counts, const int* labels, int B, int T, int O, int time_words,
                               int interval, uint32_t* neuron_mask, int* counts_after)
{
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const size_t row = static_cast<size_t>(b) * O;
    for (int o = 0; o < O; ++o) counts_after[row + o] = counts[row + o];
    const int label = labels[b];
    if (counts[row + label] != 0) return;
    uint32_t* mask = neuron_mask + (row + label) * time_words;
    int n = 0;
    for (int t = interval; t < T; t += interval) {
        mask[t >> 5] |= 1u << (t & 31);
        ++n;
    }
    counts_after[row + label] = n;
}

// K[t] of one post neuron (its neuron-mask row m) at one step t >= 1, in gather form: the
// spsp_pair terms of all post spikes tp with t + t_ref <= tp <= t + window, ascending (the CPU
// carries the same sum in O(T); the two differ by rounding only). `last` of the first one is
// found by searching back.
template <class Real>
__device__ Real trace_at(const uint32_t* m, int t, int T, int window, int t_ref, const Real* __restrict__ decay,
                         const Real* __restrict__ kernel)
{
    const int lo = t + t_ref;
    const int hi = min(t + window, T - 1);
    if (lo > hi) return Real(0);
    int last = 1;
    {
        int w = (lo - 1) >> 5;
        const int top = (lo - 1) & 31;
        uint32_t x = m[w] & (top == 31 ? ~0u : ((1u << (top + 1)) - 1u));
        while (x == 0u && w > 0) x = m[--w];
        if (x) last = w * 32 + 31 - __clz(x) + t_ref;
    }
    Real acc = Real(0);
    const int w_lo = lo >> 5, w_hi = hi >> 5;
    for (int w = w_lo; w <= w_hi; ++w) {
        uint32_t x = m[w];
        if (w == w_lo) x &= ~0u << (lo & 31);
        if (w == w_hi) x &= (hi & 31) == 31 ? ~0u : ((1u << ((hi & 31) + 1)) - 1u);
        while (x) {
            const int tp = w * 32 + __ffs(x) - 1;
            x &= x - 1;
            acc += spsp_pair(tp - t_ref - t, tp - last, decay, kernel);
            last = tp + t_ref;
        }
    }
    return acc;
}

constexpr int kTraceThreads = 256;

// K (B, T, O) of a layer from its neuron mask. A block computes a 32 (t) x 32 (o) tile: each
// warp takes neurons with lanes over t (the lanes read the same mask words), then the tile is
// written through shared memory with lanes over o (coalesced). Grid: B * tiles_t * tiles_o.
template <class Real>
__global__ void __launch_bounds__(kTraceThreads) trace_kernel(const uint32_t* neuron_mask, int T, int O,
                                                              int time_words, int window, int t_ref,
                                                              const Real* __restrict__ decay,
                                                              const Real* __restrict__ kernel, Real* K)
{
    __shared__ Real tile[32 * 33];
    const int tiles_o = (O + 31) / 32, tiles_t = (T + 31) / 32;
    size_t block = blockIdx.x;
    const int to = static_cast<int>(block % tiles_o);
    block /= tiles_o;
    const int tt = static_cast<int>(block % tiles_t);
    const size_t b = block / tiles_t;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const int t = tt * 32 + lane;
    for (int k = warp; k < 32; k += nwarps) {
        const int o = to * 32 + k;
        Real acc = Real(0);
        if (o < O && t >= 1 && t < T)
            acc = trace_at(neuron_mask + (b * O + o) * time_words, t, T, window, t_ref, decay, kernel);
        tile[k * 33 + lane] = acc;
    }
    __syncthreads();
    const int o = to * 32 + lane;
    for (int k = warp; k < 32; k += nwarps) {
        const int tk = tt * 32 + k;
        if (tk < T && o < O) K[(b * T + tk) * O + o] = tile[lane * 33 + k];
    }
}

// e_{l|j} of the output layer: sum over the spike times of j (ascending) of K[t, l].
template <class Real>
__device__ Real spike_time_sum(const Real* Kb, int O, int l, const uint32_t* mask_j, int time_words)
{
    Real acc = Real(0);
    for (int w = 0; w < time_words; ++w) {
        uint32_t x = mask_j[w];
        while (x) {
            const int t = w * 32 + __ffs(x) - 1;
            x &= x - 1;
            acc += Kb[static_cast<size_t>(t) * O + l];
        }
    }
    return acc;
}

// SPEC 4's lateral factor of the output layer, from the spikes BEFORE revival (K and the mask
// must be pre-revival). The CPU's lateral_factors, one thread per (b, j).
template <class Real>
__global__ void lateral_kernel(const Real* K, const uint32_t* neuron_mask, const int* counts, const int* labels,
                               int B, int T, int O, int time_words, Real inv_vth, Real w0, Real* lat)
{
    const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= static_cast<size_t>(B) * O) return;
    const size_t b = idx / O;
    const int j = static_cast<int>(idx - b * O);
    const int label = labels[b];
    const int* n = counts + b * O;
    const Real* Kb = K + b * T * O;
    const uint32_t* masks = neuron_mask + b * O * time_words;
    const int n_j = n[j];
    const Real d_j = lateral_gate(n_j, j == label, inv_vth);
    Real sum = Real(0);
    for (int l = 0; l < O; ++l) {
        if (l == j) continue;
        const int n_l = n[l];
        const Real d_l = lateral_gate(n_l, l == label, inv_vth);
        const bool both = n_j > 0 && n_l > 0;
        const Real e_lj = both ? spike_time_sum(Kb, O, l, masks + static_cast<size_t>(j) * time_words, time_words) : Real(0);
        const Real e_jl = both ? spike_time_sum(Kb, O, j, masks + static_cast<size_t>(l) * time_words, time_words) : Real(0);
        const Real r_jl = lateral_ratio(e_lj, n_j, n_l);
        const Real r_lj = lateral_ratio(e_jl, n_l, n_j);
        sum += r_jl * d_l * r_lj * d_j;
    }
    lat[idx] = lateral_factor(w0, sum);
}

// Per (b, o): dv = delta / vth and the side term (1/vth) * sum_i W e / n_o = (1/vth) *
// sum_t K I / n_o, or (1/vth) * 0.5 * sum_i W for a silent neuron. delta comes from the output
// loss, or for a hidden layer from the pre-delta tiles of the layer above (summed in order).
template <class Real>
__global__ void side_kernel(const Real* K, const Real* current, int B, int T, int O, const int* counts,
                            const Real* delta, const Real* pd_part, int pd_tiles, const Real* row_sum, Real vth,
                            Real* dv, Real* side)
{
    const size_t total = static_cast<size_t>(B) * O;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / O;
        const int o = static_cast<int>(idx - b * O);
        Real d;
        if (delta) {
            d = delta[idx];
        } else {
            d = Real(0);
            for (int k = 0; k < pd_tiles; ++k) d += pd_part[(b * pd_tiles + k) * O + o];
        }
        const int n_o = counts[idx];
        Real weighted = Real(0);
        if (n_o > 0) {
            const Real* k_col = K + b * T * O + o;
            const Real* i_col = current + b * T * O + o;
#pragma unroll 8
            for (int t = 0; t < T; ++t) weighted += k_col[static_cast<size_t>(t) * O] * i_col[static_cast<size_t>(t) * O];
        }
        dv[idx] = voltage_delta(d, vth);
        side[idx] = side_term(weighted, n_o, row_sum[o], vth);
    }
}

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
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const int o0 = blockIdx.x * kTileCols;
    const int o = o0 + lane;
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
