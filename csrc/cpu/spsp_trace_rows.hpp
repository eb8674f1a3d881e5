// The CPU's S-PSP traces (SPEC 4 and 6): K of up to Lanes neurons at once in O(T) per neuron.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../hm2bp/spsp.hpp"

namespace hm2bp {

// Scratch of spsp_trace_rows for `Lanes` neurons and T steps; keep one per thread.
template <class Real, int Lanes>
struct SpspTraceScratch {
    std::vector<int> region1_hi, region1_lo;  // (T, Lanes): a region-1 interval [lo, hi] ending at t = hi
    std::vector<Real> jump;                   // (T, Lanes): region-2 terms entering minus leaving at t

    void resize(int T)
    {
        region1_hi.assign(static_cast<size_t>(T) * Lanes, -1);
        region1_lo.assign(static_cast<size_t>(T) * Lanes, 0);
        jump.assign(static_cast<size_t>(T) * Lanes, Real(0));
    }

    // resize only when T changed: every spsp_trace_rows call leaves the events cleared.
    void ensure(int T)
    {
        if (jump.size() != static_cast<size_t>(T) * Lanes) resize(T);
    }
};

// The backward scan of spsp_trace_rows over t = T-1 .. 1 for all lanes: per step, K[j] = the
// region-1 term (if t is in lane j's current region-1 interval) + the carried region-2 sum.
// Consumes the events and leaves them cleared (region1_hi = -1, jump = 0) for the next call.
template <int Lanes, class Real>
struct TraceScan {
    static void run(int T, int* region1_hi, const int* region1_lo, Real* jump, Real step_decay, Real decay0,
                    const Real* kernel, int n, Real* rows, size_t stride)
    {
        Real carried[Lanes] = {}, K[Lanes];
        int hi[Lanes], lo[Lanes];
        std::fill(hi, hi + Lanes, -1);
        std::fill(lo, lo + Lanes, 0);
        for (int t = T - 1; t >= 1; --t) {
            int* event_hi = region1_hi + t * Lanes;
            Real* event_jump = jump + t * Lanes;
            for (int j = 0; j < Lanes; ++j) {
                if (event_hi[j] >= 0) {
                    hi[j] = event_hi[j];
                    lo[j] = region1_lo[t * Lanes + j];
                }
                carried[j] = carried[j] * step_decay + event_jump[j];
                const bool in_region1 = t >= lo[j] && t <= hi[j];
                K[j] = (in_region1 ? decay0 * kernel[hi[j] - t] : Real(0)) + carried[j];
                event_hi[j] = -1;
                event_jump[j] = Real(0);
            }
            std::copy(K, K + n, rows + static_cast<size_t>(t) * stride);
        }
    }
};

#if defined(__AVX512F__)
// The same scan with the 16 float lanes in registers (GCC does not vectorize the generic one).
template <>
struct TraceScan<16, float> {
    static void run(int T, int* region1_hi, const int* region1_lo, float* jump, float step_decay, float decay0,
                    const float* kernel, int n, float* rows, size_t stride)
    {
        const __m512 a = _mm512_set1_ps(step_decay), d0 = _mm512_set1_ps(decay0);
        const __m512i none = _mm512_set1_epi32(-1);
        const __mmask16 lanes = static_cast<__mmask16>((1u << n) - 1);
        __m512 carried = _mm512_setzero_ps();
        __m512i hi = none, lo = _mm512_setzero_si512();
        for (int t = T - 1; t >= 1; --t) {
            int* event_hi = region1_hi + t * 16;
            float* event_jump = jump + t * 16;
            const __m512i starts_hi = _mm512_loadu_si512(event_hi);
            const __mmask16 starts = _mm512_cmpge_epi32_mask(starts_hi, _mm512_setzero_si512());
            hi = _mm512_mask_blend_epi32(starts, hi, starts_hi);
            lo = _mm512_mask_blend_epi32(starts, lo, _mm512_loadu_si512(region1_lo + t * 16));
            carried = _mm512_add_ps(_mm512_mul_ps(carried, a), _mm512_loadu_ps(event_jump));
            const __m512i tv = _mm512_set1_epi32(t);
            const __mmask16 in_region1 = _mm512_cmple_epi32_mask(lo, tv) & _mm512_cmple_epi32_mask(tv, hi);
            const __m512 k = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in_region1, _mm512_sub_epi32(hi, tv), kernel, 4);
            const __m512 K = _mm512_add_ps(_mm512_maskz_mul_ps(in_region1, d0, k), carried);
            _mm512_mask_storeu_ps(rows + static_cast<size_t>(t) * stride, lanes, K);
            _mm512_storeu_si512(event_hi, none);
            _mm512_storeu_ps(event_jump, _mm512_setzero_ps());
        }
    }
};
#elif defined(__AVX2__)
// The same scan with the 16 float lanes in two AVX2 registers each (the generic one runs scalar).
template <>
struct TraceScan<16, float> {
    static void run(int T, int* region1_hi, const int* region1_lo, float* jump, float step_decay, float decay0,
                    const float* kernel, int n, float* rows, size_t stride)
    {
        const __m256 a = _mm256_set1_ps(step_decay), d0 = _mm256_set1_ps(decay0);
        const __m256i none = _mm256_set1_epi32(-1), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i stored[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane)};
        __m256 carried[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256i hi[2] = {none, none}, lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int t = T - 1; t >= 1; --t) {
            const __m256i tv = _mm256_set1_epi32(t);
            for (int h = 0; h < 2; ++h) {
                int* event_hi = region1_hi + t * 16 + h * 8;
                float* event_jump = jump + t * 16 + h * 8;
                const __m256i starts_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(event_hi));
                const __m256i starts = _mm256_cmpgt_epi32(starts_hi, none);  // >= 0
                hi[h] = _mm256_blendv_epi8(hi[h], starts_hi, starts);
                lo[h] = _mm256_blendv_epi8(
                    lo[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(region1_lo + t * 16 + h * 8)), starts);
                carried[h] = _mm256_add_ps(_mm256_mul_ps(carried[h], a), _mm256_loadu_ps(event_jump));
                const __m256 in_region1 = _mm256_castsi256_ps(
                    _mm256_xor_si256(_mm256_or_si256(_mm256_cmpgt_epi32(lo[h], tv), _mm256_cmpgt_epi32(tv, hi[h])), none));
                // masked-off lanes read nothing (hi - t may point anywhere there) and give 0
                const __m256 k = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), kernel, _mm256_sub_epi32(hi[h], tv),
                                                          in_region1, 4);
                const __m256 K = _mm256_add_ps(_mm256_and_ps(_mm256_mul_ps(d0, k), in_region1), carried[h]);
                _mm256_maskstore_ps(rows + static_cast<size_t>(t) * stride + h * 8, stored[h], K);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(event_hi), none);
                _mm256_storeu_ps(event_jump, _mm256_setzero_ps());
            }
        }
    }
};
#endif

