// A spiking convolution on the device (SPEC_CNN 1, 3.3; the CPU's cpu/conv2d.hpp): O kernels of
// K x K x C shared over all positions, stride 1, zero padding P; neuron n = (k, x, y) sees input
// q = (c, x + i - P, y + j - P) through W[k, c, i, j] (ConvGeometry, hm2bp/geometry.hpp), stored
// as the dense layers' W^T: row r = (c * K + i) * K + j, column k. Every kernel gives each output
// element one owner thread that sums in a fixed order (the CPU's), so no atomics and the same
// results on every run.
// Not yet tuned on a GPU: the S-PSP of a connection is recomputed by each kernel that needs it,
// and conv_grad_kernel has only C K K O threads (375 for mnist-cnn's conv1).
#pragma once
#include <cstdint>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/spsp.hpp"
#include "population.cuh"
#include "spsp_traces.cuh"

namespace hm2bp {
namespace cuda {

// I[row, n] = sum over (c, i, j) ascending of W[k, c, i, j] s_in[row, q] for rows (b, t): the
// CPU adds its input spikes in ascending q, which for one n is the same order, so float64 agrees
// bit for bit. Grid-stride over B * T * O * D * E.
template <class Real>
__global__ void conv_current_kernel(const uint32_t* step_mask, int step_words, size_t rows, const Real* wt,
                                    ConvGeometry s, Real* current)
{
    const int N = s.O * s.D * s.E;
    const size_t total = rows * N;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t row = idx / N;
        const int n = static_cast<int>(idx - row * N);
        const int k = n / (s.D * s.E), x = n / s.E % s.D, y = n % s.E;
        const uint32_t* m = step_mask + row * step_words;
        Real acc = Real(0);
        s.for_each_connection(x, y, [&](int r, int q) {
            if ((m[q >> 5] >> (q & 31)) & 1u) acc += wt[static_cast<size_t>(r) * s.O + k];
        });
        current[idx] = acc;
    }
}

// Everything the backward kernels read: the layer's traces, spikes and deltas, its input's
// neuron mask and counts.
template <class Real>
struct ConvBackArgs {
    const Real* K;             // (B, T, N) traces of the conv neurons
    const int* counts;         // (B, N)
    const uint32_t* pre_mask;  // (B, N_in, time_words)
    const int* pre_counts;     // (B, N_in)
    const Real* wt;            // (C K K, O)
    const Real* dv;            // (B, N)
    const Real* side;          // (B, N)
    int B, T, time_words;
    ConvGeometry s;
};

// e of the connection from input q to conv neuron n of sample b (the 0.1 rule included); a
// silent n has an all-zero trace, so its sum is skipped.
template <class Real>
__device__ Real conv_spsp(const ConvBackArgs<Real>& a, size_t b, int n, int n_o, int q, int n_q)
{
    const int N = a.s.O * a.s.D * a.s.E, N_in = a.s.C * a.s.H * a.s.W;
    const Real e = n_o > 0 ? trace_over_spikes(a.pre_mask + (b * N_in + q) * a.time_words, a.time_words,
                                               a.K + b * a.T * N, N, n)
                           : Real(0);
    return spsp_value(e, n_o, n_q);
}

// Per (b, n): dv = delta / vth (delta from the pre-delta tiles of the layer above) and the side
// term from sum_r W e and the sum of W over n's valid connections (zero padding has none).
template <class Real>
__global__ void conv_neuron_kernel(ConvBackArgs<Real> a, const Real* pd_above, int pd_tiles, Real vth, Real* dv,
                                   Real* side)
{
    const ConvGeometry& s = a.s;
    const int N = s.O * s.D * s.E;
    const size_t total = static_cast<size_t>(a.B) * N;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / N;
        const int n = static_cast<int>(idx - b * N);
        const int k = n / (s.D * s.E), x = n / s.E % s.D, y = n % s.E;
        const int n_o = a.counts[idx];
        Real weighted = Real(0), weight_sum = Real(0);
        s.for_each_connection(x, y, [&](int r, int q) {
            const Real e = conv_spsp(a, b, n, n_o, q, a.pre_counts[b * s.C * s.H * s.W + q]);
            const Real w = a.wt[static_cast<size_t>(r) * s.O + k];
            weighted += w * e;
            weight_sum += w;
        });
        dv[idx] = voltage_delta(delta_from_above(pd_above, pd_tiles, b, n, N), vth);
        side[idx] = side_term(weighted, n_o, weight_sum, vth);
    }
}

// g[r, k] = sum over samples, then positions (x, y) ascending (the CPU's order with one thread)
// of weight_gradient(A, e) over valid connections from inputs that fired. One thread per weight;
// grad (C K K, O) is written, not accumulated.
template <class Real>
__global__ void conv_grad_kernel(ConvBackArgs<Real> a, Real* grad)
{
    const ConvGeometry& s = a.s;
    const int N = s.O * s.D * s.E, N_in = s.C * s.H * s.W;
    const size_t total = static_cast<size_t>(s.C) * s.K * s.K * s.O;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int r = static_cast<int>(idx / s.O), k = static_cast<int>(idx % s.O);
        Real g = Real(0);
        for (size_t b = 0; b < static_cast<size_t>(a.B); ++b)
            s.for_each_use(r, [&](int x, int y, int q) {
                const int n_q = a.pre_counts[b * N_in + q];
                if (n_q == 0) return;  // a silent input adds no gradient
                const int n = (k * s.D + x) * s.E + y;
                const size_t bn = b * N + n;
                const Real e = conv_spsp(a, b, n, a.counts[bn], q, n_q);
                g += weight_gradient(gradient_scale(a.dv[bn], a.side[bn], Real(1)), e);  // no lateral factor
            });
        grad[idx] = g;
    }
}

// pre_delta[b, q] for the spiking layer below: per position (x, y) ascending that reaches q, the
// sum over k ascending of pre_delta_term (effect ratio always on), as the CPU adds them. Writes
// pd (B, N_in): one pre-delta tile.
template <class Real>
__global__ void conv_pre_delta_kernel(ConvBackArgs<Real> a, Real* pd)
{
    const ConvGeometry& s = a.s;
    const int N = s.O * s.D * s.E, N_in = s.C * s.H * s.W;
    const size_t total = static_cast<size_t>(a.B) * N_in;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / N_in;
        const int q = static_cast<int>(idx - b * N_in);
        const int n_q = a.pre_counts[idx];
        Real total_pd = Real(0);
        s.for_each_position(q, 0, s.D, [&](int x, int y, int r) {
            Real sum = Real(0);
            for (int k = 0; k < s.O; ++k) {
                const int n = (k * s.D + x) * s.E + y;
                const size_t bn = b * N + n;
                const int n_o = a.counts[bn];
                const Real e = conv_spsp(a, b, n, n_o, q, n_q);
                sum += pre_delta_term(a.dv[bn], e, n_o, n_q, true, a.wt[static_cast<size_t>(r) * s.O + k]);
            }
            total_pd += sum;
        });
        pd[idx] = total_pd;
    }
}

}  // namespace cuda
}  // namespace hm2bp
