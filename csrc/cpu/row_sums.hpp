// Sums of rows of a matrix picked by a list of indices (the spike-event sums of SPEC 6: the
// S-PSP of a connection is the sum of the post neuron's trace K over the pre neuron's spike
// times), register-tiled over the columns; each column summed in the order of the list.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "simd.hpp"  // and, with AVX2 or AVX-512, immintrin.h

namespace hm2bp {

// out[o] = sum_k matrix[rows[k], o] for o in [lo, hi): the spike-event sums of SPEC 6,
// register-tiled over o.
template <int width, class Real>
int sum_rows_blocks(const Real* matrix, size_t stride, const int* rows, int n_rows, int o, int hi, Real* out)
{
    for (; o + width <= hi; o += width) {
        Real acc[width] = {};
        for (int k = 0; k < n_rows; ++k) {
            const Real* row = matrix + static_cast<size_t>(rows[k]) * stride + o;
#pragma omp simd
            for (int j = 0; j < width; ++j) acc[j] += row[j];
        }
        for (int j = 0; j < width; ++j) out[o + j] = acc[j];
    }
    return o;
}

template <class Real>
void sum_rows(const Real* matrix, size_t stride, const int* rows, int n_rows, int lo, int hi, Real* out)
{
    int o = sum_rows_blocks<256 / sizeof(Real)>(matrix, stride, rows, n_rows, lo, hi, out);
    o = sum_rows_blocks<64 / sizeof(Real)>(matrix, stride, rows, n_rows, o, hi, out);
    // the last few columns (all of a narrow output layer): row by row, same order per column
    std::fill(out + o, out + hi, Real(0));
    for (int k = 0; k < n_rows; ++k) {
        const Real* row = matrix + static_cast<size_t>(rows[k]) * stride;
#pragma omp simd
        for (int j = o; j < hi; ++j) out[j] += row[j];
    }
}

// Lists summed side by side (sum_rows_interleaved).
constexpr int kInterleavedLists = 8;

// out[g][c] = sum_k matrix[rows[g][k], lo + c] for c in [0, n_cols) (whole vectors) and each of
// the n_lists lists g, every column summed in its list's order from +0, as sum_rows does. One
// list's sum is a chain of dependent adds that waits out the add's latency at every row, so
// kInterleavedLists lists run side by side; a list shorter than the longest of its group adds
// rows of zeros after its end, which leaves the sum the same bit for bit (a sum that starts at
// +0 is never -0, and x + (+0) = x for every other x). Lists of similar lengths waste least.
template <class Real>
void sum_rows_interleaved(const Real* matrix, size_t stride, int lo, int n_cols, const int* const* rows,
                          const int* n_rows, int n_lists, Real* const* out)
{
    using Vec = typename Simd<Real>::Vec;
    constexpr int lanes = Simd<Real>::lanes;
    constexpr int G = kInterleavedLists;
    using N = Native<Real>;
    constexpr int per = lanes / N::lanes;
    alignas(64) static const Real zeros[lanes] = {};
    for (int g0 = 0; g0 < n_lists; g0 += G) {
        const int n = std::min(G, n_lists - g0);
        const int* list[G];
        int length[G];  // 0 for a group's missing lists (their sums are discarded)
        int longest = 0, shortest = n < G ? 0 : n_rows[g0];
        for (int g = 0; g < G; ++g) {
            list[g] = g < n ? rows[g0 + g] : nullptr;
            length[g] = g < n ? n_rows[g0 + g] : 0;
            longest = std::max(longest, length[g]);
            shortest = std::min(shortest, length[g]);
        }
        for (int c = 0; c < n_cols; c += lanes) {
            // in the machine's own vectors (simd.hpp), `per` to a Vec
            typename N::Vec acc[G][per] = {};
            const Real* base = matrix + lo + c;
            for (int k = 0; k < shortest; ++k)  // every list has row k
                for (int g = 0; g < G; ++g) {
                    const Real* row = base + static_cast<size_t>(list[g][k]) * stride;
                    for (int h = 0; h < per; ++h) acc[g][h] += load_as<typename N::Vec>(row + h * N::lanes);
                }
            for (int k = shortest; k < longest; ++k)
                for (int g = 0; g < G; ++g) {
                    const Real* row = k < length[g] ? base + static_cast<size_t>(list[g][k]) * stride : zeros;
                    for (int h = 0; h < per; ++h) acc[g][h] += load_as<typename N::Vec>(row + h * N::lanes);
                }
            for (int g = 0; g < n; ++g) std::memcpy(out[g0 + g] + c, &acc[g], sizeof(Vec));
        }
    }
}

// The int vector {f(0), f(1), ..., f(15)}: a shuffle's lane table.
template <class F, int... L>
constexpr Simd<float>::Int lane_table(F f, std::integer_sequence<int, L...>)
{
    return Simd<float>::Int{f(L)...};
}
template <class F>
constexpr Simd<float>::Int lane_table(F f)
{
    return lane_table(f, std::make_integer_sequence<int, 16>{});
}

// The transpose of a 16 x 16 block of floats held as 16 vectors (rows), in registers: stage b
// swaps the off-diagonal b x b blocks of rows i and i + b (i & b = 0), for b = 8, 4, 2, 1.
inline void transpose_16x16(Simd<float>::Vec* r)
{
    using Int = Simd<float>::Int;
    auto stage = [r](auto b_const) {
        constexpr int b = decltype(b_const)::value;
        // lane l of the new row i: r[i][l] or r[i + b][l - b]; of the new row i + b: r[i][l + b] or r[i + b][l]
        constexpr Int low = lane_table([](int l) { return (l & b) ? 16 + l - b : l; });
        constexpr Int high = lane_table([](int l) { return (l & b) ? 16 + l : l + b; });
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
            if (i & b) continue;
            const Simd<float>::Vec lo = __builtin_shuffle(r[i], r[i + b], low);
            const Simd<float>::Vec hi = __builtin_shuffle(r[i], r[i + b], high);
            r[i] = lo;
            r[i + b] = hi;
        }
    };
    stage(std::integral_constant<int, 8>{});
    stage(std::integral_constant<int, 4>{});
    stage(std::integral_constant<int, 2>{});
    stage(std::integral_constant<int, 1>{});
}

