// SPEC 5 on the CPU: the batch mean of the gradient sums, the weight regularization and one Adam
// or SGD step per weight, for every trainable layer; one step counter for all layers.
#pragma once
#include <type_traits>
#include <vector>

#include "../hm2bp/common.hpp"
#include "../hm2bp/optimizer.hpp"
#include "../model/network_spec.hpp"
#include "constant_divisor.hpp"
#include "threading.hpp"
#include "weights.hpp"

namespace hm2bp {

template <class Real>
class Optimizer {
public:
    explicit Optimizer(const Hyper& h) : h_(h) {}

    int64_t step() const { return step_; }
    void set_step(int64_t s) { step_ = s; }

    // What a step does besides Adam or SGD.
    struct Options {
        // SPEC 5's regularization gradient added to the batch mean; false: the gradients already
        // hold it (count 1: the batch means that Gradients mode exports with regularize, which
        // then step bit for bit as the sums they came from)
        bool regularize = true;
        // the new weights' column sums kept (WeightMatrix::row_sum, square_sum); false leaves them
        // stale, for an engine that recomputes them before its next use (shared weights)
        bool column_sums = true;
    };

    // One step of all layers from their gradient sums over `count` samples.
    void apply(std::vector<WeightMatrix<Real>*>& layers, const std::vector<GradientRows<Real>>& grads,
               int64_t count, double lr, int threads, Options options = {})
    {
        ++step_;
        // as wide as the widest layer before any layer is stepped: one steps beside another's rows
        for (const WeightMatrix<Real>* layer : layers)
            if (zero_row_.size() < static_cast<size_t>(layer->n_out)) zero_row_.assign(layer->n_out, Real(0));
        StepParams step = step_params(h_, lr, step_);
        if (!options.regularize) step.reg.lambda = 0.0;  // inactive; its limit still scales the column sums
        // The narrow layers that one thread steps (step_flat, the output layer's ~15 us) run on the
        // thread of a row-split layer's first block after its rows, beside the other blocks' rows
        // and column-sum turns (each layer's step is on its own), not after that layer on its own.
        const bool sums = options.column_sums;
        int host = -1;
        for (size_t l = 0; sums && host < 0 && l < layers.size(); ++l)
            if (path(*layers[l], grads[l], threads) == Path::rows) host = static_cast<int>(l);
        auto aside = [&](size_t l) { return host >= 0 && path(*layers[l], grads[l], threads) == Path::flat; };
        auto step_aside = [&] {
            for (size_t l = 0; l < layers.size(); ++l)
                if (aside(l)) step_layer(*layers[l], grads[l], count, step, threads, sums);
        };
        for (size_t l = 0; l < layers.size(); ++l) {
            if (static_cast<int>(l) == host) step_layer(*layers[l], grads[l], count, step, threads, sums, step_aside);
            else if (!aside(l)) step_layer(*layers[l], grads[l], count, step, threads, sums);
        }
    }

private:
    Hyper h_;
    int64_t step_ = 0;
    AlignedVector<Real> zero_row_;  // gradient row of an input that no sample used

    // How step_layer steps a layer: as one flat run on the calling thread (a narrow layer whose
    // rows are not whole vectors), its rows split among the threads (a wide layer), or its
    // columns split among them.
    enum class Path { flat, rows, columns };
    static Path path(const WeightMatrix<Real>& layer, const GradientRows<Real>& sum, int threads)
    {
        const int O = layer.n_out, N = layer.n_in;
        if (!sum.deferred && O < 64 && O % Simd<Real>::lanes != 0 && static_cast<size_t>(N) * O <= kFlatStepWeights)
            return Path::flat;
        return std::min(threads, N / 16) > 1 && O >= 64 ? Path::rows : Path::columns;
    }

