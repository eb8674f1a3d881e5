// Python bindings: numpy arrays in, numpy arrays out. Validation with user-facing messages
// happens in python/hm2bp/network.py; the checks here only guard memory safety.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>

#include "hm2bp/bsa.hpp"
#include "hm2bp/encoding.hpp"
#include "model/augment_input.hpp"
#include "model/engine.hpp"
#include "py_arrays.hpp"

#ifdef HM2BP_WITH_CUDA
#include "cuda/cuda_engine.hpp"
#endif

namespace py = pybind11;
using namespace hm2bp;

namespace {


Param param_kind(const std::string& name)
{
    if (name == "weights") return Param::Weights;
    if (name == "moment1") return Param::Moment1;
    if (name == "moment2") return Param::Moment2;
    throw std::invalid_argument("unknown parameter '" + name + "'");
}

Mode mode_kind(const std::string& name)
{
    if (name == "infer") return Mode::Infer;
    if (name == "gradients") return Mode::Gradients;
    if (name == "train") return Mode::Train;
    throw std::invalid_argument("unknown mode '" + name + "'");
}

Reduce reduce_kind(const std::string& name)
{
    if (name == "mean") return Reduce::Mean;
    if (name == "sum") return Reduce::Sum;
    throw std::invalid_argument("reduce must be 'mean' or 'sum'");
}

// A learning call's labels (batch,), each in 0..n_out-1, and optional sample weights (batch,),
// held as arrays so that their data stay alive while the engine reads them.
struct LearningTargets {
    I64Array labels;
    F64Array weight_array;

    LearningTargets(const py::object& label_values, const py::object& weight_values, int64_t batch, int64_t n_out)
        : labels(I64Array::ensure(label_values))
    {
        if (!labels || labels.ndim() != 1 || labels.shape(0) != batch)
            throw std::invalid_argument("labels must have shape (batch,)");
        for (int64_t b = 0; b < batch; ++b)
            if (labels.data()[b] < 0 || labels.data()[b] >= n_out) throw std::invalid_argument("label out of range");
        if (weight_values.is_none()) return;
        weight_array = F64Array::ensure(weight_values);
        if (!weight_array || weight_array.ndim() != 1 || weight_array.shape(0) != batch)
            throw std::invalid_argument("sample_weights must have shape (batch,)");
        weights_ = weight_array.data();
    }
    const double* weights() const { return weights_; }  // null for ones

private:
    const double* weights_ = nullptr;
};

class PyEngine {
public:
    PyEngine(const NetSpec& spec, bool float64, const std::string& backend)
        : spec_(spec), shapes_(layer_shapes(spec)), blocks_(param_layout(spec)), float64_(float64)
    {
        check_spec(spec);
        if (backend == "cpu") {
            engine_ = make_cpu_engine(spec, float64);
        } else if (backend == "cuda") {
#ifdef HM2BP_WITH_CUDA
            engine_ = make_cuda_engine(spec, float64);
#else
            throw std::runtime_error("this hm2bp build has no CUDA support (no CUDA compiler at build time)");
#endif
        } else {
            throw std::invalid_argument("backend must be 'cpu' or 'cuda'");
        }
    }

    // A C-contiguous float32 array goes in as it is (the parameters of hm2bp.torch on a float32
    // network, every step), anything else as float64.
    void set_param(const std::string& kind, int block, const py::array& values)
    {
        if (py::isinstance<F32Array>(values)) {
            const auto f32 = py::reinterpret_borrow<F32Array>(values);
            check_block_array(block, f32);
            engine_->set_param(param_kind(kind), block, f32.data());
            return;
        }
        const F64Array f64 = F64Array::ensure(values);
        if (!f64) throw std::invalid_argument("parameter values must be a real array");
        check_block_array(block, f64);
        engine_->set_param(param_kind(kind), block, f64.data());
    }

    F64Array get_param(const std::string& kind, int block) const
    {
        F64Array out(block_at(block).shape);
        engine_->get_param(param_kind(kind), block, out.mutable_data());
        return out;
    }

