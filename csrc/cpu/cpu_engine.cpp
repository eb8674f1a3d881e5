// The CPU engine: SPEC sections 1-5 in the fast form of section 6. Per sample and layer:
// - forward (integrate): for each chunk of neurons, each step's input current is the sum of the
//   W rows of the inputs that fired one step earlier, fed straight into the LIF (SPEC 1);
// - backward: for the neurons that fired, the S-PSP traces K in O(T) per neuron
//   (spsp_trace_rows.hpp) and the S-PSP rows e[., i] of the active inputs as sums of trace rows
//   over their spike times; then from those rows the side term, the gradient rows and the
//   pre-deltas (SPEC 4).
// So the work is (input spikes x fan-out), twice, plus (neurons x T) for the scans.
//
// Threads: a batch of at least two samples is split into one contiguous share of samples per
// thread, each thread with its own scratch and gradient accumulator (one synchronisation per
// batch, robust on a busy machine); a single sample instead splits the neurons of each layer
// (forward, traces and S-PSP rows) or its active inputs (gradient rows, pre-deltas) among the
// threads.
#include <omp.h>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "../engine.hpp"
#include "../hm2bp/backward.hpp"
#include "../hm2bp/loss.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/optimizer.hpp"
#include "../hm2bp/spsp.hpp"
#include "simd.hpp"
#include "spike_train.hpp"
#include "spsp_trace_rows.hpp"

namespace hm2bp {
namespace {

// Allocates on cache-line boundaries, so that rows of a multiple of 64 bytes start on one too:
// a vector load that straddles two lines costs two.
template <class T>
struct CacheAligned {
    using value_type = T;
    static constexpr std::align_val_t alignment{64};
    CacheAligned() = default;
    template <class U>
    CacheAligned(const CacheAligned<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment)); }
    void deallocate(T* p, size_t) { ::operator delete(p, alignment); }
    friend bool operator==(const CacheAligned&, const CacheAligned&) { return true; }
    friend bool operator!=(const CacheAligned&, const CacheAligned&) { return false; }
};
template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

// Weights and optimizer state are stored transposed, wt[i * n_out + o] = W[o, i], so that
// one input spike touches one contiguous row.
template <class Real>
struct Layer {
    int n_in = 0;
    int n_out = 0;
    AlignedVector<Real> wt, moment1, moment2;
    // Column sums of W, ascending i: kept up to date by the optimizer step, which writes W anyway
    // (a separate pass over all weights per batch would cost as much as the step at batch 1).
    std::vector<Real> row_sum;     // sum_i W[o, i], for the side term of silent neurons
    std::vector<Real> square_sum;  // sum_i (W[o, i] / weight_limit)^2, for the regularization
    bool sums_valid = false;       // false once the weights were set from outside
};

// Per-layer scratch of the sample a worker is processing.
template <class Real>
struct LayerWork {
    std::vector<uint64_t> fired_masks; // (T, SpikeTrain::mask_words(n_out)) spike bit masks
    std::vector<Real> delta, dv, side, lat;
    std::vector<Real> scale;           // gradient_scale
    std::vector<int> n_post;           // spike counts (after revival on the output layer)
    AlignedVector<Real> spsp;          // (active inputs, n_out padded): e[o, i] of the active inputs i
    AlignedVector<Real> grad;          // (n_in, n_out) gradient sum over this worker's samples
    std::vector<uint8_t> touched;      // (n_in): rows of grad written since they were last zeroed
    SpikeTrain out;                    // this layer's spikes, the next layer's input
};

// What one thread needs to process samples on its own.
template <class Real>
struct Worker {
    std::vector<LayerWork<Real>> layers;
    double cost = 0.0;
};

// Weights and Adam moments that regularization drives toward zero become denormal floats, which
// cost ~100x per operation on x86 (an epoch slowed 3x by its third pass). Flushing them to zero
// (FTZ/DAZ) changes only values below 1e-38 (float) or 1e-308 (double). Scoped to one thread.
class FlushDenormals {
public:
#if defined(__SSE__) || defined(__x86_64__)
    FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved_); }

private:
    unsigned saved_;
#endif
};

// n zero-initialized values of T: a plain array when their number N is known at compile time
// (N == n; the compiler can keep it in registers), else on the heap (N = 0).
template <class T, int N>
struct StateArray {
    T values[N] = {};
    explicit StateArray(int) {}
    T& operator[](int k) { return values[k]; }
    T* begin() { return values; }
    T* end() { return values + N; }
};
template <class T>
struct StateArray<T, 0> : std::vector<T> {
    explicit StateArray(int n) : std::vector<T>(n) {}
};

// Splits [0, n) into `parts` contiguous ranges, part k = [lo, hi); multiples of `align`.
inline void split_range(int n, int parts, int k, int align, int& lo, int& hi)
{
    const int blocks = (n + align - 1) / align;
    lo = std::min(n, (blocks * k / parts) * align);
    hi = std::min(n, (blocks * (k + 1) / parts) * align);
}

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

// Neurons whose S-PSP traces are built together (spsp_trace_rows): one vector of floats.
constexpr int kTraceBlock = 16;

