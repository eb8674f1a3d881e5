// The engine's C++ API: one abstract Engine, implemented by the CPU engine (cpu/) and, when
// compiled with CUDA, the GPU engine (cuda/). Python reaches it through bindings.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hm2bp {

struct NetConfig {
    std::vector<int> layers;   // neuron counts, input layer first
    std::vector<double> vth;   // one per weight layer
    double tau_m = 64.0;
    double tau_s = 8.0;
    int t_ref = 2;
    double w0 = 1.0;           // lateral inhibition of the output layer; 0 switches it off
    int desired = 35;
    int undesired = 5;
    int margin = 5;
    bool effect_ratio = true;
    bool adam = true;          // else SGD with momentum
    double reg_lambda = 10.0;
    double reg_beta = 0.04;
    double weight_limit = 8.0;
    double momentum = 0.9;
    double b1 = 0.9;
    double b2 = 0.999;
    double eps = 1e-8;
    int threads = 1;
};

// Where a batch's input spikes come from: a dense 0/1 array, or uint8 images that the
// engine Poisson-encodes itself (SPEC 2).
struct InputBatch {
    int batch = 0;
    int T = 0;
    int n_in = 0;
    const uint8_t* dense = nullptr;         // (batch, T, n_in)
    const uint8_t* images = nullptr;        // (batch, n_in)
    const int64_t* sample_index = nullptr;  // (batch,), with images
    uint64_t seed = 0;
    uint64_t epoch = 0;
};

enum class Mode { Infer, Gradients, Train };

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
    double lr = 0.0;
    std::vector<uint8_t*> layer_spikes_out;   // optional: per layer (batch, T, n_l) 0/1
    std::vector<double*> gradients_out;       // Gradients mode: per layer (n_out, n_in)
};

// Parameter arrays kept per weight layer, exchanged as float64 (n_out, n_in) row-major.
enum class Param { Weights, Moment1, Moment2 };

class Engine {
public:
    virtual ~Engine() = default;
    virtual void set_param(Param p, int layer, const double* values) = 0;
    virtual void get_param(Param p, int layer, double* values) const = 0;
    virtual int64_t step() const = 0;
    virtual void set_step(int64_t step) = 0;
    virtual BatchResult run(const BatchRequest& request) = 0;
    virtual std::string device() const = 0;
};

std::unique_ptr<Engine> make_cpu_engine(const NetConfig& config, bool float64);

}  // namespace hm2bp
