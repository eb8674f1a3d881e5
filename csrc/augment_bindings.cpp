// Bindings of the augmentation (SPEC_CNN 5, hm2bp/augment.hpp) and of the Poisson encoding of
// real-valued rates. User-facing validation is in python/hm2bp/augment.py; the checks here only
// guard memory safety.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "hm2bp/augment.hpp"
#include "hm2bp/encoding.hpp"
#include "model/augment_input.hpp"
#include "py_arrays.hpp"

namespace py = pybind11;
using namespace hm2bp;

namespace {

py::array augment_rates(const U8Array& images, uint64_t seed, uint64_t epoch, const I64Array& sample_index,
                        const std::string& mode, bool elastic_fix, double distortion, double scale,
                        double rotation, double sigma, int field, int threads, bool float64)
{
    if (images.ndim() != 2) throw std::invalid_argument("images must have shape (batch, S*S)");
    if (sample_index.ndim() != 1 || sample_index.shape(0) != images.shape(0))
        throw std::invalid_argument("sample_index must have one entry per image");
    const AugmentMode m = augment_mode(mode);
    const AugmentParams p =
        augment_params(image_side(images.shape(1)), elastic_fix, distortion, scale, rotation, sigma, field);
    const int B = static_cast<int>(images.shape(0));
    const int n = p.size * p.size;
    F64Array out({B, n});
    double* rates = out.mutable_data();
    const uint8_t* src = images.data();
    const int64_t* index = sample_index.data();
    {
        py::gil_scoped_release release;
        // Epoch mode: one map for the whole batch (and for the batches after it in the epoch).
        const AugmentEncoder encoder({p, m}, seed, epoch);
#pragma omp parallel num_threads(std::max(1, std::min(threads, B)))
        {
            AugmentEncoder::Scratch scratch;
#pragma omp for schedule(dynamic)
            for (int b = 0; b < B; ++b)
                encoder.warp(src + static_cast<size_t>(b) * n, index[b], scratch, rates + static_cast<size_t>(b) * n);
        }
    }
    if (float64) return std::move(out);
    return py::array(out.attr("astype")("float32"));
}

py::tuple displacement_map_py(uint64_t seed, uint64_t epoch, uint64_t sample_id, const std::string& mode, int size,
                              bool elastic_fix, double distortion, double scale, double rotation, double sigma,
                              int field)
{
    const AugmentMode m = augment_mode(mode);
    const AugmentParams p = augment_params(size, elastic_fix, distortion, scale, rotation, sigma, field);
    F64Array disp_h({size, size}), disp_v({size, size});
    std::vector<double> r(2 * size * size);
    displacement_map(p, gaussian_kernel(p).data(), augment_key(seed, epoch, m, sample_id), r.data(),
                     disp_h.mutable_data(), disp_v.mutable_data());
    return py::make_tuple(disp_h, disp_v);
}

// Same keys as _core.encode_poisson: a rate of exactly p / (5.5 * 255) gives its spikes bit for bit.
py::array_t<bool> encode_rates(const F64Array& rates, int T, uint64_t seed, const I64Array& sample_index,
                               uint64_t epoch, int threads)
{
    if (rates.ndim() != 2) throw std::invalid_argument("rates must have shape (batch, n_in)");
    if (sample_index.ndim() != 1 || sample_index.shape(0) != rates.shape(0))
        throw std::invalid_argument("sample_index must have one entry per sample");
    if (T < 1) throw std::invalid_argument("T must be >= 1");
    const int B = static_cast<int>(rates.shape(0));
    const int N = static_cast<int>(rates.shape(1));
    py::array_t<bool> out({B, T, N});
    uint8_t* dst = reinterpret_cast<uint8_t*>(out.mutable_data());
    const double* src = rates.data();
    const int64_t* index = sample_index.data();
    {
        py::gil_scoped_release release;
#pragma omp parallel for num_threads(std::max(1, std::min(threads, B))) schedule(dynamic)
        for (int b = 0; b < B; ++b) {
            const uint64_t key = poisson_sample_key(seed, static_cast<uint64_t>(index[b]), epoch);
            encode_rates_sample(src + static_cast<size_t>(b) * N, key, T, N, dst + static_cast<size_t>(b) * T * N);
        }
    }
    return out;
}

}  // namespace

void bind_augment(py::module_& m)
{
    m.def("augment_rates", &augment_rates, py::arg("images"), py::arg("seed"), py::arg("epoch"),
          py::arg("sample_index"), py::arg("mode"), py::arg("elastic_fix"), py::arg("distortion"), py::arg("scale"),
          py::arg("rotation"), py::arg("sigma") = 4.0, py::arg("field") = 21, py::arg("threads") = 1,
          py::arg("float64") = true);
    m.def("displacement_map", &displacement_map_py, py::arg("seed"), py::arg("epoch"), py::arg("sample_id"),
          py::arg("mode"), py::arg("size"), py::arg("elastic_fix"), py::arg("distortion"), py::arg("scale"),
          py::arg("rotation"), py::arg("sigma") = 4.0, py::arg("field") = 21);
    m.def("encode_rates", &encode_rates, py::arg("rates"), py::arg("T"), py::arg("seed"), py::arg("sample_index"),
          py::arg("epoch"), py::arg("threads"));
}
