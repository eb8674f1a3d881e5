// SPEC 2: Poisson encoding of static images with a counter-based RNG, so that a sample's
// spikes depend only on (seed, sample index, epoch) and CPU, GPU and NumPy agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.hpp"

namespace hm2bp {

// splitmix64 finaliser.
HM2BP_HD uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

HM2BP_HD uint64_t poisson_sample_key(uint64_t seed, uint64_t sample, uint64_t epoch)
{
    return mix64(mix64(mix64(seed) ^ sample) ^ epoch);
}

HM2BP_HD uint64_t poisson_neuron_key(uint64_t sample_key, uint64_t neuron)
{
    return mix64(sample_key ^ neuron);
}

// A neuron with spike probability `rate` per step fires at t iff u53 * 2^-53 < rate  <=>
// u53 < ceil(rate * 2^53). Rates outside [0, 1] (a warp's extrapolation can leave them, SPEC_CNN
// 8.9) clamp to never / always; NaN never fires.
HM2BP_HD uint64_t poisson_threshold_rate(double rate)
{
    if (!(rate > 0.0)) return 0;
    if (rate >= 1.0) return 9007199254740992ull;
    return static_cast<uint64_t>(std::ceil(rate * 9007199254740992.0));
}

// Pixel p fires with rate p / (5.5 * 255) per step.
inline uint64_t poisson_threshold(int pixel) { return poisson_threshold_rate(pixel / (5.5 * 255.0)); }

// poisson_threshold of every pixel value, the table the engines look up.
inline void poisson_thresholds(uint64_t table[256])
{
    for (int p = 0; p < 256; ++p) table[p] = poisson_threshold(p);
}

HM2BP_HD bool poisson_spike(uint64_t neuron_key, int t, uint64_t threshold)
{
    // Non-short-circuit '&' keeps the loop over t branch-free (vectorizable).
    return (t >= 1) & ((mix64(neuron_key ^ static_cast<uint64_t>(t)) >> 11) < threshold);
}

// The steps at which a neuron with key `key` (poisson_neuron_key) and threshold fires, ascending,
// written from steps on (room for T); returns their count. The draws go to flag (T bytes of
// scratch) first, a contiguous row where the hash vectorizes, then a branch-free compaction
// lists the spikes. Host code.
inline int poisson_spike_steps(uint64_t key, uint64_t threshold, int T, uint8_t* flag, int* steps)
{
    for (int t = 0; t < T; ++t) flag[t] = poisson_spike(key, t, threshold);
    int end = 0;
    for (int t = 0; t < T; ++t) {
        steps[end] = t;
        end += flag[t];
    }
    return end;
}

// One sample's dense 0/1 spike train (T, N), out[t * N + n], from each neuron's threshold
// (threshold_of(n); 0 never fires). Host code: the Python-facing encoders. Only the spikes are
// written down a neuron's strided column (a scalar draw stored at every step, each in another
// cache line, took ~1.2x the time).
template <class ThresholdOf>
inline void encode_sample(uint64_t sample_key, int T, int N, ThresholdOf threshold_of, uint8_t* out)
{
    for (size_t k = 0; k < static_cast<size_t>(T) * N; ++k) out[k] = 0;
    std::vector<uint8_t> flags(static_cast<size_t>(T));
    std::vector<int> steps(static_cast<size_t>(T));
    for (int n = 0; n < N; ++n) {
        const uint64_t threshold = threshold_of(n);
        if (threshold == 0) continue;
        const uint64_t key = poisson_neuron_key(sample_key, static_cast<uint64_t>(n));
        const int count = poisson_spike_steps(key, threshold, T, flags.data(), steps.data());
        for (int k = 0; k < count; ++k) out[static_cast<size_t>(steps[k]) * N + n] = 1;
    }
}

// One sample's spikes (T, N) from per-step rates (hm2bp.data.augment.encode_rates): the keys of
// encode_poisson, so a rate of exactly p / (5.5 * 255) gives pixel p's spikes bit for bit.
inline void encode_rates_sample(const double* rate, uint64_t sample_key, int T, int N, uint8_t* out)
{
    encode_sample(sample_key, T, N, [&](int n) { return poisson_threshold_rate(rate[n]); }, out);
}

}  // namespace hm2bp
