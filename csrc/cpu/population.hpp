// A layer's LIF population on the CPU, independent of how its input arrives: one sample's spikes
// and the per-neuron quantities of the backward pass (SPEC 4): delta, dv, the side term, the
// lateral factor and the gradient scale, and the S-PSP traces K of its post trains (SPEC 6).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "conv2d_spsp_sums.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "spsp_trace_rows.hpp"

namespace hm2bp {

// What every layer's per-sample work reads: the window, the S-PSP tables for it, the
// hyperparameters.
template <class Real>
struct SampleContext {
    int T = 0;
    const Real* spsp_tables = nullptr;  // spsp_tables(T, ...)
    const Hyper* hyper = nullptr;

    LifParams<Real> lif(double vth, LayerKind kind) const { return lif_params<Real>(*hyper, vth, kind); }
    // The LIF scans are instantiated for the taus at hand (divide).
    bool power_of_two_taus() const { return is_power_of_two(hyper->tau_m) && is_power_of_two(hyper->tau_s); }
};

// One sample's state of a population (a worker's scratch, reused sample after sample).
template <class Real>
struct Population {
    std::vector<uint64_t> fired_masks;  // (T, SpikeTrain::mask_words(n)) spike bit masks
    SpikeTrain out;                     // the spikes (after revival on the output layer), the next layer's input
    std::vector<Real> delta;            // SPEC 3 (output) or the pre_delta of the layer above
    std::vector<Real> dv, side, lat;
    std::vector<Real> scale;            // gradient_scale
    std::vector<int> n_post;            // spike counts

    // dv, side and scale of neurons [lo, hi) from side_sums[o] = sum_i W[o,i] e[o,i] and the
    // weight sums of silent neurons; lat must be set.
    void neuron_factors(const Real* side_sums, const Real* weight_sums, double vth, int lo, int hi)
    {
        for (int o = lo; o < hi; ++o) {
            const int n_o = out.count(o);
            n_post[o] = n_o;
            dv[o] = voltage_delta(delta[o], Real(vth));
            side[o] = side_term(side_sums[o], n_o, weight_sums[o], Real(vth));
            scale[o] = gradient_scale(dv[o], side[o], lat[o]);
        }
    }

    void resize_factors(int n)
    {
        dv.resize(n);
        side.resize(n);
        scale.resize(n);
        n_post.resize(n);
    }
};

// Neurons whose S-PSP traces are built together (spsp_trace_rows): one vector of floats.
constexpr int kTraceBlock = 16;

// The LIF state of a range of neurons advanced step by step (scan_by_step).
template <class Real>
struct ScanState {
    std::vector<Real> v, ep, current;
    std::vector<typename Simd<Real>::Int> ref;
    std::vector<uint8_t> live;  // per vector: has had input
};

// What one thread of a conv or pool layer's backward pass needs for its share of the neurons.
template <class Real>
struct BackwardPart {
    AlignedVector<Real> traces;  // K of up to a few trace blocks of neurons, (T, stride)
    SpspTraceScratch<Real, kTraceBlock> trace_scratch;
    std::vector<Real> e;                // conv: the S-PSPs of one position's connections
    std::vector<Real> pd_terms;         // conv: pre-delta terms of a block of connections
    std::vector<Real> grad, pre_delta;  // this thread's sums, when several threads share a sample
    std::vector<Real> dv, A, weighted, weight_sum;  // conv: per channel of one position
    std::vector<Real> interior_weight_sum;          // conv: weight_sum of the positions with no padding
    std::vector<int> n_o, ids, vec_start;  // vec_start: firing channels before each vector of channels
    std::vector<uint32_t> fired_bits;      // per vector of channels: the firing ones
    // conv: positions waiting for their traces, the firing neurons of their lanes, and the
    // S-PSP sums of one position's active connections over its lanes (row per connection)
    std::vector<int> pending_x, pending_y, pending_lane0, lane_ids;
    AlignedVector<Real> e_lanes;
    PositionSums<Real> sums;
};

// A worker's buffers for one layer and one sample, whatever the layer's connection; conv and
// pool layers split a single sample over threads, one ScanState / BackwardPart each.
template <class Real>
struct Scratch {
    AlignedVector<Real> spsp;  // dense: e[o, i] of the active inputs (active inputs, n_out padded)
    AlignedVector<Real> columns;  // conv: the kernel columns padded to whole vectors
    std::vector<int> silent;      // dense: the inputs that did not spike
    std::vector<ScanState<Real>> scans;
    std::vector<BackwardPart<Real>> parts;
};

// S-PSP traces of the neurons ids[0 .. n) of train (n <= kTraceBlock): rows[t * stride + j].
template <class Real>
void spsp_traces(const SampleContext<Real>& ctx, const SpikeTrain& train, const int* ids, int n,
                 SpspTraceScratch<Real, kTraceBlock>& scratch, Real* rows, size_t stride)
{
    const int* post[kTraceBlock];
    int n_post[kTraceBlock];
    for (int j = 0; j < n; ++j) {
        post[j] = train.times(ids[j]);
        n_post[j] = train.count(ids[j]);
    }
    const Hyper& h = *ctx.hyper;
    spsp_trace_rows<kTraceBlock>(post, n_post, n, ctx.T, spsp_window(h.tau_m), h.t_ref, h.tau_s,
                                 spsp_decay(ctx.spsp_tables), spsp_kernel(ctx.spsp_tables, ctx.T, h.t_ref), scratch,
                                 rows, stride);
}

}  // namespace hm2bp