    // The layer's step. Each column sum of the new weights is added up in ascending i, as
    // WeightMatrix::set does (the scale comes from the sums of the current weights). A wide
    // layer's rows are split among the threads, so that each streams one contiguous block of the
    // weights and moments (a share of every row's columns is n_in short runs per array, ~20%
    // slower on two threads): the first block's rows add to the sums as they are stepped, then
    // each other block in turn continues the sums over its own rows in ascending i, all columns.
    // Its thread steps them last one first, so that the rows its turn starts with are still in its
    // core's cache: a share of the columns of those rows, read by another core, came line by
    // line from this one (the 784 x 800 float step on two threads, best of 400: ~270 us without
    // the sums, ~390 us with that pass, ~325 us with the owner's turn). The first block goes to
    // another thread and the last to the calling one, and a turn waits (asleep) only where the
    // blocks before it are not in the sums yet: the calling thread, which starts first, and
    // whose turn comes last, then neither sleeps at a barrier nor at the end of the region
    // (waking a sleeping thread costs ~6 us on an idle machine, 50-150 us on a busy one). A narrow
    // layer's threads split the columns. keep_sums = false: no column sums. during_turns: what
    // the first block's thread does after its rows, beside the turns (Path::rows with keep_sums
    // only; else not called).
    template <class DuringTurns = void (*)()>
    void step_layer(WeightMatrix<Real>& layer, const GradientRows<Real>& sum, int64_t count, const StepParams& step,
                    int threads, bool keep_sums, DuringTurns during_turns = [] {})
    {
        const int O = layer.n_out;
        const int N = layer.n_in;
        std::vector<Real> scale(O, Real(0));
        if (step.reg.active()) layer.regularization_scales(step.reg, scale.data());
        const bool power_of_two_divisors = is_power_of_two(double(count)) && is_power_of_two(h_.weight_limit);
        const bool adam_by_constants = std::is_same_v<Real, float> && step.adam &&
                                       ConstantDivisor::usable(float(step.adam_params.bias1)) &&
                                       ConstantDivisor::usable(float(step.adam_params.bias2));
        Real* row_sum = layer.row_sum.data();
        Real* square_sum = layer.square_sum.data();
        // Row i's columns [lo, hi): the step, and with `sums` its new weights added to the sums.
        // grad_buffer: room for a deferred gradient row's columns.
        auto step_row = [&](auto power_of_two, int i, int lo, int hi, bool sums, Real* w_before, Real* grad_buffer) {
            constexpr bool pow2 = decltype(power_of_two)::value;
            const size_t row = static_cast<size_t>(i) * O + lo;
            // an untouched row is all +0: read the shared zero row instead (less traffic)
            const Real* grad_row = sum.is_touched(i) ? sum.row_for_step(i, O, lo, hi, grad_buffer) : zero_row_.data() + lo;
            step_run<pow2>(layer, row, grad_row, scale.data() + lo, w_before, hi - lo, Real(count), step,
                           adam_by_constants);
            if (sums) add_to_sums<pow2>(layer.wt.data() + row, row_sum + lo, square_sum + lo, hi - lo, step.reg);
        };
        auto with_divisors = [&](auto fn) {
            if (power_of_two_divisors) fn(std::true_type());
            else fn(std::false_type());
        };
        const Path how = path(layer, sum, threads);
        if (how == Path::flat) {
            step_flat(layer, sum.grad, scale.data(), count, step, power_of_two_divisors, adam_by_constants, keep_sums);
            return;
        }
        if (how == Path::rows) {
            TurnOrder turns;  // blocks whose rows are in the sums
#pragma omp parallel num_threads(std::min(threads, N / 16))
            {
                const FlushDenormals flush;
                const int team = omp_get_num_threads();
                const int block = (omp_get_thread_num() + team - 1) % team;  // the calling thread: the last
                int lo, hi;
                split_range(N, team, block, 1, lo, hi);
                std::vector<Real> w_before(adam_by_constants ? O : 0), grad_buffer(sum.deferred ? O : 0);
                with_divisors([&](auto pow2) {
                    if (block == 0) {
                        if (keep_sums) {
                            std::fill(row_sum, row_sum + O, Real(0));
                            std::fill(square_sum, square_sum + O, Real(0));
                        }
                        for (int i = lo; i < hi; ++i)
                            step_row(pow2, i, 0, O, keep_sums, w_before.data(), grad_buffer.data());
                        return;
                    }
                    // last row first: the first rows of its turn are still in this core's cache
                    for (int i = hi - 1; i >= lo; --i)
                        step_row(pow2, i, 0, O, false, w_before.data(), grad_buffer.data());
                    if (!keep_sums) return;
                    turns.wait(block);
                    for (int i = lo; i < hi; ++i)
                        add_to_sums<decltype(pow2)::value>(layer.wt.data() + static_cast<size_t>(i) * O, row_sum,
                                                           square_sum, O, step.reg);
                });
                if (keep_sums) turns.finish(block + 1);
                if (keep_sums && block == 0) during_turns();
            }
            return;
        }
        for_each_range(O, threads, [&](int lo, int hi) {
            if (keep_sums) {
                std::fill(row_sum + lo, row_sum + hi, Real(0));
                std::fill(square_sum + lo, square_sum + hi, Real(0));
            }
            std::vector<Real> w_before(adam_by_constants ? hi - lo : 0), grad_buffer(sum.deferred ? hi - lo : 0);
            with_divisors([&](auto pow2) {
                for (int i = 0; i < N; ++i) step_row(pow2, i, lo, hi, keep_sums, w_before.data(), grad_buffer.data());
            });
        });
    }

