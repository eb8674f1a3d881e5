// The dense connection on the CPU: every input reaches every post neuron through W[o, i].
// Forward (SPEC 1 fused with the input current): for each chunk of post neurons, each step's
// current is the sum of the W rows of the inputs that fired one step earlier, fed straight into
// the LIF state. Backward (SPEC 4 in the fast form of SPEC 6): the S-PSP rows e[., i] of the
// active inputs as sums of trace rows over their spike times; from them the side term, the
// gradient rows and the pre-deltas. Work: (input spikes x fan-out), twice, plus (neurons x T).
#pragma once
#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "output_layer.hpp"
#include "population.hpp"
#include "row_sums.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "threading.hpp"
#include "weights.hpp"

namespace hm2bp {

// Neurons whose S-PSP rows are summed together: the traces of several trace blocks side by side,
// (T, width) with width = 256 bytes, so that each spike time of an input (one index load and
// address) feeds four vector adds. A narrow block needs fewer traces in L1 but spends most of
// its micro-ops on the indices.
template <class Real>
constexpr int spsp_row_block() { return 256 / sizeof(Real); }

// Connections (inputs x post neurons) below which the gradient rows and pre-deltas run on the
// calling thread: waking a sleeping thread and joining it costs ~6 us on an idle machine and
// far more on a busy one, about what the output layer's rows take alone (~400 inputs x 10).
constexpr int kMinParallelConnections = 1 << 14;

// Post neurons from which a batch-1 run leaves its gradient rows to the step (may_defer): a
// narrow row (the output layer's 10 classes, 40 bytes) costs less to write and read than the
// step's call and look-up per row that make it.
constexpr int kMinDeferredRow = 64;

template <class Real>
class DenseLayer {
public:
    WeightMatrix<Real> weights;
    double vth;
    bool lateral;  // lateral inhibition among the post neurons (the output layer, SPEC 1)

    DenseLayer(int n_in, int n_out, double vth_, bool lateral_) : weights(n_in, n_out), vth(vth_), lateral(lateral_) {}

    int n_in() const { return weights.n_in; }
    int n_out() const { return weights.n_out; }

    // SPEC 1 for all post neurons over the whole window: pop.out becomes the layer's spikes.
    void forward(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop, Scratch<Real>&,
                 int n_threads) const
    {
        const int O = n_out();
        const int T = ctx.T;
        const LifParams<Real> p = ctx.lif(vth, LayerKind::Dense);
        const bool pow2 = ctx.power_of_two_taus();
        pop.fired_masks.assign(static_cast<size_t>(T) * SpikeTrain::mask_words(O), 0);
        if (lateral) {
            const Real w0 = Real(ctx.hyper->lateral_inhibition);
            const bool one_vector = O <= Simd<Real>::lanes;  // the presets' 10 classes: state in registers
            if (pow2 && one_vector) integrate_with_lateral_inhibition<true, 1>(weights, input, T, w0, pop, p);
            else if (pow2) integrate_with_lateral_inhibition<true, 0>(weights, input, T, w0, pop, p);
            else if (one_vector) integrate_with_lateral_inhibition<false, 1>(weights, input, T, w0, pop, p);
            else integrate_with_lateral_inhibition<false, 0>(weights, input, T, w0, pop, p);
            pop.out.from_masks(pop.fired_masks.data(), T, O);
            return;
        }
        // Threads take whole mask words, so that each word has one writer.
        for_each_range(
            O, n_threads,
            [&](int lo, int hi) {
                if (pow2) integrate<true>(input, T, pop, p, lo, hi);
                else integrate<false>(input, T, pop, p, lo, hi);
            },
            64);
        pop.out.from_masks(pop.fired_masks.data(), T, O, n_threads);
    }

    // What backward's first part needs room for (spsp_and_side): the factors and the S-PSP rows.
    void begin_backward(Population<Real>& post_pop, const SpikeTrain& pre, Scratch<Real>& scratch) const
    {
        post_pop.resize_factors(n_out());
        scratch.spsp.resize(pre.active.size() * e_stride());
    }