    // Engine::share_weights as a writable (n_in, n_out) array whose base is `owner` (this
    // engine's Python object), so that the memory outlives no array or tensor viewing it.
    py::array share_weights(int block, const py::object& owner)
    {
        const std::vector<int64_t>& shape = block_at(block).shape;
        int64_t n_in = 1;
        for (size_t d = 1; d < shape.size(); ++d) n_in *= shape[d];
        void* data = engine_->share_weights(block);
        if (!data) throw std::invalid_argument("the " + engine_->device() + " engine cannot share its weights");
        const py::dtype dtype = float64_ ? py::dtype::of<double>() : py::dtype::of<float>();
        return py::array(dtype, {n_in, shape[0]}, {}, data, owner);
    }

    int64_t step() const { return engine_->step(); }
    void set_step(int64_t s) { engine_->set_step(s); }
    std::string device() const { return engine_->device(); }
    py::object weights_finite() const
    {
        const std::optional<bool> finite = engine_->weights_finite();
        return finite ? py::object(py::bool_(*finite)) : py::object(py::none());
    }

    py::dict run_dense(const U8Array& spikes, const std::string& mode, const py::object& labels,
                       const py::object& weights, double lr, bool want_spikes, const std::string& reduce,
                       const py::object& gradients_out, bool regularize)
    {
        if (spikes.ndim() != 3 || spikes.shape(2) != n_in())
            throw std::invalid_argument("spikes must have shape (batch, T, n_in)");
        InputBatch in;
        in.batch = static_cast<int>(spikes.shape(0));
        in.T = static_cast<int>(spikes.shape(1));
        in.n_in = static_cast<int>(spikes.shape(2));
        in.dense = spikes.data();
        return run(in, mode, labels, weights, lr, want_spikes, reduce, gradients_out, regularize);
    }

    // run_dense on a C-contiguous 0/1 byte array (batch, T, n_in) in CUDA device memory at
    // `pointer` (hm2bp.arrays checks what __cuda_array_interface__ describes).
    py::dict run_dense_device(uintptr_t pointer, int64_t batch, int64_t T, int64_t n, uintptr_t stream,
                              const std::string& mode, const py::object& labels, const py::object& weights,
                              double lr, bool want_spikes, const std::string& reduce,
                              const py::object& gradients_out, bool regularize)
    {
        if (pointer == 0 || batch < 1 || n != n_in() || T > std::numeric_limits<int>::max() ||
            batch > std::numeric_limits<int>::max())
            throw std::invalid_argument("device spikes must be a non-null (batch, T, n_in) array");
        InputBatch in;
        in.batch = static_cast<int>(batch);
        in.T = static_cast<int>(T);
        in.n_in = static_cast<int>(n);
        in.dense = reinterpret_cast<const uint8_t*>(pointer);
        in.dense_on_device = true;
        in.producer_stream = stream;
        return run(in, mode, labels, weights, lr, want_spikes, reduce, gradients_out, regularize);
    }

    py::dict run_images(const U8Array& images, int T, uint64_t seed, const I64Array& sample_index,
                        uint64_t epoch, const std::string& mode, const py::object& labels,
                        const py::object& weights, double lr, bool want_spikes, const std::string& reduce,
                        const py::object& gradients_out, bool regularize)
    {
        if (images.ndim() != 2 || images.shape(1) != n_in())
            throw std::invalid_argument("images must have shape (batch, n_in)");
        if (sample_index.ndim() != 1 || sample_index.shape(0) != images.shape(0))
            throw std::invalid_argument("sample_index must have one entry per image");
        InputBatch in;
        in.batch = static_cast<int>(images.shape(0));
        in.T = T;
        in.n_in = static_cast<int>(images.shape(1));
        in.images = images.data();
        in.sample_index = sample_index.data();
        in.seed = seed;
        in.epoch = epoch;
        return run(in, mode, labels, weights, lr, want_spikes, reduce, gradients_out, regularize);
    }

