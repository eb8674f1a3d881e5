// The CPU engine: orchestration of SPEC sections 1-5 over a batch. Each layer is a connection
// (dense.hpp, conv2d.hpp, pool2d.hpp) feeding a LIF population (population.hpp); the output
// population adds the loss, the lateral factor and revival (output_layer.hpp); one optimizer
// steps all trainable layers (optimizer_step.hpp).
//
// Threads: a batch of at least two samples is split into min(batch, kSampleGroups) contiguous
// groups of samples, each with its own gradient accumulator, whatever the thread count; the
// threads take contiguous shares of the groups, each with its own scratch, zeroing its groups'
// sums and encoding its samples itself (one synchronisation per batch, robust on a busy
// machine), and the groups' sums are added in group order (by the step itself as it reads a
// wide layer's rows). So a batch's gradient sum, and with it the training, is the same bit for
// bit for any thread count.
// A single sample instead splits its encoding and spike lists (steps or neurons, joined in
// order), the neurons of each layer (forward, traces and S-PSP rows) or its active inputs
// (gradient rows, pre-deltas) among the threads, each result written by one thread or summed
// in a fixed order of parts (the conv backward); the S-PSP rows of a dense layer under the output
// layer are made beside the output layer's narrow work; the step splits a wide layer's rows.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../hm2bp/bsa.hpp"
#include "../hm2bp/encoding.hpp"
#include "../hm2bp/loss.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/engine.hpp"
#include "conv2d.hpp"
#include "dense.hpp"
#include "optimizer_step.hpp"
#include "output_layer.hpp"
#include "pool2d.hpp"
#include "population.hpp"
#include "reservoir.hpp"
#include "spike_train.hpp"
#include "threading.hpp"
#include "weights.hpp"

namespace hm2bp {
namespace {

// Groups of samples with a gradient accumulator each: the most threads a batch can keep busy.
// Fixed, so that the grouping (and the float sums) depend on the batch size only; more groups
// than threads cost one more pass over the touched gradient rows per extra group.
constexpr int kSampleGroups = 4;

// Samples whose inputs train_steps makes at once: enough to keep both threads busy for a while
// per wake-up, few enough that their spike lists stay in the cache (~60 KB each, mnist T = 400).
constexpr int kReadyBlock = 8;

// One worker's scratch of one layer.
template <class Real>
struct LayerWork {
    Population<Real> pop;
    Scratch<Real> scratch;
};

// What one thread needs to process samples on its own.
template <class Real>
struct Worker {
    std::vector<LayerWork<Real>> layers;
    SpikeTrain input;  // the input spikes of the sample it processes, encoded by it
};

// The gradient sums of one group of samples, per layer (trainable layers only), and its cost.
template <class Real>
struct SampleGroup {
    std::vector<GradientSum<Real>> grads;
    double cost = 0.0;
};

// The layer kinds of the CPU engine; visited at layer granularity (never inside a loop).
template <class Real>
using CpuLayer = std::variant<DenseLayer<Real>, Conv2dLayer<Real>, Pool2dLayer<Real>, ReservoirLayer<Real>>;

template <class Real>
class CpuEngine final : public Engine {
public:
    explicit CpuEngine(const NetSpec& spec) : spec_(spec), optimizer_(spec.hyper)
    {
        check_spec(spec);
        const std::vector<Shape> shapes = layer_shapes(spec);
        const int L = static_cast<int>(spec.layers.size());
        layers_.reserve(L);  // params_ points into the layers
        for (int l = 0; l < L; ++l) {
            const LayerSpec& s = spec.layers[l];
            if (s.kind == LayerKind::Dense) {
                const bool lateral = l == L - 1 && spec.hyper.lateral_inhibition != 0.0;
                layers_.emplace_back(DenseLayer<Real>(static_cast<int>(shapes[l].size()), s.units, s.vth, lateral));
                params_.push_back(&std::get<DenseLayer<Real>>(layers_.back()).weights);
            } else if (s.kind == LayerKind::Conv2d) {
                layers_.emplace_back(Conv2dLayer<Real>(conv_geometry(shapes[l], s), s.vth));
                params_.push_back(&std::get<Conv2dLayer<Real>>(layers_.back()).weights);
            } else if (s.kind == LayerKind::Pool2d) {
                layers_.emplace_back(Pool2dLayer<Real>(pool_geometry(shapes[l], s), s.vth));
                params_.push_back(nullptr);
            } else {
                layers_.emplace_back(ReservoirLayer<Real>(static_cast<int>(shapes[l].size()), s.units, s.vth));
                params_.push_back(nullptr);
            }
        }
        if (spec.layers.back().kind != LayerKind::Dense)
            throw std::invalid_argument("the output layer must be Dense");
        poisson_thresholds(thresholds_);
        bsa_kernel(bsa_kernel_);
    }

