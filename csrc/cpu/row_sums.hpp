// Sums of rows of a matrix picked by a list of indices (the spike-event sums of SPEC 6: the
// S-PSP of a connection is the sum of the post neuron's trace K over the pre neuron's spike
// times), register-tiled over the columns; each column summed in the order of the list.
#pragma once
#include <algorithm>
#include <cstddef>

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

}  // namespace hm2bp