// The traces K[j, t] of up to Lanes post trains at once (post[j]: n_post[j] ascending spike
// times, j < n), written as rows[t * stride + j] for t in [0, T): the layout in which the
// spike-event sums of SPEC 6 read them.
//
// With last_k = p_{k-1} + t_ref (1 for the first spike), s_k = p_k - last_k, hi_k = p_k - t_ref
// and lo_k = max(1, p_k - window), post spike k adds spsp_pair to K[t] for t in [lo_k, hi_k]:
//   region 1, t >= last_k - t_ref:  decay[0] * kernel[hi_k - t]
//   region 2, t <  last_k - t_ref:  kernel[s_k] * decay[p_{k-1} - t]
// Region-1 intervals of successive spikes are disjoint, so each t has at most one region-1
// term, read from the tables. Region-2 terms all shrink by exp(-1/tau_s) per step back in time,
// so their sum is carried backwards with one multiply per step: each term is added (from the
// tables) where it enters and subtracted where it leaves the window. O(T) per neuron instead of
// O(spikes x window), and the lanes run in step as one vector; it differs from the term-by-term
// sum only by rounding of the carried sum (a few ulps).
template <int Lanes, class Real>
void spsp_trace_rows(const int* const* post, const int* n_post, int n, int T, int window, int t_ref,
                     double tau_s, const Real* decay, const Real* kernel, SpspTraceScratch<Real, Lanes>& scratch,
                     Real* rows, size_t stride)
{
    int* region1_hi = scratch.region1_hi.data();
    int* region1_lo = scratch.region1_lo.data();
    Real* jump = scratch.jump.data();
    for (int j = 0; j < n; ++j) {
        int last = 1;
        for (int k = 0; k < n_post[j]; ++k) {
            const int tp = post[j][k];
            const int s = tp - last;
            const int hi = tp - t_ref;
            const int lo = max_of(1, tp - window);
            const int region2_end = last - t_ref;  // p_{k-1}: region 2 is t < region2_end
            last = tp + t_ref;
            if (lo > hi) continue;
            const int region1_lo_k = max_of(lo, region2_end);
            if (region1_lo_k <= hi) {
                region1_hi[hi * Lanes + j] = hi;
                region1_lo[hi * Lanes + j] = region1_lo_k;
            }
            const int top = min_of(hi, region2_end - 1);
            if (k == 0 || top < lo) continue;
            jump[top * Lanes + j] += kernel[s] * decay[region2_end - top];
            if (lo - 1 >= 1) jump[(lo - 1) * Lanes + j] -= kernel[s] * decay[region2_end - (lo - 1)];
        }
    }

    TraceScan<Lanes, Real>::run(T, region1_hi, region1_lo, jump, Real(std::exp(-1.0 / tau_s)), decay[0], kernel, n,
                                rows, stride);
    for (int j = 0; j < n; ++j) rows[j] = Real(0);  // t = 0: no pre spike precedes a post spike by t_ref
}

}  // namespace hm2bp
