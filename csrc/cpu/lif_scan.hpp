// The LIF scan of the layers whose current is scattered from the input spikes (conv, pool):
// SPEC 1 for a range of neurons over the window, a vector of neurons at a time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../hm2bp/neuron.hpp"
#include "population.hpp"
#include "simd.hpp"

namespace hm2bp {

// Steps whose currents scan_by_step gathers before it advances the neurons through them.
constexpr int kScanSteps = 8;
// Vectors of neurons scan_by_step advances side by side: a neuron's steps are a chain of
// dependent operations (~20 cycles a step), which independent vectors overlap. (On an AVX2
// machine 2 run as fast as 4: 2026-12-07, mnist-cnn batch 1.)
constexpr int kScanGroup = 4;

// SPEC 1 for neurons [lo, hi) (multiples of the vector width): add_current(t, current) adds the
// current of the spikes of step t (it reaches the neurons at t + 1, the one-step delay) to a
// zeroed array, current[k - lo] for neuron k; fire(t, k0, bits) is called for every vector of
// neurons k0, k0 + 1, ... of which some fire at step t, bit j of `bits` set where k0 + j fires
// (in no particular order of t). The currents do not depend on this layer's spikes, so those of
// kScanSteps steps are gathered first, then each group of kScanGroup vectors of neurons runs
// through those steps with its state in registers (no load and store of v, ep and ref per step;
// each neuron still takes every step, in order, with the same operations: the same results, bit
// for bit). The scan re-zeroes the currents it reads. A group none of whose neurons has had
// input yet is skipped: its state stays exactly 0 and, with a threshold above 0, it cannot
// fire; for the same reason the steps of a silent vector in a group that runs change nothing.
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
    const int n_groups = (n_vec + kScanGroup - 1) / kScanGroup;
    s.v.assign(n, Real(0));
    s.ep.assign(n, Real(0));
    s.ref.assign(n_vec, Int{});
    // (step in the block, neuron): all +0 between scans, which re-zero what they read and read
    // every block's currents (a skipped group's are 0), so growing it is all it needs
    if (s.current.size() < static_cast<size_t>(kScanSteps) * n) s.current.resize(static_cast<size_t>(kScanSteps) * n);
    s.live.assign(n_groups, 0);
    const bool zero_is_silent = !(Real(0) > p.vth - p.fire_margin);
    Real* v = s.v.data();
    Real* ep = s.ep.data();
    Int* ref = s.ref.data();
    Real* current = s.current.data();
    uint8_t* live = s.live.data();
    // vectors [q0, q0 + G) from step j of the block on, their state in the machine's own vectors
    // (simd.hpp: without AVX-512, 64-byte ones would live in memory): NG of them
    auto advance = [&](auto group, int t0, int steps, int q0, int j) {
        constexpr int G = decltype(group)::value;
        using N = Native<Real>;
        using NVec = typename N::Vec;
        using NInt = typename N::Int;
        constexpr int per = lanes / N::lanes, NG = G * per;
        const size_t k0 = static_cast<size_t>(q0) * lanes;
        char* ref_bytes = reinterpret_cast<char*>(ref + q0);
        NVec vv[NG], ee[NG];
        NInt rr[NG];
#pragma GCC unroll 8
        for (int g = 0; g < NG; ++g) {
            vv[g] = load_as<NVec>(v + k0 + g * N::lanes);
            ee[g] = load_as<NVec>(ep + k0 + g * N::lanes);
            std::memcpy(&rr[g], ref_bytes + g * sizeof(NInt), sizeof(NInt));
        }
        for (; j < steps; ++j) {
            Real* at = current + static_cast<size_t>(j) * n + k0;
#pragma GCC unroll 8
            for (int g = 0; g < G; ++g) {
                uint64_t bits = 0;
#pragma GCC unroll 4
                for (int h = 0; h < per; ++h) {
                    const int x = g * per + h;
                    const NVec r = load_as<NVec>(at + x * N::lanes);
                    lif_decay<PowerOfTwoTaus>(vv[x], ee[x], p);
                    bits |= lane_bits(lif_integrate<PowerOfTwoTaus>(vv[x], ee[x], rr[x], r, p)) << (h * N::lanes);
                }
                std::memset(at + g * lanes, 0, sizeof(Vec));
                if (bits) fire(t0 + j, lo + static_cast<int>(k0) + g * lanes, bits);
            }
        }
#pragma GCC unroll 8
        for (int g = 0; g < NG; ++g) {
            std::memcpy(v + k0 + g * N::lanes, &vv[g], sizeof(NVec));
            std::memcpy(ep + k0 + g * N::lanes, &ee[g], sizeof(NVec));
            std::memcpy(ref_bytes + g * sizeof(NInt), &rr[g], sizeof(NInt));
        }
    };
    for (int t0 = 1; t0 < T; t0 += kScanSteps) {
        const int steps = std::min(kScanSteps, T - t0);
        for (int j = 0; j < steps; ++j) add_current(t0 - 1 + j, current + static_cast<size_t>(j) * n);
        for (int q0 = 0; q0 < n_vec; q0 += kScanGroup) {
            const int G = std::min(kScanGroup, n_vec - q0);
            int j = 0;
            if (!live[q0 / kScanGroup]) {  // the steps before the group's first input are no-ops
                if (zero_is_silent)
                    for (; j < steps; ++j) {
                        const Real* at = current + static_cast<size_t>(j) * n + static_cast<size_t>(q0) * lanes;
                        Vec any = load_vec(at);
                        for (int g = 1; g < G; ++g) any = any != Real(0) ? any : load_vec(at + g * lanes);
                        if (lane_bits(any != Real(0))) break;
                    }
                if (j == steps) continue;
                live[q0 / kScanGroup] = 1;
            }
            if (G == kScanGroup) advance(std::integral_constant<int, kScanGroup>{}, t0, steps, q0, j);
            else
                for (int q = q0; q < q0 + G; ++q) advance(std::integral_constant<int, 1>{}, t0, steps, q, j);
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
