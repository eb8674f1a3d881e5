// The conv backward of one range of output rows (SPEC_CNN 3.3 in the fast form of 3.4), for
// Conv2dLayer::backward: the traces of the firing neurons packed into blocks of lanes, then one
// output position at a time its S-PSPs, side terms, gradient and pre-delta terms.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/spsp.hpp"
#include "conv2d_spsp_sums.hpp"
#include "row_sums.hpp"
#include "population.hpp"
#include "simd.hpp"
#include "spike_train.hpp"

namespace hm2bp {

// Connections whose pre-delta sums over the channels run side by side (position_backward).
constexpr int kPreDeltaBlock = 16;

template <class Real>
struct Conv2dBackward {
    const ConvGeometry& geo;
    const Real* wt;  // row (c * K + i) * K + j, column k: W[k, c, i, j]
    double vth;

    // The positions of output rows [x_lo, x_hi), in order. The traces of their firing neurons
    // are built kTraceBlock lanes at a time: the firing channels of consecutive positions side
    // by side (a position's own lanes contiguous, never split between blocks unless it alone
    // has more), so a trace scan serves several positions and a position's S-PSP sums read
    // one vector of lanes instead of all its channels.
    void part_backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre, int x_lo,
                       int x_hi, BackwardPart<Real>& b, Real* g, Real* pd)
    {
        const SpikeTrain& post = post_pop.out;
        const int O = geo.O, D = geo.D, E = geo.E, T = ctx.T;
        b.trace_scratch.ensure(T);
        b.interior_weight_sum.clear();  // the weights may have changed since the last sample
        b.pending_x.clear();
        b.pending_y.clear();
        b.pending_lane0.clear();
        b.lane_ids.clear();
        auto flush = [&] {
            const int used = static_cast<int>(b.lane_ids.size());
            const size_t stride = std::max(kTraceBlock, (used + kTraceBlock - 1) / kTraceBlock * kTraceBlock);
            b.traces.resize(static_cast<size_t>(T) * stride);  // lanes from `used` on: stale, never read
            for (int j0 = 0; j0 < used; j0 += kTraceBlock)
                spsp_traces(ctx, post, b.lane_ids.data() + j0, std::min(kTraceBlock, used - j0), b.trace_scratch,
                            b.traces.data() + j0, stride);
            for (size_t k = 0; k < b.pending_x.size(); ++k)
                position_backward(post_pop, pre, b.pending_x[k], b.pending_y[k], b.pending_lane0[k], stride, b, g, pd);
            b.pending_x.clear();
            b.pending_y.clear();
            b.pending_lane0.clear();
            b.lane_ids.clear();
        };
        for (int x = x_lo; x < x_hi; ++x)
            for (int y = 0; y < E; ++y) {
                bool any = false;
                int n_fired = 0;
                for (int k = 0; k < O; ++k) {
                    const int o = (k * D + x) * E + y;
                    any = any || post_pop.dv[o] != Real(0);
                    n_fired += post_pop.n_post[o] > 0;
                }
                if (!any) continue;  // every term of this position is zero, exactly
                if (static_cast<int>(b.lane_ids.size()) + n_fired > kTraceBlock && !b.lane_ids.empty()) flush();
                b.pending_x.push_back(x);
                b.pending_y.push_back(y);
                b.pending_lane0.push_back(static_cast<int>(b.lane_ids.size()));
                for (int k = 0; k < O; ++k) {
                    const int o = (k * D + x) * E + y;
                    if (post_pop.n_post[o] > 0) b.lane_ids.push_back(o);
                }
                if (static_cast<int>(b.lane_ids.size()) >= kTraceBlock) flush();
            }
        if (!b.pending_x.empty()) flush();
    }

