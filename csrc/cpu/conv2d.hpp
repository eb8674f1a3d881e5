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
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "population.hpp"
#include "spike_train.hpp"
#include "weights.hpp"

namespace hm2bp {

template <class Real>
class Conv2dLayer {
public:
    WeightMatrix<Real> weights;  // row (c * K + i) * K + j, column k: W[k, c, i, j]
    Shape in, out;
    int kernel, padding;
    double vth;

    Conv2dLayer(const Shape& in_, const Shape& out_, int kernel_, int padding_, double vth_)
        : weights(in_.channels * kernel_ * kernel_, out_.channels), in(in_), out(out_), kernel(kernel_),
          padding(padding_), vth(vth_)
    {
    }

    // SPEC 1 with the convolution's current and fire test v > vth (SPEC_CNN 1, 8.1). The LIF
    // state is kept position-major, (x, y, k), so that a kernel column adds to contiguous memory.
    void forward(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop, Scratch<Real>& s,
                 int) const
    {
        const int O = out.channels, D = out.height, E = out.width, H = in.height, Wd = in.width, K = kernel;
        const int N = O * D * E;
        const int T = ctx.T;
        const int words = SpikeTrain::mask_words(N);
        LifParams<Real> p = ctx.lif(vth);
        p.fire_margin = Real(0);
        pop.fired_masks.assign(static_cast<size_t>(T) * words, 0);
        const Real* wt = weights.wt.data();
        auto add_current = [&](int t, Real* current) {
            for (int k = input.step_start[t]; k < input.step_start[t + 1]; ++k) {
                const int q = input.step_ids[k];
                const int c = q / (H * Wd), h = q / Wd % H, w = q % Wd;
                for (int i = 0; i < K; ++i) {
                    const int x = h - i + padding;
                    if (x < 0 || x >= D) continue;
                    for (int j = 0; j < K; ++j) {
                        const int y = w - j + padding;
                        if (y < 0 || y >= E) continue;
                        const Real* column = wt + static_cast<size_t>((c * K + i) * K + j) * O;
                        Real* dst = current + static_cast<size_t>(x * E + y) * O;
#pragma omp simd
                        for (int o = 0; o < O; ++o) dst[o] += column[o];
                    }
                }
            }
        };
        auto fire = [&](int t, int k) {
            const int o = k % O, xy = k / O;
            const int n = o * D * E + xy;  // flat (o, x, y)
            pop.fired_masks[static_cast<size_t>(t) * words + n / 64] |= uint64_t(1) << (n % 64);
        };
        if (ctx.power_of_two_taus()) scan_by_step<true>(N, T, p, s, add_current, fire);
        else scan_by_step<false>(N, T, p, s, add_current, fire);
        pop.out.from_masks(pop.fired_masks.data(), T, N);
    }

