// How the CPU engine spreads work over threads (OpenMP), and the per-thread floating-point mode
// every worker runs in.
#pragma once
#include <omp.h>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace hm2bp {

// Weights and Adam moments that regularization drives toward zero become denormal floats, which
// cost ~100x per operation on x86 (an epoch slowed 3x by its third pass). Flushing them to zero
// (FTZ/DAZ) changes only values below 1e-38 (float) or 1e-308 (double). Scoped to one thread;
// Flush = false undoes it for a scope inside one (KeepDenormals: the column-sum refresh inside
// the batch region, whose sums must equal set_weights', which adds denormals as they are).
template <bool Flush>
class DenormalMode {
public:
#if defined(__SSE__) || defined(__x86_64__)
    DenormalMode() : saved_(_mm_getcsr()) { _mm_setcsr(Flush ? saved_ | 0x8040u : saved_ & ~0x8040u); }
    ~DenormalMode() { _mm_setcsr(saved_); }

private:
    unsigned saved_;
#endif
};
using FlushDenormals = DenormalMode<true>;
using KeepDenormals = DenormalMode<false>;

// Splits [0, n) into `parts` contiguous ranges, part k = [lo, hi); multiples of `align`.
inline void split_range(int n, int parts, int k, int align, int& lo, int& hi)
{
    const int blocks = (n + align - 1) / align;
    lo = std::min(n, (blocks * k / parts) * align);
    hi = std::min(n, (blocks * (k + 1) / parts) * align);
}

// Runs fn(a) for every a in [0, n), spread over the threads in small dynamic chunks (items of
// uneven cost, such as the active inputs of a sample).
template <class Fn>
void for_each_item(int n, int n_threads, Fn fn)
{
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        const FlushDenormals flush;
#pragma omp for schedule(dynamic, 8)
        for (int a = 0; a < n; ++a) fn(a);
    }
}

// Runs fn(part) for every part in [0, parts) on min(parts, n_threads) threads (in the caller's
// thread for one).
template <class Fn>
void for_each_part(int parts, int n_threads, Fn fn)
{
    const int team = std::min(parts, n_threads);
#pragma omp parallel for num_threads(team) schedule(static, 1) if (team > 1)
    for (int part = 0; part < parts; ++part) {
        const FlushDenormals flush;
        fn(part);
    }
}

// Runs fn(lo, hi) on one contiguous range of [0, n) per thread (multiples of `align`, 16 for
// SIMD by default). The calling thread takes the last range, the longest where they differ: the
// others start later (woken), and the caller then sleeps less often at the end waiting for them.
template <class Fn>
void for_each_range(int n, int n_threads, Fn fn, int align = 16)
{
    const int parts = std::min(n_threads, std::max(1, n / align));
    if (parts == 1) {
        fn(0, n);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static)
    for (int k = 0; k < parts; ++k) {
        const FlushDenormals flush;
        int lo, hi;
        split_range(n, parts, parts - 1 - k, align, lo, hi);
        fn(lo, hi);
    }
}

// The order of turns among threads: turn k may start once turns [0, k) have finished. A wait
// sleeps (no spinning: the machine may be shared); one that finds its turn come costs a lock.
class TurnOrder {
public:
    // Blocks until turns [0, k) have finished.
    void wait(int k)
    {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return finished_ >= k; });
    }
    // Turns [0, k) have finished (after the caller's own, turn k - 1).
    void finish(int k)
    {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            finished_ = k;
        }
        ready_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    int finished_ = 0;
};

}  // namespace hm2bp