// Neurons whose S-PSP rows are summed together: the traces of several trace blocks side by side,
// (T, width) with width = 256 bytes, so that each spike time of an input (one index load and
// address) feeds four vector adds. A narrow block needs fewer traces in L1 but spends most of
// its micro-ops on the indices.
template <class Real>
constexpr int spsp_row_block() { return 256 / sizeof(Real); }

template <class Real>
class CpuEngine final : public Engine {
public:
    explicit CpuEngine(const NetConfig& c) : cfg_(c)
    {
        const int L = static_cast<int>(c.layers.size()) - 1;
        layers_.resize(L);
        for (int l = 0; l < L; ++l) {
            Layer<Real>& layer = layers_[l];
            layer.n_in = c.layers[l];
            layer.n_out = c.layers[l + 1];
            const size_t size = static_cast<size_t>(layer.n_in) * layer.n_out;
            layer.wt.assign(size, Real(0));
            layer.moment1.assign(size, Real(0));
            layer.moment2.assign(size, Real(0));
            layer.row_sum.assign(layer.n_out, Real(0));
            layer.square_sum.assign(layer.n_out, Real(0));
        }
        for (int p = 0; p < 256; ++p) thresholds_[p] = poisson_threshold(p);
    }

    void set_param(Param p, int l, const double* values) override
    {
        Layer<Real>& layer = layers_.at(l);
        AlignedVector<Real>& dst = param(layer, p);
        layer.sums_valid = false;
        for (int o = 0; o < layer.n_out; ++o)
            for (int i = 0; i < layer.n_in; ++i)
                dst[static_cast<size_t>(i) * layer.n_out + o] = Real(values[static_cast<size_t>(o) * layer.n_in + i]);
    }

    void get_param(Param p, int l, double* values) const override
    {
        const Layer<Real>& layer = layers_.at(l);
        const AlignedVector<Real>& src = param(const_cast<Layer<Real>&>(layer), p);
        for (int o = 0; o < layer.n_out; ++o)
            for (int i = 0; i < layer.n_in; ++i)
                values[static_cast<size_t>(o) * layer.n_in + i] = double(src[static_cast<size_t>(i) * layer.n_out + o]);
    }

    int64_t step() const override { return step_; }
    void set_step(int64_t s) override { step_ = s; }
    std::string device() const override { return "cpu"; }

    BatchResult run(const BatchRequest& req) override
    {
        const FlushDenormals flush;
        const InputBatch& in = req.input;
        const int B = in.batch;
        const int L = static_cast<int>(layers_.size());
        const bool learn = req.mode != Mode::Infer;
        const int n_workers = std::min(threads(), B);
        // One sample at a time: the threads share each layer's work instead.
        const int inner_threads = n_workers == 1 ? threads() : 1;
        prepare(in.T, n_workers, learn);
        if (learn) clear_gradients();
        encode_inputs(in);
        if (learn)
            for (Layer<Real>& layer : layers_) refresh_column_sums(layer);

        BatchResult res;
        const int n_out = layers_.back().n_out;
        res.counts.assign(static_cast<size_t>(B) * n_out, 0);
        res.predictions.assign(B, 0);
        std::vector<int64_t> sample_spikes(static_cast<size_t>(B) * L, 0);

        auto process = [&](int k) {
            const FlushDenormals flush;
            Worker<Real>& worker = workers_[k];
            worker.cost = 0.0;
            int lo, hi;
            split_range(B, n_workers, k, 1, lo, hi);
            for (int b = lo; b < hi; ++b) {
                const SpikeTrain* input = &inputs_[b];
                for (int l = 0; l < L; ++l) {
                    forward_layer(worker, l, *input, inner_threads);
                    input = &worker.layers[l].out;
                    sample_spikes[static_cast<size_t>(b) * L + l] = input->total();
                    if (!req.layer_spikes_out.empty())
                        input->to_dense(req.layer_spikes_out[l] + static_cast<size_t>(b) * T_ * input->N);
                }
                int best = 0;
                for (int o = 0; o < n_out; ++o) {
                    res.counts[static_cast<size_t>(b) * n_out + o] = input->count(o);
                    if (input->count(o) > input->count(best)) best = o;
                }
                res.predictions[b] = best;
                if (!learn) continue;
                const int label = static_cast<int>(req.labels[b]);
                const double weight = req.sample_weights ? req.sample_weights[b] : 1.0;
                worker.cost += output_layer_delta(worker, label, weight);
                if (contributes_gradient(worker.layers.back())) backward(worker, inputs_[b], inner_threads);
            }
        };
        if (n_workers == 1) {
            process(0);
        } else {
#pragma omp parallel for num_threads(n_workers) schedule(static, 1)
            for (int k = 0; k < n_workers; ++k) process(k);
        }

        double cost_sum = 0.0;
        for (int k = 0; k < n_workers; ++k) cost_sum += workers_[k].cost;
        res.loss = B > 0 ? cost_sum / B : 0.0;
        res.layer_spikes.assign(L, 0);
        for (int b = 0; b < B; ++b)
            for (int l = 0; l < L; ++l) res.layer_spikes[l] += sample_spikes[static_cast<size_t>(b) * L + l];

        if (learn) reduce_gradients(n_workers);
        if (req.mode == Mode::Gradients) {
            for (int l = 0; l < L; ++l) export_mean_gradient(l, B, req.gradients_out.at(l));
        } else if (req.mode == Mode::Train) {
            apply_update(B, req.lr);
        }
        return res;
    }

private:
    NetConfig cfg_;
    std::vector<Layer<Real>> layers_;
    std::vector<Worker<Real>> workers_;
    std::vector<SpikeTrain> inputs_;
    std::vector<Real> spsp_tables_;  // for the current T (spsp_tables)
    uint64_t thresholds_[256];
    int T_ = 0;
    int64_t step_ = 0;
    AlignedVector<Real> zero_row_;  // gradient row of an input that no sample used