    // SPEC_CNN 3.3 given post.delta: adds g to `grad`, writes the pre-deltas of the layer below
    // (null when the input is the data layer: conv1 hands nothing down).
    void backward(const SampleContext<Real>& ctx, Population<Real>& post_pop, const SpikeTrain& pre,
                  std::vector<Real>* pre_delta, GradientSum<Real>& grad, Scratch<Real>& s, int) const
    {
        const SpikeTrain& post = post_pop.out;
        const int C = in.channels, H = in.height, Wd = in.width;
        const int K = kernel, N = static_cast<int>(out.size()), T = ctx.T;
        post_pop.resize_factors(N);
        if (pre_delta) pre_delta->assign(static_cast<size_t>(C) * H * Wd, Real(0));
        std::fill(grad.touched.begin(), grad.touched.end(), uint8_t(1));
        s.e.resize(static_cast<size_t>(C) * K * K);
        s.traces.resize(static_cast<size_t>(T) * kTraceBlock);
        s.trace_scratch.resize(T);

        // Neurons in blocks of kTraceBlock, so that their traces are built together.
        int ids[kTraceBlock];
        int n_ids = 0;
        auto flush = [&] {
            int fired[kTraceBlock];
            int n_fired = 0;
            for (int b = 0; b < n_ids; ++b)
                if (post.count(ids[b]) > 0) fired[n_fired++] = ids[b];
            spsp_traces(ctx, post, fired, n_fired, s.trace_scratch, s.traces.data(), kTraceBlock);
            for (int b = 0, f = 0; b < n_ids; ++b) {
                const bool has_trace = f < n_fired && fired[f] == ids[b];
                neuron_backward(post_pop, pre, pre_delta, grad, s, ids[b], has_trace ? s.traces.data() + f : nullptr);
                f += has_trace;
            }
            n_ids = 0;
        };
        for (int o = 0; o < N; ++o) {
            post_pop.n_post[o] = post.count(o);
            post_pop.dv[o] = voltage_delta(post_pop.delta[o], Real(vth));
            // dv = 0: the neuron's gradient and pre-delta terms are all zero, exactly
            if (post_pop.dv[o] == Real(0)) continue;
            ids[n_ids++] = o;
            if (n_ids == kTraceBlock) flush();
        }
        if (n_ids > 0) flush();
    }

private:
    // One post neuron o = (k, x, y): its connections' S-PSPs (trace: its K[t] with stride
    // kTraceBlock, null when it is silent), side term, gradient terms and pre-delta terms.
    void neuron_backward(Population<Real>& post_pop, const SpikeTrain& pre, std::vector<Real>* pre_delta,
                         GradientSum<Real>& grad, Scratch<Real>& s, int o, const Real* trace) const
    {
        const int O = out.channels, D = out.height, E = out.width, C = in.channels, H = in.height, Wd = in.width;
        const int K = kernel;
        const int k = o / (D * E), x = o / E % D, y = o % E;
        const int n_o = post_pop.n_post[o];
        const Real* wt = weights.wt.data();
        Real weighted = Real(0), weight_sum = Real(0);
        for (int c = 0; c < C; ++c)
            for (int i = 0; i < K; ++i) {
                const int h = x + i - padding;
                for (int j = 0; j < K; ++j) {
                    const int w = y + j - padding;
                    const int r = (c * K + i) * K + j;
                    if (h < 0 || h >= H || w < 0 || w >= Wd) continue;  // zero padding: no connection
                    const int q = (c * H + h) * Wd + w;
                    Real e_fast = Real(0);
                    if (trace)
                        for (int m = 0; m < pre.count(q); ++m) e_fast += trace[static_cast<size_t>(pre.times(q)[m]) * kTraceBlock];
                    const Real e = spsp_value(e_fast, n_o, pre.count(q));
                    s.e[r] = e;
                    const Real W = wt[static_cast<size_t>(r) * O + k];
                    weighted += W * e;
                    weight_sum += W;
                }
            }
        const Real dv = post_pop.dv[o];
        post_pop.side[o] = side_term(weighted, n_o, weight_sum, Real(vth));
        post_pop.scale[o] = gradient_scale(dv, post_pop.side[o], Real(1));  // no lateral factor
        const Real A = post_pop.scale[o];
        for (int c = 0; c < C; ++c)
            for (int i = 0; i < K; ++i) {
                const int h = x + i - padding;
                for (int j = 0; j < K; ++j) {
                    const int w = y + j - padding;
                    if (h < 0 || h >= H || w < 0 || w >= Wd) continue;
                    const int r = (c * K + i) * K + j;
                    const int q = (c * H + h) * Wd + w;
                    const int n_q = pre.count(q);
                    if (n_q > 0) grad.row(r, O)[k] += weight_gradient(A, s.e[r]);
                    if (pre_delta)
                        (*pre_delta)[q] += pre_delta_term(dv, s.e[r], n_o, n_q, true, wt[static_cast<size_t>(r) * O + k]);
                }
            }
    }
};

}  // namespace hm2bp
