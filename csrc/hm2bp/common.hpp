// Shared by the CPU engine and the CUDA kernels: every formula of SPEC.md lives in one
// HM2BP_HD function so that the CPU tests exercise the GPU's arithmetic too.
#pragma once

#if defined(__CUDACC__)
#define HM2BP_HD __host__ __device__ __forceinline__
#else
#define HM2BP_HD inline
#endif

namespace hm2bp {

template <class T>
HM2BP_HD T min_of(T a, T b) { return a < b ? a : b; }
template <class T>
HM2BP_HD T max_of(T a, T b) { return a > b ? a : b; }

}  // namespace hm2bp
