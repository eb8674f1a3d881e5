// 64-byte vectors of neuron state for the CPU's LIF scan, as GCC vector types: the formulas of
// ../hm2bp/neuron.hpp run on them lane by lane (in registers with AVX-512; on AVX2 machines the
// hot loops use the 32-byte Native vectors below), and the helpers the scans need per ISA.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace hm2bp {

// Allocates on cache-line boundaries, so that rows of a multiple of 64 bytes start on one too:
// a vector load that straddles two lines costs two. Arrays of 1 MB or more (weights, moments,
// gradient sums: streamed whole by every optimizer step) lie in memory that asks for transparent
// huge pages, so that a pass over them walks a few page tables instead of one per 4 KB (batch-1
// mnist-fc800 ~3% faster). Each starts at its own offset from the 2 MB boundary: arrays that all
// started on one put the step's parallel streams (weights, both moments) in the same cache sets,
// which cost 13%.
template <class T>
struct CacheAligned {
    using value_type = T;
    static constexpr std::align_val_t alignment{64};
    static constexpr size_t kHuge = size_t(2) << 20;
    static constexpr std::align_val_t huge_alignment{kHuge};
    CacheAligned() = default;
    template <class U>
    CacheAligned(const CacheAligned<U>&) {}
    static bool large(size_t n) { return n * sizeof(T) >= kHuge / 2; }
    T* allocate(size_t n)
    {
        if (!large(n)) return static_cast<T*>(::operator new(n * sizeof(T), alignment));
        static std::atomic<unsigned> count{0};
        const size_t offset = (count++ % 16) * 4160;  // 65 lines apart: other sets, still aligned
        const size_t bytes = (n * sizeof(T) + offset + kHuge - 1) / kHuge * kHuge;
        char* p = static_cast<char*>(::operator new(bytes, huge_alignment));
#if defined(MADV_HUGEPAGE)
        madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without huge pages the array works as before
#endif
        return reinterpret_cast<T*>(p + offset);
    }
    void deallocate(T* p, size_t n)
    {
        if (!large(n)) return ::operator delete(p, alignment);
        ::operator delete(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~(kHuge - 1)), huge_alignment);
    }
    friend bool operator==(const CacheAligned&, const CacheAligned&) { return true; }
    friend bool operator!=(const CacheAligned&, const CacheAligned&) { return false; }
};
template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

template <class Real>
struct Simd;

template <>
struct Simd<float> {
    typedef float Vec __attribute__((vector_size(64)));
    typedef int32_t Int __attribute__((vector_size(64)));  // one lane per float
    static constexpr int lanes = 16;
};

template <>
struct Simd<double> {
    typedef double Vec __attribute__((vector_size(64)));
    typedef int64_t Int __attribute__((vector_size(64)));
    static constexpr int lanes = 8;
};

// The machine's own vector: with AVX-512 a Vec is one register; without (AVX2), GCC splits each
// Vec into two 32-byte registers and keeps a loop-carried array of them in memory (a store and
// a reload of every vector per iteration, mnist-fc800's forward ~4x slower), so the hot loops
// hold their state and sums in Native<Real> vectors: per lane the same operations.
#if defined(__AVX512F__)
inline constexpr int kNativeBytes = 64;
#else
inline constexpr int kNativeBytes = 32;
#endif

template <class Real>
struct Native {
    typedef Real Vec __attribute__((vector_size(kNativeBytes)));
    typedef std::conditional_t<sizeof(Real) == 4, int32_t, int64_t> Int __attribute__((vector_size(kNativeBytes)));
    static constexpr int lanes = kNativeBytes / sizeof(Real);
};

