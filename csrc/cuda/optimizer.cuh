// SPEC 5 on the device: weight sums, the batch-mean gradient, regularization and the update.
#pragma once
#include "../hm2bp/optimizer.hpp"

namespace hm2bp {
namespace cuda {

// Per post neuron o: row_sum[o] = sum_i W[o, i] (the side term of silent neurons) and the
// regularization scale of q[o] = mean_i (W[o, i] / limit)^2 (0 when regularization is off),
// i ascending as on the CPU. One thread per o.
template <class Real>
__global__ void weight_sums_kernel(const Real* wt, int N, int O, RegParams reg, bool regularize, Real* row_sum,
                                   Real* scale)
{
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= O) return;
    Real sum = Real(0), sq = Real(0);
#pragma unroll 8
    for (int i = 0; i < N; ++i) {
        const Real w = wt[static_cast<size_t>(i) * O + o];
        sum += w;
        sq += regularization_term(w, reg);
    }
    row_sum[o] = sum;
    scale[o] = regularize ? regularization_scale(sq / Real(N), reg) : Real(0);
}

// The gradient summed over the batch: the groups' partial sums, in group order.
template <class Real>
__device__ __forceinline__ Real batch_gradient(const Real* grad_part, int groups, size_t size, size_t k)
{
    Real g = grad_part[k];
    for (int s = 1; s < groups; ++s) g += grad_part[static_cast<size_t>(s) * size + k];
    return g;
}

// Gradients mode: out (O, N) row-major = batch sum / divisor (the batch size for the mean, 1 for
// the sum), in the caller's float type; with wt (not null) plus the regularization gradient of
// the current weights (mean_gradient, scale from weight_sums_kernel).
template <class Real, class Out>
__global__ void export_gradient_kernel(const Real* grad_part, int groups, int N, int O, Real divisor, const Real* wt,
                                       const Real* scale, RegParams reg, Out* out)
{
    const size_t size = static_cast<size_t>(N) * O;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < size; idx += stride) {
        const size_t o = idx / N;
        const size_t k = (idx - o * N) * O + o;
        const Real sum = batch_gradient(grad_part, groups, size, k);
        out[idx] = Out(wt ? mean_gradient(sum, divisor, wt[k], scale[o], reg) : sum / divisor);
    }
}

// One Adam or SGD step per weight (the CPU's update_row); scale from weight_sums_kernel.
template <class Real>
__global__ void update_kernel(Real* wt, Real* moment1, Real* moment2, const Real* grad_part, int groups, int N,
                              int O, Real count, const Real* scale, StepParams step)
{
    const size_t size = static_cast<size_t>(N) * O;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t k = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < size; k += stride) {
        const int o = static_cast<int>(k % O);
        Real w = wt[k], m = moment1[k];
        Real v = step.adam ? moment2[k] : Real(0);  // SGD neither reads nor writes the second moment
        weight_step(w, m, v, batch_gradient(grad_part, groups, size, k), count, scale[o], step);
        if (step.adam) moment2[k] = v;
        wt[k] = w;
        moment1[k] = m;
    }
}

}  // namespace cuda
}  // namespace hm2bp
