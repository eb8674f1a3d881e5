// One sample's spikes of one layer, indexed both by step (for the forward current and the
// gradient) and by neuron (for the S-PSP traces and effect ratios).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512BW__)
#include <immintrin.h>
#endif

#include "../hm2bp/encoding.hpp"

namespace hm2bp {

// Appends the ids of the nonzero bytes of flags[0:n] to ids. Spikes are rare: each block of
// bytes is reduced to a bit mask of its nonzero bytes (64 at a time with AVX-512, 8 with plain
// 64-bit words) and only set bits are visited.
inline void append_nonzero(const uint8_t* flags, int n, std::vector<int>& ids)
{
    int k = 0;
#if defined(__AVX512BW__)
    for (; k + 64 <= n; k += 64) {
        uint64_t mask = _mm512_test_epi8_mask(_mm512_loadu_si512(flags + k), _mm512_set1_epi8(-1));
        for (; mask; mask &= mask - 1) ids.push_back(k + __builtin_ctzll(mask));
    }
#endif
    constexpr uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
    for (; k + 8 <= n; k += 8) {
        uint64_t word;
        std::memcpy(&word, flags + k, 8);
        if (word == 0) continue;
        uint64_t high = (((word & low7) + low7) | word) & ~low7;  // 0x80 in every nonzero byte
        for (; high; high &= high - 1) ids.push_back(k + (__builtin_ctzll(high) >> 3));
    }
    for (; k < n; ++k)
        if (flags[k]) ids.push_back(k);
}

struct SpikeTrain {
    int T = 0;
    int N = 0;
    std::vector<int> step_start;     // T + 1 offsets into step_ids
    std::vector<int> step_ids;       // neurons firing at each step, ascending
    std::vector<int> neuron_start;   // N + 1 offsets into neuron_times
    std::vector<int> neuron_times;   // spike times of each neuron, ascending
    std::vector<int> active;         // neurons with at least one spike, ascending

    int count(int n) const { return neuron_start[n + 1] - neuron_start[n]; }
    int total() const { return static_cast<int>(step_ids.size()); }
    const int* times(int n) const { return neuron_times.data() + neuron_start[n]; }

    // From a 0/1 (T, N) array.
    void from_dense(const uint8_t* spikes, int T_, int N_)
    {
        begin(T_, N_);
        for (int t = 0; t < T; ++t) {
            append_nonzero(spikes + static_cast<size_t>(t) * N, N, step_ids);
            step_start[t + 1] = static_cast<int>(step_ids.size());
        }
        index_by_neuron();
    }

    // Poisson encoding of one image (SPEC 2); thresholds[p] from poisson_threshold(p).
    void from_image(const uint8_t* pixels, int T_, int N_, uint64_t sample_key,
                    const uint64_t* thresholds)
    {
        begin(T_, N_);
        neuron_times.clear();
        flags.resize(T);
        for (int n = 0; n < N; ++n) {
            const int p = pixels[n];
            if (p != 0) {
                const uint64_t key = poisson_neuron_key(sample_key, static_cast<uint64_t>(n));
                const uint64_t threshold = thresholds[p];
#pragma omp simd
                for (int t = 0; t < T; ++t) flags[t] = poisson_spike(key, t, threshold);
                size_t end = neuron_times.size();
                neuron_times.resize(end + T);
                for (int t = 0; t < T; ++t) {  // branch-free compaction
                    neuron_times[end] = t;
                    end += flags[t];
                }
                neuron_times.resize(end);
            }
            neuron_start[n + 1] = static_cast<int>(neuron_times.size());
        }
        index_by_step();
    }

    // From per-neuron ascending spike times already in neuron_start / neuron_times.
    void index_by_step()
    {
        std::fill(step_start.begin(), step_start.end(), 0);
        for (int t : neuron_times) ++step_start[t + 1];
        for (int t = 0; t < T; ++t) step_start[t + 1] += step_start[t];
        step_ids.resize(neuron_times.size());
        cursor.assign(step_start.begin(), step_start.end() - 1);
        for (int n = 0; n < N; ++n)
            for (int k = neuron_start[n]; k < neuron_start[n + 1]; ++k)
                step_ids[cursor[neuron_times[k]]++] = n;
        collect_active();
    }

    // From per-step ascending ids already in step_start / step_ids.
    void index_by_neuron()
    {
        std::fill(neuron_start.begin(), neuron_start.end(), 0);
        for (int n : step_ids) ++neuron_start[n + 1];
        for (int n = 0; n < N; ++n) neuron_start[n + 1] += neuron_start[n];
        neuron_times.resize(step_ids.size());
        cursor.assign(neuron_start.begin(), neuron_start.end() - 1);
        for (int t = 0; t < T; ++t)
            for (int k = step_start[t]; k < step_start[t + 1]; ++k)
                neuron_times[cursor[step_ids[k]]++] = t;
        collect_active();
    }

    void begin(int T_, int N_)
    {
        T = T_;
        N = N_;
        step_start.assign(T + 1, 0);
        neuron_start.assign(N + 1, 0);
        step_ids.clear();
    }

private:
    std::vector<int> cursor;
    std::vector<uint8_t> flags;

    void collect_active()
    {
        active.clear();
        for (int n = 0; n < N; ++n)
            if (neuron_start[n + 1] > neuron_start[n]) active.push_back(n);
    }
};

}  // namespace hm2bp
