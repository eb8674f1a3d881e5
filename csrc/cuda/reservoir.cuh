// The reservoir layer on the device (SPEC_SPEECH 3.2): its input current comes from the dense
// current kernel (W_in^T, dense.cuh); this scan adds the one-step-delayed recurrent input
// sum_l W_rec[o, l] s[t-1, l] and runs SPEC 1's LIF. All neurons of a sample advance together:
// one block per sample, one thread per neuron (at most kMaxLateralNeurons), the previous step's
// spikes in a shared bit mask between two barriers.
#pragma once
#include <cstdint>

#include "../hm2bp/neuron.hpp"
#include "population.cuh"

namespace hm2bp {
namespace cuda {

// current: (B, T, O) from the input; w_rec: W_rec^T, w_rec[l * O + o] = W_rec[o, l].
template <class Real>
__global__ void __launch_bounds__(kMaxLateralNeurons)
    reservoir_scan_kernel(const Real* current, const Real* w_rec, int T, int O, LifParams<Real> p, ScanOutputs out)
{
    __shared__ uint32_t fired_before[kMaxLateralNeurons / 32];
    const size_t b = blockIdx.x;
    const int o = threadIdx.x;
    const bool valid = o < O;
    const int words = (O + 31) / 32;
    if ((threadIdx.x & 31) == 0) fired_before[threadIdx.x / 32] = 0u;
    const Real* r_in = current + b * T * O + (valid ? o : 0);
    Real v = Real(0), ep = Real(0);
    int ref = 0, count = 0;
    uint32_t word = 0;
    lif_decay(v, ep, p);
    record_spike(out, b, T, O, o, 0, false, word, count);  // t = 0 never fires
    __syncthreads();
    for (int t = 1; t < T; ++t) {
        Real r = valid ? r_in[static_cast<size_t>(t - 1) * O] : Real(0);
        for (int w = 0; w < words; ++w)  // input first, then the reservoir's spikes, ascending (the CPU's order)
            for (uint32_t bits = fired_before[w]; bits; bits &= bits - 1)
                r += valid ? w_rec[static_cast<size_t>(w * 32 + __ffs(bits) - 1) * O + o] : Real(0);
        lif_decay(v, ep, p);
        const bool f = lif_integrate(v, ep, ref, r, p) && valid;
        __syncthreads();  // every thread has read the previous step's spikes
        const uint32_t ballot = __ballot_sync(kFullWarp, f);
        if ((threadIdx.x & 31) == 0) fired_before[threadIdx.x / 32] = ballot;
        record_spike(out, b, T, O, o, t, f, word, count);
        __syncthreads();
    }
    finish_scan(out, b, O, o, count);
}

}  // namespace cuda
}  // namespace hm2bp
