// Spiking pooling on the CPU (SPEC_CNN 2, 3.2): pool neuron p = (c, X, Y) sums, with fixed
// weights 1, the spikes of its size x size window of channel c starting at (X * stride,
// Y * stride), clipped at the border. No parameters. Backward: each window member q gets the
// pool neuron's delta / size^2 times the effect ratio e(p, q) / n_q (not divided by the pool's
// vth), summed over the windows that contain it.
#pragma once
#include <algorithm>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "lif_scan.hpp"
#include "population.hpp"
#include "spike_train.hpp"
#include "threading.hpp"

namespace hm2bp {

template <class Real>
class Pool2dLayer {
public:
    PoolGeometry geo;
    double vth;

    Pool2dLayer(const PoolGeometry& geo_, double vth_) : geo(geo_), vth(vth_)
    {
        // the windows of every input, in for_each_window's order: the forward pass reads them
        // per input spike instead of working them out (several integer divisions) again
        const int n_in = geo.C * geo.H * geo.W;
        window_start.assign(n_in + 1, 0);
        for (int q = 0; q < n_in; ++q) {
            geo.for_each_window(q, [&](int n) { windows.push_back(n); });
            window_start[q + 1] = static_cast<int>(windows.size());
        }
    }

    // SPEC 1 with the window sums as current, fire test v > vth - 1e-6 (lif_params). Threads
    // take ranges of pool neurons (each reads all input spikes, adds only to its range).
    void forward(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop, Scratch<Real>& s,
                 int n_threads) const
    {
        const int N = geo.C * geo.D * geo.E;
        const int T = ctx.T;
        const int words = SpikeTrain::mask_words(N);
        constexpr int lanes = Simd<Real>::lanes;
        const int n_vec = (N + lanes - 1) / lanes;  // scan_by_step takes whole vectors
        const LifParams<Real> p = ctx.lif(vth, LayerKind::Pool2d);
        pop.fired_masks.assign(static_cast<size_t>(T) * words, 0);
        const int parts = std::max(1, std::min(n_threads, n_vec / 8));
        s.scans.resize(parts);
        for_each_part(parts, parts, [&](int part) {
            // whole mask words per thread: no word has bits of two threads, so none needs an
            // atomic or (paired batch-1 timings of the pool-1 forward on 2 threads: ~2% less time)
            int lo, hi;
            split_range(n_vec, parts, part, 64 / lanes, lo, hi);
            lo *= lanes;
            hi *= lanes;
            auto add_current = [&](int t, Real* current) {
                for (int k = input.step_start[t]; k < input.step_start[t + 1]; ++k) {
                    const int q = input.step_ids[k];
                    for (int m = window_start[q]; m < window_start[q + 1]; ++m) {
                        const int n = windows[m];
                        if (n >= lo && n < hi) current[n - lo] += Real(1);
                    }
                }
            };
            auto fire = [&](int t, int k0, uint64_t bits) {
                for (; bits; bits &= bits - 1) {
                    const int n = k0 + __builtin_ctzll(bits);
                    if (n >= N) break;  // padding lanes (the bits ascend)
                    set_spike(pop.fired_masks.data(), words, t, n, false);
                }
            };
            if (ctx.power_of_two_taus()) scan_by_step<true>(lo, hi, T, p, s.scans[part], add_current, fire);
            else scan_by_step<false>(lo, hi, T, p, s.scans[part], add_current, fire);
        });
        pop.out.from_masks(pop.fired_masks.data(), T, N, n_threads, false);
    }

    // SPEC_CNN 3.2: pre_delta[q] = sum over windows p containing q of delta[p] / size^2 * R(p, q).
    // Threads take ranges of channels: a window and its members share a channel, so each
    // pre_delta[q] is written by one thread, its terms added in ascending p as on one thread.
    void backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre,
                  std::vector<Real>* pre_delta, GradientSum<Real>&, Scratch<Real>& s, int n_threads) const
    {
        if (!pre_delta) return;  // pooling the data layer: nothing to hand down
        const SpikeTrain& post = post_pop.out;
        const int per_channel = geo.D * geo.E;
        const int T = ctx.T;
        pre_delta->assign(static_cast<size_t>(geo.C) * geo.H * geo.W, Real(0));
        const int parts = std::max(1, std::min(n_threads, geo.C));
        s.parts.resize(parts);
        for_each_part(parts, parts, [&](int part) {
            int c_lo, c_hi;
            split_range(geo.C, parts, part, 1, c_lo, c_hi);
            BackwardPart<Real>& b = s.parts[part];
            b.traces.resize(static_cast<size_t>(T) * kTraceBlock);
            b.trace_scratch.ensure(T);
            const Real* delta = post_pop.delta.data();
            Real* pd = pre_delta->data();
            int ids[kTraceBlock];
            int n_ids = 0;
            // Window members of p, each with e(p, q) from p's trace (null for a silent p: R = 1).
            auto hand_down = [&](int p, const Real* trace) {
                const int n_p = post.count(p);
                geo.for_each_member(p, [&](int q) {
                    Real e = Real(0);
                    if (trace)
                        for (int m = 0; m < pre.count(q); ++m)
                            e += trace[static_cast<size_t>(pre.times(q)[m]) * kTraceBlock];
                    pd[q] += pool_pre_delta_term(delta[p], geo.size, spsp_value(e, n_p, pre.count(q)), n_p, pre.count(q));
                });
            };
            auto flush = [&] {
                spsp_traces(ctx, post, ids, n_ids, b.trace_scratch, b.traces.data(), kTraceBlock);
                for (int j = 0; j < n_ids; ++j) hand_down(ids[j], b.traces.data() + j);
                n_ids = 0;
            };
            for (int p = c_lo * per_channel; p < c_hi * per_channel; ++p) {
                if (delta[p] == Real(0)) continue;  // its terms are all zero, exactly
                if (post.count(p) == 0) {
                    hand_down(p, nullptr);
                    continue;
                }
                ids[n_ids++] = p;
                if (n_ids == kTraceBlock) flush();
            }
            if (n_ids > 0) flush();
        });
    }

private:
    std::vector<int> window_start, windows;  // the pool neurons of input q: windows[window_start[q] ..]
};

}  // namespace hm2bp
