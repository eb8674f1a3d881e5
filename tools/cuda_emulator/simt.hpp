// A small SIMT emulator: runs CUDA kernels on the host, one fiber (ucontext) per CUDA thread.
// Warp collectives (ballot, shfl, shfl_xor) rendezvous per warp, __syncthreads(_count) per
// block; a deadlock, or lanes of one warp reaching different collectives, aborts. Blocks run
// one after another. What a GPU would refuse or leave undefined, it refuses or randomizes:
// - a launch with gridDim.x > 2^31 - 1, gridDim.y or z > 65535, a bad block shape, or more
//   dynamic shared memory than 48 KB (more only after cudaFuncSetAttribute raised the
//   kernel's limit, recorded by the fake runtime) aborts;
// - shared memory, dynamic and static __shared__ arrays, is poisoned (0xFF: NaN, -1) afresh
//   for every block, so a block that reads what it did not write sees garbage (patch.sh turns
//   each static `__shared__ T name[n];` into SIMT_STATIC_SHARED, an array of the block, which
//   AddressSanitizer also bounds-checks);
// - SIMT_SHUFFLE=seed (not 0) runs the blocks of a grid in a shuffled order and, within a
//   block, schedules the threads in a shuffled order, to shake out missing barriers and
//   dependencies between blocks.
// Force-included (-include) before the engine's sources.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#else
#define SIMT_ASAN 0
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct simt_uint3 {
    unsigned x = 0, y = 0, z = 0;
};

namespace simt {

inline simt_uint3 thread_idx, block_idx, block_dim, grid_dim;

constexpr size_t kStack = SIMT_ASAN ? 512 * 1024 : 128 * 1024;

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    unsigned tid = 0;
    bool done = false;
    bool waiting = false;
};

enum Kind { Ballot = 1, Shfl = 2, ShflXor = 3 };

struct WarpSlot {
    int arrived = 0;
    int kind = 0;
    uint64_t val[32];
    int arg[32];
    uint64_t res[32];
};

struct Block {
    std::vector<Fiber> fibers;
    std::vector<WarpSlot> warps;
    int barrier_arrived = 0, barrier_count = 0, barrier_result = 0;
    ucontext_t scheduler;
    Fiber* current = nullptr;
    const std::function<void()>* body = nullptr;
    std::vector<unsigned char> smem;
    const void* main_bottom = nullptr;
    size_t main_size = 0;
    std::map<const void*, std::unique_ptr<unsigned char[]>> statics;  // static __shared__ arrays
};

inline Block* g_block = nullptr;
inline std::vector<std::unique_ptr<char[]>> g_stacks;

constexpr unsigned char kPoison = 0xFF;     // as the fake cudaMalloc: NaN floats, -1 integers
constexpr size_t kStaticSmemLimit = 48 * 1024;  // dynamic shared memory without the opt-in

// SIMT_SHUFFLE's seed (0: run in order).
inline unsigned long shuffle_seed()
{
    static const unsigned long seed = [] {
        const char* s = std::getenv("SIMT_SHUFFLE");
        return s ? std::strtoul(s, nullptr, 10) : 0ul;
    }();
    return seed;
}
inline std::mt19937 g_rng(static_cast<std::mt19937::result_type>(shuffle_seed()));

[[noreturn]] inline void fail(const char* msg)
{
    std::fprintf(stderr, "simt emulator: %s (block %u,%u thread %u)\n", msg, block_idx.x, block_idx.y,
                 g_block && g_block->current ? g_block->current->tid : 0u);
    std::abort();
}

[[noreturn]] inline void refuse(const char* msg)
{
    std::fprintf(stderr, "simt emulator: launch refused: %s\n", msg);
    std::abort();
}

inline unsigned char* dynamic_smem() { return g_block->smem.data(); }

// The block's instance of the static shared array whose declaration owns `key`, poisoned when
// the block's first thread reaches the declaration.
template <class Array>
Array& block_shared(const void* key)
{
    std::unique_ptr<unsigned char[]>& slot = g_block->statics[key];
    if (!slot) {
        slot.reset(new unsigned char[sizeof(Array)]);
        std::memset(slot.get(), kPoison, sizeof(Array));
    }
    return *reinterpret_cast<Array*>(slot.get());
}

