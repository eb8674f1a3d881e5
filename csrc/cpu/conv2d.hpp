// The spiking convolution on the CPU (SPEC_CNN 1, 3.3 in the fast form of 3.4): out_channels
// kernels of K x K x C shared over all positions, stride 1, zero padding P; post neuron
// o = (k, x, y) sees input q = (c, x + i - P, y + j - P) through W[k, c, i, j].
// Forward: each input spike adds its kernel column W[., c, i, j] to the currents of the K x K
// positions it reaches (work: input spikes x K^2 x out_channels), then one LIF step for all
// neurons. Backward: per post neuron, the S-PSP of each connection as the sum of its trace K
// over the input's spike times; from them dv, the side term, the shared-weight gradient (a plain
// sum over positions) and the pre-deltas. Work: (active connections x input spikes) plus O(T) per
// neuron that fired.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "population.hpp"
#include "row_sums.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "threading.hpp"
#include "weights.hpp"

namespace hm2bp {

// The conv backward's fixed split of the output rows (the most threads one sample keeps busy).
constexpr int kBackwardParts = 4;
// Connections whose pre-delta sums over the channels run side by side (position_backward).
constexpr int kPreDeltaBlock = 16;

template <class Real>
class Conv2dLayer {
public:
    WeightMatrix<Real> weights;  // row (c * K + i) * K + j, column k: W[k, c, i, j]
    ConvGeometry geo;
    double vth;

    Conv2dLayer(const ConvGeometry& geo_, double vth_)
        : weights(geo_.C * geo_.K * geo_.K, geo_.O), geo(geo_), vth(vth_)
    {
    }

    // SPEC 1 with the convolution's current and fire test (lif_params: v > vth). The LIF
    // state is kept position-major, (x, y, k) with the channels padded to whole vectors, so that
    // a kernel column adds to contiguous memory as a few vector adds. Threads take ranges of
    // output rows x (each reads all input spikes, adds only to its rows).
    void forward(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop, Scratch<Real>& s,
                 int n_threads) const
    {
        using Vec = typename Simd<Real>::Vec;
        constexpr int lanes = Simd<Real>::lanes;
        const int O = geo.O, D = geo.D, E = geo.E;
        const int padded = (O + lanes - 1) / lanes * lanes;
        const int N = O * D * E;
        const int T = ctx.T;
        const int words = SpikeTrain::mask_words(N);
        const LifParams<Real> p = ctx.lif(vth, LayerKind::Conv2d);
        pop.fired_masks.assign(static_cast<size_t>(T) * words, 0);
        const Real* wt = weights.wt.data();
        const int parts = std::max(1, std::min(n_threads, D));
        s.scans.resize(parts);
        for_each_part(parts, parts, [&](int part) {
            int x_lo, x_hi;
            split_range(D, parts, part, 1, x_lo, x_hi);
            const int lo = x_lo * E * padded;
            // a local copy: the vector stores below (memcpy) could alias the member, which the
            // compiler would then reload at every position
            const ConvGeometry g = geo;
            auto add_current = [&](int t, Real* current) {
                for (int k = input.step_start[t]; k < input.step_start[t + 1]; ++k)
                    g.for_each_position(input.step_ids[k], x_lo, x_hi, [&](int x, int y, int r) {
                        const Real* column = wt + static_cast<size_t>(r) * O;
                        Real* dst = current + (static_cast<size_t>(x * E + y) * padded - lo);
                        for (int o = 0; o < padded; o += lanes) {
                            Vec sum = load_vec(dst + o) + load_vec_head(column + o, std::min(lanes, O - o));
                            std::memcpy(dst + o, &sum, sizeof sum);
                        }
                    });
            };
            auto fire = [&](int t, int k) {
                const int o = k % padded, xy = k / padded;
                if (o < O) set_spike(pop.fired_masks, words, t, o * D * E + xy);  // padding lanes get no current
            };
            const int hi = x_hi * E * padded;
            if (ctx.power_of_two_taus()) scan_by_step<true>(lo, hi, T, p, s.scans[part], add_current, fire);
            else scan_by_step<false>(lo, hi, T, p, s.scans[part], add_current, fire);
        });
        pop.out.from_masks(pop.fired_masks.data(), T, N);
    }