    AlignedVector<Real>& param(Layer<Real>& layer, Param p) const
    {
        switch (p) {
            case Param::Weights: return layer.wt;
            case Param::Moment1: return layer.moment1;
            default: return layer.moment2;
        }
    }

    int threads() const { return std::max(1, cfg_.threads); }

    RegParams regularization() const { return {cfg_.reg_lambda, cfg_.reg_beta, cfg_.weight_limit}; }

    LifParams<Real> lif(int l) const { return {Real(cfg_.vth[l]), Real(cfg_.tau_m), Real(cfg_.tau_s), cfg_.t_ref}; }

    void prepare(int T, int n_workers, bool learn)
    {
        if (T != T_) {
            T_ = T;
            spsp_tables_.assign(spsp_tables_size(T, cfg_.t_ref), Real(0));
            spsp_tables(T, cfg_.t_ref, cfg_.tau_m, cfg_.tau_s, spsp_tables_.data());
            workers_.clear();
        }
        if (static_cast<int>(workers_.size()) < n_workers) workers_.resize(n_workers);
        for (int k = 0; k < n_workers; ++k) {
            Worker<Real>& worker = workers_[k];
            worker.layers.resize(layers_.size());
            for (size_t l = 0; l < layers_.size(); ++l) {
                LayerWork<Real>& w = worker.layers[l];
                if (learn) {  // zeroed where touched at the start of each learning run (clear_gradients)
                    w.grad.resize(layers_[l].wt.size());
                    w.touched.resize(layers_[l].n_in);
                }
            }
        }
    }

    void encode_inputs(const InputBatch& in)
    {
        if (static_cast<int>(inputs_.size()) < in.batch) inputs_.resize(in.batch);
#pragma omp parallel for num_threads(threads()) schedule(dynamic)
        for (int b = 0; b < in.batch; ++b) {
            if (in.dense) {
                inputs_[b].from_dense(in.dense + static_cast<size_t>(b) * in.T * in.n_in, in.T, in.n_in);
            } else {
                const uint64_t key = poisson_sample_key(in.seed, static_cast<uint64_t>(in.sample_index[b]), in.epoch);
                inputs_[b].from_image(in.images + static_cast<size_t>(b) * in.n_in, in.T, in.n_in, key, thresholds_);
            }
        }
    }

    // Only the output layer has lateral inhibition (SPEC 1), and only with w0 != 0.
    bool has_lateral_inhibition(int l) const
    {
        return l + 1 == static_cast<int>(layers_.size()) && cfg_.w0 != 0.0;
    }

    // Runs fn(a) for every a in [0, n), spread over the threads in small dynamic chunks (items of
    // uneven cost, such as the active inputs of a sample).
    template <class Fn>
    static void for_each_item(int n, int n_threads, Fn fn)
    {
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
        {
            const FlushDenormals flush;
#pragma omp for schedule(dynamic, 8)
            for (int a = 0; a < n; ++a) fn(a);
        }
    }

    // Runs fn(lo, hi) on one contiguous range of [0, n) per thread (multiples of `align`, 16 for
    // SIMD by default).
    template <class Fn>
    static void for_each_range(int n, int n_threads, Fn fn, int align = 16)
    {
        const int parts = std::min(n_threads, std::max(1, n / align));
        if (parts == 1) {
            fn(0, n);
            return;
        }
#pragma omp parallel for num_threads(parts) schedule(static)
        for (int k = 0; k < parts; ++k) {
            const FlushDenormals flush;
            int lo, hi;
            split_range(n, parts, k, align, lo, hi);
            fn(lo, hi);
        }
    }

    // SPEC 1 for all neurons of layer l over the whole window.
    void forward_layer(Worker<Real>& worker, int l, const SpikeTrain& input, int n_threads) const
    {
        const Layer<Real>& layer = layers_[l];
        LayerWork<Real>& w = worker.layers[l];
        const int O = layer.n_out;
        const int T = T_;
        const LifParams<Real> p = lif(l);

        w.fired_masks.assign(static_cast<size_t>(T) * SpikeTrain::mask_words(O), 0);
        if (has_lateral_inhibition(l)) {
            const bool one_vector = O <= Simd<Real>::lanes;  // the presets' 10 classes: state in registers
            if (power_of_two_taus() && one_vector) integrate_with_lateral_inhibition<true, 1>(layer, input, w, p);
            else if (power_of_two_taus()) integrate_with_lateral_inhibition<true, 0>(layer, input, w, p);
            else if (one_vector) integrate_with_lateral_inhibition<false, 1>(layer, input, w, p);
            else integrate_with_lateral_inhibition<false, 0>(layer, input, w, p);
            w.out.from_masks(w.fired_masks.data(), T, O);
            return;
        }
        // Threads take whole mask words, so that each word has one writer.
        for_each_range(
            O, n_threads,
            [&](int lo, int hi) {
                if (power_of_two_taus()) integrate<true>(layer, input, w, p, lo, hi);
                else integrate<false>(layer, input, w, p, lo, hi);
            },
            64);
        w.out.from_masks(w.fired_masks.data(), T, O);
    }

