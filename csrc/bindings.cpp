// Python bindings: numpy arrays in, numpy arrays out. Validation with user-facing messages
// happens in python/hm2bp/network.py; the checks here only guard memory safety.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <stdexcept>

#include "cpu/spike_train.hpp"
#include "engine.hpp"
#include "hm2bp/encoding.hpp"

#ifdef HM2BP_WITH_CUDA
#include "cuda/cuda_engine.hpp"
#endif

namespace py = pybind11;
using namespace hm2bp;

namespace {

using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

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

class PyEngine {
public:
    PyEngine(const NetConfig& config, bool float64, const std::string& backend) : config_(config)
    {
        if (backend == "cpu") {
            engine_ = make_cpu_engine(config, float64);
        } else if (backend == "cuda") {
#ifdef HM2BP_WITH_CUDA
            engine_ = make_cuda_engine(config, float64);
#else
            throw std::runtime_error("this hm2bp build has no CUDA support (no CUDA compiler at build time)");
#endif
        } else {
            throw std::invalid_argument("backend must be 'cpu' or 'cuda'");
        }
    }

    void set_param(const std::string& kind, int layer, const F64Array& values)
    {
        check_layer(layer);
        if (values.ndim() != 2 || values.shape(0) != config_.layers[layer + 1] || values.shape(1) != config_.layers[layer])
            throw std::invalid_argument("parameter array has the wrong shape");
        engine_->set_param(param_kind(kind), layer, values.data());
    }

    F64Array get_param(const std::string& kind, int layer) const
    {
        check_layer(layer);
        F64Array out({config_.layers[layer + 1], config_.layers[layer]});
        engine_->get_param(param_kind(kind), layer, out.mutable_data());
        return out;
    }

    int64_t step() const { return engine_->step(); }
    void set_step(int64_t s) { engine_->set_step(s); }
    std::string device() const { return engine_->device(); }

    py::dict run_dense(const U8Array& spikes, const std::string& mode, const py::object& labels,
                       const py::object& weights, double lr, bool want_spikes)
    {
        if (spikes.ndim() != 3 || spikes.shape(2) != config_.layers[0])
            throw std::invalid_argument("spikes must have shape (batch, T, n_in)");
        InputBatch in;
        in.batch = static_cast<int>(spikes.shape(0));
        in.T = static_cast<int>(spikes.shape(1));
        in.n_in = static_cast<int>(spikes.shape(2));
        in.dense = spikes.data();
        return run(in, mode, labels, weights, lr, want_spikes);
    }

    py::dict run_images(const U8Array& images, int T, uint64_t seed, const I64Array& sample_index,
                        uint64_t epoch, const std::string& mode, const py::object& labels,
                        const py::object& weights, double lr, bool want_spikes)
    {
        if (images.ndim() != 2 || images.shape(1) != config_.layers[0])
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
        return run(in, mode, labels, weights, lr, want_spikes);
    }

private:
    NetConfig config_;
    std::unique_ptr<Engine> engine_;

    void check_layer(int layer) const
    {
        if (layer < 0 || layer + 1 >= static_cast<int>(config_.layers.size()))
            throw std::out_of_range("layer index out of range");
    }

