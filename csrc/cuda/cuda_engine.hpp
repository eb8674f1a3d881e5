// The CUDA engine: the Engine API of engine.hpp on one GPU. Plain C++ (no CUDA types), so that
// bindings.cpp includes it without nvcc; the kernels live in engine.cu and the .cuh files.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../model/engine.hpp"

namespace hm2bp {

// Throws std::runtime_error when no usable CUDA device is present.
std::unique_ptr<Engine> make_cuda_engine(const NetSpec& spec, bool float64);

// The GPU architectures compiled into this build (CMake's CUDA_ARCHITECTURES, e.g. "90-real").
std::vector<std::string> cuda_architectures();

// Name of device 0 when it can run this build's kernels, else "" (no driver, no GPU, or an
// architecture this build has no code for).
std::string cuda_device_name();

}  // namespace hm2bp