    // New weights come with their column sums: learning needs them, and weights_finite reads
    // them (hm2bp.torch asks after copying its parameters in every step).
    void set_param(Param p, int block, ParamValues values) override
    {
        weights(block).set(p, values, regularization_params(spec_.hyper));
    }
    void get_param(Param p, int block, double* values) const override
    {
        const_cast<CpuEngine*>(this)->weights(block).get(p, values);
    }

    void set_fixed(int layer, const double* input, const double* recurrent) override
    {
        reservoir(layer).set(input, recurrent);
    }
    void get_fixed(int layer, double* input, double* recurrent) const override
    {
        const_cast<CpuEngine*>(this)->reservoir(layer).get(input, recurrent);
    }

    int64_t step() const override { return optimizer_.step(); }
    void set_step(int64_t s) override { optimizer_.set_step(s); }
    std::string device() const override { return "cpu"; }

    BatchResult run(const BatchRequest& req) override
    {
        if (req.input.dense_on_device)
            throw std::invalid_argument("the CPU engine cannot read CUDA device memory; copy the spikes to the host");
        const InputBatch& in = req.input;
        const int B = in.batch;
        const int L = n_layers();
        const bool learn = req.mode != Mode::Infer;
        const int n_groups = std::min(B, kSampleGroups);
        const int n_workers = std::min(threads(), n_groups);
        // Shared weights' refresh on the batch region's own threads when it has several (below).
        const bool refresh_in_region = shared_ && n_workers > 1;
        if (!refresh_in_region) refresh_shared();
        const FlushDenormals flush;
        // One sample at a time: the threads share each layer's work instead.
        const int inner_threads = n_workers == 1 ? threads() : 1;
        prepare(in.T, n_workers, n_groups, learn);
        // A training run of one sample: its step follows, and may make the gradient rows itself.
        for (int l = 0; req.mode == Mode::Train && B == 1 && l < L; ++l)
            if (params_[l]) groups_[0].grads[l].may_defer = true;

        BatchResult res;
        const int n_out = output().n_out();
        res.counts.assign(static_cast<size_t>(B) * n_out, 0);
        res.predictions.assign(B, 0);
        std::vector<int64_t> sample_spikes(static_cast<size_t>(B) * L, 0);
        const SampleContext<Real> ctx = context();

        // A learning run of one sample on several threads whose output layer sits on a dense layer
        // (mnist-fc800): that layer's S-PSP rows and side sums, which need no deltas, are made while
        // the calling thread runs the output layer alone (forward, loss, backward: narrow work
        // that waking the other threads would cost more than), the other threads starting at once.
        const int below = L - 2;
        const bool overlap = learn && B == 1 && inner_threads > 1 && below >= 0 &&
                             std::holds_alternative<DenseLayer<Real>>(layers_[below]);
        auto forward_layer = [&](Worker<Real>& worker, int b, int l, const SpikeTrain* input, int n_threads) {
            LayerWork<Real>& w = worker.layers[l];
            std::visit([&](const auto& layer) { layer.forward(ctx, *input, w.pop, w.scratch, n_threads); },
                       layers_[l]);
            sample_spikes[static_cast<size_t>(b) * L + l] = w.pop.out.total();
            if (!req.layer_spikes_out.empty())
                w.pop.out.to_dense(req.layer_spikes_out[l] + static_cast<size_t>(b) * in.T * w.pop.out.N);
            return &w.pop.out;
        };
        // The output layer from its input on: counts, prediction, and when learning the loss and
        // its deltas; whether a backward pass follows.
        auto output_and_loss = [&](Worker<Real>& worker, SampleGroup<Real>& group, int b, const SpikeTrain* input,
                                   int n_threads) {
            input = forward_layer(worker, b, L - 1, input, n_threads);
            int64_t* counts = res.counts.data() + static_cast<size_t>(b) * n_out;
            for (int o = 0; o < n_out; ++o) counts[o] = input->count(o);
            res.predictions[b] = predicted_class(counts, n_out);
            if (!learn) return false;
            const int label = static_cast<int>(req.labels[b]);
            const double weight = req.sample_weights ? req.sample_weights[b] : 1.0;
            Population<Real>& top = worker.layers.back().pop;
            group.cost += output_layer_delta(ctx, top, label, weight, output().vth, output().lateral);
            return contributes_gradient(top);
        };
        auto process_sample = [&](Worker<Real>& worker, SampleGroup<Real>& group, int b) {
            encode_input(in, b, worker.input, inner_threads);
            const SpikeTrain* input = &worker.input;
            for (int l = 0; l < L - 1; ++l) input = forward_layer(worker, b, l, input, inner_threads);
            if (learn) index_by_neuron(worker, inner_threads);
            if (!overlap) {
                if (output_and_loss(worker, group, b, input, inner_threads))
                    backward(ctx, worker, group, worker.input, inner_threads);
                return;
            }
            const auto& dense = std::get<DenseLayer<Real>>(layers_[below]);
            LayerWork<Real>& w = worker.layers[below];
            const SpikeTrain& pre = below > 0 ? worker.layers[below - 1].pop.out : worker.input;
            dense.begin_backward(w.pop, pre, w.scratch);
            // ranges of 2 * spsp_row_block neurons (~60 fired: nearly full blocks of traces)
            const int chunk = 2 * spsp_row_block<Real>(), n_chunks = (dense.n_out() + chunk - 1) / chunk;
            std::atomic<int> next_chunk{0};
            bool learns = false;
#pragma omp parallel num_threads(inner_threads)
            {
                const FlushDenormals flush;
                if (omp_get_thread_num() == 0 && output_and_loss(worker, group, b, input, 1)) {
                    learns = true;
                    backward(ctx, worker, group, worker.input, 1, L - 1, L - 1);
                }
                dense.spsp_and_side(ctx, w.pop, pre, w.scratch, [&](int& lo, int& hi) {
                    const int k = next_chunk.fetch_add(1, std::memory_order_relaxed);
                    lo = k * chunk;
                    hi = std::min(dense.n_out(), lo + chunk);
                    return k < n_chunks;
                });
            }
            if (learns) backward(ctx, worker, group, worker.input, inner_threads, below, 0, below);
        };
        auto process = [&](int k) {
            const FlushDenormals flush;
            int g_lo, g_hi;
            split_range(n_groups, n_workers, k, 1, g_lo, g_hi);
            for (int g = g_lo; g < g_hi; ++g) {
                if (learn) clear_gradients(g, inner_threads);
                groups_[g].cost = 0.0;
                int lo, hi;
                split_range(B, n_groups, g, 1, lo, hi);
                for (int b = lo; b < hi; ++b) process_sample(workers_[k], groups_[g], b);
            }
        };
        if (n_workers == 1) {
            process(0);
        } else if (!refresh_in_region || !refresh_then_process(n_workers, process)) {
#pragma omp parallel for num_threads(n_workers) schedule(static, 1)
            for (int k = 0; k < n_workers; ++k) process(k);
        }

        double cost_sum = 0.0;
        for (int g = 0; g < n_groups; ++g) cost_sum += groups_[g].cost;
        res.loss = B > 0 ? cost_sum / B : 0.0;
        res.layer_spikes.assign(L, 0);
        for (int b = 0; b < B; ++b)
            for (int l = 0; l < L; ++l) res.layer_spikes[l] += sample_spikes[static_cast<size_t>(b) * L + l];

        if (req.mode == Mode::Gradients) {
            const Real divisor = req.reduce == Reduce::Mean ? Real(B) : Real(1);
            const bool regularize = req.regularize && regularization_params(spec_.hyper).active();
            for (int l = 0, block = 0; l < L; ++l) {
                if (!params_[l]) continue;
                const bool stored = !req.gradients_stored.empty() && req.gradients_stored.at(block);
                if (!stored) reduce_gradients(n_groups, l);  // the stored export adds the groups itself
                std::visit([&](auto* out) { export_gradient(l, n_groups, divisor, regularize, stored, out); },
                           req.gradients_out.at(block++));
            }
        } else if (req.mode == Mode::Train) {
            step_from_workers(B, req.lr, n_groups);
            for (int l = 0; l < L; ++l)
                if (params_[l]) groups_[0].grads[l].end_deferral();
        }
        return res;
    }

