// The LIF scan of the layers whose current is scattered from the input spikes (conv, pool):
// SPEC 1 for a range of neurons over the window, a vector of neurons at a time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../hm2bp/neuron.hpp"
#include "population.hpp"
#include "simd.hpp"

namespace hm2bp {

// Steps whose currents scan_by_step gathers before it advances the neurons through them.
constexpr int kScanSteps = 8;

// SPEC 1 for neurons [lo, hi) (multiples of the vector width): add_current(t, current) adds the
// current of the spikes of step t (it reaches the neurons at t + 1, the one-step delay) to a
// zeroed array, current[k - lo] for neuron k; fire(t, k0, bits) is called for every vector of
// neurons k0, k0 + 1, ... of which some fire at step t, bit j of `bits` set where k0 + j fires
// (in no particular order of t). The currents do not depend on this layer's
// spikes, so those of kScanSteps steps are gathered first, then each vector of neurons runs
// through those steps with its state in registers (no load and store of v, ep and ref per step;
// each neuron still takes every step, in order, with the same operations: the same results, bit
// for bit). The scan re-zeroes the currents it reads. A vector of neurons that has had no input
// yet is skipped (its state stays exactly 0 and, with a threshold above 0, it cannot fire).
template <bool PowerOfTwoTaus, class Real, class AddCurrent, class Fire>
void scan_by_step(int lo, int hi, int T, const LifParams<Real>& params, ScanState<Real>& s, AddCurrent add_current,
                  Fire fire)
{
    // a local copy: the state's stores (memcpy, memset) could alias `params`, which the compiler
    // would then read again, and 1 / tau compute again, at every vector of every step
    const LifParams<Real> p = params;
    using Vec = typename Simd<Real>::Vec;
    using Int = typename Simd<Real>::Int;
    constexpr int lanes = Simd<Real>::lanes;
    const int n = hi - lo;
    const int n_vec = n / lanes;
    s.v.assign(n, Real(0));
    s.ep.assign(n, Real(0));
    s.ref.assign(n_vec, Int{});
    s.current.assign(static_cast<size_t>(kScanSteps) * n, Real(0));  // (step in the block, neuron)
    s.live.assign(n_vec, 0);
    const bool zero_is_silent = !(Real(0) > p.vth - p.fire_margin);
    Real* v = s.v.data();
    Real* ep = s.ep.data();
    Int* ref = s.ref.data();
    Real* current = s.current.data();
    uint8_t* live = s.live.data();
    for (int t0 = 1; t0 < T; t0 += kScanSteps) {
        const int steps = std::min(kScanSteps, T - t0);
        for (int j = 0; j < steps; ++j) add_current(t0 - 1 + j, current + static_cast<size_t>(j) * n);
        for (int q = 0; q < n_vec; ++q) {
            Real* cur = current + static_cast<size_t>(q) * lanes;
            int j = 0;
            if (!live[q]) {  // the steps before its first input are no-ops on a zero state
                if (zero_is_silent)
                    while (j < steps && !lane_bits(load_vec(cur + static_cast<size_t>(j) * n) != Real(0))) ++j;
                if (j == steps) continue;
                live[q] = 1;
            }
            const size_t k0 = static_cast<size_t>(q) * lanes;
            Vec vv = load_vec(v + k0), ee = load_vec(ep + k0);
            Int rr = ref[q];
            for (; j < steps; ++j) {
                Real* at = cur + static_cast<size_t>(j) * n;
                const Vec r = load_vec(at);
                std::memset(at, 0, sizeof(Vec));
                lif_decay<PowerOfTwoTaus>(vv, ee, p);
                uint64_t bits = lane_bits(lif_integrate<PowerOfTwoTaus>(vv, ee, rr, r, p));
                if (bits) fire(t0 + j, lo + static_cast<int>(k0), bits);
            }
            ref[q] = rr;
            std::memcpy(v + k0, &vv, sizeof vv);
            std::memcpy(ep + k0, &ee, sizeof ee);
        }
    }
}

// Sets bit n of step t's spike mask; `shared`: other threads may set bits of the same word (an
// atomic or, which costs several times a plain one).
inline void set_spike(uint64_t* masks, int words, int t, int n, bool shared)
{
    uint64_t& word = masks[static_cast<size_t>(t) * words + n / 64];
    const uint64_t bit = uint64_t(1) << (n % 64);
    if (shared) __atomic_fetch_or(&word, bit, __ATOMIC_RELAXED);
    else word |= bit;
}

}  // namespace hm2bp
