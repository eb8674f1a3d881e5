// CUDA error checks that throw, an owning device array that only grows, and the size arithmetic
// of the launches.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace hm2bp {
namespace cuda {

inline void check(cudaError_t err, const char* what, const char* file, int line)
{
    if (err == cudaSuccess) return;
    throw std::runtime_error(std::string("hm2bp CUDA engine: ") + what + " failed (" + file + ":" +
                             std::to_string(line) + "): " + cudaGetErrorName(err) + ": " +
                             cudaGetErrorString(err));
}

#define HM2BP_CUDA_CHECK(call) ::hm2bp::cuda::check((call), #call, __FILE__, __LINE__)

inline size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }
inline size_t round_up(size_t a, size_t b) { return div_up(a, b) * b; }
inline int words_for(int n) { return (n + 31) / 32; }  // 32-bit words of a bit mask of n bits

// A device array of T. ensure(n) makes room for n elements, dropping the old contents when it
// has to reallocate: the engine sizes its per-batch buffers this way and rewrites them each run.
template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { release(); }

    void ensure(size_t n)
    {
        if (n <= capacity_) return;
        release();
        HM2BP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), n * sizeof(T)));
        capacity_ = n;
    }

    T* get() const { return data_; }
    size_t capacity() const { return capacity_; }

private:
    T* data_ = nullptr;
    size_t capacity_ = 0;

    void release()
    {
        if (data_) cudaFree(data_);  // no throw from a destructor; a failed free leaks at worst
        data_ = nullptr;
        capacity_ = 0;
    }
};

}  // namespace cuda
}  // namespace hm2bp
