// SPEC_SPEECH 2: Ben's Spiker Algorithm (BSA), the authors' encoder of cochleagram channels into
// spike times. One channel at a time; channels are independent (a CUDA thread or a CPU loop each).
#pragma once

#include "common.hpp"

namespace hm2bp {

constexpr int kBsaTaps = 24;            // L: the FIR kernel's length
constexpr int kBsaStepAnalog = 10;      // steps each analog value is held (step_analog)
constexpr double kBsaScale = 2e3;       // analog value -> signal
constexpr double kBsaThreshold = 0.6;   // spike iff e1 < e2 - threshold

// The kernel k[j] = exp(-(j - L/2)^2 / 25), j = 0..L-1, divided by its sequential double sum.
HM2BP_HD void bsa_kernel(double k[kBsaTaps])
{
    double sum = 0.0;
    for (int j = 0; j < kBsaTaps; ++j) {
        const double d = double(j - kBsaTaps / 2);
        k[j] = exp(-(d * d) / 25.0);
        sum += k[j];
    }
    for (int j = 0; j < kBsaTaps; ++j) k[j] /= sum;
}

// One channel's n analog values a[0], a[stride], ... -> its spike times t = i + 1 < end_time in
// ascending order, emit(t) for each. The signal sig (each value * 2e3 held 10 steps, then L zeros)
// is kept as a window of its next L samples, sig[i .. i + L - 1] at step i in win[p % L]: the
// subtraction of the kernel only touches that window, and a sample entering it is still the
// original value. Same sums, in the same order, as the literal form of SPEC_SPEECH 2.
template <class Value, class Emit>
HM2BP_HD void bsa_channel(const Value* a, long stride, int n, int end_time, const double k[kBsaTaps], Emit emit)
{
    const long length = long(n) * kBsaStepAnalog;  // i = 0 .. length - 1
    auto original = [&](long p) { return p < length ? double(a[(p / kBsaStepAnalog) * stride]) * kBsaScale : 0.0; };
    double win[kBsaTaps];
    for (int j = 0; j < kBsaTaps; ++j) win[j] = original(j);
    // spikes at t >= end_time are dropped, and step i only changes later steps: stop there
    const long last = min_of(length, long(end_time) - 1);
    for (long i = 0; i < last; ++i) {
        const int head = int(i % kBsaTaps);  // win[(head + j) % L] = sig[i + j]
        double e1 = 0.0, e2 = 0.0;
        for (int j = 0; j < kBsaTaps; ++j) {
            const double s = win[(head + j) % kBsaTaps];
            e1 += fabs(s - k[j]);
            e2 += fabs(s);
        }
        if (e1 < e2 - kBsaThreshold) {
            emit(int(i + 1));
            for (int j = 0; j < kBsaTaps; ++j) win[(head + j) % kBsaTaps] -= k[j];
        }
        win[head] = original(i + kBsaTaps);  // sig[i] leaves the window, sig[i + L] enters
    }
}

}  // namespace hm2bp
