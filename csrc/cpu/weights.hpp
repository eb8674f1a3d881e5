// A trainable layer's weights on the CPU: W stored transposed, wt[i * n_out + o] = W[o, i], so
// that one input spike touches one contiguous row; its Adam/SGD moments; the column sums the side
// term and the regularization read; and the per-worker gradient accumulator of the same shape.
#pragma once
#include <cstdint>
#include <vector>

#include "../hm2bp/optimizer.hpp"
#include "../model/engine.hpp"
#include "simd.hpp"
#include "threading.hpp"

namespace hm2bp {

// dst[c * rows + r] = convert(src[r * cols + c]) in 32 x 32 tiles: element by element, one side
// of a weight matrix's transpose strides through memory a cache line per element (most of what
// set_weights cost, which the torch bridge pays before every step). Moves numbers, rounds none.
template <class Src, class Dst, class Convert>
void transpose_tiled(const Src* src, int rows, int cols, Dst* dst, Convert convert)
{
    constexpr int tile = 32;
    for (int r0 = 0; r0 < rows; r0 += tile) {
        const int r1 = r0 + tile < rows ? r0 + tile : rows;
        for (int c0 = 0; c0 < cols; c0 += tile) {
            const int c1 = c0 + tile < cols ? c0 + tile : cols;
            for (int r = r0; r < r1; ++r)
                for (int c = c0; c < c1; ++c)
                    dst[static_cast<size_t>(c) * rows + r] = convert(src[static_cast<size_t>(r) * cols + c]);
        }
    }
}

template <class Real>
struct WeightMatrix {
    int n_in = 0;   // rows: inputs (a dense layer's fan-in)
    int n_out = 0;  // columns: post neurons
    AlignedVector<Real> wt, moment1, moment2;
    // Column sums of W, ascending i: kept up to date by the optimizer step, which writes W anyway
    // (a separate pass over all weights per batch would cost as much as the step at batch 1).
    std::vector<Real> row_sum;     // sum_i W[o, i], for the side term of silent neurons
    std::vector<Real> square_sum;  // sum_i (W[o, i] / weight_limit)^2, for the regularization
    bool sums_valid = false;       // false once the weights were set from outside

    WeightMatrix(int inputs, int outputs) : n_in(inputs), n_out(outputs)
    {
        const size_t size = static_cast<size_t>(n_in) * n_out;
        wt.assign(size, Real(0));
        moment1.assign(size, Real(0));
        moment2.assign(size, Real(0));
        row_sum.assign(n_out, Real(0));
        square_sum.assign(n_out, Real(0));
    }

    AlignedVector<Real>& param(Param p)
    {
        switch (p) {
            case Param::Weights: return wt;
            case Param::Moment1: return moment1;
            default: return moment2;
        }
    }

    // From / to the canonical (n_out, n_in) row-major float64 layout.
    void set(Param p, const double* values)
    {
        sums_valid = false;
        transpose_tiled(values, n_out, n_in, param(p).data(), [](double v) { return Real(v); });
    }

    void get(Param p, double* values) const
    {
        const AlignedVector<Real>& src = const_cast<WeightMatrix*>(this)->param(p);
        transpose_tiled(src.data(), n_in, n_out, values, [](Real w) { return double(w); });
    }

    // row_sum and square_sum from the weights, unless the last optimizer step left them up to date.
    void refresh_column_sums(const RegParams& reg, int threads)
    {
        if (sums_valid) return;
        column_sums([](Real w) { return w; }, row_sum.data(), threads);
        column_sums([reg](Real w) { return regularization_term(w, reg); }, square_sum.data(), threads);
        sums_valid = true;
    }

private:
    // out[o] = sum_i f(W[o, i]), in ascending i, the threads splitting o.
    template <class F>
    void column_sums(F f, Real* out, int threads) const
    {
        for_each_range(n_out, threads, [&](int lo, int hi) {
            std::fill(out + lo, out + hi, Real(0));
            for (int i = 0; i < n_in; ++i) {
                const Real* wrow = wt.data() + static_cast<size_t>(i) * n_out;
#pragma omp simd
                for (int o = lo; o < hi; ++o) out[o] += f(wrow[o]);
            }
        });
    }
};

// One worker's sum of per-sample weight gradients, in WeightMatrix's transposed layout. Only the
// rows of inputs that fired are ever written ("touched"); the others stay +0.
template <class Real>
struct GradientSum {
    AlignedVector<Real> grad;      // (n_in, n_out)
    std::vector<uint8_t> touched;  // (n_in): rows written since they were last zeroed

    void resize(const WeightMatrix<Real>& w)
    {
        grad.resize(w.wt.size());
        touched.resize(w.n_in);
    }

    Real* row(int i, int n_out) { return grad.data() + static_cast<size_t>(i) * n_out; }

    // Zeros the touched rows. Done at the start of a learning run rather than at its end, so that
    // a run that stopped half-way leaves nothing behind.
    void clear(int n_out, int threads)
    {
        const int N = static_cast<int>(touched.size());
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int i = 0; i < N; ++i) {
            if (!touched[i]) continue;
            std::fill(grad.begin() + static_cast<size_t>(i) * n_out, grad.begin() + static_cast<size_t>(i + 1) * n_out,
                      Real(0));
            touched[i] = 0;
        }
    }
};

}  // namespace hm2bp
