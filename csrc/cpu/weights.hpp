// A trainable layer's weights on the CPU: W stored transposed, wt[i * n_out + o] = W[o, i], so
// that one input spike touches one contiguous row; its Adam/SGD moments; the column sums the side
// term and the regularization read; and the per-worker gradient accumulator of the same shape.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <variant>
#include <vector>

#include "../hm2bp/optimizer.hpp"
#include "../model/engine.hpp"
#include "simd.hpp"
#include "threading.hpp"

namespace hm2bp {

// block(r0, r1, c0, c1) for the 16 x 16 tiles [r0, r1) x [c0, c1) of a (rows, cols) matrix,
// column tiles outer: the order of transposing passes (transpose_tiled, WeightMatrix::set).
template <class Block>
void for_each_tile(int rows, int cols, Block block)
{
    constexpr int tile = 16;
    for (int c0 = 0; c0 < cols; c0 += tile)
        for (int r0 = 0; r0 < rows; r0 += tile)
            block(r0, r0 + tile < rows ? r0 + tile : rows, c0, c0 + tile < cols ? c0 + tile : cols);
}

// dst[c * rows + r] = value(r, c) for the elements (r, c) of a (rows, cols) source, tile by
// tile: element by element, one side of a weight matrix's transpose strides through memory a
// cache line per element (most of what copying weights in and gradients out cost, which the
// torch bridge pays every step). The inner loop writes a contiguous run of dst and gathers from
// the source's tile, which stays in L1: it vectorizes, twice as fast as contiguous reads and
// scattered writes. value reads the source (and may convert it).
template <class Dst, class Value>
void transpose_tiled(int rows, int cols, Dst* dst, Value value)
{
    for_each_tile(rows, cols, [&](int r0, int r1, int c0, int c1) {
        for (int c = c0; c < c1; ++c) {
            Dst* out = dst + static_cast<size_t>(c) * rows;
#pragma omp simd
            for (int r = r0; r < r1; ++r) out[r] = value(r, c);
        }
    });
}

template <class Real>
struct WeightMatrix {
    int n_in = 0;   // rows: inputs (a dense layer's fan-in)
    int n_out = 0;  // columns: post neurons
    AlignedVector<Real> wt, moment1, moment2;
    // Column sums of W, ascending i, always those of the current weights: computed by set as it
    // writes new weights, kept up to date by the optimizer step, which writes W anyway (a
    // separate pass over all weights per batch would cost as much as the step at batch 1).
    // Cache-line aligned: threads that add up column ranges split at multiples of 16 values
    // (refresh_sums, the column-split step) then never write the same line (with malloc's
    // 16-byte alignment the boundary line went back and forth once per row: the 784 x 800
    // refresh took ~205 us on two threads against ~110-125 us on one, ~81 us now).
    AlignedVector<Real> row_sum;     // sum_i W[o, i], for the side term of silent neurons
    AlignedVector<Real> square_sum;  // sum_i (W[o, i] / weight_limit)^2, for the regularization

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

    // From the canonical (n_out, n_in) row-major layout, float64 or float32 (exact in either
    // direction when it is Real); to it as float64. New weights get their column sums in the same
    // pass (hm2bp.torch sets its parameters every step).
    void set(Param p, ParamValues values, const RegParams& reg)
    {
        std::visit([&](auto* src) {
            if (p == Param::Weights) return set_weights(src, reg);
            const size_t n = static_cast<size_t>(n_in);
            transpose_tiled(n_out, n_in, param(p).data(), [=](int o, int i) { return Real(src[o * n + i]); });
        }, values);
    }

    void get(Param p, double* values) const
    {
        const Real* src = const_cast<WeightMatrix*>(this)->param(p).data();
        const size_t n = static_cast<size_t>(n_out);
        transpose_tiled(n_in, n_out, values, [src, n](int i, int o) { return double(src[i * n + o]); });
    }

    // The column sums recomputed from wt as it stands, after a caller wrote it in place (the
    // engine's shared weights: hm2bp.torch's optimizer): one contiguous read pass, each sum added
    // in ascending i as set_weights adds it, so the same bits. The threads split the columns
    // (each reads its part of every row), without FlushDenormals, as set_weights runs. Returns
    // whether every column sum is finite (a non-finite weight makes its sum NaN or inf).
    bool refresh_sums(const RegParams& reg, int threads)
    {
        const int parts = refresh_parts(threads);
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
        for (int k = 0; k < parts; ++k) refresh_part(reg, k, parts);
        return sums_finite();
    }

    // refresh_sums' split for `threads` threads, and its part k: for a caller whose threads are
    // running already (the engine's batch region), so that the refresh wakes none of them.
    int refresh_parts(int threads) const { return std::min(threads, std::max(1, n_out / 64)); }
    void refresh_part(const RegParams& reg, int k, int parts)
    {
        int lo, hi;
        split_range(n_out, parts, k, 16, lo, hi);
        if (is_power_of_two(reg.limit)) add_column_sums<true>(lo, hi, reg);
        else add_column_sums<false>(lo, hi, reg);
    }

    bool sums_finite() const
    {
        return std::all_of(row_sum.begin(), row_sum.end(), [](Real s) { return std::isfinite(s); });
    }

    bool all_finite() const
    {
        return std::all_of(wt.begin(), wt.end(), [](Real w) { return std::isfinite(w); });
    }