#if defined(__AVX2__) && !defined(__AVX512F__)
// The transpose of an 8 x 8 block of floats held as 8 AVX2 registers (rows).
inline void transpose_8x8(__m256* r)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}
#endif

// sum[j] = sum over k in [0, n), ascending, of rows[j * stride + k], for 16 rows j (stride a
// multiple of 16 that is at least n): 16 chains of dependent adds side by side. For floats the
// rows are read 16 columns at a time and transposed in registers, so each step of the 16 chains
// is one vector add (not 16 scalar loads put together lane by lane).
template <class Real>
void sum_columns16(const Real* rows, size_t stride, int n, Real* sum)
{
#if defined(__AVX2__) && !defined(__AVX512F__)
    if constexpr (sizeof(Real) == 4) {  // two groups of 8 rows, 8 columns at a time (k0 + 8 <= stride)
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int k0 = 0; k0 < n; k0 += 8) {
            const int m = std::min(8, n - k0);
            for (int g = 0; g < 2; ++g) {
                __m256 r[8];
                for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(rows + static_cast<size_t>(g * 8 + j) * stride + k0);
                transpose_8x8(r);
                for (int k = 0; k < m; ++k) acc[g] = _mm256_add_ps(acc[g], r[k]);
            }
        }
        _mm256_storeu_ps(sum, acc[0]);
        _mm256_storeu_ps(sum + 8, acc[1]);
        return;
    }
#endif
    if constexpr (sizeof(Real) == 4 && Simd<Real>::lanes == 16) {
        typename Simd<Real>::Vec acc = {};
        for (int k0 = 0; k0 < n; k0 += 16) {
            typename Simd<Real>::Vec r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; ++j) r[j] = load_vec(rows + static_cast<size_t>(j) * stride + k0);
            transpose_16x16(r);
            const int m = std::min(16, n - k0);
            for (int k = 0; k < m; ++k) acc += r[k];
        }
        std::memcpy(sum, &acc, sizeof acc);
    } else {
        for (int j = 0; j < 16; ++j) sum[j] = Real(0);
        for (int k = 0; k < n; ++k)
            for (int j = 0; j < 16; ++j) sum[j] += rows[static_cast<size_t>(j) * stride + k];
    }
}

}  // namespace hm2bp
