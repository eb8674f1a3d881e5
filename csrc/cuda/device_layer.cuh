// A layer's storage on the device: its parameters (W^T and the optimizer moments, kept
// between runs; set and read back as the Engine API's row-major W; a convolution's W^T has rows
// (c, i, j) and a column per kernel, a pooling layer none), the sums of W the side term
// and the regularization read, and its per-batch buffers (sized by prepare, which only grows
// them, and rewritten by every run before they are read, so stale contents from a larger batch
// never leak through).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../model/engine.hpp"
#include "device_buffer.cuh"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

// (tile, sample group) blocks of spsp_rows_kernel to aim for: 4 per SM of a 132-SM H100 SXM or
// H200, a few waves on smaller GPUs. A constant, not the device's SM count: see prepare().
constexpr int kGradientBlocks = 4 * 132;

template <class Real>
struct DeviceLayer {
    LayerKind kind = LayerKind::Dense;
    int n_in = 0;     // rows of W^T
    int n_out = 0;    // columns of W^T
    int neurons = 0;  // of the population (n_out for a dense layer)
    int inputs = 0;   // neurons of the layer below (n_in for a dense layer)
    int pd_tiles = 1; // tiles of pd_part: column tiles of a dense layer, one for a spatial one
    DeviceBuffer<Real> wt, moment1, moment2;  // (n_in, n_out): W^T, as on the CPU
    DeviceBuffer<Real> row_sum, reg_scale;    // (n_out): sum_i W, regularization scale
    DeviceBuffer<Real> current, trace;        // (B, T, neurons)
    DeviceBuffer<uint32_t> step_mask;         // (B, T, words(neurons)): the next layer's input
    DeviceBuffer<uint32_t> neuron_mask;       // (B, neurons, words(T))
    DeviceBuffer<int> counts;                 // (B, neurons)
    DeviceBuffer<uint8_t> fired;              // (B, T, neurons), only when spikes are returned
    DeviceBuffer<Real> dv, side;              // (B, neurons)
    DeviceBuffer<Real> pd_part;               // (B, pd_tiles, inputs): pre-delta per tile
    DeviceBuffer<Real> grad_part;             // (groups, n_in, n_out)
    int groups = 1;                           // sample groups of the gradient, this run
    int samples_per_group = 1;

    // The parameters (W^T: rows x cols), zeroed, and the per-column sums.
    void allocate(LayerKind kind_, int rows, int cols, int neurons_, int inputs_)
    {
        kind = kind_;
        n_in = rows;
        n_out = cols;
        neurons = neurons_;
        inputs = inputs_;
        pd_tiles = kind == LayerKind::Dense ? column_tiles(n_out) : 1;
        const size_t size = static_cast<size_t>(n_in) * n_out;
        for (DeviceBuffer<Real>* p : {&wt, &moment1, &moment2}) {
            p->ensure(size);
            HM2BP_CUDA_CHECK(cudaMemset(p->get(), 0, size * sizeof(Real)));
        }
        row_sum.ensure(n_out);
        reg_scale.ensure(n_out);
    }

    const DeviceBuffer<Real>& param(Param p) const
    {
        switch (p) {
            case Param::Weights: return wt;
            case Param::Moment1: return moment1;
            default: return moment2;
        }
    }

    // Sizes the per-batch buffers for B samples of T steps; pre_deltas: the layer below learns
    // from this one's pre-deltas.
    void prepare(int B, int T, bool learn, bool want_spikes, bool pre_deltas)
    {
        const size_t Bs = static_cast<size_t>(B), BT = Bs * T;
        const int time_words = words_for(T);
        const size_t O = neurons;
        current.ensure(BT * O);
        step_mask.ensure(BT * words_for(neurons));
        neuron_mask.ensure(Bs * O * time_words);
        counts.ensure(Bs * O);
        if (want_spikes) fired.ensure(BT * O);
        if (!learn) return;
        trace.ensure(BT * O);
        dv.ensure(Bs * O);
        side.ensure(Bs * O);
        if (pre_deltas) pd_part.ensure(Bs * pd_tiles * inputs);
        // About kGradientBlocks (tile, group) blocks; each group's samples are summed in order,
        // then the groups in order. The grouping sets the float rounding of the gradient, so it
        // depends on B and the layer only, never on the GPU: the same sums on every device. A
        // convolution's gradient has one thread per weight summing the whole batch: one group.
        const int tiles = column_tiles(n_out);
        const int want = std::max(1, static_cast<int>(div_up(kGradientBlocks, tiles)));
        samples_per_group = kind == LayerKind::Dense ? static_cast<int>(div_up(B, std::min(want, B))) : B;
        groups = static_cast<int>(div_up(B, samples_per_group));
        grad_part.ensure(static_cast<size_t>(groups) * n_in * n_out);
    }
};

// W (N inputs, O outputs) as the Engine API holds it, row-major (O, N) doubles (or floats, on
// the way in), to W^T (N, O) in Reals on the device (dst holds at least N * O), and back. Both
// wait for the copy.
template <class Real, class Value>
void upload_transposed(const Value* values, int N, int O, Real* dst, cudaStream_t stream)
{
    std::vector<Real> host(static_cast<size_t>(N) * O);
    for (int o = 0; o < O; ++o)
        for (int i = 0; i < N; ++i) host[static_cast<size_t>(i) * O + o] = Real(values[static_cast<size_t>(o) * N + i]);
    HM2BP_CUDA_CHECK(cudaMemcpyAsync(dst, host.data(), host.size() * sizeof(Real), cudaMemcpyHostToDevice, stream));
    HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream));  // host is freed on return
}

template <class Real>
void download_transposed(const Real* src, int N, int O, double* values, cudaStream_t stream)
{
    std::vector<Real> host(static_cast<size_t>(N) * O);
    HM2BP_CUDA_CHECK(cudaMemcpyAsync(host.data(), src, host.size() * sizeof(Real), cudaMemcpyDeviceToHost, stream));
    HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int o = 0; o < O; ++o)
        for (int i = 0; i < N; ++i) values[static_cast<size_t>(o) * N + i] = double(host[static_cast<size_t>(i) * O + o]);
}

}  // namespace cuda
}  // namespace hm2bp
