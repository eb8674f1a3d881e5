// SPEC 1 on the device: the input current of a layer, then the LIF scan of each neuron.
#pragma once
#include <cstdint>

#include "../hm2bp/neuron.hpp"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

constexpr int kRowsPerWarp = 4;    // rows a warp sums together (independent loads in flight)
constexpr int kTileThreads = 256;  // threads of the tiled kernels (8 warps)

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
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const int o0 = blockIdx.x * kTileCols;
    const int o = o0 + lane;
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

// Everything a LIF scan writes: the layer's spikes as both masks (the next layer's input and
// the traces' post trains), counts per neuron, the layer total, and optionally dense bytes.
struct ScanOutputs {
    uint32_t* step_mask;          // (B, T, step_words)
    uint32_t* neuron_mask;        // (B, O, time_words)
    int* counts;                  // (B, O)
    unsigned long long* total;    // one counter for the layer (integer atomics: deterministic)
    uint8_t* fired;               // (B, T, O) or null
    int step_words;
    int time_words;
};

// Records spike f of neuron o (lane of its warp) at step t; word is the neuron-mask word being
// built. All lanes of the warp call it at the same t.
__device__ __forceinline__ void record_spike(const ScanOutputs& out, size_t b, int T, int O, int o, int t,
                                             bool f, uint32_t& word, int& count)
{
    const uint32_t ballot = __ballot_sync(kFullWarp, f);
    const int word_col = (o - (threadIdx.x & 31)) >> 5;  // this warp's first neuron / 32
    if ((threadIdx.x & 31) == 0 && word_col < out.step_words)
        out.step_mask[(b * T + t) * out.step_words + word_col] = ballot;
    const bool valid = o < O;
    if (out.fired && valid) out.fired[(b * T + t) * O + o] = f ? 1 : 0;
    word |= static_cast<uint32_t>(f) << (t & 31);
    count += f ? 1 : 0;
    if ((t & 31) == 31 || t == T - 1) {
        if (valid) out.neuron_mask[(b * O + o) * out.time_words + (t >> 5)] = word;
        word = 0;
    }
}

__device__ __forceinline__ void finish_scan(const ScanOutputs& out, size_t b, int O, int o, int count)
{
    if (o < O) out.counts[b * O + o] = count;
    int sum = count;
#pragma unroll
    for (int k = 16; k > 0; k >>= 1) sum += __shfl_xor_sync(kFullWarp, sum, k);
    if ((threadIdx.x & 31) == 0 && sum > 0) atomicAdd(out.total, static_cast<unsigned long long>(sum));
}

constexpr int kScanPrefetch = 4;  // steps of input current loaded ahead of the serial recurrence

// SPEC 1 without lateral inhibition: one thread per (b, o), sequential over t (the CPU's
// integrate). Grid: x = B * ceil(O / blockDim).
template <class Real>
__global__ void lif_scan_kernel(const Real* current, int B, int T, int O, LifParams<Real> p, ScanOutputs out)
{
    const int blocks_per_sample = (O + blockDim.x - 1) / blockDim.x;
    const size_t b = blockIdx.x / blocks_per_sample;
    const int o = (blockIdx.x - static_cast<int>(b) * blocks_per_sample) * blockDim.x + threadIdx.x;
    const bool valid = o < O;
    const Real* r_in = current + b * T * O + (valid ? o : 0);
    Real v = Real(0), ep = Real(0);
    int ref = 0, count = 0;
    uint32_t word = 0;
    lif_decay(v, ep, p);
    record_spike(out, b, T, O, o, 0, false, word, count);  // t = 0 never fires
    for (int t0 = 1; t0 < T; t0 += kScanPrefetch) {
        Real r[kScanPrefetch];
#pragma unroll
        for (int j = 0; j < kScanPrefetch; ++j)
            r[j] = (valid && t0 + j < T) ? r_in[static_cast<size_t>(t0 + j - 1) * O] : Real(0);
#pragma unroll
        for (int j = 0; j < kScanPrefetch; ++j) {
            const int t = t0 + j;
            if (t >= T) break;
            lif_decay(v, ep, p);
            const bool f = lif_integrate(v, ep, ref, r[j], p) && valid;
            record_spike(out, b, T, O, o, t, f, word, count);
        }
    }
    finish_scan(out, b, O, o, count);
}

// SPEC 1 for the output layer with lateral inhibition: all neurons of a sample advance together
// (the CPU's integrate_with_lateral_inhibition). One block per sample, one thread per neuron
// (blockDim = O rounded up to 32); the barrier count gives the spikes of the previous step.
template <class Real>
__global__ void __launch_bounds__(1024) lif_scan_lateral_kernel(const Real* current, int T, int O, LifParams<Real> p, Real w0,
                                        ScanOutputs out)
{
    const size_t b = blockIdx.x;
    const int o = threadIdx.x;
    const bool valid = o < O;
    const Real* r_in = current + b * T * O + (valid ? o : 0);
    Real v = Real(0), ep = Real(0);
    int ref = 0, count = 0, prev = 0;
    uint32_t word = 0;
    lif_decay(v, ep, p);
    record_spike(out, b, T, O, o, 0, false, word, count);
    for (int t0 = 1; t0 < T; t0 += kScanPrefetch) {
        Real r[kScanPrefetch];
#pragma unroll
        for (int j = 0; j < kScanPrefetch; ++j)
            r[j] = (valid && t0 + j < T) ? r_in[static_cast<size_t>(t0 + j - 1) * O] : Real(0);
#pragma unroll
        for (int j = 0; j < kScanPrefetch; ++j) {
            const int t = t0 + j;
            if (t >= T) break;
            const int fired_before = __syncthreads_count(prev);
            lif_decay(v, ep, p);
            const Real inhibition = -w0 * Real(fired_before - prev);
            const bool f = lif_integrate(v, ep, ref, r[j] + inhibition, p) && valid;
            record_spike(out, b, T, O, o, t, f, word, count);
            prev = f ? 1 : 0;
        }
    }
    finish_scan(out, b, O, o, count);
}

}  // namespace cuda
}  // namespace hm2bp
