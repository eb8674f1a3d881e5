// The spiking convolution on the CPU (SPEC_CNN 1, 3.3 in the fast form of 3.4): out_channels
// kernels of K x K x C shared over all positions, stride 1, zero padding P; post neuron
// o = (k, x, y) sees input q = (c, x + i - P, y + j - P) through W[k, c, i, j].
// Forward: each input spike adds its kernel column W[., c, i, j] to the currents of the K x K
// positions it reaches (work: input spikes x K^2 x out_channels), then one LIF step for all
// neurons. Backward (conv2d_backward.hpp): per post neuron, the S-PSP of each connection as the
// sum of its trace K over the input's spike times; from them dv, the side term, the
// shared-weight gradient (a plain sum over positions) and the pre-deltas. Work: (active
// connections x input spikes) plus O(T) per block of neurons that fired.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../hm2bp/backward.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/network_spec.hpp"
#include "conv2d_backward.hpp"
#include "lif_scan.hpp"
#include "population.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "threading.hpp"
#include "weights.hpp"

namespace hm2bp {

// The conv backward's fixed split of the output rows (the most threads one sample keeps busy).
constexpr int kBackwardParts = 4;

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
        for (int q = 0; q < n_in; ++q) {
            int* at = input_chw.data() + 3 * static_cast<size_t>(q);
            geo.input_coords(q, at[0], at[1], at[2]);
        }
        // the vectors of the LIF state ((x, y, k) with the channels padded), which the forward
        // pass reads per firing vector instead of dividing its index
        constexpr int lanes = Simd<Real>::lanes;
        const int vecs = (geo.O + lanes - 1) / lanes;
        for (int xy = 0; xy < geo.D * geo.E; ++xy)
            for (int j = 0; j < vecs; ++j) {
                const int n = std::min(lanes, geo.O - j * lanes);
                state_vectors.push_back({j * lanes * geo.D * geo.E + xy, (uint32_t(1) << n) - 1});
            }
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
            std::copy_n(weights.wt.data() + static_cast<size_t>(r) * O, O,
                        s.columns.data() + static_cast<size_t>(r) * padded);
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
            const StateVector* vectors = state_vectors.data();
            const int DE = D * E;
            auto fire = [=](int t, int k0, uint64_t bits) {
                const StateVector at = vectors[k0 / lanes];  // k0 is a multiple of lanes: a shift
                for (bits &= at.lanes; bits; bits &= bits - 1)
                    set_spike(masks, words, t, at.first + __builtin_ctzll(bits) * DE, shared);
            };
            const int hi = x_hi * E * padded;
            if (ctx.power_of_two_taus()) scan_by_step<true>(lo, hi, T, p, s.scans[part], add_current, fire);
            else scan_by_step<false>(lo, hi, T, p, s.scans[part], add_current, fire);
        });
        pop.out.from_masks(pop.fired_masks.data(), T, N, n_threads, false);
    }

    // SPEC_CNN 3.3 given post.delta: adds g to `grad`, writes the pre-deltas of the layer below
    // (null when the input is the data layer: conv1 hands nothing down). One output position at
    // a time (Conv2dBackward): every input spike of its receptive field adds
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
            Conv2dBackward<Real>{geo, weights.wt.data(), vth}.part_backward(ctx, post_pop, pre, x_lo, x_hi, b, g, pd);
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
    // Every vector of the forward's LIF state: the neuron of its lane 0, and the bits of its
    // lanes that hold a channel (the others are padding).
    struct StateVector {
        int first;
        uint32_t lanes;
    };
    std::vector<StateVector> state_vectors;
};

}  // namespace hm2bp