    // backward's first part, which needs no deltas, for the post neurons of the ranges that
    // next_range(lo, hi) hands out until it returns false: the S-PSP traces of the post trains
    // (revived on the output layer), then the S-PSP rows e[o, i] of the active inputs as sums of
    // trace rows over their spike times (SPEC 6), spsp_row_block neurons at a time (their traces
    // stay in L2 for the sums). Only neurons that fired: a silent neuron's e is never used (its
    // connections take the 0.1 rule of spsp_value, its side term the row sum), so its entries of
    // scratch.spsp are not written. Then the side sums sum_i W[o, i] e[o, i] over the active
    // inputs into post_pop.side, by the thread that wrote those columns of e. Each neuron's
    // values are its own (the same for any ranges); after begin_backward.
    template <class NextRange>
    void spsp_and_side(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre,
                       Scratch<Real>& scratch, NextRange next_range) const
    {
        const SpikeTrain& post = post_pop.out;
        const int O = n_out();
        const int T = ctx.T;
        const int n_active = static_cast<int>(pre.active.size());
        const size_t stride = e_stride();
        constexpr int width = spsp_row_block<Real>();
        SpspTraceScratch<Real, kTraceBlock> trace_scratch;
        trace_scratch.resize(T);
        AlignedVector<Real> trace(static_cast<size_t>(T) * width, Real(0));
        int ids[width];
        int lo, hi;
        while (next_range(lo, hi)) {
            int n = 0;
            auto flush = [&] {
                for (int j = 0; j < n; j += kTraceBlock)
                    spsp_traces(ctx, post, ids + j, std::min(kTraceBlock, n - j), trace_scratch, trace.data() + j,
                                width);
                spsp_rows(trace.data(), ids, n, pre, scratch.spsp.data(), stride);
                n = 0;
            };
            for (int o = lo; o < hi; ++o) {
                if (post.count(o) == 0) continue;
                ids[n++] = o;
                if (n == width) flush();
            }
            if (n > 0) flush();

            Real* side = post_pop.side.data();
            std::fill(side + lo, side + hi, Real(0));
            for (int a = 0; a < n_active; ++a) {
                const Real* wrow = weights.wt.data() + static_cast<size_t>(pre.active[a]) * O;
                const Real* erow = scratch.spsp.data() + a * stride;
#pragma omp simd
                for (int o = lo; o < hi; ++o) side[o] += wrow[o] * erow[o];
            }
        }
    }

