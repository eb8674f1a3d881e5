// The reservoir (liquid state machine) layer on the CPU (SPEC_SPEECH 3): LIF neurons (SPEC 1) fed
// by the input through fixed weights W_in and by their own spikes of the previous step through
// fixed recurrent weights W_rec. Event-driven: each step adds one W row per spike of step t - 1
// (input spikes, then reservoir spikes), and both trains are sparse.
// Fixed: the engine's backward pass stops above this layer (is_fixed), so it has no backward.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "../hm2bp/neuron.hpp"
#include "population.hpp"
#include "simd.hpp"
#include "spike_train.hpp"

namespace hm2bp {

template <class Real>
class ReservoirLayer {
public:
    int n_inputs;
    int n;  // neurons
    double vth;
    // transposed, one row per pre neuron: w_in[i * n + o] = W_in[o, i], w_rec[l * n + o] = W_rec[o, l]
    AlignedVector<Real> w_in, w_rec;

    ReservoirLayer(int inputs, int neurons, double vth_)
        : n_inputs(inputs), n(neurons), vth(vth_),
          w_in(static_cast<size_t>(inputs) * neurons, Real(0)), w_rec(static_cast<size_t>(neurons) * neurons, Real(0))
    {
    }

    int n_out() const { return n; }

    // From / to the canonical (n, n_in) and (n, n) row-major float64 layouts.
    void set(const double* input, const double* recurrent)
    {
        transpose_in(input, n, n_inputs, w_in);
        transpose_in(recurrent, n, n, w_rec);
    }

    void get(double* input, double* recurrent) const
    {
        transpose_out(w_in, n, n_inputs, input);
        transpose_out(w_rec, n, n, recurrent);
    }

    // SPEC_SPEECH 3.2 over the whole window: pop.out becomes the reservoir's spikes. Sequential in
    // t (every neuron reads all neurons' previous step), so one thread per sample.
    void forward(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop, Scratch<Real>& scratch,
                 int) const
    {
        if (ctx.power_of_two_taus()) scan<true>(ctx, input, pop, scratch);
        else scan<false>(ctx, input, pop, scratch);
    }

private:
    static void transpose_in(const double* values, int rows, int cols, AlignedVector<Real>& dst)
    {
        for (int o = 0; o < rows; ++o)
            for (int i = 0; i < cols; ++i)
                dst[static_cast<size_t>(i) * rows + o] = Real(values[static_cast<size_t>(o) * cols + i]);
    }

    static void transpose_out(const AlignedVector<Real>& src, int rows, int cols, double* values)
    {
        for (int o = 0; o < rows; ++o)
            for (int i = 0; i < cols; ++i)
                values[static_cast<size_t>(o) * cols + i] = double(src[static_cast<size_t>(i) * rows + o]);
    }

    static void add_row(const Real* row, int n, Real* current)
    {
#pragma omp simd
        for (int o = 0; o < n; ++o) current[o] += row[o];
    }

    // The neurons advance a vector at a time (the last one partly used: its other lanes get no
    // current and are masked out); the current of step t is summed into a padded buffer.
    template <bool PowerOfTwoTaus>
    void scan(const SampleContext<Real>& ctx, const SpikeTrain& input, Population<Real>& pop,
              Scratch<Real>& scratch) const
    {
        using Vec = typename Simd<Real>::Vec;
        using Int = typename Simd<Real>::Int;
        constexpr int lanes = Simd<Real>::lanes;
        const int T = ctx.T;
        const LifParams<Real> p = ctx.lif(vth, LayerKind::Reservoir);
        const int words = SpikeTrain::mask_words(n);
        const int n_vec = (n + lanes - 1) / lanes;
        const uint64_t last_lanes = n % lanes == 0 ? ~uint64_t(0) : (uint64_t(1) << (n % lanes)) - 1;
        pop.fired_masks.assign(static_cast<size_t>(T) * words, 0);
        // the LIF state and the current in the scan state's buffers (reused sample after sample)
        ScanState<Real>& s = scratch.scans.empty() ? scratch.scans.emplace_back() : scratch.scans[0];
        s.v.assign(static_cast<size_t>(n_vec) * lanes, Real(0));
        s.ep.assign(static_cast<size_t>(n_vec) * lanes, Real(0));
        s.current.assign(static_cast<size_t>(n_vec) * lanes, Real(0));
        s.ref.assign(n_vec, Int{});
        std::vector<int> fired, fired_before;
        Real* current = s.current.data();
        // t = 0: the state decays from 0 (stays 0) and never fires
        for (int t = 1; t < T; ++t) {
            std::fill(current, current + n, Real(0));
            for (int k = input.step_start[t - 1]; k < input.step_start[t]; ++k)
                add_row(w_in.data() + static_cast<size_t>(input.step_ids[k]) * n, n, current);
            for (int l : fired_before) add_row(w_rec.data() + static_cast<size_t>(l) * n, n, current);
            fired.clear();
            uint64_t* mask = pop.fired_masks.data() + static_cast<size_t>(t) * words;
            for (int q = 0; q < n_vec; ++q) {
                const size_t k0 = static_cast<size_t>(q) * lanes;
                Vec v = load_vec(s.v.data() + k0), ep = load_vec(s.ep.data() + k0);
                lif_decay<PowerOfTwoTaus>(v, ep, p);
                uint64_t bits = lane_bits(lif_integrate<PowerOfTwoTaus>(v, ep, s.ref[q], load_vec(current + k0), p));
                std::memcpy(s.v.data() + k0, &v, sizeof v);
                std::memcpy(s.ep.data() + k0, &ep, sizeof ep);
                if (q == n_vec - 1) bits &= last_lanes;
                for (; bits; bits &= bits - 1) {
                    const int o = static_cast<int>(k0) + __builtin_ctzll(bits);
                    fired.push_back(o);
                    mask[o / 64] |= uint64_t(1) << (o % 64);
                }
            }
            fired.swap(fired_before);
        }
        pop.out.from_masks(pop.fired_masks.data(), T, n);
    }
};

}  // namespace hm2bp