    py::dict run(const InputBatch& in, const std::string& mode, const py::object& labels,
                 const py::object& weights, double lr, bool want_spikes)
    {
        if (in.T < 2) throw std::invalid_argument("T must be at least 2");
        BatchRequest req;
        req.input = in;
        req.mode = mode_kind(mode);
        req.lr = lr;
        const int L = static_cast<int>(config_.layers.size()) - 1;
        const int n_out = config_.layers.back();
        I64Array label_array;
        F64Array weight_array;
        if (req.mode != Mode::Infer) {
            if (in.T < config_.desired) throw std::invalid_argument("T must be at least desired when learning");
            label_array = I64Array::ensure(labels);
            if (!label_array || label_array.ndim() != 1 || label_array.shape(0) != in.batch)
                throw std::invalid_argument("labels must have shape (batch,)");
            for (py::ssize_t b = 0; b < in.batch; ++b)
                if (label_array.data()[b] < 0 || label_array.data()[b] >= n_out)
                    throw std::invalid_argument("label out of range");
            req.labels = label_array.data();
            if (!weights.is_none()) {
                weight_array = F64Array::ensure(weights);
                if (!weight_array || weight_array.ndim() != 1 || weight_array.shape(0) != in.batch)
                    throw std::invalid_argument("sample_weights must have shape (batch,)");
                req.sample_weights = weight_array.data();
            }
        }
        py::list spike_arrays, gradient_arrays;
        if (want_spikes) {
            for (int l = 0; l < L; ++l) {
                py::array_t<bool> a({in.batch, in.T, config_.layers[l + 1]});
                req.layer_spikes_out.push_back(reinterpret_cast<uint8_t*>(a.mutable_data()));
                spike_arrays.append(a);
            }
        }
        if (req.mode == Mode::Gradients) {
            for (int l = 0; l < L; ++l) {
                F64Array a({config_.layers[l + 1], config_.layers[l]});
                req.gradients_out.push_back(a.mutable_data());
                gradient_arrays.append(a);
            }
        }
        BatchResult res;
        {
            py::gil_scoped_release release;
            res = engine_->run(req);
        }
        py::dict out;
        out["loss"] = res.loss;
        I64Array counts({in.batch, n_out});
        std::copy(res.counts.begin(), res.counts.end(), counts.mutable_data());
        out["counts"] = counts;
        out["predictions"] = I64Array(in.batch, res.predictions.data());
        out["layer_spikes"] = I64Array(L, res.layer_spikes.data());
        if (want_spikes) out["spikes"] = spike_arrays;
        if (req.mode == Mode::Gradients) out["gradients"] = gradient_arrays;
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
        for (int p = 0; p < 256; ++p) thresholds[p] = poisson_threshold(p);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (int b = 0; b < B; ++b) {
            uint8_t* sample = dst + static_cast<size_t>(b) * T * N;
            std::fill(sample, sample + static_cast<size_t>(T) * N, uint8_t(0));
            const uint64_t key = poisson_sample_key(seed, static_cast<uint64_t>(index[b]), epoch);
            for (int n = 0; n < N; ++n) {
                const int p = src[static_cast<size_t>(b) * N + n];
                if (p == 0) continue;
                const uint64_t nkey = poisson_neuron_key(key, static_cast<uint64_t>(n));
                for (int t = 1; t < T; ++t) sample[static_cast<size_t>(t) * N + n] = poisson_spike(nkey, t, thresholds[p]);
            }
        }
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

PYBIND11_MODULE(_core, m)
{
    m.doc() = "hm2bp compiled engine (CPU, and CUDA when built with it)";

    py::class_<NetConfig>(m, "NetConfig")
        .def(py::init<>())
        .def_readwrite("layers", &NetConfig::layers)
        .def_readwrite("vth", &NetConfig::vth)
        .def_readwrite("tau_m", &NetConfig::tau_m)
        .def_readwrite("tau_s", &NetConfig::tau_s)
        .def_readwrite("t_ref", &NetConfig::t_ref)
        .def_readwrite("w0", &NetConfig::w0)
        .def_readwrite("desired", &NetConfig::desired)
        .def_readwrite("undesired", &NetConfig::undesired)
        .def_readwrite("margin", &NetConfig::margin)
        .def_readwrite("effect_ratio", &NetConfig::effect_ratio)
        .def_readwrite("adam", &NetConfig::adam)
        .def_readwrite("reg_lambda", &NetConfig::reg_lambda)
        .def_readwrite("reg_beta", &NetConfig::reg_beta)
        .def_readwrite("weight_limit", &NetConfig::weight_limit)
        .def_readwrite("momentum", &NetConfig::momentum)
        .def_readwrite("threads", &NetConfig::threads);

    py::class_<PyEngine>(m, "Engine")
        .def(py::init<const NetConfig&, bool, const std::string&>(), py::arg("config"), py::arg("float64"),
             py::arg("backend"))
        .def("set_param", &PyEngine::set_param)
        .def("get_param", &PyEngine::get_param)
        .def_property("step", &PyEngine::step, &PyEngine::set_step)
        .def_property_readonly("device", &PyEngine::device)
        .def("run_dense", &PyEngine::run_dense, py::arg("spikes"), py::arg("mode"), py::arg("labels"),
             py::arg("sample_weights"), py::arg("lr"), py::arg("want_spikes"))
        .def("run_images", &PyEngine::run_images, py::arg("images"), py::arg("T"), py::arg("seed"),
             py::arg("sample_index"), py::arg("epoch"), py::arg("mode"), py::arg("labels"),
             py::arg("sample_weights"), py::arg("lr"), py::arg("want_spikes"));

    m.def("encode_poisson", &encode_poisson, py::arg("images"), py::arg("T"), py::arg("seed"),
          py::arg("sample_index"), py::arg("epoch"), py::arg("threads"));
    m.def("build_info", &build_info);
    m.def("cuda_available", []() {
#ifdef HM2BP_WITH_CUDA
        return !cuda_device_name().empty();
#else
        return false;
#endif
    });
}