    // SPEC_CNN 3.3 given post.delta: adds g to `grad`, writes the pre-deltas of the layer below
    // (null when the input is the data layer: conv1 hands nothing down). One output position at
    // a time: the traces of its out_channels neurons side by side, so that every input spike of
    // its receptive field adds one vector of channels to that connection's S-PSPs. The output
    // rows are split into min(D, kBackwardParts) ranges with sums of their own, added up in part
    // order afterwards, whatever the thread count (the threads take parts): the same sums, bit
    // for bit, on any number of threads.
    void backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre,
                  std::vector<Real>* pre_delta, GradientSum<Real>& grad, Scratch<Real>& s, int n_threads) const
    {
        const SpikeTrain& post = post_pop.out;
        const int D = geo.D, N = geo.O * geo.D * geo.E;
        const size_t n_in = static_cast<size_t>(geo.C) * geo.H * geo.W;
        const size_t n_weights = static_cast<size_t>(geo.C) * geo.K * geo.K * geo.O;
        post_pop.resize_factors(N);
        if (pre_delta) pre_delta->assign(n_in, Real(0));
        std::fill(grad.touched.begin(), grad.touched.end(), uint8_t(1));
        for (int o = 0; o < N; ++o) {
            post_pop.n_post[o] = post.count(o);
            post_pop.dv[o] = voltage_delta(post_pop.delta[o], Real(vth));
        }
        const int parts = std::min(D, kBackwardParts);
        s.parts.resize(parts);
        for_each_part(parts, n_threads, [&](int part) {
            BackwardPart<Real>& b = s.parts[part];
            Real* g = grad.grad.data();
            Real* pd = pre_delta ? pre_delta->data() : nullptr;
            if (parts > 1) {  // this part's own sums
                b.grad.assign(n_weights, Real(0));
                g = b.grad.data();
                if (pd) {
                    b.pre_delta.assign(n_in, Real(0));
                    pd = b.pre_delta.data();
                }
            }
            int x_lo, x_hi;
            split_range(D, parts, part, 1, x_lo, x_hi);
            for (int x = x_lo; x < x_hi; ++x)
                for (int y = 0; y < geo.E; ++y) position_backward(ctx, post_pop, pre, x, y, b, g, pd);
        });
        for (int part = 0; parts > 1 && part < parts; ++part) {
            const BackwardPart<Real>& b = s.parts[part];
            for (size_t k = 0; k < n_weights; ++k) grad.grad[k] += b.grad[k];
            if (pre_delta)
                for (size_t q = 0; q < n_in; ++q) (*pre_delta)[q] += b.pre_delta[q];
        }
    }

private:
    // The backward pass of the out_channels neurons at output position (x, y): adds their
    // gradient terms to g (rows r, columns k) and their pre-delta terms to pd (null: none).
    void position_backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre, int x,
                           int y, BackwardPart<Real>& b, Real* g, Real* pd) const
    {
        const SpikeTrain& post = post_pop.out;
        const int O = geo.O, D = geo.D, E = geo.E, T = ctx.T;
        const int stride = (O + kTraceBlock - 1) / kTraceBlock * kTraceBlock;  // channels, padded
        for (auto* v : {&b.dv, &b.A, &b.weighted, &b.weight_sum}) v->resize(O);
        b.n_o.resize(O);
        b.ids.resize(O);
        Real *dv = b.dv.data(), *A = b.A.data(), *weighted = b.weighted.data(), *weight_sum = b.weight_sum.data();
        int *n_o = b.n_o.data(), *ids = b.ids.data();
        bool any = false, fired = false;
        for (int k = 0; k < O; ++k) {
            ids[k] = (k * D + x) * E + y;
            n_o[k] = post_pop.n_post[ids[k]];
            dv[k] = post_pop.dv[ids[k]];
            any = any || dv[k] != Real(0);
            fired = fired || n_o[k] > 0;
        }
        if (!any) return;  // every term of this position is zero, exactly
        b.traces.resize(static_cast<size_t>(T) * stride);  // padding lanes are never written: stay 0
        b.trace_scratch.ensure(T);
        b.e.resize(static_cast<size_t>(geo.C) * geo.K * geo.K * stride);
        if (fired) {  // else every e is the 0.1 rule's or 0: no trace needed (rows t >= 1 rewritten)
            for (int k0 = 0; k0 < O; k0 += kTraceBlock)
                spsp_traces(ctx, post, ids + k0, std::min(kTraceBlock, O - k0), b.trace_scratch, b.traces.data() + k0,
                            stride);
        }
        const Real* wt = weights.wt.data();
        // e[r, k] of every valid connection r = (c, i, j), then the 0.1 rule
        std::fill(weighted, weighted + O, Real(0));
        std::fill(weight_sum, weight_sum + O, Real(0));
        geo.for_each_connection(x, y, [&](int r, int q) {
            Real* e = b.e.data() + static_cast<size_t>(r) * stride;
            const int n_q = pre.count(q);
            // in registers, a vector of channels at a time (padding lanes of the traces hold 0)
            if (fired) sum_rows(b.traces.data(), stride, pre.times(q), n_q, 0, stride, e);
            else std::fill(e, e + stride, Real(0));
            const Real* w = wt + static_cast<size_t>(r) * O;
#pragma omp simd  // the arrays are distinct (the compiler cannot tell): one vector of channels per step
            for (int k = 0; k < O; ++k) {
                e[k] = spsp_value(e[k], n_o[k], n_q);
                weighted[k] += w[k] * e[k];
                weight_sum[k] += w[k];
            }
        });
        for (int k = 0; k < O; ++k) {
            const int o = ids[k];
            post_pop.side[o] = side_term(weighted[k], n_o[k], weight_sum[k], Real(vth));
            A[k] = post_pop.scale[o] = gradient_scale(dv[k], post_pop.side[o], Real(1));  // no lateral factor
        }
        // The pre-delta of input q is a sum over the channels k in ascending k: a chain of
        // dependent adds per connection. Its terms are computed as vectors (one row of
        // pd_terms per connection), then kPreDeltaBlock connections' chains run side by side,
        // each still in ascending k.
        b.pd_terms.resize(static_cast<size_t>(kPreDeltaBlock) * stride);
        int block_q[kPreDeltaBlock];
        int n_block = 0;
        auto flush = [&] {
            Real sum[kPreDeltaBlock] = {};
            for (int k = 0; k < O; ++k)
                for (int j = 0; j < kPreDeltaBlock; ++j) sum[j] += b.pd_terms[static_cast<size_t>(j) * stride + k];
            for (int j = 0; j < n_block; ++j) pd[block_q[j]] += sum[j];  // rows from n_block on: stale, unused
            n_block = 0;
        };
        geo.for_each_connection(x, y, [&](int r, int q) {
            const Real* e = b.e.data() + static_cast<size_t>(r) * stride;
            const Real* w = wt + static_cast<size_t>(r) * O;
            const int n_q = pre.count(q);
            if (n_q > 0) {
                Real* grow = g + static_cast<size_t>(r) * O;
#pragma omp simd
                for (int k = 0; k < O; ++k) grow[k] += weight_gradient(A[k], e[k]);
            }
            if (!pd) return;
            Real* terms = b.pd_terms.data() + static_cast<size_t>(n_block) * stride;
#pragma omp simd
            for (int k = 0; k < O; ++k) terms[k] = pre_delta_term(dv[k], e[k], n_o[k], n_q, true, w[k]);
            block_q[n_block++] = q;  // the q of one position's connections are distinct
            if (n_block == kPreDeltaBlock) flush();
        });
        if (n_block > 0) flush();
    }
};

}  // namespace hm2bp