    // Batch-1 samples (and augmented batches of any size) have their inputs made ahead, a block
    // of samples at a time, one sample per thread: the encoding of a batch-1 sample split among
    // the threads woke the others for little work each (and augmentation ran on one), and every
    // sample's spikes are a function of its image, seed and indices alone, never of the weights.
    std::vector<BatchResult> train_steps(const StepsRequest& req) override
    {
        const InputBatch& in = req.input;
        if (req.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
        if (!in.images || (req.batch_size > 1 && !req.augment)) return Engine::train_steps(req);
        std::optional<AugmentEncoder> encoder;
        if (req.augment) encoder.emplace(*req.augment, in.seed, in.epoch);
        // whole batches of ~kReadyBlock samples
        const int block = req.batch_size * std::max(1, kReadyBlock / req.batch_size);
        if (static_cast<int>(ready_.size()) < block) ready_.resize(block);
        int ready_first = 0, ready_end = 0;
        struct Unset {
            SpikeTrain*& p;
            ~Unset() { p = nullptr; }
        } unset{ready_inputs_};
        return for_each_batch(*this, req, [&](const BatchRequest& batch, int first) {
            if (first >= ready_end) {
                ready_first = first;
                ready_end = std::min(in.batch, first + block);
                make_inputs(in, encoder ? &*encoder : nullptr, ready_first, ready_end);
            }
            ready_inputs_ = ready_.data() + (first - ready_first);
            return run(batch);
        });
    }

    void apply_gradients(const std::vector<const double*>& sums, int64_t count, double lr) override
    {
        refresh_shared();
        const FlushDenormals flush;
        if (static_cast<int>(sums.size()) != n_blocks())
            throw std::invalid_argument("apply_gradients needs one gradient array per trainable layer");
        prepare(T_, 1, 1, true);
        for (int l = 0, block = 0; l < n_layers(); ++l)
            if (params_[l]) take_gradient(l, sums[block++], false);
        step_from_workers(count, lr);
    }

    // The optimizer step from gradients that already are what it feeds on (hm2bp.torch's .grad):
    // an array in the weights' stored layout and the engine's precision is read in place; any
    // other (canonical layout, or the other precision, rounded to the engine's) is copied into
    // group 0's rows first.
    void step_gradients(const std::vector<ParamValues>& grads, const std::vector<uint8_t>& stored, double lr) override
    {
        // No refresh_shared: this step needs no column sums (it adds no regularization). Nor does
        // it keep them for weights it shares, whose sums the next run and apply_gradients
        // recompute anyway (refresh_shared), which also refuses a non-finite weight.
        const FlushDenormals flush;
        if (static_cast<int>(grads.size()) != n_blocks() || stored.size() != grads.size())
            throw std::invalid_argument("step_gradients needs one gradient array per trainable layer");
        prepare(T_, 1, 1, true);
        std::vector<WeightMatrix<Real>*> matrices;
        std::vector<GradientRows<Real>> rows;
        for (int l = 0, block = -1; l < n_layers(); ++l) {
            if (!params_[l]) continue;
            ++block;
            matrices.push_back(params_[l]);
            const auto* own = std::get_if<const Real*>(&grads[block]);
            if (own && stored[block]) {
                rows.push_back({*own, nullptr});
                continue;
            }
            std::visit([&](const auto* values) { take_gradient(l, values, stored[block]); }, grads[block]);
            rows.push_back(groups_[0].grads[l].rows());
        }
        typename Optimizer<Real>::Options options;
        options.regularize = false;
        options.column_sums = !shared_;
        optimizer_.apply(matrices, rows, 1, lr, threads(), options);
        sums_stale_ = shared_;
    }

    std::optional<bool> weights_finite() const override
    {
        // A non-finite weight makes its column sum non-finite (NaN, or inf from an overflow that
        // is as fatal). The sums are those of the weights set or stepped last, when Network asks
        // (right after set_param or a step; shared weights written since are checked by the
        // next run's refresh_shared), so this reads n_out values per layer; after step_gradients
        // on shared weights the sums are stale until then: no answer.
        if (sums_stale_) return std::nullopt;
        for (const WeightMatrix<Real>* p : params_) {
            if (!p) continue;
            for (const Real sum : p->row_sum)
                if (!std::isfinite(sum)) return false;
        }
        return true;
    }

    void* share_weights(int block) override
    {
        shared_ = true;
        return weights(block).wt.data();
    }

private:
    NetSpec spec_;
    std::vector<CpuLayer<Real>> layers_;
    std::vector<WeightMatrix<Real>*> params_;  // per layer: its weights, null for a pooling layer
    Optimizer<Real> optimizer_;
    std::vector<Worker<Real>> workers_;
    std::vector<SampleGroup<Real>> groups_;
    std::vector<Real> spsp_tables_;  // for the current T (spsp_tables)
    uint64_t thresholds_[256];
    double bsa_kernel_[kBsaTaps];
    int T_ = 0;
    bool shared_ = false;  // share_weights handed out the weights: the caller may have written them
    bool sums_stale_ = false;  // step_gradients left the shared weights' column sums to refresh_shared
    std::vector<SpikeTrain> ready_;          // train_steps: inputs made ahead (make_inputs)
    SpikeTrain* ready_inputs_ = nullptr;     // the current batch's, taken by encode_input

    int n_layers() const { return static_cast<int>(layers_.size()); }
    int n_blocks() const { return static_cast<int>(std::count_if(params_.begin(), params_.end(), [](auto* p) { return p; })); }
    int threads() const { return std::max(1, spec_.hyper.threads); }
    const DenseLayer<Real>& output() const { return std::get<DenseLayer<Real>>(layers_.back()); }

    // The weights of parameter block `block` (the trainable layers in order).
    WeightMatrix<Real>& weights(int block)
    {
        for (WeightMatrix<Real>* p : params_)
            if (p && block-- == 0) return *p;
        throw std::out_of_range("parameter block index out of range");
    }

    ReservoirLayer<Real>& reservoir(int layer)
    {
        if (layer < 0 || layer >= n_layers() || !std::holds_alternative<ReservoirLayer<Real>>(layers_[layer]))
            throw std::out_of_range("layer " + std::to_string(layer) + " is not a Reservoir layer");
        return std::get<ReservoirLayer<Real>>(layers_[layer]);
    }

    SampleContext<Real> context() const
    {
        SampleContext<Real> ctx;
        ctx.T = T_;
        ctx.spsp_tables = spsp_tables_.data();
        ctx.hyper = &spec_.hyper;
        return ctx;
    }

    void prepare(int T, int n_workers, int n_groups, bool learn)
    {
        if (T != T_) {
            T_ = T;
            spsp_tables_.assign(spsp_tables_size(T, spec_.hyper.t_ref), Real(0));
            spsp_tables(T, spec_.hyper.t_ref, spec_.hyper.tau_m, spec_.hyper.tau_s, spsp_tables_.data());
            workers_.clear();
        }
        if (static_cast<int>(workers_.size()) < n_workers) workers_.resize(n_workers);
        for (int k = 0; k < n_workers; ++k) workers_[k].layers.resize(layers_.size());
        if (static_cast<int>(groups_.size()) < n_groups) groups_.resize(n_groups);
        // zeroed where touched at the start of each learning run (clear_gradients); rows deferred
        // by a run that stopped before its step are forgotten
        for (int g = 0; learn && g < n_groups; ++g) {
            groups_[g].grads.resize(layers_.size());
            for (int l = 0; l < n_layers(); ++l) {
                if (!params_[l]) continue;
                groups_[g].grads[l].resize(*params_[l]);
                groups_[g].grads[l].end_deferral();
                groups_[g].grads[l].may_defer = false;
            }
        }
    }

    // Sample b's input spikes into `out`, on n_threads (a batch of one sample: its encoding and
    // spike lists split among the threads; else each worker encodes its own samples, one at a
    // time, just before their forward pass: no wake-up of its own, the spikes still in cache).
    void encode_input(const InputBatch& in, int b, SpikeTrain& out, int n_threads) const
    {
        if (ready_inputs_) {
            std::swap(out, ready_inputs_[b]);
        } else if (in.dense) {
            out.from_dense(in.dense + static_cast<size_t>(b) * in.T * in.n_in, in.T, in.n_in, n_threads);
        } else if (in.analog) {
            out.from_bsa(in.analog + static_cast<size_t>(b) * in.n_in * in.frames, in.frames, in.T, in.n_in,
                         bsa_kernel_);
        } else {
            const uint64_t key = poisson_sample_key(in.seed, static_cast<uint64_t>(in.sample_index[b]), in.epoch);
            out.from_image(in.images + static_cast<size_t>(b) * in.n_in, in.T, in.n_in, key, thresholds_, n_threads);
        }
    }

    // The input spikes of samples [lo, hi) of a sequence into ready_, one sample per thread: its
    // Poisson encoding (the lists encode_input makes on any number of threads), or with an
    // encoder its augmented rates' (as encode_rates(augment(...)), then from_dense).
    void make_inputs(const InputBatch& in, const AugmentEncoder* encoder, int lo, int hi)
    {
        const int n = hi - lo;
#pragma omp parallel num_threads(std::min(threads(), n)) if (n > 1 && threads() > 1)
        {
            AugmentEncoder::Scratch scratch;
            std::vector<uint8_t> dense;
#pragma omp for schedule(dynamic, 1)
            for (int s = lo; s < hi; ++s) {
                SpikeTrain& out = ready_[s - lo];
                const uint8_t* image = in.images + static_cast<size_t>(s) * in.n_in;
                if (encoder) {
                    dense.resize(static_cast<size_t>(in.T) * in.n_in);
                    encoder->encode(image, in.sample_index[s], in.T, scratch, dense.data());
                    out.from_dense(dense.data(), in.T, in.n_in);
                } else {
                    const uint64_t key = poisson_sample_key(in.seed, static_cast<uint64_t>(in.sample_index[s]), in.epoch);
                    out.from_image(image, in.T, in.n_in, key, thresholds_);
                }
            }
        }
    }

    // refresh_shared and then process(k) on each of n_workers threads in one parallel region: a
    // separate region for the refresh woke the sleeping threads once more per batch (~0.14 ms of
    // a ~4.6 ms 784-800-10 batch-8 step on 2 threads, hm2bp.torch's every step). The sums are
    // complete at the barrier, before any sample's backward reads them. When a sum is not finite
    // nothing is processed: refresh_shared then refuses a non-finite weight, or (a sum that
    // overflowed from finite weights, which is no error) returns false for the caller to process
    // the batch as before.
    template <class Process>
    bool refresh_then_process(int n_workers, const Process& process)
    {
        sums_stale_ = false;
        const RegParams reg = regularization_params(spec_.hyper);
        bool finite = true;
#pragma omp parallel num_threads(n_workers)
        {
            const int k = omp_get_thread_num();
            {
                const KeepDenormals keep;  // run() flushes them; refresh_shared runs before it does
                for (int block = 0; block < n_blocks(); ++block) {
                    WeightMatrix<Real>& w = weights(block);
                    const int parts = w.refresh_parts(n_workers);
                    if (k < parts) w.refresh_part(reg, k, parts);
                }
            }
#pragma omp barrier
            bool ok = true;  // every thread reads the same sums: all go on, or none
            for (int block = 0; block < n_blocks() && ok; ++block) ok = weights(block).sums_finite();
            if (ok) process(k);
            else if (k == 0) finite = false;
        }
        if (!finite) refresh_shared();  // refuses a non-finite weight
        return finite;
    }

    // Shared weights may have been written since the engine last ran: their column sums anew,
    // and a non-finite weight refused as Network.set_weights refuses it (a sum that overflowed
    // from finite weights is no error here, as there).
    void refresh_shared()
    {
        if (!shared_) return;
        sums_stale_ = false;  // now, or an exception that the next run repeats
        const RegParams reg = regularization_params(spec_.hyper);
        for (int block = 0; block < n_blocks(); ++block)
            if (!weights(block).refresh_sums(reg, threads()) && !weights(block).all_finite())
                throw std::invalid_argument("weights[" + std::to_string(block) + "] contains NaN or infinite values");
    }

    // SPEC 4 from layer `top` (the output layer: all) down to layer `bottom`: adds g to the group's
    // gradient sums, propagates pre_delta. It stops above a fixed layer (SPEC_SPEECH 3.6), which
    // needs no pre_delta. Layer spsp_done (a dense layer, or none: -1) has its S-PSP rows and
    // side sums made already (DenseLayer::spsp_and_side).
    void backward(const SampleContext<Real>& ctx, Worker<Real>& worker, SampleGroup<Real>& group,
                  const SpikeTrain& input0, int n_threads, int top = -1, int bottom = 0, int spsp_done = -1) const
    {
        const int L = n_layers();
        for (int l = top < 0 ? L - 1 : top; l >= bottom && !is_fixed(spec_.layers[l].kind); --l) {
            LayerWork<Real>& w = worker.layers[l];
            if (l != L - 1) w.pop.lat.assign(w.pop.out.N, Real(1));
            const SpikeTrain& pre = l > 0 ? worker.layers[l - 1].pop.out : input0;
            const bool below_learns = l > 0 && !is_fixed(spec_.layers[l - 1].kind);
            std::vector<Real>* pre_delta = below_learns ? &worker.layers[l - 1].pop.delta : nullptr;
            std::visit(
                [&](const auto& layer) {
                    using Kind = std::decay_t<decltype(layer)>;
                    if constexpr (std::is_same_v<Kind, DenseLayer<Real>>)
                        layer.backward(ctx, w.pop, pre, pre_delta, group.grads[l], w.scratch, n_threads, l == spsp_done);
                    else if constexpr (!std::is_same_v<Kind, ReservoirLayer<Real>>)
                        layer.backward(ctx, w.pop, pre, pre_delta, group.grads[l], w.scratch, n_threads);
                },
                layers_[l]);
        }
    }

    // The by-neuron index of the layers' spikes that their forward pass left out (conv, pool:
    // only a backward pass reads it), those of one sample's layers side by side on the threads,
    // the most spikes first (serial, they were ~0.4 ms of a batch-1 mnist-cnn sample on 2 threads).
    static void index_by_neuron(Worker<Real>& worker, int n_threads)
    {
        std::vector<SpikeTrain*> trains;
        for (LayerWork<Real>& w : worker.layers)
            if (!w.pop.out.by_neuron) trains.push_back(&w.pop.out);
        std::sort(trains.begin(), trains.end(), [](const SpikeTrain* a, const SpikeTrain* b) { return a->total() > b->total(); });
        const int n = static_cast<int>(trains.size());
#pragma omp parallel for num_threads(std::min(n, n_threads)) schedule(dynamic, 1) if (n > 1 && n_threads > 1)
        for (int k = 0; k < n; ++k) trains[k]->index_by_neuron();
    }

    // Adds the other groups' gradient sums of layer l to group 0's, in group order. Only rows a
    // group touched: the others hold +0, and adding +0 to a sum that started at +0 changes nothing.
    // On one thread when the layer is small (a narrow output layer: waking another costs more).
    void reduce_gradients(int n_groups, int l)
    {
        if (n_groups > 1 && params_[l]) {
            GradientSum<Real>& total = groups_[0].grads[l];
            const int N = params_[l]->n_in, O = params_[l]->n_out;
            const bool split = static_cast<size_t>(N) * O >= kParallelClear;
#pragma omp parallel for num_threads(threads()) schedule(static) if (split)
            for (int i = 0; i < N; ++i) {
                const FlushDenormals flush;
                Real* row = total.row(i, O);
                for (int j = 1; j < n_groups; ++j) {
                    GradientSum<Real>& part = groups_[j].grads[l];
                    if (!part.touched[i]) continue;
                    const Real* part_row = part.row(i, O);
#pragma omp simd
                    for (int o = 0; o < O; ++o) row[o] += part_row[o];
                    total.touched[i] = 1;
                }
            }
        }
    }

    // Zeros the touched gradient rows of group g, by the worker that then adds its samples into
    // them, right before (no wake-up of its own; the rows still in its cache). A group beyond a
    // batch's is cleared when a batch uses it again; nothing reads it before.
    void clear_gradients(int g, int n_threads)
    {
        for (int l = 0; l < static_cast<int>(groups_[g].grads.size()); ++l)
            if (params_[l]) groups_[g].grads[l].clear(params_[l]->n_out, n_threads);
    }

    // The batch's gradient sums of layer l / divisor in the canonical (n_out, n_in) layout (group
    // 0's, after reduce_gradients), or with `stored` in the weights' own (n_in, n_out) one (no
    // transpose: hm2bp.torch's gradients of shared weights), with regularize what SPEC 5 adds to
    // them (mean_gradient) computed from the current weights and their column sums (current).
    // The stored layout adds the groups' sums itself, row by row as reduce_gradients adds them
    // (group 0's row, or +0 where untouched, then the other groups' touched rows in group order:
    // the same bits), so that the sums are read once and not written back; the rows are split
    // among the engine's threads (each element computed on its own: any thread count, the same).
    template <class Out>
    void export_gradient(int l, int n_groups, Real divisor, bool regularize, bool stored, Out* out) const
    {
        const WeightMatrix<Real>& w = *params_[l];
        const size_t O = static_cast<size_t>(w.n_out);
        auto write = [&](auto value) {
            if (!stored) {
                const Real* grad = groups_[0].grads[l].grad.data();
                return transpose_tiled(w.n_in, w.n_out, out, [&](int i, int o) { return value(grad[i * O + o], i, o); });
            }
            for_each_range(w.n_in, threads(), [&](int lo, int hi) {
                AlignedVector<Real> sum(O);
                for (int i = lo; i < hi; ++i) {
                    group_sum_row(l, n_groups, i, 0, w.n_out, sum.data());
                    Out* row = out + i * O;
                    const Real* s = sum.data();
#pragma omp simd
                    for (int o = 0; o < w.n_out; ++o) row[o] = value(s[o], i, o);
                }
            });
        };
        if (!regularize) {
            write([=](Real g, int, int) { return Out(g / divisor); });
            return;
        }
        const RegParams reg = regularization_params(spec_.hyper);
        std::vector<Real> scale(O);
        w.regularization_scales(reg, scale.data());
        const Real* wt = w.wt.data();
        const Real* sc = scale.data();
        write([=](Real g, int i, int o) { return Out(mean_gradient(g, divisor, wt[i * O + o], sc[o], reg)); });
    }

    // Columns [lo, hi) of row i of the batch's gradient sum of layer l into out, as
    // reduce_gradients adds it: group 0's row (or +0 where it is untouched), then the other
    // groups' touched rows in group order. The same bits, read once and not written back.
    void group_sum_row(int l, int n_groups, int i, int lo, int hi, Real* __restrict out) const
    {
        const size_t at = static_cast<size_t>(i) * params_[l]->n_out + lo;
        const GradientSum<Real>& g0 = groups_[0].grads[l];
        if (g0.touched[i]) std::copy(g0.grad.data() + at, g0.grad.data() + at + (hi - lo), out);
        else std::fill(out, out + (hi - lo), Real(0));
        for (int j = 1; j < n_groups; ++j) {
            const GradientSum<Real>& part = groups_[j].grads[l];
            if (!part.touched[i]) continue;
            const Real* part_row = part.grad.data() + at;
#pragma omp simd
            for (int o = 0; o < hi - lo; ++o) out[o] += part_row[o];
        }
    }

    // A caller's gradient array of layer l (canonical (n_out, n_in), or with `stored` the weights'
    // own (n_in, n_out) layout) into group 0's rows, in the engine's precision, every row touched.
    template <class Value>
    void take_gradient(int l, const Value* values, bool stored)
    {
        GradientSum<Real>& g = groups_[0].grads[l];
        const size_t N = static_cast<size_t>(params_[l]->n_in);
        if (stored)
            std::transform(values, values + g.grad.size(), g.grad.begin(), [](Value v) { return Real(v); });
        else
            transpose_tiled(params_[l]->n_out, params_[l]->n_in, g.grad.data(),
                            [values, N](int o, int i) { return Real(values[o * N + i]); });
        std::fill(g.touched.begin(), g.touched.end(), uint8_t(1));
    }

    // SPEC 5 from the first n_groups groups' gradient sums over `count` samples. A layer of wide
    // rows has its groups' rows added by the step as it reads each row (group_sum_row, on the
    // step's threads; ~2 MB a batch of 32 not written back and read again, one wake-up fewer),
    // a narrow one (the output layer, a convolution's) into group 0's by reduce_gradients first:
    // the step's per-row call would cost more than the rows (kMinDeferredRow).
    void step_from_workers(int64_t count, double lr, int n_groups = 1)
    {
        const int L = n_layers();
        std::vector<WeightMatrix<Real>*> matrices;
        std::vector<GradientRows<Real>> sums;
        std::vector<std::vector<uint8_t>> touched(L);  // rows any group touched
        std::vector<std::function<void(int, int, int, Real*)>> added(L);
        for (int l = 0; l < L; ++l) {
            if (!params_[l]) continue;
            matrices.push_back(params_[l]);
            if (n_groups <= 1 || params_[l]->n_out < kMinDeferredRow) {
                reduce_gradients(n_groups, l);
                sums.push_back(groups_[0].grads[l].rows());
                continue;
            }
            touched[l] = groups_[0].grads[l].touched;
            for (int j = 1; j < n_groups; ++j)
                for (size_t i = 0; i < touched[l].size(); ++i) touched[l][i] |= groups_[j].grads[l].touched[i];
            added[l] = [this, l, n_groups](int i, int lo, int hi, Real* out) {
                group_sum_row(l, n_groups, i, lo, hi, out);
            };
            sums.push_back({groups_[0].grads[l].grad.data(), touched[l].data(), &added[l]});
        }
        optimizer_.apply(matrices, sums, count, lr, threads());
    }
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const NetSpec& spec, bool float64)
{
    if (float64) return std::make_unique<CpuEngine<double>>(spec);
    return std::make_unique<CpuEngine<float>>(spec);
}

}  // namespace hm2bp
