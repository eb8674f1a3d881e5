// The S-PSP traces on the device (SPEC 4 in the fast form of SPEC 6; the CPU's
// cpu/spsp_trace_rows.hpp): K (B, T, O) of a layer from its post spike trains, and the sum of a
// post neuron's K over a pre neuron's spike times (the S-PSP of one connection, as the spatial
// layers' kernels read it; the dense layers' rows: dense_spsp_rows.cuh).
#pragma once
#include <cstdint>

#include "../hm2bp/spsp.hpp"

namespace hm2bp {
namespace cuda {

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

// The fast-form S-PSP sum of one connection: K[t] of the post neuron (column o of the sample's
// (T, O) traces Kb) summed over the spike times t of the pre neuron (its neuron-mask row m),
// ascending, as the CPU's spatial layers add them.
template <class Real>
__device__ Real trace_over_spikes(const uint32_t* m, int time_words, const Real* Kb, int O, int o)
{
    Real e = Real(0);
    for (int w = 0; w < time_words; ++w)
        for (uint32_t x = m[w]; x; x &= x - 1) e += Kb[static_cast<size_t>(w * 32 + __ffs(x) - 1) * O + o];
    return e;
}

}  // namespace cuda
}  // namespace hm2bp