    // The LIF scans, instantiated for the taus at hand (divide).
    bool power_of_two_taus() const { return is_power_of_two(cfg_.tau_m) && is_power_of_two(cfg_.tau_s); }

    // SPEC 1 for neurons [lo, hi) of a layer without lateral inhibition, one chunk of columns at
    // a time: each step's input current (the sum of the W rows of the inputs that fired one step
    // earlier) goes straight into the LIF state, and the chunk of W stays in L1 over all T.
    // Writes the spikes as bit masks (w.fired_masks, zeroed by the caller; lo is a multiple of 64).
    template <bool PowerOfTwoTaus>
    void integrate(const Layer<Real>& layer, const SpikeTrain& input, LayerWork<Real>& w, const LifParams<Real>& p,
                   int lo, int hi) const
    {
        constexpr int lanes = Simd<Real>::lanes;
        int c = lo;
        for (; c + 4 * lanes <= hi; c += 4 * lanes) integrate_vectors<PowerOfTwoTaus, 4>(layer, input, w, p, c);
        switch ((hi - c) / lanes) {
            case 3: integrate_vectors<PowerOfTwoTaus, 3>(layer, input, w, p, c); break;
            case 2: integrate_vectors<PowerOfTwoTaus, 2>(layer, input, w, p, c); break;
            case 1: integrate_vectors<PowerOfTwoTaus, 1>(layer, input, w, p, c); break;
        }
        c += (hi - c) / lanes * lanes;
        if (c < hi) integrate_vectors<PowerOfTwoTaus, 1, true>(layer, input, w, p, c, hi - c);
    }

