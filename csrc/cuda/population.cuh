// A layer's LIF population on the device: SPEC 1 (the LIF scan of each neuron, optionally with
// the output layer's lateral inhibition) writing the layer's spikes as both bit masks, and the
// per-neuron quantities of the backward pass (SPEC 4): the delta handed down and the side term.
// The S-PSP traces K of its post trains: spsp_traces.cuh.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/neuron.hpp"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

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
constexpr int kScanThreads = 128;  // most threads of a block of the plain scan
constexpr int kMaxLateralNeurons = 1024;  // the lateral scan holds a sample's layer in one block

// SPEC 1 for a layer: each neuron's LIF recurrence, sequential over t (the CPU's integrate).
//   Lateral = false: one thread per (b, o). Grid: x = B * ceil(O / blockDim), blockDim at most
//     kScanThreads.
//   Lateral = true (the output layer with lateral inhibition, the CPU's
//     integrate_with_lateral_inhibition): all neurons of a sample advance together. One block
//     per sample, one thread per neuron (blockDim = O rounded up to 32, at most
//     kMaxLateralNeurons); the barrier count gives the spikes of the previous step, and each
//     neuron's input loses w0 per spike of the others. w0 is unused without Lateral.
// The body of lif_scan_kernel below; it takes its parameters by value, as the kernels do (by
// reference the code compiles differently).
template <class Real, bool Lateral>
__device__ __forceinline__ void lif_scan(const Real* current, int T, int O, LifParams<Real> p, Real w0,
                                         ScanOutputs out)
{
    size_t b;
    int o;
    if constexpr (Lateral) {
        b = blockIdx.x;
        o = threadIdx.x;
    } else {
        const int blocks_per_sample = (O + blockDim.x - 1) / blockDim.x;
        b = blockIdx.x / blocks_per_sample;
        o = (blockIdx.x - static_cast<int>(b) * blocks_per_sample) * blockDim.x + threadIdx.x;
    }
    const bool valid = o < O;
    const Real* r_in = current + b * T * O + (valid ? o : 0);
    Real v = Real(0), ep = Real(0);
    int ref = 0, count = 0, prev = 0;  // prev: this neuron fired at the previous step (Lateral)
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
            bool f;
            if constexpr (Lateral) {
                const int fired_before = __syncthreads_count(prev);
                lif_decay(v, ep, p);
                const Real inhibition = -w0 * Real(fired_before - prev);
                f = lif_integrate(v, ep, ref, r[j] + inhibition, p) && valid;
            } else {
                lif_decay(v, ep, p);
                f = lif_integrate(v, ep, ref, r[j], p) && valid;
            }
            record_spike(out, b, T, O, o, t, f, word, count);
            if constexpr (Lateral) prev = f ? 1 : 0;
        }
    }
    finish_scan(out, b, O, o, count);
}

// The scan kernel, lif_scan_kernel<Real, Lateral>: one template name for both forms, as two
// one-line overloads around lif_scan (enable_if picks one by Lateral). Each keeps what the
// kernel it replaces had, so that both compile to the same machine code as before (nvcc 13,
// sm_80 and sm_90):
// - launch bounds: the lateral form keeps __launch_bounds__(1024), which it needs, since a block
//   of up to 1024 threads must launch (it caps the kernel at 64 registers). The plain form keeps
//   none: it runs blocks of at most kScanThreads, and any bound, 128 or 1024 alike, changes its
//   register allocation (float32 on sm_90: 44 registers -> 38 or 39), so one bound for both
//   instantiations would not have been a pure move;
// - parameters: each keeps its own list (the plain one takes B, unused, and no w0): the
//   parameter layout alone moves the float64 plain scan from 62 registers to 56.
template <class Real, bool Lateral, std::enable_if_t<!Lateral, int> = 0>
__global__ void lif_scan_kernel(const Real* current, int /*B*/, int T, int O, LifParams<Real> p, ScanOutputs out)
{
    lif_scan<Real, false>(current, T, O, p, Real(0), out);
}

template <class Real, bool Lateral, std::enable_if_t<Lateral, int> = 0>
__global__ void __launch_bounds__(kMaxLateralNeurons)
    lif_scan_kernel(const Real* current, int T, int O, LifParams<Real> p, Real w0, ScanOutputs out)
{
    lif_scan<Real, true>(current, T, O, p, w0, out);
}

// The delta of neuron n of sample b handed down by the layer above: the sum, in tile order, of
// its pre-delta tiles (B, tiles, N) (one tile above a spatial layer).
template <class Real>
__device__ Real delta_from_above(const Real* pd_part, int tiles, size_t b, int n, int N)
{
    Real d = Real(0);
    for (int k = 0; k < tiles; ++k) d += pd_part[(b * tiles + k) * N + n];
    return d;
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
        const Real d = delta ? delta[idx] : delta_from_above(pd_part, pd_tiles, b, o, O);
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

}  // namespace cuda
}  // namespace hm2bp
