// The engine's C++ API: one abstract Engine over a NetSpec, implemented by the CPU engine (csrc/cpu/)
// and, when compiled with CUDA, the GPU engine (csrc/cuda/). Python reaches it through bindings.cpp.
//
// Three operations: forward (Infer), forward + loss + backward into gradient sums (Gradients),
// and an optimizer step from gradient sums (apply_gradients). Train is their composition, bit
// for bit: run(Train) == run(Gradients, sums) + apply_gradients(those sums, count = batch).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "augment_input.hpp"
#include "network_spec.hpp"

namespace hm2bp {

// Where a batch's input spikes come from: a dense 0/1 array, uint8 images that the engine
// Poisson-encodes itself (SPEC 2), or analog channels that it BSA-encodes (SPEC_SPEECH 2).
struct InputBatch {
    int batch = 0;
    int T = 0;
    int n_in = 0;
    const uint8_t* dense = nullptr;         // (batch, T, n_in)
    // dense is CUDA device memory (the CUDA engine reads it in place, no host round trip),
    // written on producer_stream (a cudaStream_t, 1 or 2 for the legacy / per-thread default
    // stream), which the engine's work is ordered after; the CPU engine refuses it.
    bool dense_on_device = false;
    uintptr_t producer_stream = 0;
    const uint8_t* images = nullptr;        // (batch, n_in)
    const int64_t* sample_index = nullptr;  // (batch,), with images
    uint64_t seed = 0;
    uint64_t epoch = 0;
    // or analog channels (batch, n_in, frames) that the engine BSA-encodes (SPEC_SPEECH 2)
    const double* analog = nullptr;
    int frames = 0;
};

enum class Mode { Infer, Gradients, Train };

// What Gradients mode writes to gradients_out: the batch mean, or the sum over the batch's
// samples (to be added across processes, then passed to apply_gradients).
enum class Reduce { Mean, Sum };

// A caller's array of one parameter block in its canonical layout (network_spec.hpp's
// ParamBlock), float64 or float32: the engine converts to and from its own precision, exactly
// when the array has the engine's (what lets hm2bp.torch hand its float32 tensors over as they are).
using ParamValues = std::variant<const double*, const float*>;
using ParamOut = std::variant<double*, float*>;

struct BatchResult {
    double loss = 0.0;                   // mean SPEC-3 cost, unweighted
    std::vector<int64_t> counts;         // (batch, n_out), before revival
    std::vector<int64_t> predictions;    // (batch,)
    std::vector<int64_t> layer_spikes;   // (n_layers,)
};

struct BatchRequest {
    InputBatch input;
    Mode mode = Mode::Infer;
    const int64_t* labels = nullptr;          // (batch,), needed unless Infer
    const double* sample_weights = nullptr;   // (batch,) or null for ones
    double lr = 0.0;                          // Train
    Reduce reduce = Reduce::Mean;             // Gradients
    // Gradients with Reduce::Mean: add SPEC 5's regularization gradient of the current weights,
    // so that gradients_out holds what a Train step would feed its optimizer (mean_gradient).
    bool regularize = false;
    std::vector<uint8_t*> layer_spikes_out;   // optional: per layer (batch, T, n_l) 0/1, flat order
    std::vector<ParamOut> gradients_out;      // Gradients: per trainable layer, canonical layout
    // per trainable layer: 1 when gradients_out[block] is in share_weights' stored layout instead
    // (the CPU engine; empty: all canonical)
    std::vector<uint8_t> gradients_stored;
};

// Training on consecutive batches in one call (Engine::train_steps): input holds all their
// samples (batch = the sequence's length); batch k is samples [k * batch_size, (k + 1) *
// batch_size), the last one possibly shorter, each one Train run as BatchRequest would make it.
struct StepsRequest {
    InputBatch input;
    int batch_size = 1;
    const int64_t* labels = nullptr;         // (input.batch,)
    const double* sample_weights = nullptr;  // (input.batch,) or null for ones
    double lr = 0.0;
    // With images: warp each (SPEC_CNN 5, its epoch's or its own map) and Poisson-encode its
    // rates (hm2bp.data.augment.encode_rates(augment(...))) instead of its pixels.
    std::optional<AugmentInput> augment;
};

// Parameter arrays of each trainable layer (param_layout order), in their canonical layout;
// read back as float64.
enum class Param { Weights, Moment1, Moment2 };

class Engine {
public:
    virtual ~Engine() = default;
    virtual void set_param(Param p, int block, ParamValues values) = 0;
    virtual void get_param(Param p, int block, double* values) const = 0;
    virtual int64_t step() const = 0;
    virtual void set_step(int64_t step) = 0;
    virtual BatchResult run(const BatchRequest& request) = 0;
    // The batches of `req` trained one after another, each exactly as run() trains it alone; one
    // result per batch. Stops after a batch whose step leaves a weight non-finite where
    // weights_finite tells (that batch's result is the last). This one runs each batch through
    // run(), augmenting and encoding its images on the host first; the CPU engine's prepares the
    // inputs of several batch-1 samples at once on its threads.
    virtual std::vector<BatchResult> train_steps(const StepsRequest& req);
    // SPEC 5 from gradient sums over `count` samples (one array per trainable layer, canonical
    // layout): batch mean, regularization, one Adam or SGD step; the step counter advances once.
    virtual void apply_gradients(const std::vector<const double*>& sums, int64_t count, double lr) = 0;
    // SPEC 5's step from gradients that already are what it feeds the optimizer (Gradients mode's
    // batch means with regularize: hm2bp.torch's .grad), one array per trainable layer in its
    // canonical layout or, where `stored` says so, in share_weights' stored layout: one Adam or
    // SGD step of each weight, nothing divided or added; the step counter advances once. The CPU
    // engine's (the only one that shares its weights with torch).
    virtual void step_gradients(const std::vector<ParamValues>& grads, const std::vector<uint8_t>& stored, double lr)
    {
        throw std::invalid_argument("the " + device() + " engine has no step_gradients: use apply_gradients");
    }
    // The fixed weights of Reservoir layer `layer` (its index among all layers): input (n, n_in)
    // and recurrent (n, n), row-major [post, pre]. Never changed by learning.
    virtual void set_fixed(int layer, const double* input, const double* recurrent) = 0;
    virtual void get_fixed(int layer, double* input, double* recurrent) const = 0;
    virtual std::string device() const = 0;
    // Whether every weight is finite, when the engine can tell at almost no cost (the CPU engine
    // from the column sums that its optimizer step and set_param(Weights) keep; a sum that
    // overflows counts as not finite); nullopt: not tracked, ask get_param.
    virtual std::optional<bool> weights_finite() const { return std::nullopt; }
    // The weights of trainable block `block` in the engine's own memory, which the caller may
    // read and write in place (hm2bp.torch's parameters): the CPU engine's stored layout, (n_in,
    // n_out) row-major, wt[i * n_out + o] = W[o, i] (a Conv2d's i = (c * k + y) * k + x),
    // allocated once for the engine's lifetime (set_param writes into it). From the first call on,
    // every run and apply_gradients first recomputes the column sums from that memory and refuses
    // a non-finite weight. Null where the weights are not in host memory (the CUDA engine).
    virtual void* share_weights(int block) { return nullptr; }
};

// Batch `first`.. of a sequence's input: its `count` samples' part of each array.
InputBatch batch_input(const InputBatch& in, int first, int count);

// train_steps' loop: run_batch(request, first sample) on each batch in order, until one leaves
// a weight non-finite.
template <class RunBatch>
std::vector<BatchResult> for_each_batch(const Engine& engine, const StepsRequest& req, RunBatch run_batch)
{
    std::vector<BatchResult> out;
    const int n = req.input.batch;
    for (int first = 0; first < n; first += req.batch_size) {
        BatchRequest batch;
        batch.mode = Mode::Train;
        batch.lr = req.lr;
        const int count = std::min(req.batch_size, n - first);
        batch.input = batch_input(req.input, first, count);
        batch.labels = req.labels + first;
        batch.sample_weights = req.sample_weights ? req.sample_weights + first : nullptr;
        out.push_back(run_batch(batch, first));
        if (engine.weights_finite() == std::optional<bool>(false)) break;
    }
    return out;
}

std::unique_ptr<Engine> make_cpu_engine(const NetSpec& spec, bool float64);

}  // namespace hm2bp
