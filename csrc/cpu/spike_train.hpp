// One sample's spikes of one layer, indexed both by step (for the forward current and the
// gradient) and by neuron (for the S-PSP traces and effect ratios). The builders from a dense
// array, from spike masks and from an image can split one sample among n_threads (a batch of
// one sample, whose other threads would wait): each thread lists a contiguous share of the
// steps (or neurons), and the shares are joined in order, so the lists are the same.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../hm2bp/bsa.hpp"
#include "../hm2bp/encoding.hpp"
#include "threading.hpp"

namespace hm2bp {

// Bit k of the result is set when flags[k] != 0, for k < n <= 64.
inline uint64_t nonzero_mask(const uint8_t* flags, int n)
{
#if defined(__AVX512BW__)
    const __mmask64 valid = n == 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
    const __m512i bytes = _mm512_maskz_loadu_epi8(valid, flags);
    return _mm512_test_epi8_mask(bytes, bytes);
#else
#if defined(__AVX2__)
    if (n == 64) {  // two 32-byte compares (a shorter run would need a masked byte load)
        const __m256i zero = _mm256_setzero_si256();
        const auto nonzero = [&](const uint8_t* p) {
            const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
            return uint64_t(~uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, zero))));
        };
        return nonzero(flags) | nonzero(flags + 32) << 32;
    }
#endif
    uint64_t mask = 0;
    for (int k = 0; k < n; ++k) mask |= uint64_t(flags[k] != 0) << k;
    return mask;
#endif
}

// Bit k of the result is set when words[k] != 0, for k < n <= 8.
inline unsigned nonzero_words(const uint64_t* words, int n)
{
#if defined(__AVX512F__)
    const __mmask8 valid = static_cast<__mmask8>((1u << n) - 1);
    const __m512i w = _mm512_maskz_loadu_epi64(valid, words);
    return _mm512_test_epi64_mask(w, w);
#else
    unsigned mask = 0;
    for (int k = 0; k < n; ++k) mask |= unsigned(words[k] != 0) << k;
    return mask;
#endif
}

// Writes base + k for each set bit k of mask, ascending, from out on; returns the end. Branch-free
// for the first four bits (almost every word of a sparse spike mask has fewer): a loop over the
// bits mispredicts its exit about once per word. Writes up to four ints past the end.
inline int* append_set_bits(uint64_t mask, int base, int* out)
{
    for (int k = 0; k < 4; ++k) {
        *out = base + __builtin_ctzll(mask | (uint64_t(1) << 63));  // any value when mask = 0
        out += mask != 0;
        mask &= mask - 1;
    }
    for (; mask; mask &= mask - 1) *out++ = base + __builtin_ctzll(mask);
    return out;
}

struct SpikeTrain {
    int T = 0;
    int N = 0;
    std::vector<int> step_start;     // T + 1 offsets into step_ids
    std::vector<int> step_ids;       // neurons firing at each step, ascending
    std::vector<int> neuron_start;   // N + 1 offsets into neuron_times
    std::vector<int> neuron_times;   // spike times of each neuron, ascending
    std::vector<int> active;         // neurons with at least one spike, ascending
    // Whether neuron_start, neuron_times and active are those of the steps' lists. A layer's
    // forward pass reads its input by step only: from_masks may leave them to index_by_neuron,
    // which the engine calls only before a backward pass (one sample's trains on several threads).
    bool by_neuron = true;

    int count(int n) const { return neuron_start[n + 1] - neuron_start[n]; }
    int total() const { return static_cast<int>(step_ids.size()); }
    const int* times(int n) const { return neuron_times.data() + neuron_start[n]; }

    // 64-bit words per step of a spike mask: bit n % 64 of word n / 64 says whether neuron n fired.
    static int mask_words(int N) { return (N + 63) / 64; }

    // From a 0/1 (T, N) array. Spikes are rare: each row is reduced to bit masks of its nonzero
    // bytes, and only set bits are visited.
    void from_dense(const uint8_t* spikes, int T_, int N_, int n_threads = 1)
    {
        const int words = mask_words(N_);
        from_step_masks(T_, N_, n_threads, kWordsPerPart, true, [&](int t, int* out) {
            for (int w = 0; w < words; ++w) {
                const uint8_t* flags = spikes + static_cast<size_t>(t) * N_ + w * 64;
                out = append_set_bits(nonzero_mask(flags, std::min(64, N_ - w * 64)), w * 64, out);
            }
            return out;
        });
    }

    // From spike masks, (T, mask_words(N)) words. Most words of a layer's masks are 0 (a conv
    // map's neurons fire rarely): they are found 8 at a time and skipped. index: also by
    // neuron (else by_neuron is false until index_by_neuron).
    void from_masks(const uint64_t* masks, int T_, int N_, int n_threads = 1, bool index = true)
    {
        const int words = mask_words(N_);
        from_step_masks(T_, N_, n_threads, kWordsPerPart * 16, index, [&](int t, int* out) {
            const uint64_t* row = masks + static_cast<size_t>(t) * words;
            for (int w0 = 0; w0 < words; w0 += 8)
                for (unsigned nz = nonzero_words(row + w0, std::min(8, words - w0)); nz; nz &= nz - 1) {
                    const int w = w0 + __builtin_ctz(nz);
                    out = append_set_bits(row[w], w * 64, out);
                }
            return out;
        });
    }

    // As a 0/1 (T, N) array.
    void to_dense(uint8_t* spikes) const
    {
        std::memset(spikes, 0, static_cast<size_t>(T) * N);
        for (int t = 0; t < T; ++t)
            for (int k = step_start[t]; k < step_start[t + 1]; ++k) spikes[static_cast<size_t>(t) * N + step_ids[k]] = 1;
    }

