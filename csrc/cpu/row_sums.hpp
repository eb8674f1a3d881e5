// Sums of rows of a matrix picked by a list of indices (the spike-event sums of SPEC 6: the
// S-PSP of a connection is the sum of the post neuron's trace K over the pre neuron's spike
// times), register-tiled over the columns; each column summed in the order of the list.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "simd.hpp"

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
            Vec acc[G] = {};
            const Real* base = matrix + lo + c;
            for (int k = 0; k < shortest; ++k)  // every list has row k
                for (int g = 0; g < G; ++g) acc[g] += load_vec(base + static_cast<size_t>(list[g][k]) * stride);
            for (int k = shortest; k < longest; ++k)
                for (int g = 0; g < G; ++g) {
                    const Real* row = k < length[g] ? base + static_cast<size_t>(list[g][k]) * stride : zeros;
                    acc[g] += load_vec(row);
                }
            for (int g = 0; g < n; ++g) std::memcpy(out[g0 + g] + c, &acc[g], sizeof(Vec));
        }
    }
}

}  // namespace hm2bp