    // Train steps on consecutive batches of batch_size of images (n, n_in), Poisson-encoded by the
    // engine or, with augment (a dict of hm2bp.data.augment's parameters: mode, elastic_fix,
    // distortion, scale, rotation, sigma, field), warped first (Engine::train_steps). Per batch:
    // loss, layer_spikes (n_batches, L); per sample: counts, predictions; only the batches run
    // (fewer when a step left a weight non-finite).
    py::dict train_steps_images(const U8Array& images, int T, uint64_t seed, const I64Array& sample_index,
                                uint64_t epoch, const py::object& labels, const py::object& weights, double lr,
                                int batch_size, const py::object& augment)
    {
        if (images.ndim() != 2 || images.shape(1) != n_in())
            throw std::invalid_argument("images must have shape (n, n_in)");
        const int n = static_cast<int>(images.shape(0));
        if (sample_index.ndim() != 1 || sample_index.shape(0) != n)
            throw std::invalid_argument("sample_index must have one entry per image");
        if (T < 2 || T < spec_.hyper.desired) throw std::invalid_argument("T must be at least 2 and desired");
        if (batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
        const int64_t n_out = shapes_.back().size();
        const LearningTargets targets(labels, weights, n, n_out);
        StepsRequest req;
        req.input.batch = n;
        req.input.T = T;
        req.input.n_in = static_cast<int>(images.shape(1));
        req.input.images = images.data();
        req.input.sample_index = sample_index.data();
        req.input.seed = seed;
        req.input.epoch = epoch;
        req.labels = targets.labels.data();
        req.sample_weights = targets.weights();
        req.lr = lr;
        req.batch_size = batch_size;
        if (!augment.is_none()) {
            const py::dict a = augment.cast<py::dict>();
            AugmentInput in;
            in.mode = augment_mode(a["mode"].cast<std::string>());
            in.params = augment_params(image_side(images.shape(1)), a["elastic_fix"].cast<bool>(),
                                       a["distortion"].cast<double>(), a["scale"].cast<double>(),
                                       a["rotation"].cast<double>(), a["sigma"].cast<double>(), a["field"].cast<int>());
            req.augment = in;
        }
        std::vector<BatchResult> res;
        {
            py::gil_scoped_release release;
            res = engine_->train_steps(req);
        }
        const int L = n_layers();
        const int64_t k = static_cast<int64_t>(res.size());
        F64Array loss(k);
        I64Array layer_spikes({k, static_cast<int64_t>(L)});
        int64_t done = 0;
        for (int64_t j = 0; j < k; ++j) {
            loss.mutable_data()[j] = res[j].loss;
            std::copy(res[j].layer_spikes.begin(), res[j].layer_spikes.end(), layer_spikes.mutable_data() + j * L);
            done += static_cast<int64_t>(res[j].predictions.size());
        }
        I64Array counts({done, n_out}), predictions(done);
        for (int64_t j = 0, at = 0; j < k; at += static_cast<int64_t>(res[j].predictions.size()), ++j) {
            std::copy(res[j].counts.begin(), res[j].counts.end(), counts.mutable_data() + at * n_out);
            std::copy(res[j].predictions.begin(), res[j].predictions.end(), predictions.mutable_data() + at);
        }
        py::dict out;
        out["loss"] = loss;
        out["counts"] = counts;
        out["predictions"] = predictions;
        out["layer_spikes"] = layer_spikes;
        return out;
    }

    // analog (batch, n_in, frames), BSA-encoded by the engine (SPEC_SPEECH 2)
    py::dict run_analog(const F64Array& analog, int T, const std::string& mode, const py::object& labels,
                        const py::object& weights, double lr, bool want_spikes, const std::string& reduce,
                        const py::object& gradients_out, bool regularize)
    {
        if (analog.ndim() != 3 || analog.shape(1) != n_in() || analog.shape(2) < 1)
            throw std::invalid_argument("analog must have shape (batch, n_in, frames)");
        InputBatch in;
        in.batch = static_cast<int>(analog.shape(0));
        in.T = T;
        in.n_in = static_cast<int>(analog.shape(1));
        in.analog = analog.data();
        in.frames = static_cast<int>(analog.shape(2));
        return run(in, mode, labels, weights, lr, want_spikes, reduce, gradients_out, regularize);
    }

    // The fixed weights of Reservoir layer `layer`: input (n, n_in), recurrent (n, n).
    void set_fixed(int layer, const F64Array& input, const F64Array& recurrent)
    {
        const int64_t n = reservoir_size(layer);
        if (input.ndim() != 2 || input.shape(0) != n || input.shape(1) != shapes_[layer].size() ||
            recurrent.ndim() != 2 || recurrent.shape(0) != n || recurrent.shape(1) != n)
            throw std::invalid_argument("reservoir weights have the wrong shape");
        engine_->set_fixed(layer, input.data(), recurrent.data());
    }

    py::tuple get_fixed(int layer) const
    {
        const int64_t n = reservoir_size(layer);
        F64Array input({n, shapes_[layer].size()}), recurrent({n, n});
        engine_->get_fixed(layer, input.mutable_data(), recurrent.mutable_data());
        return py::make_tuple(input, recurrent);
    }

    void apply_gradients(const std::vector<F64Array>& sums, int64_t count, double lr)
    {
        if (sums.size() != blocks_.size())
            throw std::invalid_argument("apply_gradients needs one array per trainable layer");
        std::vector<const double*> pointers;
        for (size_t k = 0; k < sums.size(); ++k) {
            check_block_array(static_cast<int>(k), sums[k]);
            pointers.push_back(sums[k].data());
        }
        if (count < 1) throw std::invalid_argument("count must be >= 1");
        py::gil_scoped_release release;
        engine_->apply_gradients(pointers, count, lr);
    }

    // Engine::step_gradients from block_array arrays, read in place.
    void step_gradients(const py::sequence& grads, double lr)
    {
        if (grads.size() != blocks_.size())
            throw std::invalid_argument("step_gradients needs one array per trainable layer");
        std::vector<ParamValues> pointers;
        std::vector<uint8_t> stored;
        std::vector<py::array> keep;  // alive until the step is done
        for (size_t k = 0; k < blocks_.size(); ++k) {
            bool f32, native;
            keep.push_back(block_array(grads[k], k, "gradient", f32, native));
            if (f32) pointers.push_back(static_cast<const float*>(keep.back().data()));
            else pointers.push_back(static_cast<const double*>(keep.back().data()));
            stored.push_back(native);
        }
        py::gil_scoped_release release;
        engine_->step_gradients(pointers, stored, lr);
    }

private:
    NetSpec spec_;
    std::vector<Shape> shapes_;
    std::vector<ParamBlock> blocks_;
    bool float64_;
    std::unique_ptr<Engine> engine_;

    int64_t n_in() const { return spec_.input.size(); }
    int n_layers() const { return static_cast<int>(spec_.layers.size()); }

    int64_t reservoir_size(int layer) const
    {
        if (layer < 0 || layer >= n_layers() || spec_.layers[layer].kind != LayerKind::Reservoir)
            throw std::out_of_range("layer " + std::to_string(layer) + " is not a Reservoir layer");
        return shapes_[layer + 1].size();
    }

    const ParamBlock& block_at(int block) const
    {
        if (block < 0 || block >= static_cast<int>(blocks_.size()))
            throw std::out_of_range("parameter block index out of range");
        return blocks_[block];
    }

    void check_block_array(int block, const py::array& values) const
    {
        const std::vector<int64_t>& shape = block_at(block).shape;
        bool ok = values.ndim() == static_cast<py::ssize_t>(shape.size());
        for (size_t d = 0; ok && d < shape.size(); ++d) ok = values.shape(d) == shape[d];
        if (!ok) throw std::invalid_argument("parameter array has the wrong shape");
    }

    // Whether `a` (of a block's canonical shape (d0, d1, ...)) lies in share_weights' stored
    // layout: moving axis 0 last gives a C-contiguous array (a Dense layer's W.T memory).
    static bool in_stored_layout(const py::array& a)
    {
        py::ssize_t stride = a.itemsize() * a.shape(0);
        for (py::ssize_t d = a.ndim() - 1; d >= 1; --d) {
            if (a.shape(d) > 1 && a.strides(d) != stride) return false;
            stride *= a.shape(d);
        }
        return a.shape(0) == 1 || a.strides(0) == a.itemsize();
    }

    // A caller's float32 or float64 array of block k's canonical shape, C-contiguous or (CPU
    // engine) in the weights' stored layout (`stored`), else invalid_argument naming `what`.
    py::array block_array(const py::object& item, size_t k, const char* what, bool& f32, bool& stored) const
    {
        f32 = py::isinstance<py::array_t<float>>(item);
        const bool f64 = py::isinstance<py::array_t<double>>(item);
        auto a = py::reinterpret_borrow<py::array>(item);
        if (f32 || f64) check_block_array(static_cast<int>(k), a);
        const bool c_order = (f32 || f64) && (a.flags() & py::array::c_style);
        stored = (f32 || f64) && !c_order && engine_->device() == "cpu" && in_stored_layout(a);
        if (!(c_order || stored))
            throw std::invalid_argument(std::string(what) + " arrays must be float32 or float64, C-contiguous or "
                                        "(CPU engine) in the weights' stored layout");
        return a;
    }

    // Gradients mode's output arrays: new float64 ones, or the caller's (writable, block_array),
    // written in place.
    py::list gradient_arrays(const py::object& given, std::vector<ParamOut>& pointers,
                             std::vector<uint8_t>& stored) const
    {
        py::list arrays;
        if (given.is_none()) {
            for (const ParamBlock& block : blocks_) {
                F64Array a(block.shape);
                pointers.push_back(a.mutable_data());
                arrays.append(a);
            }
            return arrays;
        }
        const auto list = py::reinterpret_borrow<py::sequence>(given);
        if (list.size() != blocks_.size())
            throw std::invalid_argument("gradients_out needs one array per trainable layer");
        for (size_t k = 0; k < blocks_.size(); ++k) {
            bool f32, native;
            py::array a = block_array(list[k], k, "gradients_out", f32, native);
            if (!a.writeable()) throw std::invalid_argument("gradients_out arrays must be writable");
            if (f32) pointers.push_back(static_cast<float*>(a.mutable_data()));
            else pointers.push_back(static_cast<double*>(a.mutable_data()));
            stored.push_back(native);
            arrays.append(a);
        }
        return arrays;
    }

    py::dict run(const InputBatch& in, const std::string& mode, const py::object& labels,
                 const py::object& weights, double lr, bool want_spikes, const std::string& reduce,
                 const py::object& gradients_out, bool regularize)
    {
        if (in.T < 2) throw std::invalid_argument("T must be at least 2");
        BatchRequest req;
        req.input = in;
        req.mode = mode_kind(mode);
        req.reduce = reduce_kind(reduce);
        req.lr = lr;
        const int L = n_layers();
        const int64_t n_out = shapes_.back().size();
        std::optional<LearningTargets> targets;
        if (req.mode != Mode::Infer) {
            if (in.T < spec_.hyper.desired) throw std::invalid_argument("T must be at least desired when learning");
            targets.emplace(labels, weights, in.batch, n_out);
            req.labels = targets->labels.data();
            req.sample_weights = targets->weights();
        }
        py::list spike_arrays, gradients;
        if (want_spikes) {
            for (int l = 0; l < L; ++l) {
                py::array_t<bool> a({static_cast<int64_t>(in.batch), static_cast<int64_t>(in.T), shapes_[l + 1].size()});
                req.layer_spikes_out.push_back(reinterpret_cast<uint8_t*>(a.mutable_data()));
                spike_arrays.append(a);
            }
        }
        if (req.mode == Mode::Gradients) {
            if (regularize && req.reduce != Reduce::Mean)
                throw std::invalid_argument("regularize needs reduce='mean' (apply_gradients regularizes sums)");
            req.regularize = regularize;
            gradients = gradient_arrays(gradients_out, req.gradients_out, req.gradients_stored);
        }
        BatchResult res;
        {
            py::gil_scoped_release release;
            res = engine_->run(req);
        }
        py::dict out;
        out["loss"] = res.loss;
        I64Array counts({static_cast<int64_t>(in.batch), n_out});
        std::copy(res.counts.begin(), res.counts.end(), counts.mutable_data());
        out["counts"] = counts;
        out["predictions"] = I64Array(in.batch, res.predictions.data());
        out["layer_spikes"] = I64Array(L, res.layer_spikes.data());
        if (want_spikes) out["spikes"] = spike_arrays;
        if (req.mode == Mode::Gradients) out["gradients"] = gradients;
        return out;
    }
};

py::array_t<bool> encode_poisson(const U8Array& images, int T, uint64_t seed, const I64Array& sample_index,
                                 uint64_t epoch, int threads)
{
    if (images.ndim() != 2) throw std::invalid_argument("images must have shape (batch, n_in)");
    if (sample_index.ndim() != 1 || sample_index.shape(0) != images.shape(0))
        throw std::invalid_argument("sample_index must have one entry per image");
    const int B = static_cast<int>(images.shape(0));
    const int N = static_cast<int>(images.shape(1));
    py::array_t<bool> out({B, T, N});
    uint8_t* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
    const uint8_t* src = images.data();
    const int64_t* index = sample_index.data();
    {
        py::gil_scoped_release release;
        uint64_t thresholds[256];
        poisson_thresholds(thresholds);
#pragma omp parallel for num_threads(std::max(1, std::min(threads, B))) schedule(dynamic)
        for (int b = 0; b < B; ++b) {
            const uint8_t* pixels = src + static_cast<size_t>(b) * N;
            encode_sample(poisson_sample_key(seed, static_cast<uint64_t>(index[b]), epoch), T, N,
                          [&](int n) { return thresholds[pixels[n]]; }, dst + static_cast<size_t>(b) * T * N);
        }
    }
    return out;
}

// SPEC_SPEECH 2: BSA spike trains (batch, T, channels) of analog samples (batch, channels, frames).
py::array_t<bool> encode_bsa(const F64Array& analog, int T, int threads)
{
    if (analog.ndim() != 3) throw std::invalid_argument("analog must have shape (batch, channels, frames)");
    const int B = static_cast<int>(analog.shape(0)), C = static_cast<int>(analog.shape(1));
    const int F = static_cast<int>(analog.shape(2));
    py::array_t<bool> out({B, T, C});
    uint8_t* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
    const double* src = analog.data();
    {
        py::gil_scoped_release release;
        std::fill(dst, dst + static_cast<size_t>(B) * T * C, uint8_t(0));
        double k[kBsaTaps];
        bsa_kernel(k);
        constexpr int W = kBsaCpuLanes;
        const int groups = (C + W - 1) / W;
#pragma omp parallel for num_threads(threads) schedule(dynamic) collapse(2)
        for (int b = 0; b < B; ++b)
            for (int g = 0; g < groups; ++g)
                bsa_channels<W>(src + (static_cast<size_t>(b) * C + g * W) * F, F, std::min(W, C - g * W), F, T, k,
                                [&](int c, int t) { dst[(static_cast<size_t>(b) * T + t) * C + g * W + c] = 1; });
    }
    return out;
}

py::dict build_info()
{
    py::dict info;
    info["version"] = HM2BP_VERSION;
    info["threads"] = omp_get_max_threads();
#ifdef HM2BP_WITH_CUDA
    info["cuda_compiled"] = true;
    info["cuda_architectures"] = cuda_architectures();
    const std::string device = cuda_device_name();
    info["cuda_device"] = device.empty() ? py::object(py::none()) : py::object(py::str(device));
#else
    info["cuda_compiled"] = false;
    info["cuda_architectures"] = py::list();
    info["cuda_device"] = py::none();
#endif
    return info;
}

}  // namespace

void bind_augment(pybind11::module_&);

PYBIND11_MODULE(_core, m)
{
    m.doc() = "hm2bp compiled engine (CPU, and CUDA when built with it)";

    // An allocation the engine cannot make (a network, T or batch too large for the memory
    // left) is a MemoryError that says so, instead of pybind11's bare "std::bad_alloc".
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::bad_alloc&) {
            PyErr_SetString(PyExc_MemoryError,
                            "the engine could not allocate memory (std::bad_alloc): the network, T "
                            "or batch needs more memory than this process may use; use a smaller one");
        }
    });

    py::enum_<LayerKind>(m, "LayerKind")
        .value("Dense", LayerKind::Dense)
        .value("Conv2d", LayerKind::Conv2d)
        .value("Pool2d", LayerKind::Pool2d)
        .value("Reservoir", LayerKind::Reservoir);

    py::class_<Shape>(m, "Shape")
        .def(py::init<int, int, int>(), py::arg("channels"), py::arg("height"), py::arg("width"))
        .def_readwrite("channels", &Shape::channels)
        .def_readwrite("height", &Shape::height)
        .def_readwrite("width", &Shape::width)
        .def("size", &Shape::size)
        .def("__iter__", [](const Shape& s) { return py::iter(py::make_tuple(s.channels, s.height, s.width)); });

    py::class_<LayerSpec>(m, "LayerSpec")
        .def(py::init<>())
        .def_readwrite("kind", &LayerSpec::kind)
        .def_readwrite("units", &LayerSpec::units)
        .def_readwrite("kernel", &LayerSpec::kernel)
        .def_readwrite("padding", &LayerSpec::padding)
        .def_readwrite("stride", &LayerSpec::stride)
        .def_readwrite("vth", &LayerSpec::vth);

    py::class_<Hyper> hyper(m, "Hyper");
    hyper.def(py::init<>());
