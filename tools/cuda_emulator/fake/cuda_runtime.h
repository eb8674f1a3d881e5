// A host-memory stand-in for the CUDA runtime API subset the hm2bp CUDA engine uses, for
// running its kernels under the SIMT emulator (simt.hpp) on a machine without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <utility>

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
constexpr unsigned cudaEventDisableTiming = 2;
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2, cudaMemoryTypeManaged = 3 };
struct cudaPointerAttributes {
    cudaMemoryType type;
    int device;
    void* devicePointer;
    void* hostPointer;
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
constexpr unsigned cudaStreamNonBlocking = 1;

struct cudaDeviceProp {
    char name[256];
    int multiProcessorCount;
    size_t sharedMemPerBlockOptin;
    int major, minor;
};
struct cudaFuncAttributes { int maxThreadsPerBlock; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline const char* cudaGetErrorName(cudaError_t e)
{
    return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorInvalidValue ? "cudaErrorInvalidValue" : "cudaErrorEmulated";
}
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

namespace simt_rt {
// What cudaPointerGetAttributes reports: the allocations of cudaMalloc (device 0), and host
// memory a test declares device memory of some device (simt_register_memory, below).
struct Region {
    size_t size;
    int device;
    cudaMemoryType type;
};
inline std::map<const char*, Region> g_regions;
inline const void* g_waited_stream = nullptr;      // the stream the last event was recorded on
inline std::map<const void*, int> g_smem_limits;  // cudaFuncAttributeMaxDynamicSharedMemorySize
inline size_t smem_optin()
{
    const char* smem = std::getenv("SIMT_SMEM_OPTIN");  // small: masked sums split into chunks
    return smem ? std::strtoul(smem, nullptr, 10) : 232448;
}
}  // namespace simt_rt

// For tests (through ctypes): host memory [p, p + n) counts as `type` memory of `device` until
// unregistered; and the stream of the last event a stream waited on (0 for none).
extern "C" __attribute__((visibility("default"))) void simt_register_memory(void* p, size_t n, int device, int type)
{
    simt_rt::g_regions[static_cast<const char*>(p)] = {n, device, static_cast<cudaMemoryType>(type)};
}
extern "C" __attribute__((visibility("default"))) void simt_unregister_memory(void* p)
{
    simt_rt::g_regions.erase(static_cast<const char*>(p));
}
extern "C" __attribute__((visibility("default"))) uintptr_t simt_last_waited_stream()
{
    return reinterpret_cast<uintptr_t>(simt_rt::g_waited_stream);
}

// Fresh device memory is poisoned (0xFF: NaN floats, -1 ints, all-ones masks) so that a read of
// anything the engine did not write first shows up in the results.
inline cudaError_t cudaMalloc(void** p, size_t n)
{
    *p = std::malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    std::memset(*p, 0xFF, n);
    simt_register_memory(*p, n ? n : 1, 0, cudaMemoryTypeDevice);
    return cudaSuccess;
}
inline cudaError_t cudaFree(void* p)
{
    simt_unregister_memory(p);
    std::free(p);
    return cudaSuccess;
}
// As CUDA 11 and later: host memory the runtime does not know is "unregistered", not an error.
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p)
{
    *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, const_cast<void*>(p)};
    const char* c = static_cast<const char*>(p);
    auto it = simt_rt::g_regions.upper_bound(c);
    if (it == simt_rt::g_regions.begin()) return cudaSuccess;
    --it;
    if (c >= it->first + it->second.size) return cudaSuccess;
    a->type = it->second.type;
    a->device = it->second.device;
    a->devicePointer = const_cast<void*>(p);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) { return cudaMemcpy(d, s, n, k); }
inline cudaError_t cudaMemset(void* p, int v, size_t n) { std::memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) { return cudaMemset(p, v, n); }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int)
{
    std::memset(p, 0, sizeof(*p));
    std::strcpy(p->name, "SIMT emulator");
    const char* sms = std::getenv("SIMT_SMS");  // launch geometry only: no result may depend on it
    p->multiProcessorCount = sms ? std::atoi(sms) : 1;
    p->sharedMemPerBlockOptin = simt_rt::smem_optin();
    p->major = 9;
    p->minor = 0;
    return cudaSuccess;
}
template <class F> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F) { a->maxThreadsPerBlock = 1024; return cudaSuccess; }
// Recorded, for the launch's check of its dynamic shared memory (simt.hpp).
template <class F>
cudaError_t cudaFuncSetAttribute(F f, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        static_cast<size_t>(value) > simt_rt::smem_optin())
        return cudaErrorInvalidValue;
    simt_rt::g_smem_limits[reinterpret_cast<const void*>(f)] = value;
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = reinterpret_cast<cudaStream_t>(1); return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
// Work runs at once here, so events only record which stream a stream was ordered after.
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned)
{
    *e = reinterpret_cast<cudaEvent_t>(new const void*(nullptr));
    return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete reinterpret_cast<const void**>(e);
    return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr)
{
    *reinterpret_cast<const void**>(e) = s;
    return cudaSuccess;
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned = 0)
{
    simt_rt::g_waited_stream = *reinterpret_cast<const void**>(e);
    return cudaSuccess;
}