    // SPEC 4 for this layer, given post.delta and post.lat: adds g to `grad`, and writes the
    // pre-deltas of the layer below to pre_delta (null for the input layer). spsp_done: begin_backward
    // and spsp_and_side already ran for all post neurons.
    void backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre,
                  std::vector<Real>* pre_delta, GradientSum<Real>& grad, Scratch<Real>& scratch,
                  int n_threads, bool spsp_done = false) const
    {
        const int O = n_out();
        const int n_active = static_cast<int>(pre.active.size());
        const size_t e_stride = this->e_stride();

        // The S-PSP rows and side sums, then the neurons' factors from them, by the thread that
        // made them (one wake-up of the threads, not two).
        if (spsp_done) {
            post_pop.neuron_factors(post_pop.side.data(), weights.row_sum.data(), vth, 0, O);
        } else {
            begin_backward(post_pop, pre, scratch);
            for_each_range(O, n_threads, [&](int lo, int hi) {
                bool first = true;
                spsp_and_side(ctx, post_pop, pre, scratch, [&](int& from, int& to) {
                    from = lo;
                    to = hi;
                    return std::exchange(first, false);
                });
                post_pop.neuron_factors(post_pop.side.data(), weights.row_sum.data(), vth, lo, hi);
            });
        }
        const int* n_post = post_pop.n_post.data();

        // Gradient rows and pre-deltas of the active inputs. A run's only sample (may_defer)
        // leaves its rows to the step, which makes each from the S-PSP row as it reads it: the
        // same +0 + g, without writing and reading them (and zeroing them for the next run).
        if (pre_delta) pre_delta->assign(n_in(), Real(0));
        const Real* scale = post_pop.scale.data();
        const Real* dv = post_pop.dv.data();
        const bool use_effect_ratio = ctx.hyper->effect_ratio;
        const bool defer = grad.may_defer && O >= kMinDeferredRow;
        if (defer) {
            for (int a = 0; a < n_active; ++a) grad.touched[pre.active[a]] = 1;
            const Real* e_rows = scratch.spsp.data();
            grad.deferred = [&pre, e_rows, e_stride, scale, n_post](int i, int lo, int hi, Real* out) {
                const size_t a = std::lower_bound(pre.active.begin(), pre.active.end(), i) - pre.active.begin();
                const Real* e = e_rows + a * e_stride;
                const int n_i = pre.count(i);
#pragma omp simd
                for (int o = lo; o < hi; ++o)
                    out[o - lo] = Real(0) + weight_gradient(scale[o], spsp_value(e[o], n_post[o], n_i));
            };
            if (!pre_delta) return;
        }
        const int row_threads = n_active * O >= kMinParallelConnections ? n_threads : 1;
        for_each_item(n_active, row_threads, [&](int a) {
            const int i = pre.active[a];
            const int n_i = pre.count(i);
            const Real* e = scratch.spsp.data() + a * e_stride;
            if (!defer) {
                Real* grow = grad.row(i, O);
                grad.touched[i] = 1;
#pragma omp simd
                for (int o = 0; o < O; ++o) grow[o] += weight_gradient(scale[o], spsp_value(e[o], n_post[o], n_i));
            }
            if (!pre_delta) return;
            const Real* wrow = weights.wt.data() + static_cast<size_t>(i) * O;
            Real pd = 0;
            for (int o = 0; o < O; ++o)
                pd += pre_delta_term(dv[o], spsp_value(e[o], n_post[o], n_i), n_post[o], n_i, use_effect_ratio, wrow[o]);
            (*pre_delta)[i] = pd;
        });
        if (!pre_delta) return;
        // Silent inputs: R = 1. Each pre-delta is a chain of dependent adds in ascending o;
        // kSilentBlock inputs' chains run side by side (the threads take blocks of them).
        constexpr int kSilentBlock = 16;
        std::vector<int>& silent = scratch.silent;
        silent.clear();
        for (int i = 0; i < n_in(); ++i)
            if (pre.count(i) == 0) silent.push_back(i);
        const int n_silent = static_cast<int>(silent.size());
        const int silent_threads = n_silent * O >= kMinParallelConnections ? n_threads : 1;
        for_each_item((n_silent + kSilentBlock - 1) / kSilentBlock, silent_threads, [&](int block) {
            const int j0 = block * kSilentBlock, n = std::min(kSilentBlock, n_silent - j0);
            const Real* wrow[kSilentBlock];
            for (int j = 0; j < kSilentBlock; ++j)
                wrow[j] = weights.wt.data() + static_cast<size_t>(silent[j0 + std::min(j, n - 1)]) * O;
            Real pd[kSilentBlock] = {};
            for (int o = 0; o < O; ++o)
                for (int j = 0; j < kSilentBlock; ++j)
                    pd[j] += pre_delta_term(dv[o], Real(0), n_post[o], 0, use_effect_ratio, wrow[j][o]);
            for (int j = 0; j < n; ++j) (*pre_delta)[silent[j0 + j]] = pd[j];
        });
    }

private:
    // Floats between S-PSP rows in Scratch::spsp: rows start on cache lines.
    size_t e_stride() const { return (static_cast<size_t>(n_out()) + 15) / 16 * 16; }

    // SPEC 1 for post neurons [lo, hi) of a layer without lateral inhibition, one chunk of columns
    // at a time: each step's input current goes straight into the LIF state, and the chunk of W
    // stays in L1 over all T. Writes the spikes as bit masks (pop.fired_masks, zeroed by the
    // caller; lo is a multiple of 64).
    template <bool PowerOfTwoTaus>
    void integrate(const SpikeTrain& input, int T, Population<Real>& pop, const LifParams<Real>& p, int lo,
                   int hi) const
    {
        constexpr int lanes = Simd<Real>::lanes;
        int c = lo;
        for (; c + 4 * lanes <= hi; c += 4 * lanes) integrate_vectors<PowerOfTwoTaus, 4>(input, T, pop, p, c);
        switch ((hi - c) / lanes) {
            case 3: integrate_vectors<PowerOfTwoTaus, 3>(input, T, pop, p, c); break;
            case 2: integrate_vectors<PowerOfTwoTaus, 2>(input, T, pop, p, c); break;
            case 1: integrate_vectors<PowerOfTwoTaus, 1>(input, T, pop, p, c); break;
        }
        c += (hi - c) / lanes * lanes;
        if (c < hi) integrate_vectors<PowerOfTwoTaus, 1, true>(input, T, pop, p, c, hi - c);
    }