inline void switch_to_scheduler()
{
    Fiber* f = g_block->current;
#if SIMT_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, g_block->main_bottom, g_block->main_size);
    swapcontext(&f->ctx, &g_block->scheduler);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&f->ctx, &g_block->scheduler);
#endif
}

inline void resume(Fiber& f)
{
    g_block->current = &f;
    thread_idx = simt_uint3{f.tid % block_dim.x, (f.tid / block_dim.x) % block_dim.y, f.tid / (block_dim.x * block_dim.y)};
#if SIMT_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, kStack);
    swapcontext(&g_block->scheduler, &f.ctx);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    swapcontext(&g_block->scheduler, &f.ctx);
#endif
}

inline void entry()
{
#if SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_block->main_bottom, &g_block->main_size);
#endif
    (*g_block->body)();
    g_block->current->done = true;
#if SIMT_ASAN
    __sanitizer_start_switch_fiber(nullptr, g_block->main_bottom, g_block->main_size);
#endif
    // returning continues at uc_link (the scheduler)
}

inline int live_in_warp(int w)
{
    int n = 0;
    const int end = std::min<int>(32 * (w + 1), static_cast<int>(g_block->fibers.size()));
    for (int t = 32 * w; t < end; ++t) n += !g_block->fibers[t].done;
    return n;
}

inline int live_in_block()
{
    int n = 0;
    for (const Fiber& f : g_block->fibers) n += !f.done;
    return n;
}

inline void complete_warp(int w)
{
    WarpSlot& s = g_block->warps[w];
    const int end = std::min<int>(32, static_cast<int>(g_block->fibers.size()) - 32 * w);
    auto alive = [&](int lane) { return lane < end && !g_block->fibers[32 * w + lane].done; };
    uint32_t bits = 0;
    if (s.kind == Ballot)
        for (int lane = 0; lane < end; ++lane)
            if (alive(lane) && s.val[lane]) bits |= 1u << lane;
    for (int lane = 0; lane < end; ++lane) {
        if (!alive(lane)) continue;
        if (s.kind == Ballot) {
            s.res[lane] = bits;
        } else {
            const int src = s.kind == Shfl ? (s.arg[lane] & 31) : ((lane ^ s.arg[lane]) & 31);
            if (!alive(src)) fail("shuffle from an exited lane");
            s.res[lane] = s.val[src];
        }
        g_block->fibers[32 * w + lane].waiting = false;
    }
    s.arrived = 0;
}

inline void complete_barrier()
{
    Block& b = *g_block;
    b.barrier_result = b.barrier_count;
    b.barrier_arrived = b.barrier_count = 0;
    for (Fiber& f : b.fibers)
        if (!f.done) f.waiting = false;
}

inline uint64_t warp_op(int kind, uint64_t v, int arg)
{
    Fiber* f = g_block->current;
    const int w = f->tid / 32, lane = f->tid % 32;
    WarpSlot& s = g_block->warps[w];
    if (s.arrived == 0) s.kind = kind;
    else if (s.kind != kind) fail("lanes of one warp reached different warp collectives");
    s.val[lane] = v;
    s.arg[lane] = arg;
    ++s.arrived;
    if (s.arrived == live_in_warp(w)) {
        complete_warp(w);
    } else {
        f->waiting = true;
        switch_to_scheduler();
    }
    return s.res[lane];
}

inline int barrier(int pred)
{
    Block& b = *g_block;
    if (b.warps[b.current->tid / 32].arrived) fail("__syncthreads while lanes of this warp wait at a warp collective");
    b.barrier_count += pred != 0;
    ++b.barrier_arrived;
    if (b.barrier_arrived == live_in_block()) {
        complete_barrier();
    } else {
        b.current->waiting = true;
        switch_to_scheduler();
    }
    return b.barrier_result;
}

