// The output layer on the device: predictions and SPEC 3's loss, revival (SPEC 4) and the
// lateral factor of lateral inhibition (SPEC 4, from the spikes before revival).
#pragma once
#include <cstdint>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/loss.hpp"

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

}  // namespace cuda
}  // namespace hm2bp
