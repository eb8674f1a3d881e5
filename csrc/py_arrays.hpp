// The numpy array types the bindings take: C-contiguous, converted on the way in.
#pragma once
#include <pybind11/numpy.h>

#include <cstdint>

namespace hm2bp {

using U8Array = pybind11::array_t<uint8_t, pybind11::array::c_style | pybind11::array::forcecast>;
using I64Array = pybind11::array_t<int64_t, pybind11::array::c_style | pybind11::array::forcecast>;
using F64Array = pybind11::array_t<double, pybind11::array::c_style | pybind11::array::forcecast>;
// float32 as it is (no conversion): taken where it is the engine's own precision
using F32Array = pybind11::array_t<float, pybind11::array::c_style>;

}  // namespace hm2bp
