// x / d for many float x and one float divisor d, rounded exactly as the division instruction
// rounds it, without that instruction. The Adam step of a batch-1 sample divides every weight's
// two moments by the step's bias corrections (SPEC 5): with the square root and the third
// division that is four operations per weight on the CPU's one divider unit, which then bounds
// the step (about 42 cycles per vector of 16 floats); the other ports sit idle.
//
// Markstein's correction: with r = RN(1 / d), q0 = RN(x * r) is within an ulp of x / d, the
// residual x - q0 * d is exact in one fused multiply-add, and RN(q0 + residual * r) is RN(x / d)
// (Markstein 1990; Muller et al., Handbook of Floating-Point Arithmetic, "Markstein's theorem").
// The theorem holds while nothing under- or overflows: for d in [2^-20, 1] (usable) that is
// 2^-64 <= |x| <= 2^64 (in_range; the residual's quantum then stays above 2^-126, also with
// denormals flushed). A residual of exactly 0 means q0 is exact: it is returned as it is, which
// also keeps the sign of a zero x. Callers divide the x outside that range with '/'.
#pragma once
#include <cmath>

namespace hm2bp {

struct ConstantDivisor {
    float d;
    float r;  // RN(1 / d)

    explicit ConstantDivisor(float divisor) : d(divisor), r(1.0f / divisor) {}

    // Divisors the fast division is proven for (a bias correction 1 - b^step is at least 1 - b:
    // usable at every step for b in [0, 1 - 2^-20]).
    static bool usable(float divisor) { return divisor >= 0x1p-20f && divisor <= 1.0f; }

    // x / d for x == 0 or 2^-64 <= |x| <= 2^64 (in_range); any value for other x.
    float divide(float x) const
    {
        const float q0 = x * r;
        const float residual = std::fma(-q0, d, x);
        return residual == 0.0f ? q0 : std::fma(residual, r, q0);
    }

    // Whether divide(x) is x / d (NaN and infinities are not).
    static bool in_range(float x)
    {
        const float a = std::fabs(x);
        return (a >= 0x1p-64f && a <= 0x1p64f) || x == 0.0f;
    }
};

}  // namespace hm2bp
