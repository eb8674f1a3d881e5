// What a network is, independent of any backend: its layers (a connection kind, a shape and a
// threshold each), the hyperparameters shared by all layers, and where each trainable layer's
// parameters lie in one flat buffer. Both engines are built from a NetSpec; Python builds it
// (python/hm2bp/layers.py) after validating it with user-facing messages (python/hm2bp/hyper.py),
// so check_spec here only guards memory safety.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace hm2bp {

// How a layer's inputs reach its LIF population (SPEC 1; SPEC_CNN 1-2; SPEC_SPEECH 3: a
// recurrent reservoir with fixed input and recurrent weights, set with Engine::set_fixed).
enum class LayerKind { Dense, Conv2d, Pool2d, Reservoir };

// Channels x height x width. A flat population of n neurons is (n, 1, 1); neuron (c, x, y) has
// the flat index (c * height + x) * width + y (SPEC_CNN notation).
struct Shape {
    int channels = 1;
    int height = 1;
    int width = 1;
    int64_t size() const { return int64_t(channels) * height * width; }
};

struct LayerSpec {
    LayerKind kind = LayerKind::Dense;
    int units = 0;    // Dense, Reservoir: neurons; Conv2d: output channels; Pool2d: unused
    int kernel = 0;   // Conv2d, Pool2d: window size
    int padding = 0;  // Conv2d: zero padding
    int stride = 0;   // Pool2d: window step (0: the window size)
    double vth = 0.0;
};

// The hyperparameters of SPEC 1-5 shared by every layer, with the paper's defaults: the one
// place they are declared. bindings.cpp exposes every field under the same name, and Python's
// schema (python/hm2bp/hyper.py) reads the defaults from there.
#define HM2BP_HYPER_FIELDS(X)                                                              \
    X(double, tau_m, 64.0)                                                                 \
    X(double, tau_s, 8.0)                                                                  \
    X(int, t_ref, 2)                                                                       \
    X(double, lateral_inhibition, 1.0) /* w0 of the output layer; 0 switches it off */     \
    X(int, desired, 35)                                                                    \
    X(int, undesired, 5)                                                                   \
    X(int, margin, 5)                                                                      \
    X(bool, effect_ratio, true)                                                            \
    X(bool, adam, true) /* else SGD with momentum */                                       \
    X(double, reg_lambda, 10.0)                                                            \
    X(double, reg_beta, 0.04)                                                              \
    X(double, weight_limit, 8.0)                                                           \
    X(double, momentum, 0.9)                                                               \
    X(double, b1, 0.9)                                                                     \
    X(double, b2, 0.999)                                                                   \
    X(double, eps, 1e-8)                                                                   \
    X(int, threads, 1)

struct Hyper {
#define HM2BP_DECLARE_FIELD(type, name, value) type name = value;
    HM2BP_HYPER_FIELDS(HM2BP_DECLARE_FIELD)
#undef HM2BP_DECLARE_FIELD
};

struct NetSpec {
    Shape input;
    std::vector<LayerSpec> layers;
    Hyper hyper;
};

// Layers with weights that the optimizer steps (a parameter block each).
inline bool is_trainable(LayerKind kind) { return kind == LayerKind::Dense || kind == LayerKind::Conv2d; }

// Layers whose weights are fixed: the backward pass stops above them (SPEC_SPEECH 3.6), so the
// layer above needs no pre_delta and no layer below them learns.
inline bool is_fixed(LayerKind kind) { return kind == LayerKind::Reservoir; }

// A pooling layer's window step: its stride, or the window size when the spec gives 0.
inline int pool_stride(const LayerSpec& layer) { return layer.stride > 0 ? layer.stride : layer.kernel; }

// The population a layer produces from an input of shape `in` (SPEC_CNN 1: D = H - K + 1 + 2P,
// stride 1; SPEC_CNN 2: D = ceil(H / stride), channels kept).
inline Shape output_shape(const Shape& in, const LayerSpec& layer)
{
    switch (layer.kind) {
        case LayerKind::Dense:
        case LayerKind::Reservoir: return {layer.units, 1, 1};
        case LayerKind::Conv2d:
            return {layer.units, in.height - layer.kernel + 1 + 2 * layer.padding,
                    in.width - layer.kernel + 1 + 2 * layer.padding};
        case LayerKind::Pool2d: {
            const int stride = pool_stride(layer);
            return {in.channels, (in.height + stride - 1) / stride, (in.width + stride - 1) / stride};
        }
    }
    return {};
}

// Shapes of the input and of every layer's population: shapes[l] feeds layer l, shapes[l + 1]
// is its output.
inline std::vector<Shape> layer_shapes(const NetSpec& spec)
{
    std::vector<Shape> shapes{spec.input};
    for (const LayerSpec& layer : spec.layers) shapes.push_back(output_shape(shapes.back(), layer));
    return shapes;
}

// One trainable layer's parameters in the flat buffer, in their canonical order: Dense
// (n_out, n_in) row-major, Conv2d (out_channels, in_channels, k, k) (SPEC_CNN 1).
struct ParamBlock {
    int layer = 0;
    std::vector<int64_t> shape;
    int64_t offset = 0;
    int64_t size = 0;
};

inline std::vector<ParamBlock> param_layout(const NetSpec& spec)
{
    const std::vector<Shape> shapes = layer_shapes(spec);
    std::vector<ParamBlock> blocks;
    int64_t offset = 0;
    for (size_t l = 0; l < spec.layers.size(); ++l) {
        const LayerSpec& layer = spec.layers[l];
        if (!is_trainable(layer.kind)) continue;
        ParamBlock block;
        block.layer = static_cast<int>(l);
        if (layer.kind == LayerKind::Dense) block.shape = {layer.units, shapes[l].size()};
        else block.shape = {layer.units, shapes[l].channels, layer.kernel, layer.kernel};
        block.size = 1;
        for (int64_t n : block.shape) block.size *= n;
        block.offset = offset;
        offset += block.size;
        blocks.push_back(block);
    }
    return blocks;
}

// Memory-safety checks only (hm2bp/hyper.py and layers.py give the user-facing messages).
inline void check_spec(const NetSpec& spec)
{
    auto fail = [](const std::string& what) { throw std::invalid_argument("network spec: " + what); };
    if (spec.layers.empty()) fail("needs at least one layer");
    Shape in = spec.input;
    if (in.channels < 1 || in.height < 1 || in.width < 1) fail("input shape must be positive");
    for (const LayerSpec& layer : spec.layers) {
        if ((layer.kind == LayerKind::Dense || layer.kind == LayerKind::Reservoir) && layer.units < 1)
            fail("a Dense or Reservoir layer needs at least one neuron");
        if (layer.kind == LayerKind::Conv2d && (layer.units < 1 || layer.kernel < 1 || layer.padding < 0))
            fail("a Conv2d layer needs channels >= 1, kernel >= 1, padding >= 0");
        if (layer.kind == LayerKind::Pool2d && (layer.kernel < 1 || layer.stride < 0))
            fail("a Pool2d layer needs size >= 1, stride >= 0");
        in = output_shape(in, layer);
        if (in.channels < 1 || in.height < 1 || in.width < 1) fail("a layer's output shape is empty");
    }
    if (spec.hyper.threads < 1) fail("threads must be >= 1");
}

}  // namespace hm2bp