    // The most weights of a narrow layer stepped by step_flat, on one thread (~20 us).
    static constexpr size_t kFlatStepWeights = size_t(1) << 16;

    // The step of a narrow layer whose rows are not whole vectors (the output layer's 10
    // classes): row by row, each row would end in a scalar loop whose divisions and square
    // root wait on one another (~7x the vector loop per weight at batch 1). Every weight's
    // step is on its own, so the rows are stepped as one flat run instead, `rows` rows at a
    // time (rows * O a multiple of the vector width) with their scales repeated; a gradient
    // row no sample touched holds +0 in memory as in the shared zero row. The column sums
    // follow each run's rows in ascending i, as step_layer adds them (keep_sums).
    void step_flat(WeightMatrix<Real>& layer, const Real* grads, const Real* scale, int64_t count,
                   const StepParams& step, bool power_of_two_divisors, bool adam_by_constants, bool keep_sums)
    {
        const int O = layer.n_out, N = layer.n_in;
        int rows = Simd<Real>::lanes;
        while (rows % 2 == 0 && (rows / 2) * O % Simd<Real>::lanes == 0) rows /= 2;
        const int run = rows * O;
        std::vector<Real> scales(run), w_before(adam_by_constants ? run : 0);
        for (int k = 0; k < run; ++k) scales[k] = scale[k % O];
        if (keep_sums) {
            std::fill(layer.row_sum.begin(), layer.row_sum.end(), Real(0));
            std::fill(layer.square_sum.begin(), layer.square_sum.end(), Real(0));
        }
        auto flat = [&](auto power_of_two) {
            constexpr bool pow2 = decltype(power_of_two)::value;
            for (int i0 = 0; i0 < N; i0 += rows) {
                const int n = std::min(rows, N - i0) * O;
                const size_t at = static_cast<size_t>(i0) * O;
                step_run<pow2>(layer, at, grads + at, scales.data(), w_before.data(), n, Real(count), step,
                               adam_by_constants);
                for (int j = 0; keep_sums && j < n; j += O)
                    add_to_sums<pow2>(layer.wt.data() + at + j, layer.row_sum.data(), layer.square_sum.data(), O,
                                      step.reg);
            }
        };
        if (power_of_two_divisors) flat(std::true_type());
        else flat(std::false_type());
    }