// A vector of type V from the Reals at p (any alignment).
template <class V, class Real>
inline V load_as(const Real* p)
{
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// A vector from `lanes` Reals at p (any alignment).
template <class Real>
inline typename Simd<Real>::Vec load_vec(const Real* p)
{
    return load_as<typename Simd<Real>::Vec>(p);
}

// A vector of the n <= lanes Reals at p, zero in the other lanes (reads nothing past p + n).
template <class Real>
inline typename Simd<Real>::Vec load_vec_head(const Real* p, int n)
{
#if defined(__AVX512F__)
    const __mmask16 head = static_cast<__mmask16>((1u << n) - 1);
    if constexpr (sizeof(Real) == 4) return typename Simd<Real>::Vec(_mm512_maskz_loadu_ps(head, p));
    else return typename Simd<Real>::Vec(_mm512_maskz_loadu_pd(static_cast<__mmask8>(head), p));
#elif defined(__AVX2__)
    // two masked 32-byte loads (masked-off lanes read as 0 and do not fault)
    constexpr int half = 32 / sizeof(Real);
    typename Simd<Real>::Vec v;
    if constexpr (sizeof(Real) == 4) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 lo = _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
        const __m256 hi = _mm256_maskload_ps(p + half, _mm256_cmpgt_epi32(_mm256_set1_epi32(n - half), lane));
        std::memcpy(&v, &lo, 32);
        std::memcpy(reinterpret_cast<char*>(&v) + 32, &hi, 32);
    } else {
        const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
        const __m256d lo = _mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane));
        const __m256d hi = _mm256_maskload_pd(p + half, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - half), lane));
        std::memcpy(&v, &lo, 32);
        std::memcpy(reinterpret_cast<char*>(&v) + 32, &hi, 32);
    }
    return v;
#else
    typename Simd<Real>::Vec v = {};
    for (int j = 0; j < n; ++j) v[j] = p[j];
    return v;
#endif
}

// A vector whose lanes set in `mask` take the Reals p[0], p[1], ... in ascending lane order,
// the other lanes 0 (reads only as many Reals as the mask has bits).
template <class Real>
inline typename Simd<Real>::Vec expand_vec(const Real* p, uint32_t mask)
{
#if defined(__AVX512F__)
    using Vec = typename Simd<Real>::Vec;
    if constexpr (sizeof(Real) == 4) return Vec(_mm512_maskz_expandloadu_ps(static_cast<__mmask16>(mask), p));
    else return Vec(_mm512_maskz_expandloadu_pd(static_cast<__mmask8>(mask), p));
#else
    typename Simd<Real>::Vec v = {};
    for (int j = 0; j < Simd<Real>::lanes; ++j)
        if (mask >> j & 1) v[j] = *p++;
    return v;
#endif
}

// p, from a register: a load at a constant offset from it then stays one micro-op, where the
// base + scaled index address GCC would otherwise fold in costs two (x86 "unlamination").
template <class T>
inline const T* in_register(const T* p)
{
    asm("" : "+r"(p));
    return p;
}

// Bit j set where lane j of a comparison's result is set (all bits) rather than 0.
template <class Int>
inline uint64_t lane_bits(Int mask)
{
#if defined(__AVX512F__)
    if constexpr (sizeof(mask[0]) == 4) return _mm512_test_epi32_mask(__m512i(mask), __m512i(mask));
    else return _mm512_test_epi64_mask(__m512i(mask), __m512i(mask));
#elif defined(__AVX2__)
    // a comparison's lanes are all ones or all zeros: their sign bits say which
    constexpr int halves = sizeof(Int) / 32, half_lanes = 32 / sizeof(mask[0]);
    __m256i half[halves];
    std::memcpy(half, &mask, sizeof half);
    uint64_t bits = 0;
    for (int h = 0; h < halves; ++h) {
        const int m = sizeof(mask[0]) == 4 ? _mm256_movemask_ps(_mm256_castsi256_ps(half[h]))
                                           : _mm256_movemask_pd(_mm256_castsi256_pd(half[h]));
        bits |= uint64_t(uint32_t(m)) << (h * half_lanes);
    }
    return bits;
#else
    uint64_t bits = 0;
    for (int j = 0; j < int(sizeof(Int) / sizeof(mask[0])); ++j) bits |= uint64_t(mask[j] != 0) << j;
    return bits;
#endif
}

}  // namespace hm2bp
