// SPEC_SPEECH 2: Ben's Spiker Algorithm (BSA), the authors' encoder of cochleagram channels into
// spike times. One channel at a time; channels are independent (a CUDA thread or a CPU loop each).
#pragma once

#include "common.hpp"

namespace hm2bp {

constexpr int kBsaTaps = 24;            // L: the FIR kernel's length
constexpr int kBsaStepAnalog = 10;      // steps each analog value is held (step_analog)
constexpr double kBsaScale = 2e3;       // analog value -> signal
constexpr double kBsaThreshold = 0.6;   // spike iff e1 < e2 - threshold
// Channels per CPU pass: four AVX-512 vectors of doubles, four independent chains of the
// sequential sums, which hide the adds' latency (measured on the speech samples: 8 lanes 5.8 ms,
// 16 lanes 1.2 ms, 32 lanes 0.6 ms per 78-channel sample, one thread, on a busy 2-core machine).
constexpr int kBsaCpuLanes = 32;

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

// W channels' n analog values each, channel c's at a[c * channel_stride + i] for c < lanes (<= W;
// the other lanes are silent), -> their spike times t = i + 1 < end_time, emit(c, t) in
// ascending t. The signal sig (each value * 2e3 held 10 steps, then L zeros) is kept as a window
// of its next L samples, sig[i .. i + L - 1] at step i in win[p % L]: the subtraction of the
// kernel only touches that window, and a sample entering it is still the original value. Same
// sums, in the same order, as the literal form of SPEC_SPEECH 2, channel by channel; the W
// channels only share the loop (the CPU runs them in SIMD lanes, a CUDA thread W = 1).
template <int W, class Value, class Emit>
HM2BP_HD void bsa_channels(const Value* a, long channel_stride, int lanes, int n, int end_time,
                           const double k[kBsaTaps], Emit emit)
{
    const long length = long(n) * kBsaStepAnalog;  // i = 0 .. length - 1
    double win[kBsaTaps][W];
    auto enter = [&](long p, int slot) {  // sig[p] of every lane into win[slot]
        for (int c = 0; c < W; ++c)
            win[slot][c] = p < length && c < lanes ? double(a[c * channel_stride + p / kBsaStepAnalog]) * kBsaScale : 0.0;
    };
    for (int j = 0; j < kBsaTaps; ++j) enter(j, j);
    // spikes at t >= end_time are dropped, and step i only changes later steps: stop there
    const long last = min_of(length, long(end_time) - 1);
    for (long i = 0; i < last; ++i) {
        const int head = int(i % kBsaTaps);  // win[(head + j) % L] = sig[i + j]
        double e1[W], e2[W];
        for (int c = 0; c < W; ++c) e1[c] = e2[c] = 0.0;
        for (int j = 0; j < kBsaTaps; ++j) {
            const int slot = head + j < kBsaTaps ? head + j : head + j - kBsaTaps;
            for (int c = 0; c < W; ++c) {
                e1[c] += fabs(win[slot][c] - k[j]);
                e2[c] += fabs(win[slot][c]);
            }
        }
        for (int c = 0; c < W; ++c) {
            if (!(e1[c] < e2[c] - kBsaThreshold)) continue;
            emit(c, int(i + 1));
            for (int j = 0; j < kBsaTaps; ++j) win[head + j < kBsaTaps ? head + j : head + j - kBsaTaps][c] -= k[j];
        }
        enter(i + kBsaTaps, head);  // sig[i] leaves the window, sig[i + L] enters
    }
}

}  // namespace hm2bp
