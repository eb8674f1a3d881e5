// Spiking pooling on the device (SPEC_CNN 2, 3.2; the CPU's cpu/pool2d.hpp): pool neuron
// p = (c, X, Y) counts, with fixed weights 1, the spikes of its size x size window of channel c
// at (X * stride, Y * stride), clipped at the border (PoolGeometry, hm2bp/geometry.hpp). No
// parameters. One owner thread per output element, fixed summation order: no atomics.
#pragma once
#include <cstdint>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/spsp.hpp"
#include "population.cuh"
#include "spsp_traces.cuh"

namespace hm2bp {
namespace cuda {

// I[row, p] = the number of window members of p firing at row (b, t). Grid-stride over
// B * T * C * D * E.
template <class Real>
__global__ void pool_current_kernel(const uint32_t* step_mask, int step_words, size_t rows, PoolGeometry s,
                                    Real* current)
{
    const int N = s.C * s.D * s.E;
    const size_t total = rows * N;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t row = idx / N;
        const int p = static_cast<int>(idx - row * N);
        const uint32_t* m = step_mask + row * step_words;
        int count = 0;
        s.for_each_member(p, [&](int q) { count += (m[q >> 5] >> (q & 31)) & 1u; });
        current[idx] = Real(count);
    }
}

// pre_delta[b, q] = sum over the windows p containing q, (X, Y) ascending as the CPU adds them,
// of pool_pre_delta_term(delta[p], size, e(p, q), n_p, n_q); delta[p] is the layer above's
// pre-delta, not divided by vth. Writes pd (B, N_in): one pre-delta tile.
template <class Real>
__global__ void pool_pre_delta_kernel(const Real* K, const int* counts, const uint32_t* pre_mask,
                                      const int* pre_counts, const Real* pd_above, int pd_tiles, int B, int T,
                                      int time_words, PoolGeometry s, Real* pd)
{
    const int N = s.C * s.D * s.E, N_in = s.C * s.H * s.W;
    const size_t total = static_cast<size_t>(B) * N_in;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / N_in;
        const int q = static_cast<int>(idx - b * N_in);
        const int n_q = pre_counts[idx];
        const uint32_t* m = pre_mask + idx * time_words;
        Real sum = Real(0);
        s.for_each_window(q, [&](int p) {
            const int n_p = counts[b * N + p];
            // a silent p has an all-zero trace: its e is the 0.1 rule's or 0
            const Real e = n_p > 0 ? trace_over_spikes(m, time_words, K + b * T * N, N, p) : Real(0);
            sum += pool_pre_delta_term(delta_from_above(pd_above, pd_tiles, b, p, N), s.size,
                                       spsp_value(e, n_p, n_q), n_p, n_q);
        });
        pd[idx] = sum;
    }
}

}  // namespace cuda
}  // namespace hm2bp