    // Poisson encoding of one image (SPEC 2); thresholds[p] from poisson_threshold(p).
    void from_image(const uint8_t* pixels, int T_, int N_, uint64_t sample_key,
                    const uint64_t* thresholds, int n_threads = 1)
    {
        begin(T_, N_);
        const int n_parts = std::min(n_threads, std::max(1, N / 64));
        if (static_cast<int>(parts.size()) < n_parts) parts.resize(n_parts);
        // neuron_start[n + 1] counts from its part's start until the parts are joined
        for_each_part(n_parts, n_parts, [&](int k) {
            int lo, hi;
            split_range(N, n_parts, k, 1, lo, hi);
            std::vector<int>& times = parts[k].ids;
            times.clear();
            parts[k].flags.resize(T);
            for (int n = lo; n < hi; ++n) {
                const int p = pixels[n];
                if (p != 0) {
                    const uint64_t key = poisson_neuron_key(sample_key, static_cast<uint64_t>(n));
                    const size_t end = times.size();
                    times.resize(end + T);
                    times.resize(end + poisson_spike_steps(key, thresholds[p], T, parts[k].flags.data(),
                                                           times.data() + end));
                }
                neuron_start[n + 1] = static_cast<int>(times.size());
            }
        });
        join_parts(n_parts, N, neuron_start, neuron_times);
        index_by_step();
    }

    // BSA encoding of one sample's analog channels (N, frames) (SPEC_SPEECH 2); kernel from
    // bsa_kernel. kBsaCpuLanes channels at a time, their times gathered per lane, then appended.
    void from_bsa(const double* analog, int frames, int T_, int N_, const double* kernel)
    {
        constexpr int W = kBsaCpuLanes;
        begin(T_, N_);
        neuron_times.clear();
        lane_times.resize(W);
        for (int n0 = 0; n0 < N; n0 += W) {
            const int lanes = std::min(W, N - n0);
            for (std::vector<int>& times : lane_times) times.clear();
            bsa_channels<W>(analog + static_cast<size_t>(n0) * frames, frames, lanes, frames, T, kernel,
                            [&](int c, int t) { lane_times[c].push_back(t); });
            for (int c = 0; c < lanes; ++c) {
                neuron_times.insert(neuron_times.end(), lane_times[c].begin(), lane_times[c].end());
                neuron_start[n0 + c + 1] = static_cast<int>(neuron_times.size());
            }
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
        by_neuron = true;
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
        by_neuron = true;
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
    // One thread's share of a sample being listed: its ids (or times), with room to spare.
    struct Part {
        std::vector<int> ids;
        std::vector<uint8_t> flags;  // from_image: one neuron's spikes at each step
    };

    std::vector<int> cursor;
    std::vector<Part> parts;
    std::vector<std::vector<int>> lane_times;  // from_bsa: spike times of each lane

    // Appends the parts' lists in part order to `list` and makes start (the offsets of the
    // n_items steps or neurons, parted by split_range, each counted from its part's start)
    // count from the first.
    void join_parts(int n_parts, int n_items, std::vector<int>& start, std::vector<int>& list)
    {
        if (n_parts == 1) {
            list.assign(parts[0].ids.begin(), parts[0].ids.begin() + static_cast<long>(start[n_items]));
            return;
        }
        list.clear();
        for (int k = 0; k < n_parts; ++k) {
            int lo, hi;
            split_range(n_items, n_parts, k, 1, lo, hi);
            const int offset = static_cast<int>(list.size());
            for (int j = lo + 1; j <= hi; ++j) start[j] += offset;
            list.insert(list.end(), parts[k].ids.begin(), parts[k].ids.begin() + (start[hi] - offset));
        }
    }

    // Mask words a thread's share of from_dense must have at least: fewer cost less than handing
    // them to another thread (from_masks, which skips the zero words 8 at a time, 16 times as many).
    static constexpr int kWordsPerPart = 512;

    // From list_step(t, out), which writes the neurons firing at step t, ascending, from out on
    // (append_set_bits of each spike mask word: at most mask_words(N) * 64 + 4 ints) and returns
    // the end of its list; a thread's share has at least words_per_part mask words. index: also
    // by neuron.
    template <class ListStep>
    void from_step_masks(int T_, int N_, int n_threads, int words_per_part, bool index, ListStep list_step)
    {
        begin(T_, N_);
        const int words = mask_words(N);
        const int n_parts = std::min(n_threads, std::max(1, T * words / words_per_part));
        if (static_cast<int>(parts.size()) < n_parts) parts.resize(n_parts);
        // step_start[t + 1] counts from its part's start until the parts are joined
        for_each_part(n_parts, n_parts, [&](int k) {
            int t_lo, t_hi;
            split_range(T, n_parts, k, 1, t_lo, t_hi);
            std::vector<int>& ids = parts[k].ids;
            size_t used = 0;
            for (int t = t_lo; t < t_hi; ++t) {
                const size_t room = used + static_cast<size_t>(words) * 64 + 4;
                if (ids.size() < room) ids.resize(std::max(room, 2 * ids.size()));
                used = static_cast<size_t>(list_step(t, ids.data() + used) - ids.data());
                step_start[t + 1] = static_cast<int>(used);
            }
        });
        join_parts(n_parts, T, step_start, step_ids);
        if (index) index_by_neuron();
        else by_neuron = false;
    }

    void collect_active()
    {
        active.clear();
        for (int n = 0; n < N; ++n)
            if (neuron_start[n + 1] > neuron_start[n]) active.push_back(n);
    }
};

}  // namespace hm2bp