    // The step of the n weights from flat index `at` on (a row's columns, or step_flat's rows):
    // adam_row where adam_by_constants (float Adam with usable bias corrections), else update_row.
    template <bool PowerOfTwoDivisors>
    void step_run(WeightMatrix<Real>& layer, size_t at, const Real* grad, const Real* scale, Real* w_before, int n,
                  Real batch, const StepParams& step, bool adam_by_constants) const
    {
        Real* w = layer.wt.data() + at;
        Real* m1 = layer.moment1.data() + at;
        Real* m2 = layer.moment2.data() + at;
        if constexpr (std::is_same_v<Real, float>) {
            if (adam_by_constants) {
                adam_row<PowerOfTwoDivisors>(w, m1, m2, grad, scale, w_before, n, batch, step);
                return;
            }
        }
        update_row<PowerOfTwoDivisors>(w, m1, m2, grad, scale, n, batch, step);
    }

    // Adam's step of one row of float weights, as update_row computes it, with the divisions by
    // the bias corrections done by ConstantDivisor (off the divider unit, which the square root
    // and the third division keep busy). Each moment outside the fast division's range sends the
    // row back to the plain divisions, from the weights as they were (w_before).
    template <bool PowerOfTwoDivisors>
    [[gnu::noinline]] void adam_row(float* __restrict w, float* __restrict m1, float* __restrict m2,
                                    const float* __restrict grad, const float* __restrict scale,
                                    float* __restrict w_before, int n, float batch, StepParams step) const
    {
        const AdamParams& a = step.adam_params;
        const ConstantDivisor bias1(float(a.bias1)), bias2(float(a.bias2));
        int outside = 0;
#pragma omp simd reduction(| : outside)
        for (int o = 0; o < n; ++o) {
            const float g = mean_gradient<PowerOfTwoDivisors>(grad[o], batch, w[o], scale[o], step.reg);
            float m = m1[o], v = m2[o];
            adam_moments(g, m, v, a);
            m1[o] = m;
            m2[o] = v;
            w_before[o] = w[o];
            w[o] -= adam_change(bias1.divide(m), bias2.divide(v), step.lr, a);
            outside |= !ConstantDivisor::in_range(m) | !ConstantDivisor::in_range(v);
        }
        if (!outside) return;
        for (int o = 0; o < n; ++o) w[o] = w_before[o] - adam_change(m1[o] / bias1.d, m2[o] / bias2.d, step.lr, a);
    }

    // The updated weights of one row added to the column sums.
    template <bool PowerOfTwoDivisors>
    [[gnu::noinline]] void add_to_sums(const Real* __restrict w, Real* __restrict row_sum, Real* __restrict square_sum,
                                       int n, const RegParams& reg) const
    {
#pragma omp simd
        for (int o = 0; o < n; ++o) {
            row_sum[o] += w[o];
            square_sum[o] += regularization_term<PowerOfTwoDivisors>(w[o], reg);
        }
    }

    // Columns [0, n) of one row of weights (fixed i): the step. Kept free of aliasing and branches
    // so that the loop vectorizes (with the column sums in the same loop, reading w back after
    // the step's conditional update, it does not), and out of line (inlined into the parallel
    // region, GCC leaves the step scalar). Divisions bound the step at batch 1;
    // PowerOfTwoDivisors: the batch size and the weight limit are powers of two (divide).
    template <bool PowerOfTwoDivisors>
    [[gnu::noinline]] void update_row(Real* __restrict w, Real* __restrict m1, Real* __restrict m2,
                                      const Real* __restrict grad, const Real* __restrict scale, int n, Real batch,
                                      StepParams step) const
    {
#pragma omp simd
        for (int o = 0; o < n; ++o) weight_step<PowerOfTwoDivisors>(w[o], m1[o], m2[o], grad[o], batch, scale[o], step);
    }
};

}  // namespace hm2bp