    // integrate for the Vectors * lanes columns from c on (256 bytes at most: within one mask
    // word), the neurons' state in registers. PartialLast: the last vector holds only last_lanes
    // columns (the layer's last few), loaded masked.
    template <bool PowerOfTwoTaus, int Vectors, bool PartialLast = false>
    void integrate_vectors(const SpikeTrain& input, int T, Population<Real>& pop, const LifParams<Real>& p, int c,
                           int last_lanes = Simd<Real>::lanes) const
    {
        // Full chunks in the machine's own vectors (simd.hpp: without AVX-512, 64-byte ones would
        // live in memory across the loops); a partial chunk in Vecs, whose last one loads masked.
        // Each lane is a neuron: the same operations in the same order either way.
        using W = std::conditional_t<PartialLast, Simd<Real>, Native<Real>>;
        using Vec = typename W::Vec;
        using Int = typename W::Int;
        constexpr int lanes = W::lanes;
        constexpr int n = Vectors * Simd<Real>::lanes / lanes;
        const int O = n_out();
        const Real* wt = weights.wt.data() + c;
        const int* ids = input.step_ids.data();
        const int* step_start = input.step_start.data();
        uint64_t* masks = pop.fired_masks.data() + c / 64;
        const int words = SpikeTrain::mask_words(O);
        Vec v[n] = {}, ep[n] = {};
        Int ref[n] = {};
        for (int q = 0; q < n; ++q) lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);  // t = 0 never fires
        for (int t = 1; t < T; ++t) {
            Vec r[n] = {};
            for (int k = step_start[t - 1]; k < step_start[t]; ++k) {
                const Real* row = in_register(wt + static_cast<size_t>(ids[k]) * O);
                for (int q = 0; q < n - PartialLast; ++q) r[q] += load_as<Vec>(row + q * lanes);
                if constexpr (PartialLast) r[n - 1] += load_vec_head(row + (n - 1) * lanes, last_lanes);
            }
            uint64_t fired = 0;
            for (int q = 0; q < n; ++q) {
                lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);
                fired |= lane_bits(lif_integrate<PowerOfTwoTaus>(v[q], ep[q], ref[q], r[q], p)) << (q * lanes);
            }
            if constexpr (PartialLast) fired &= (uint64_t(1) << ((n - 1) * lanes + last_lanes)) - 1;
            masks[static_cast<size_t>(t) * words] |= fired << (c % 64);
        }
    }

    // The S-PSP rows of one block of traces (T, spsp_row_block) of the neurons ids[0 .. n_ids) for
    // every active input: out[a * stride + ids[j]] = sum over the spike times t of input
    // pre.active[a] of trace[t, j], in ascending t. Columns from n_ids up to the next trace block
    // hold stale traces: summed along (one vector), never stored.
    static void spsp_rows(const Real* trace, const int* ids, int n_ids, const SpikeTrain& pre, Real* out, size_t stride)
    {
        constexpr int width = spsp_row_block<Real>();
        const int used = (n_ids + kTraceBlock - 1) / kTraceBlock * kTraceBlock;  // a few output neurons: one vector
        Real e[width];
        for (size_t a = 0; a < pre.active.size(); ++a) {
            const int i = pre.active[a];
            sum_rows(trace, width, pre.times(i), pre.count(i), 0, used, e);
            Real* dst = out + a * stride;
            for (int j = 0; j < n_ids; ++j) dst[ids[j]] = e[j];
        }
    }
};

}  // namespace hm2bp
