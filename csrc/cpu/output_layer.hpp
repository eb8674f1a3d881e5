// The output layer on the CPU: its LIF scan with lateral inhibition (SPEC 1), the spike-count
// loss and prediction (SPEC 3), the lateral factor and the revival of a silent label neuron
// (SPEC 4).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/loss.hpp"
#include "../hm2bp/neuron.hpp"
#include "population.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "weights.hpp"

namespace hm2bp {

// n zero-initialized values of T: a plain array when their number N is known at compile time
// (N == n; the compiler can keep it in registers), else on the heap (N = 0).
template <class T, int N>
struct StateArray {
    T values[N] = {};
    explicit StateArray(int) {}
    T& operator[](int k) { return values[k]; }
    T* begin() { return values; }
    T* end() { return values + N; }
};
template <class T>
struct StateArray<T, 0> : std::vector<T> {
    explicit StateArray(int n) : std::vector<T>(n) {}
};

// SPEC 1 for the output layer with lateral inhibition: L[o, l] = -w0 for l != o couples the
// neurons through the previous step's spikes, so all of them advance together, a vector of
// neurons at a time (the last one partly used). Writes the spikes as bit masks (pop.fired_masks,
// zeroed by the caller). Vectors: their number when known at compile time, else 0.
template <bool PowerOfTwoTaus, int Vectors, class Real>
void integrate_with_lateral_inhibition(const WeightMatrix<Real>& layer, const SpikeTrain& input, int T, Real w0,
                                       Population<Real>& pop, const LifParams<Real>& p)
{
    using Vec = typename Simd<Real>::Vec;
    using Int = typename Simd<Real>::Int;
    constexpr int lanes = Simd<Real>::lanes;
    const int O = layer.n_out;
    const int n_vec = Vectors > 0 ? Vectors : (O + lanes - 1) / lanes;
    const int words = SpikeTrain::mask_words(O);
    const int* ids = input.step_ids.data();
    const int* step_start = input.step_start.data();
    const Vec minus_w0 = Vec{} - w0;
    StateArray<Vec, Vectors> v(n_vec), ep(n_vec), r(n_vec);
    StateArray<Int, Vectors> ref(n_vec), fired(n_vec);  // fired: 1 where the neuron fired at the last step
    for (int q = 0; q < n_vec; ++q) lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);  // t = 0 never fires
    int fired_before = 0;  // spikes of the layer at the last step
    for (int t = 1; t < T; ++t) {
        std::fill(r.begin(), r.end(), Vec{});
        for (int k = step_start[t - 1]; k < step_start[t]; ++k) {
            const Real* row = layer.wt.data() + static_cast<size_t>(ids[k]) * O;
            for (int q = 0; q < n_vec; ++q) r[q] += load_vec_head(row + q * lanes, std::min(lanes, O - q * lanes));
        }
        uint64_t* mask = pop.fired_masks.data() + static_cast<size_t>(t) * words;
        int fired_now = 0;
        for (int q = 0; q < n_vec; ++q) {
            lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);
            const Vec inhibition = minus_w0 * __builtin_convertvector(fired_before - fired[q], Vec);
            const auto fire = lif_integrate<PowerOfTwoTaus>(v[q], ep[q], ref[q], r[q] + inhibition, p);
            const int used = std::min(lanes, O - q * lanes);
            const uint64_t bits = lane_bits(fire) & ((uint64_t(1) << used) - 1);
            mask[q * lanes / 64] |= bits << (q * lanes % 64);
            fired[q] = fire & 1;
            fired_now += __builtin_popcountll(bits);
        }
        fired_before = fired_now;
    }
}

