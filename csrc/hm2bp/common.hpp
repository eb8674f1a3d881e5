// Shared by the CPU engine and the CUDA kernels: every formula of SPEC.md lives in one
// HM2BP_HD function so that the CPU tests exercise the GPU's arithmetic too.
#pragma once
#include <cmath>

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

// x / d. Dividing by a power of two and multiplying by its reciprocal (then exact) give the same
// number, bit for bit, and the multiplication is several times cheaper: callers that know d is
// a power of two (the presets' tau_m 64, tau_s 8, weight limit 8, batch sizes 1 and 32)
// instantiate PowerOfTwo = true. x may also be a vector of Reals (the CPU's LIF).
template <bool PowerOfTwo, class Value, class Real>
HM2BP_HD Value divide(Value x, Real d)
{
    return PowerOfTwo ? x * (Real(1) / d) : x / d;
}

inline bool is_power_of_two(double x)
{
    int exponent;
    return x > 0 && std::frexp(x, &exponent) == 0.5;
}

}  // namespace hm2bp