    // SPEC 5's per-neuron regularization scale of the current weights (square_sum up to date).
    void regularization_scales(const RegParams& reg, Real* scale) const
    {
        for (int o = 0; o < n_out; ++o) scale[o] = regularization_scale(square_sum[o] / Real(n_in), reg);
    }

private:
    // Columns [lo, hi) of the column sums from wt, ascending i. Out of line: inlined into the
    // parallel region, GCC leaves the loop scalar (as the optimizer's update_row).
    // PowerOfTwoLimit: divide by the weight limit as a multiplication, the same bits (divide).
    template <bool PowerOfTwoLimit>
    [[gnu::noinline]] void add_column_sums(int lo, int hi, const RegParams& reg)
    {
        Real* __restrict sum = row_sum.data();
        Real* __restrict square = square_sum.data();
        std::fill(sum + lo, sum + hi, Real(0));
        std::fill(square + lo, square + hi, Real(0));
        for (int i = 0; i < n_in; ++i) {
            const Real* __restrict row = wt.data() + static_cast<size_t>(i) * n_out;
#pragma omp simd
            for (int o = lo; o < hi; ++o) {
                sum[o] += row[o];
                square[o] += regularization_term<PowerOfTwoLimit>(row[o], reg);
            }
        }
    }

    // wt from values in transpose_tiled's order, and the column sums, each in ascending i.
    template <class Src>
    void set_weights(const Src* src, const RegParams& reg)
    {
        std::fill(row_sum.begin(), row_sum.end(), Real(0));
        std::fill(square_sum.begin(), square_sum.end(), Real(0));
        Real* __restrict sum = row_sum.data();
        Real* __restrict square = square_sum.data();
        for_each_tile(n_out, n_in, [&](int o0, int o1, int i0, int i1) {
            for (int i = i0; i < i1; ++i) {
                Real* __restrict row = wt.data() + static_cast<size_t>(i) * n_out;
#pragma omp simd
                for (int o = o0; o < o1; ++o) {
                    const Real w = Real(src[static_cast<size_t>(o) * n_in + i]);
                    row[o] = w;
                    sum[o] += w;
                    square[o] += regularization_term(w, reg);
                }
            }
        });
    }
};

// Touched gradient elements (65,536: 256 KB of floats) below which GradientSum::clear stays on
// one thread.
constexpr size_t kParallelClear = size_t(1) << 16;

// What the optimizer step reads of one layer's gradient: (n_in, n_out) rows in the weights'
// stored layout, the engine's own sums or a caller's array (hm2bp.torch's .grad). touched marks
// the rows written (the others are all +0), null when every row may hold values; deferred, where
// set, makes a touched row's columns on demand instead (GradientSum::deferred, or the engine's
// sum of its sample groups' rows).
template <class Real>
struct GradientRows {
    const Real* grad;
    const uint8_t* touched;
    const std::function<void(int i, int lo, int hi, Real* out)>* deferred = nullptr;

    bool is_touched(int i) const { return !touched || touched[i]; }

    // Row i's columns [lo, hi) of a touched row as the step reads them (written to `buffer`,
    // room for hi - lo, when deferred).
    const Real* row_for_step(int i, int n_out, int lo, int hi, Real* buffer) const
    {
        if (!deferred) return grad + static_cast<size_t>(i) * n_out + lo;
        (*deferred)(i, lo, hi, buffer);
        return buffer;
    }
};

// One worker's sum of per-sample weight gradients, in WeightMatrix's transposed layout. Only the
// rows of inputs that fired are ever written ("touched"); the others stay +0.
template <class Real>
struct GradientSum {
    AlignedVector<Real> grad;      // (n_in, n_out)
    std::vector<uint8_t> touched;  // (n_in): rows written since they were last zeroed

    // A training run of one sample: its gradient rows would be written once and read once by
    // the step that follows in the same run. With may_defer (set by the engine for such runs) a
    // layer may leave them unwritten and set `deferred`, which writes row i's columns [lo, hi)
    // on demand (touched still marks the rows; grad holds +0 there, as it was cleared).
    bool may_defer = false;
    std::function<void(int i, int lo, int hi, Real* out)> deferred;

    void resize(const WeightMatrix<Real>& w)
    {
        grad.resize(w.wt.size());
        touched.resize(w.n_in);
    }

    Real* row(int i, int n_out) { return grad.data() + static_cast<size_t>(i) * n_out; }

    GradientRows<Real> rows() const { return {grad.data(), touched.data(), deferred ? &deferred : nullptr}; }

    // Forgets the deferred rows (after their step, or of a run that stopped half-way): grad is
    // +0 in every row, and no row is touched.
    void end_deferral()
    {
        if (!deferred) return;
        std::fill(touched.begin(), touched.end(), uint8_t(0));
        deferred = nullptr;
    }

    // Zeros the touched rows. Done at the start of a learning run rather than at its end, so that
    // a run that stopped half-way leaves nothing behind. On one thread when they are few (a
    // batch-1 mnist-cnn sample touches at most 15,000 weights per layer, the output layer of
    // fc800 8,000: zeroing them costs less than waking another thread).
    void clear(int n_out, int threads)
    {
        end_deferral();
        const int N = static_cast<int>(touched.size());
        const size_t n_touched =
            static_cast<size_t>(std::count_if(touched.begin(), touched.end(), [](uint8_t t) { return t != 0; }));
        if (n_touched == 0) return;
        const bool split = threads > 1 && n_touched * n_out >= kParallelClear;
#pragma omp parallel for num_threads(threads) schedule(static) if (split)
        for (int i = 0; i < N; ++i) {
            if (!touched[i]) continue;
            std::fill(grad.begin() + static_cast<size_t>(i) * n_out, grad.begin() + static_cast<size_t>(i + 1) * n_out,
                      Real(0));
            touched[i] = 0;
        }
    }
};

}  // namespace hm2bp