// lat[j] of SPEC 4 from the output spikes before revival.
template <class Real>
void lateral_factors(const SampleContext<Real>& ctx, const SpikeTrain& out, int label, double vth,
                     std::vector<Real>& lat)
{
    const int O = static_cast<int>(lat.size());
    const int T = ctx.T;
    const Real inv_vth = Real(1) / Real(vth);
    std::vector<Real> K(static_cast<size_t>(T) * O);  // (T, O)
    SpspTraceScratch<Real, kTraceBlock> scratch;
    scratch.resize(T);
    for (int o0 = 0; o0 < O; o0 += kTraceBlock) {
        int ids[kTraceBlock];
        const int n = std::min(kTraceBlock, O - o0);
        for (int j = 0; j < n; ++j) ids[j] = o0 + j;
        spsp_traces(ctx, out, ids, n, scratch, K.data() + o0, O);
    }
    // e_{l|j}: post l, pre j
    auto e = [&](int l, int j) {
        Real acc = 0;
        const int* tj = out.times(j);
        for (int k = 0; k < out.count(j); ++k) acc += K[static_cast<size_t>(tj[k]) * O + l];
        return acc;
    };
    for (int j = 0; j < O; ++j) {
        const int n_j = out.count(j);
        const Real d_j = lateral_gate(n_j, j == label, inv_vth);
        Real sum = 0;
        for (int l = 0; l < O; ++l) {
            if (l == j) continue;
            const int n_l = out.count(l);
            const Real d_l = lateral_gate(n_l, l == label, inv_vth);
            const Real r_jl = lateral_ratio(n_j > 0 && n_l > 0 ? e(l, j) : Real(0), n_j, n_l);
            const Real r_lj = lateral_ratio(n_j > 0 && n_l > 0 ? e(j, l) : Real(0), n_l, n_j);
            sum += r_jl * d_l * r_lj * d_j;
        }
        lat[j] = lateral_factor(Real(ctx.hyper->lateral_inhibition), sum);
    }
}

// Revival: the label neuron's train becomes regular spikes every revival_interval steps.
inline void revive(SpikeTrain& out, int label, int T, int desired)
{
    const int interval = revival_interval(T, desired);
    std::vector<int> start(out.N + 1, 0), all;
    for (int n = 0; n < out.N; ++n) {
        if (n == label) {
            for (int t = interval; t < T; t += interval) all.push_back(t);
        } else {
            all.insert(all.end(), out.times(n), out.times(n) + out.count(n));
        }
        start[n + 1] = static_cast<int>(all.size());
    }
    out.neuron_start.swap(start);
    out.neuron_times.swap(all);
    out.index_by_step();
}

// SPEC 3, then SPEC 4's lateral factor and revival on the output population. Returns the cost.
template <class Real>
double output_layer_delta(const SampleContext<Real>& ctx, Population<Real>& pop, int label, double sample_weight,
                          double vth, bool lateral)
{
    SpikeTrain& out = pop.out;
    const Hyper& h = *ctx.hyper;
    const int O = out.N;
    const CountTargets targets{h.desired, h.undesired, h.margin};
    pop.delta.assign(O, Real(0));
    pop.lat.assign(O, Real(1));
    Real cost = 0;
    for (int o = 0; o < O; ++o)
        pop.delta[o] = output_delta<Real>(out.count(o), o == label, targets, cost) * Real(sample_weight);
    if (lateral) lateral_factors(ctx, out, label, vth, pop.lat);
    if (out.count(label) == 0) revive(out, label, ctx.T, h.desired);
    return double(cost);
}

// A sample whose output deltas are all zero (every count within the margin, or weight 0)
// has g = 0 * e * (1 + side) * lat = 0 everywhere and pre-deltas 0: its backward pass can be
// skipped exactly, unless a lateral factor is not finite (0 * inf is NaN in SPEC's formula).
template <class Real>
bool contributes_gradient(const Population<Real>& out)
{
    for (size_t o = 0; o < out.delta.size(); ++o)
        if (out.delta[o] != Real(0) || !std::isfinite(out.lat[o])) return true;
    return false;
}

}  // namespace hm2bp