#define HM2BP_BIND_FIELD(type, name, value) hyper.def_readwrite(#name, &Hyper::name);
    HM2BP_HYPER_FIELDS(HM2BP_BIND_FIELD)
#undef HM2BP_BIND_FIELD
    m.def("hyper_defaults", []() {
        const Hyper h;
        py::dict d;
#define HM2BP_DEFAULT_FIELD(type, name, value) d[#name] = h.name;
        HM2BP_HYPER_FIELDS(HM2BP_DEFAULT_FIELD)
#undef HM2BP_DEFAULT_FIELD
        return d;
    });

    py::class_<NetSpec>(m, "NetSpec")
        .def(py::init<>())
        .def_readwrite("input", &NetSpec::input)
        .def_readwrite("layers", &NetSpec::layers)
        .def_readwrite("hyper", &NetSpec::hyper);

    m.def("output_shape", &output_shape, py::arg("input"), py::arg("layer"));
    m.def("param_shapes", [](const NetSpec& spec) {
        py::list shapes;
        for (const ParamBlock& block : param_layout(spec)) shapes.append(py::tuple(py::cast(block.shape)));
        return shapes;
    });

    py::class_<PyEngine>(m, "Engine")
        .def(py::init<const NetSpec&, bool, const std::string&>(), py::arg("spec"), py::arg("float64"),
             py::arg("backend"))
        .def("set_param", &PyEngine::set_param)
        .def("get_param", &PyEngine::get_param)
        .def_property("step", &PyEngine::step, &PyEngine::set_step)
        .def_property_readonly("device", &PyEngine::device)
        .def("weights_finite", &PyEngine::weights_finite)
        .def("share_weights", [](py::object self, int block) { return self.cast<PyEngine&>().share_weights(block, self); },
             py::arg("block"))
        .def("run_dense", &PyEngine::run_dense, py::arg("spikes"), py::arg("mode"), py::arg("labels"),
             py::arg("sample_weights"), py::arg("lr"), py::arg("want_spikes"), py::arg("reduce") = "mean",
             py::arg("gradients_out") = py::none(), py::arg("regularize") = false)
        .def("run_dense_device", &PyEngine::run_dense_device, py::arg("pointer"), py::arg("batch"), py::arg("T"),
             py::arg("n_in"), py::arg("stream"), py::arg("mode"), py::arg("labels"), py::arg("sample_weights"),
             py::arg("lr"), py::arg("want_spikes"), py::arg("reduce") = "mean",
             py::arg("gradients_out") = py::none(), py::arg("regularize") = false)
        .def("run_images", &PyEngine::run_images, py::arg("images"), py::arg("T"), py::arg("seed"),
             py::arg("sample_index"), py::arg("epoch"), py::arg("mode"), py::arg("labels"),
             py::arg("sample_weights"), py::arg("lr"), py::arg("want_spikes"), py::arg("reduce") = "mean",
             py::arg("gradients_out") = py::none(), py::arg("regularize") = false)
        .def("train_steps_images", &PyEngine::train_steps_images, py::arg("images"), py::arg("T"), py::arg("seed"),
             py::arg("sample_index"), py::arg("epoch"), py::arg("labels"), py::arg("sample_weights"), py::arg("lr"),
             py::arg("batch_size"), py::arg("augment") = py::none())
        .def("run_analog", &PyEngine::run_analog, py::arg("analog"), py::arg("T"), py::arg("mode"), py::arg("labels"),
             py::arg("sample_weights"), py::arg("lr"), py::arg("want_spikes"), py::arg("reduce") = "mean",
             py::arg("gradients_out") = py::none(), py::arg("regularize") = false)
        .def("set_fixed", &PyEngine::set_fixed, py::arg("layer"), py::arg("input"), py::arg("recurrent"))
        .def("get_fixed", &PyEngine::get_fixed, py::arg("layer"))
        .def("apply_gradients", &PyEngine::apply_gradients, py::arg("sums"), py::arg("count"), py::arg("lr"))
        .def("step_gradients", &PyEngine::step_gradients, py::arg("grads"), py::arg("lr"));

    m.def("encode_poisson", &encode_poisson, py::arg("images"), py::arg("T"), py::arg("seed"),
          py::arg("sample_index"), py::arg("epoch"), py::arg("threads"));
    m.def("encode_bsa", &encode_bsa, py::arg("analog"), py::arg("T"), py::arg("threads"));
    m.def("build_info", &build_info);
    m.def("cuda_available", []() {
#ifdef HM2BP_WITH_CUDA
        return !cuda_device_name().empty();
#else
        return false;
#endif
    });
    bind_augment(m);
}