    // The backward pass of the out_channels neurons at output position (x, y): adds their
    // gradient terms to g (rows r, columns k) and their pre-delta terms to pd (null: none). Its
    // firing channels' traces are b.traces' lanes lane0, lane0 + 1, ... in ascending channel.
    void position_backward(Population<Real>& post_pop, const SpikeTrain& pre, int x, int y, int lane0,
                           size_t trace_stride, BackwardPart<Real>& b, Real* g, Real* pd)
    {
        constexpr int lanes = Simd<Real>::lanes;
        const int O = geo.O, D = geo.D, E = geo.E;
        const int stride = (O + kTraceBlock - 1) / kTraceBlock * kTraceBlock;  // channels, padded
        for (auto* v : {&b.dv, &b.A, &b.weighted, &b.weight_sum}) v->resize(O);
        b.n_o.resize(O);
        b.ids.resize(O);
        const int n_vec = stride / lanes;
        b.fired_bits.resize(n_vec);
        b.vec_start.resize(n_vec);
        Real *dv = b.dv.data(), *A = b.A.data(), *weighted = b.weighted.data(), *weight_sum = b.weight_sum.data();
        int *n_o = b.n_o.data(), *ids = b.ids.data();
        std::fill(b.fired_bits.begin(), b.fired_bits.end(), 0u);
        int n_fired = 0;
        for (int k = 0; k < O; ++k) {
            ids[k] = (k * D + x) * E + y;
            n_o[k] = post_pop.n_post[ids[k]];
            dv[k] = post_pop.dv[ids[k]];
            if (k % lanes == 0) b.vec_start[k / lanes] = n_fired;
            if (n_o[k] > 0) {
                b.fired_bits[k / lanes] |= 1u << (k % lanes);
                ++n_fired;
            }
        }
        const size_t n_rows = static_cast<size_t>(geo.C) * geo.K * geo.K;
        b.e.resize(n_rows * stride);
        // The fast-form sums of the firing channels over every active connection, on the
        // vectors of lanes that hold them (the silent channels' sums are 0: their traces are).
        const int col_lo = lane0 / lanes * lanes;
        const int n_cols = n_fired > 0 ? (lane0 + n_fired + lanes - 1) / lanes * lanes - col_lo : 0;
        if (n_fired > 0) {
            b.e_lanes.resize(n_rows * n_cols);
            position_spsp_sums(geo, pre, x, y, b.traces.data(), trace_stride, col_lo, n_cols, b.sums, b.e_lanes.data());
        }
        // The weight sums of the silent neurons' side terms, in connection order: the same at
        // every position whose connections are all inside the map, so those take a copy.
        const bool interior = geo.interior(x, y);
        if (interior && b.interior_weight_sum.size() == static_cast<size_t>(O)) {
            std::copy_n(b.interior_weight_sum.data(), O, weight_sum);
        } else {
            std::fill(weight_sum, weight_sum + O, Real(0));
            geo.for_each_connection(x, y, [&](int r, int) {
                const Real* w = wt + static_cast<size_t>(r) * O;
#pragma omp simd
                for (int k = 0; k < O; ++k) weight_sum[k] += w[k];
            });
            if (interior) b.interior_weight_sum.assign(weight_sum, weight_sum + O);
        }
        // A connection from a silent input has e = 0 for every channel: it adds w * 0 = +-0 to
        // the weighted sums, which leaves them as they are (a sum that starts at +0 is never -0)
        // when w is finite, as it is wherever the weight sums are.
        bool finite = true;
        for (int k = 0; k < O; ++k) finite = finite && std::isfinite(weight_sum[k]);
        // e[r, k] of every valid connection r = (c, i, j), then the 0.1 rule
        std::fill(weighted, weighted + O, Real(0));
        geo.for_each_connection(x, y, [&](int r, int q) {
            Real* e = b.e.data() + static_cast<size_t>(r) * stride;
            const int n_q = pre.count(q);
            if (n_q == 0 && finite) return;  // its e row is not read
            if (n_fired > 0 && n_q > 0) {  // the firing channels' sums into their channels' lanes
                const Real* sums = b.e_lanes.data() + static_cast<size_t>(r) * n_cols + (lane0 - col_lo);
                for (int v = 0; v < n_vec; ++v) {
                    const typename Simd<Real>::Vec ev = expand_vec(sums + b.vec_start[v], b.fired_bits[v]);
                    std::memcpy(e + v * lanes, &ev, sizeof ev);
                }
            } else {
                std::fill(e, e + O, Real(0));
            }
            const Real* w = wt + static_cast<size_t>(r) * O;
#pragma omp simd  // the arrays are distinct (the compiler cannot tell): one vector of channels per step
            for (int k = 0; k < O; ++k) {
                e[k] = spsp_value(e[k], n_o[k], n_q);
                weighted[k] += w[k] * e[k];
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
        static_assert(kPreDeltaBlock == 16, "sum_columns16");
        auto flush = [&] {
            Real sum[kPreDeltaBlock];
            sum_columns16(b.pd_terms.data(), stride, O, sum);
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
            if (n_q > 0) {
#pragma omp simd
                for (int k = 0; k < O; ++k) terms[k] = pre_delta_term(dv[k], e[k], n_o[k], n_q, true, w[k]);
            } else {  // the effect ratio is 1 whatever e (its row was not written)
#pragma omp simd
                for (int k = 0; k < O; ++k) terms[k] = pre_delta_term(dv[k], Real(0), n_o[k], 0, true, w[k]);
            }
            block_q[n_block++] = q;  // the q of one position's connections are distinct
            if (n_block == kPreDeltaBlock) flush();
        });
        if (n_block > 0) flush();
    }
};

}  // namespace hm2bp