inline void run_block(unsigned n, size_t smem_bytes, const std::function<void()>& body)
{
    Block b;
    g_block = &b;
    b.body = &body;
    b.smem.assign(smem_bytes ? smem_bytes : 1, kPoison);
    b.fibers.resize(n);
    b.warps.resize((n + 31) / 32);
    while (g_stacks.size() < n) g_stacks.emplace_back(new char[kStack]);
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = b.fibers[t];
        f.tid = t;
        f.stack = g_stacks[t].get();
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStack;
        f.ctx.uc_link = &b.scheduler;
        makecontext(&f.ctx, entry, 0);
    }
    const bool shuffle = shuffle_seed() != 0;
    std::vector<unsigned> order(n);
    for (unsigned t = 0; t < n; ++t) order[t] = t;
    unsigned remaining = n;
    while (remaining) {
        if (shuffle) std::shuffle(order.begin(), order.end(), g_rng);
        bool progressed = false;
        for (unsigned t : order) {
            Fiber& f = b.fibers[t];
            if (f.done || f.waiting) continue;
            resume(f);
            progressed = true;
            if (!f.done) continue;
            --remaining;
            // An exit can complete a collective the other threads wait at.
            for (size_t w = 0; w < b.warps.size(); ++w)
                if (b.warps[w].arrived && b.warps[w].arrived == live_in_warp(static_cast<int>(w)))
                    complete_warp(static_cast<int>(w));
            if (b.barrier_arrived && b.barrier_arrived == live_in_block()) complete_barrier();
        }
        if (!progressed) fail("deadlock: threads wait at collectives that never complete");
    }
    g_block = nullptr;
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args... args)
{
    std::tuple<std::decay_t<Params>...> params(static_cast<std::decay_t<Params>>(args)...);
    block_dim = simt_uint3{block.x, block.y, block.z};
    grid_dim = simt_uint3{grid.x, grid.y, grid.z};
    const uint64_t n = uint64_t(block.x) * block.y * block.z;
    if (n == 0 || n > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
        refuse("bad block shape (at most 1024 x 1024 x 64 threads, 1024 in all)");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) refuse("empty grid");
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        refuse("grid too large (gridDim.x <= 2^31 - 1, gridDim.y and gridDim.z <= 65535)");
    const auto limit = simt_rt::g_smem_limits.find(reinterpret_cast<const void*>(kernel));
    if (smem > (limit == simt_rt::g_smem_limits.end() ? kStaticSmemLimit : static_cast<size_t>(limit->second)))
        refuse("dynamic shared memory over the kernel's limit (48 KB unless cudaFuncSetAttribute raised it)");
    std::vector<simt_uint3> blocks;
    blocks.reserve(size_t(grid.x) * grid.y * grid.z);
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) blocks.push_back(simt_uint3{x, y, z});
    if (shuffle_seed()) std::shuffle(blocks.begin(), blocks.end(), g_rng);
    const std::function<void()> body = [&] { std::apply(kernel, params); };
    for (const simt_uint3& b : blocks) {
        block_idx = b;
        run_block(static_cast<unsigned>(n), smem, body);
    }
}

template <class T>
T exchange(int kind, T v, int arg)
{
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t raw = 0;
    std::memcpy(&raw, &v, sizeof(T));
    raw = warp_op(kind, raw, arg);
    T out;
    std::memcpy(&out, &raw, sizeof(T));
    return out;
}

}  // namespace simt

#define threadIdx (::simt::thread_idx)
#define blockIdx (::simt::block_idx)
#define blockDim (::simt::block_dim)
#define gridDim (::simt::grid_dim)
// `__shared__ T name[n];` as patch.sh rewrites it (one static key per declaration and template
// instance).
#define SIMT_STATIC_SHARED(T, name, n)  \
    static char simt_key_##name;           \
    T(&name)[n] = ::simt::block_shared<T[n]>(&simt_key_##name)

inline unsigned __ballot_sync(unsigned, int pred) { return static_cast<unsigned>(simt::warp_op(simt::Ballot, pred != 0, 0)); }
template <class T>
T __shfl_sync(unsigned, T v, int src) { return simt::exchange(simt::Shfl, v, src); }
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask) { return simt::exchange(simt::ShflXor, v, mask); }
inline void __syncthreads() { simt::barrier(0); }
inline int __syncthreads_count(int pred) { return simt::barrier(pred); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v)
{
    const unsigned long long old = *p;
    *p = old + v;
    return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
