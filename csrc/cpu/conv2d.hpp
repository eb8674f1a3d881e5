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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "population.hpp"
#include "conv2d_spsp_sums.hpp"
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
        // every input's (c, h, w), which the forward pass reads per input spike instead of
        // working it out (three integer divisions) again
        const int n_in = geo.C * geo.H * geo.W;
        input_chw.resize(3 * static_cast<size_t>(n_in));
        for (int q = 0; q < n_in; ++q) geo.input_coords(q, input_chw[3 * q], input_chw[3 * q + 1], input_chw[3 * q + 2]);
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
        // the kernel columns padded with zeros to whole vectors, as the state is (the padding
        // lanes then get +0, as they got from a partial load before)
        const int n_rows = geo.C * geo.K * geo.K;
        s.columns.assign(static_cast<size_t>(n_rows) * padded, Real(0));
        for (int r = 0; r < n_rows; ++r)
            std::copy_n(weights.wt.data() + static_cast<size_t>(r) * O, O, s.columns.data() + static_cast<size_t>(r) * padded);
        const Real* wt = s.columns.data();
        const int parts = std::max(1, std::min(n_threads, D));
        s.scans.resize(parts);
        for_each_part(parts, parts, [&](int part) {
            int x_lo, x_hi;
            split_range(D, parts, part, 1, x_lo, x_hi);
            const int lo = x_lo * E * padded;
            // Copies by value: the vector stores (memcpy) could alias anything the lambdas reach
            // by reference (the member, the locals of forward), which the compiler would then
            // read again at every position and every neuron.
            const ConvGeometry g = geo;
            const int* chw = input_chw.data();
            auto add_current = [=, &input](int t, Real* current) {
                for (int k = input.step_start[t]; k < input.step_start[t + 1]; ++k) {
                    const int* at = chw + 3 * static_cast<size_t>(input.step_ids[k]);
                    g.for_each_position(at[0], at[1], at[2], x_lo, x_hi, [&](int x, int y, int r) {
                        const Real* column = wt + static_cast<size_t>(r) * padded;
                        Real* dst = current + (static_cast<size_t>(x * E + y) * padded - lo);
                        for (int o = 0; o < padded; o += lanes) {
                            Vec sum = load_vec(dst + o) + load_vec(column + o);
                            std::memcpy(dst + o, &sum, sizeof sum);
                        }
                    });
                }
            };
            uint64_t* masks = pop.fired_masks.data();
            const bool shared = parts > 1;  // other threads set bits of the same words
            auto fire = [=](int t, int k) {
                const unsigned o = unsigned(k) % unsigned(padded), xy = unsigned(k) / unsigned(padded);
                if (o >= unsigned(O)) return;  // padding lanes get no current
                set_spike(masks, words, t, int(o) * D * E + int(xy), shared);
            };
            const int hi = x_hi * E * padded;
            if (ctx.power_of_two_taus()) scan_by_step<true>(lo, hi, T, p, s.scans[part], add_current, fire);
            else scan_by_step<false>(lo, hi, T, p, s.scans[part], add_current, fire);
        });
        pop.out.from_masks(pop.fired_masks.data(), T, N);
    }

    // SPEC_CNN 3.3 given post.delta: adds g to `grad`, writes the pre-deltas of the layer below
    // (null when the input is the data layer: conv1 hands nothing down). One output position at
    // a time (part_backward, position_backward): every input spike of its receptive field adds
    // one vector of traces of its firing channels to that connection's S-PSPs. The output
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
            part_backward(ctx, post_pop, pre, x_lo, x_hi, b, g, pd);
        });
        for (int part = 0; parts > 1 && part < parts; ++part) {
            const BackwardPart<Real>& b = s.parts[part];
            for (size_t k = 0; k < n_weights; ++k) grad.grad[k] += b.grad[k];
            if (pre_delta)
                for (size_t q = 0; q < n_in; ++q) (*pre_delta)[q] += b.pre_delta[q];
        }
    }

private:
    std::vector<int> input_chw;  // (c, h, w) of every input

    // The positions of output rows [x_lo, x_hi), in order. The traces of their firing neurons
    // are built kTraceBlock lanes at a time: the firing channels of consecutive positions side
    // by side (a position's own lanes contiguous, never split between blocks unless it alone
    // has more), so a trace scan serves several positions and a position's S-PSP sums read
    // one vector of lanes instead of all its channels.
    void part_backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre, int x_lo,
                       int x_hi, BackwardPart<Real>& b, Real* g, Real* pd) const
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
    void position_backward(Population<Real>& post_pop, const SpikeTrain& pre, int x, int y, int lane0, size_t trace_stride, BackwardPart<Real>& b, Real* g, Real* pd) const
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
        const Real* wt = weights.wt.data();
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