    // integrate for the Vectors * lanes columns from c on (256 bytes at most: within one mask
    // word), the neurons' state in registers. PartialLast: the last vector holds only last_lanes
    // columns (the layer's last few), loaded masked.
    template <bool PowerOfTwoTaus, int Vectors, bool PartialLast = false>
    void integrate_vectors(const Layer<Real>& layer, const SpikeTrain& input, LayerWork<Real>& w,
                           const LifParams<Real>& p, int c, int last_lanes = Simd<Real>::lanes) const
    {
        using Vec = typename Simd<Real>::Vec;
        using Int = typename Simd<Real>::Int;
        constexpr int lanes = Simd<Real>::lanes;
        const int O = layer.n_out;
        const Real* wt = layer.wt.data() + c;
        const int* ids = input.step_ids.data();
        const int* step_start = input.step_start.data();
        uint64_t* masks = w.fired_masks.data() + c / 64;
        const int words = SpikeTrain::mask_words(O);
        Vec v[Vectors] = {}, ep[Vectors] = {};
        Int ref[Vectors] = {};
        for (int q = 0; q < Vectors; ++q) lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);  // t = 0 never fires
        for (int t = 1; t < T_; ++t) {
            Vec r[Vectors] = {};
            for (int k = step_start[t - 1]; k < step_start[t]; ++k) {
                const Real* row = in_register(wt + static_cast<size_t>(ids[k]) * O);
                for (int q = 0; q < Vectors; ++q)
                    r[q] += PartialLast && q == Vectors - 1 ? load_vec_head(row + q * lanes, last_lanes)
                                                            : load_vec(row + q * lanes);
            }
            uint64_t fired = 0;
            for (int q = 0; q < Vectors; ++q) {
                lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);
                fired |= lane_bits(lif_integrate<PowerOfTwoTaus>(v[q], ep[q], ref[q], r[q], p)) << (q * lanes);
            }
            if constexpr (PartialLast) fired &= (uint64_t(1) << ((Vectors - 1) * lanes + last_lanes)) - 1;
            masks[static_cast<size_t>(t) * words] |= fired << (c % 64);
        }
    }

    // SPEC 1 for the output layer with lateral inhibition: L[o, l] = -w0 for l != o couples the
    // neurons through the previous step's spikes, so all of them advance together, a vector of
    // neurons at a time (the last one partly used). Writes the spikes as bit masks (w.fired_masks,
    // zeroed by the caller). Vectors: their number when known at compile time, else 0.
    template <bool PowerOfTwoTaus, int Vectors>
    void integrate_with_lateral_inhibition(const Layer<Real>& layer, const SpikeTrain& input, LayerWork<Real>& w,
                                           const LifParams<Real>& p) const
    {
        using Vec = typename Simd<Real>::Vec;
        using Int = typename Simd<Real>::Int;
        constexpr int lanes = Simd<Real>::lanes;
        const int O = layer.n_out;
        const int n_vec = Vectors > 0 ? Vectors : (O + lanes - 1) / lanes;
        const int words = SpikeTrain::mask_words(O);
        const int* ids = input.step_ids.data();
        const int* step_start = input.step_start.data();
        const Vec minus_w0 = Vec{} - Real(cfg_.w0);
        StateArray<Vec, Vectors> v(n_vec), ep(n_vec), r(n_vec);
        StateArray<Int, Vectors> ref(n_vec), fired(n_vec);  // fired: 1 where the neuron fired at the last step
        for (int q = 0; q < n_vec; ++q) lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);  // t = 0 never fires
        int fired_before = 0;  // spikes of the layer at the last step
        for (int t = 1; t < T_; ++t) {
            std::fill(r.begin(), r.end(), Vec{});
            for (int k = step_start[t - 1]; k < step_start[t]; ++k) {
                const Real* row = layer.wt.data() + static_cast<size_t>(ids[k]) * O;
                for (int q = 0; q < n_vec; ++q) r[q] += load_vec_head(row + q * lanes, std::min(lanes, O - q * lanes));
            }
            uint64_t* mask = w.fired_masks.data() + static_cast<size_t>(t) * words;
            int fired_now = 0;
            for (int q = 0; q < n_vec; ++q) {
                lif_decay<PowerOfTwoTaus>(v[q], ep[q], p);
                const Vec inhibition = minus_w0 * __builtin_convertvector(fired_before - fired[q], Vec);
                const auto fire = lif_integrate<PowerOfTwoTaus>(v[q], ep[q], ref[q], r[q] + inhibition, p);
                const int used = std::min(lanes, O - q * lanes);
                const uint64_t bits = lane_bits(fire) & ((uint64_t(1) << used) - 1);
                mask[q * lanes / 64] |= bits << (q * lanes % 64);
                fired[q] = fire & 1;
                fired_now += __builtin_popcountll(bits);
            }
            fired_before = fired_now;
        }
    }

    // out[o] = sum_i f(W[o, i]), in ascending i, the threads splitting o.
    template <class F>
    void column_sums(const Layer<Real>& layer, F f, Real* out) const
    {
        for_each_range(layer.n_out, threads(), [&](int lo, int hi) {
            std::fill(out + lo, out + hi, Real(0));
            for (int i = 0; i < layer.n_in; ++i) {
                const Real* wrow = layer.wt.data() + static_cast<size_t>(i) * layer.n_out;
#pragma omp simd
                for (int o = lo; o < hi; ++o) out[o] += f(wrow[o]);
            }
        });
    }

    // Layer.row_sum and Layer.square_sum from the weights, unless the last optimizer step left
    // them up to date.
    void refresh_column_sums(Layer<Real>& layer) const
    {
        if (layer.sums_valid) return;
        const RegParams reg = regularization();
        column_sums(layer, [](Real w) { return w; }, layer.row_sum.data());
        column_sums(layer, [reg](Real w) { return regularization_term(w, reg); }, layer.square_sum.data());
        layer.sums_valid = true;
    }

    // S-PSP traces of the neurons ids[0 .. n) of train (n <= kTraceBlock): rows[t * stride + j].
    void traces(const SpikeTrain& train, const int* ids, int n, SpspTraceScratch<Real, kTraceBlock>& scratch,
                Real* rows, size_t stride) const
    {
        const int* post[kTraceBlock];
        int n_post[kTraceBlock];
        for (int j = 0; j < n; ++j) {
            post[j] = train.times(ids[j]);
            n_post[j] = train.count(ids[j]);
        }
        spsp_trace_rows<kTraceBlock>(post, n_post, n, T_, spsp_window(cfg_.tau_m), cfg_.t_ref, cfg_.tau_s,
                                     spsp_decay(spsp_tables_.data()), spsp_kernel(spsp_tables_.data(), T_, cfg_.t_ref),
                                     scratch, rows, stride);
    }

    // The S-PSP rows of one block of traces (T, spsp_row_block) of the neurons ids[0 .. n_ids) for
    // every active input: out[a * stride + ids[j]] = sum over the spike times t of input
    // pre.active[a] of trace[t, j], in ascending t. Columns from n_ids up to the next trace block
    // hold stale traces: summed along (one vector), never stored.
    static void spsp_rows(const Real* trace, const int* ids, int n_ids, const SpikeTrain& pre, Real* out, size_t stride)
    {
        constexpr int width = spsp_row_block<Real>();
        const int used = (n_ids + kTraceBlock - 1) / kTraceBlock * kTraceBlock;  // a few output neurons: one vector
        Real e[width];
        for (size_t a = 0; a < pre.active.size(); ++a) {
            const int i = pre.active[a];
            sum_rows(trace, width, pre.times(i), pre.count(i), 0, used, e);
            Real* dst = out + a * stride;
            for (int j = 0; j < n_ids; ++j) dst[ids[j]] = e[j];
        }
    }

    // A sample whose output deltas are all zero (every count within the margin, or weight 0)
    // has g = 0 * e * (1 + side) * lat = 0 everywhere and pre-deltas 0: its backward pass can be
    // skipped exactly, unless a lateral factor is not finite (0 * inf is NaN in SPEC's formula).
    static bool contributes_gradient(const LayerWork<Real>& out)
    {
        for (size_t o = 0; o < out.delta.size(); ++o)
            if (out.delta[o] != Real(0) || !std::isfinite(out.lat[o])) return true;
        return false;
    }

    // SPEC 3, then SPEC 4's lateral factor and revival on the output layer. Returns the cost.
    double output_layer_delta(Worker<Real>& worker, int label, double sample_weight) const
    {
        LayerWork<Real>& w = worker.layers.back();
        SpikeTrain& out = w.out;
        const int O = layers_.back().n_out;
        const CountTargets targets{cfg_.desired, cfg_.undesired, cfg_.margin};
        w.delta.assign(O, Real(0));
        w.lat.assign(O, Real(1));
        Real cost = 0;
        for (int o = 0; o < O; ++o)
            w.delta[o] = output_delta<Real>(out.count(o), o == label, targets, cost) * Real(sample_weight);

        if (has_lateral_inhibition(static_cast<int>(layers_.size()) - 1)) lateral_factors(out, label, w.lat);

        if (out.count(label) == 0) {
            const int interval = revival_interval(T_, cfg_.desired);
            std::vector<int> times;
            for (int t = interval; t < T_; t += interval) times.push_back(t);
            revive(out, label, times);
        }
        return double(cost);
    }

    void lateral_factors(const SpikeTrain& out, int label, std::vector<Real>& lat) const
    {
        const int O = static_cast<int>(lat.size());
        const Real inv_vth = Real(1) / Real(cfg_.vth.back());
        std::vector<Real> K(static_cast<size_t>(T_) * O);  // (T, O)
        SpspTraceScratch<Real, kTraceBlock> scratch;
        scratch.resize(T_);
        for (int o0 = 0; o0 < O; o0 += kTraceBlock) {
            int ids[kTraceBlock];
            const int n = std::min(kTraceBlock, O - o0);
            for (int j = 0; j < n; ++j) ids[j] = o0 + j;
            traces(out, ids, n, scratch, K.data() + o0, O);
        }
        // e_{l|j}: post l, pre j
        auto e = [&](int l, int j) {
            Real acc = 0;
            const int* tj = out.times(j);
            for (int k = 0; k < out.count(j); ++k) acc += K[static_cast<size_t>(tj[k]) * O + l];
            return acc;
        };
        for (int j = 0; j < O; ++j) {
            const int n_j = out.count(j);
            const Real d_j = (n_j > 0 || j == label) ? inv_vth : Real(0);
            Real sum = 0;
            for (int l = 0; l < O; ++l) {
                if (l == j) continue;
                const int n_l = out.count(l);
                const Real d_l = (n_l > 0 || l == label) ? inv_vth : Real(0);
                const Real r_jl = lateral_ratio(n_j > 0 && n_l > 0 ? e(l, j) : Real(0), n_j, n_l);
                const Real r_lj = lateral_ratio(n_j > 0 && n_l > 0 ? e(j, l) : Real(0), n_l, n_j);
                sum += r_jl * d_l * r_lj * d_j;
            }
            lat[j] = lateral_factor(Real(cfg_.w0), sum);
        }
    }

    static void revive(SpikeTrain& out, int label, const std::vector<int>& times)
    {
        std::vector<int> start(out.N + 1, 0), all;
        for (int n = 0; n < out.N; ++n) {
            if (n == label) all.insert(all.end(), times.begin(), times.end());
            else all.insert(all.end(), out.times(n), out.times(n) + out.count(n));
            start[n + 1] = static_cast<int>(all.size());
        }
        out.neuron_start.swap(start);
        out.neuron_times.swap(all);
        out.index_by_step();
    }

    // SPEC 4 from the output layer down: adds g to the worker's gradient sums, propagates pre_delta.
    void backward(Worker<Real>& worker, const SpikeTrain& input0, int n_threads) const
    {
        const int L = static_cast<int>(layers_.size());
        for (int l = L - 1; l >= 0; --l) {
            const Layer<Real>& layer = layers_[l];
            LayerWork<Real>& w = worker.layers[l];
            const SpikeTrain& post = w.out;
            const SpikeTrain& pre = l > 0 ? worker.layers[l - 1].out : input0;
            const int O = layer.n_out;
            const int T = T_;
            const Real inv_vth = Real(1) / Real(cfg_.vth[l]);
            if (l != L - 1) w.lat.assign(O, Real(1));
            w.dv.resize(O);
            w.side.resize(O);
            w.scale.resize(O);
            w.n_post.resize(O);

            const int n_active = static_cast<int>(pre.active.size());
            const size_t e_stride = (static_cast<size_t>(O) + 15) / 16 * 16;  // rows start on cache lines
            w.spsp.resize(n_active * e_stride);
            const int* n_post = w.n_post.data();

            // S-PSP traces of the post trains (revived on the output layer), then the S-PSP rows
            // e[o, i] of the active inputs as sums of trace rows over their spike times (SPEC 6),
            // spsp_row_block neurons at a time (their traces stay in L2 for the sums). Only
            // neurons that fired: a silent neuron's e is never used (its connections take the 0.1
            // rule of spsp_value, its side term the row sum), so its entries of w.spsp are not
            // written.
            for_each_range(O, n_threads, [&](int lo, int hi) {
                constexpr int width = spsp_row_block<Real>();
                SpspTraceScratch<Real, kTraceBlock> scratch;
                scratch.resize(T);
                AlignedVector<Real> trace(static_cast<size_t>(T) * width, Real(0));
                int ids[width];
                int n = 0;
                auto flush = [&] {
                    for (int j = 0; j < n; j += kTraceBlock)
                        traces(post, ids + j, std::min(kTraceBlock, n - j), scratch, trace.data() + j, width);
                    spsp_rows(trace.data(), ids, n, pre, w.spsp.data(), e_stride);
                    n = 0;
                };
                for (int o = lo; o < hi; ++o) {
                    if (post.count(o) == 0) continue;
                    ids[n++] = o;
                    if (n == width) flush();
                }
                if (n > 0) flush();
            });

            // side[o] = (1 / vth) sum_i W[o, i] e[o, i] / n_o (0.5 instead of e / n_o for a silent o).
            for_each_range(O, n_threads, [&](int lo, int hi) {
                std::fill(w.side.begin() + lo, w.side.begin() + hi, Real(0));
                for (int a = 0; a < n_active; ++a) {
                    const Real* wrow = layer.wt.data() + static_cast<size_t>(pre.active[a]) * O;
                    const Real* erow = w.spsp.data() + a * e_stride;
#pragma omp simd
                    for (int o = lo; o < hi; ++o) w.side[o] += wrow[o] * erow[o];
                }
                for (int o = lo; o < hi; ++o) {
                    const int n_o = post.count(o);
                    w.n_post[o] = n_o;
                    w.dv[o] = w.delta[o] / Real(cfg_.vth[l]);
                    const Real sum = n_o > 0 ? w.side[o] / Real(n_o) : layer.row_sum[o] * side_weight(Real(0), 0);
                    w.side[o] = inv_vth * sum;
                    w.scale[o] = gradient_scale(w.dv[o], w.side[o], w.lat[o]);
                }
            });

            // Gradient rows and pre-deltas of the active inputs.
            std::vector<Real>* pre_delta = l > 0 ? &worker.layers[l - 1].delta : nullptr;
            if (pre_delta) pre_delta->assign(layer.n_in, Real(0));
            const Real* scale = w.scale.data();
            for_each_item(n_active, n_threads, [&](int a) {
                const int i = pre.active[a];
                const int n_i = pre.count(i);
                const Real* e = w.spsp.data() + a * e_stride;
                Real* grow = w.grad.data() + static_cast<size_t>(i) * O;
                w.touched[i] = 1;
#pragma omp simd
                for (int o = 0; o < O; ++o) grow[o] += weight_gradient(scale[o], spsp_value(e[o], n_post[o], n_i));
                if (!pre_delta) return;
                const Real* wrow = layer.wt.data() + static_cast<size_t>(i) * O;
                Real pd = 0;
                for (int o = 0; o < O; ++o) {
                    const Real R = cfg_.effect_ratio ? effect_ratio(spsp_value(e[o], n_post[o], n_i), n_post[o], n_i) : Real(1);
                    pd += w.dv[o] * R * wrow[o];
                }
                (*pre_delta)[i] = pd;
            });
            if (!pre_delta) continue;
            // Silent inputs: R = 1.
            for (int i = 0; i < layer.n_in; ++i) {
                if (pre.count(i) != 0) continue;
                const Real* wrow = layer.wt.data() + static_cast<size_t>(i) * O;
                Real pd = 0;
                for (int o = 0; o < O; ++o) pd += w.dv[o] * Real(1) * wrow[o];
                (*pre_delta)[i] = pd;
            }
        }
    }

    // Adds the other workers' gradient sums to worker 0's, in worker order. Only rows a worker
    // touched: the others hold +0, and adding +0 to a sum that started at +0 changes nothing.
    void reduce_gradients(int n_workers)
    {
        for (size_t l = 0; l < layers_.size() && n_workers > 1; ++l) {
            LayerWork<Real>& total = workers_[0].layers[l];
            const int N = layers_[l].n_in, O = layers_[l].n_out;
#pragma omp parallel for num_threads(threads()) schedule(static)
            for (int i = 0; i < N; ++i) {
                const FlushDenormals flush;
                Real* row = total.grad.data() + static_cast<size_t>(i) * O;
                for (int j = 1; j < n_workers; ++j) {
                    const LayerWork<Real>& part = workers_[j].layers[l];
                    if (!part.touched[i]) continue;
                    const Real* part_row = part.grad.data() + static_cast<size_t>(i) * O;
#pragma omp simd
                    for (int o = 0; o < O; ++o) row[o] += part_row[o];
                    total.touched[i] = 1;
                }
            }
        }
    }

    // Zeros the gradient rows the workers touched in the last learning run. Done at the start of
    // a run rather than at its end, so that a run that stopped half-way leaves nothing behind.
    void clear_gradients()
    {
        for (Worker<Real>& worker : workers_)
            for (size_t l = 0; l < worker.layers.size(); ++l) {
                LayerWork<Real>& w = worker.layers[l];
                const int N = static_cast<int>(w.touched.size()), O = layers_[l].n_out;
#pragma omp parallel for num_threads(threads()) schedule(static)
                for (int i = 0; i < N; ++i) {
                    if (!w.touched[i]) continue;
                    std::fill(w.grad.begin() + static_cast<size_t>(i) * O, w.grad.begin() + static_cast<size_t>(i + 1) * O,
                              Real(0));
                    w.touched[i] = 0;
                }
            }
    }

    void export_mean_gradient(int l, int B, double* out) const
    {
        const Layer<Real>& layer = layers_[l];
        const AlignedVector<Real>& grad = workers_[0].layers[l].grad;
        for (int o = 0; o < layer.n_out; ++o)
            for (int i = 0; i < layer.n_in; ++i)
                out[static_cast<size_t>(o) * layer.n_in + i] =
                    double(grad[static_cast<size_t>(i) * layer.n_out + o] / Real(B));
    }

    // Columns [0, n) of one row of weights (fixed i): the step, then the updated weights added to
    // the column sums. Kept free of aliasing and branches so that both loops vectorize (one loop
    // that reads w back after the step's conditional update does not), and out of line (inlined
    // into the parallel region, GCC leaves the step scalar). Divisions bound the step at batch 1;
    // PowerOfTwoDivisors: the batch size and the weight limit are powers of two (divide).
    template <bool PowerOfTwoDivisors>
    [[gnu::noinline]] void update_row(Real* __restrict w, Real* __restrict m1, Real* __restrict m2,
                                      const Real* __restrict grad, const Real* __restrict scale,
                                      Real* __restrict row_sum, Real* __restrict square_sum, int n, Real batch,
                                      RegParams reg, AdamParams adam) const
    {
        const bool use_adam = cfg_.adam;
        const double lr = adam.lr, momentum = cfg_.momentum;
#pragma omp simd
        for (int o = 0; o < n; ++o) {
            // scale is all zeros when regularization is off
            const Real g = divide<PowerOfTwoDivisors>(grad[o], batch) +
                           regularization_grad<PowerOfTwoDivisors>(w[o], scale[o], reg);
            if (use_adam) adam_update(w[o], g, m1[o], m2[o], adam);
            else sgd_update(w[o], g, m1[o], lr, momentum);
        }
#pragma omp simd
        for (int o = 0; o < n; ++o) {
            row_sum[o] += w[o];
            square_sum[o] += regularization_term<PowerOfTwoDivisors>(w[o], reg);
        }
    }

    // SPEC 5: batch mean + regularization, then one Adam or SGD step (run() refreshed the column
    // sums of the current weights). The threads split the columns, so that each column sum of the
    // new weights is added up in ascending i, as refresh_column_sums would.
    void apply_update(int B, double lr)
    {
        ++step_;
        const RegParams reg = regularization();
        const AdamParams adam{lr, cfg_.b1, cfg_.b2, cfg_.eps, 1.0 - std::pow(cfg_.b1, double(step_)),
                              1.0 - std::pow(cfg_.b2, double(step_))};
        const bool regularize = cfg_.reg_lambda != 0.0 && cfg_.reg_beta != 0.0;
        for (size_t l = 0; l < layers_.size(); ++l) {
            Layer<Real>& layer = layers_[l];
            const Real* grad = workers_[0].layers[l].grad.data();
            const std::vector<uint8_t>& touched = workers_[0].layers[l].touched;
            const int O = layer.n_out;
            const int N = layer.n_in;
            if (zero_row_.size() < static_cast<size_t>(O)) zero_row_.assign(O, Real(0));
            std::vector<Real> scale(O, Real(0));
            if (regularize)
                for (int o = 0; o < O; ++o) scale[o] = regularization_scale(layer.square_sum[o] / Real(N), reg);
            const bool power_of_two_divisors = is_power_of_two(B) && is_power_of_two(cfg_.weight_limit);
            for_each_range(O, threads(), [&](int lo, int hi) {
                std::fill(layer.row_sum.begin() + lo, layer.row_sum.begin() + hi, Real(0));
                std::fill(layer.square_sum.begin() + lo, layer.square_sum.begin() + hi, Real(0));
                auto update_rows = [&](auto power_of_two_divisors) {
                    for (int i = 0; i < N; ++i) {
                        const size_t row = static_cast<size_t>(i) * O + lo;
                        // an untouched row is all +0: read the shared zero row instead (less traffic)
                        const Real* grad_row = touched[i] ? grad + row : zero_row_.data() + lo;
                        update_row<decltype(power_of_two_divisors)::value>(
                            layer.wt.data() + row, layer.moment1.data() + row, layer.moment2.data() + row, grad_row,
                            scale.data() + lo, layer.row_sum.data() + lo, layer.square_sum.data() + lo, hi - lo,
                            Real(B), reg, adam);
                    }
                };
                if (power_of_two_divisors) update_rows(std::true_type());
                else update_rows(std::false_type());
            });
        }
    }
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const NetConfig& config, bool float64)
{
    if (float64) return std::make_unique<CpuEngine<double>>(config);
    return std::make_unique<CpuEngine<float>>(config);
}

}  // namespace hm2bp
