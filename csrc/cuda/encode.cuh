// Input spikes on the device, as two bit masks (SPEC 2 for images, SPEC_SPEECH 2 for analog
// channels):
//   step mask   (B, T, ceil(N/32)):  bit n of row (b, t) = input n fires at step t (forward rows)
//   neuron mask (B, N, ceil(T/32)):  bit t of row (b, n) = the same spike (S-PSP rows, traces)
// Bits past N or T are zero. Hidden layers get both masks straight from their LIF scan.
#pragma once
#include <cstdint>

#include "../hm2bp/bsa.hpp"
#include "../hm2bp/encoding.hpp"
#include "masked_sum.cuh"

namespace hm2bp {
namespace cuda {

// Step mask from dense 0/1 bytes (B*T, N); any nonzero byte is a spike, as on the CPU. One
// thread per (row, padded input): a warp covers one mask word, so a ballot builds it.
__global__ void dense_step_mask_kernel(const uint8_t* dense, size_t rows, int N, int words, uint32_t* step_mask)
{
    const size_t per_row = static_cast<size_t>(words) * 32;
    const size_t total = rows * per_row;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t row = idx / per_row;
        const int n = static_cast<int>(idx - row * per_row);
        const bool spike = n < N && dense[row * N + n] != 0;
        const uint32_t word = __ballot_sync(kFullWarp, spike);
        if ((threadIdx.x & 31) == 0) step_mask[row * words + n / 32] = word;
    }
}

// Per (b, n): the RNG key of input n of image b (SPEC 2 / CONTRACT: key, then neuron key).
__global__ void poisson_keys_kernel(const int64_t* sample_index, int B, int N, uint64_t seed, uint64_t epoch,
                                    uint64_t* keys)
{
    const size_t total = static_cast<size_t>(B) * N;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / N;
        const uint64_t n = idx - b * N;
        keys[idx] = poisson_neuron_key(poisson_sample_key(seed, static_cast<uint64_t>(sample_index[b]), epoch), n);
    }
}

// Step mask of Poisson-encoded images (B, N): the CPU's from_image, spike by spike.
// thresholds[p] = poisson_threshold(p), computed on the host.
__global__ void poisson_step_mask_kernel(const uint8_t* images, const uint64_t* keys, const uint64_t* thresholds,
                                         int B, int T, int N, int words, uint32_t* step_mask)
{
    const size_t per_row = static_cast<size_t>(words) * 32;
    const size_t total = static_cast<size_t>(B) * T * per_row;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t row = idx / per_row;  // b * T + t
        const int n = static_cast<int>(idx - row * per_row);
        const size_t b = row / T;
        const int t = static_cast<int>(row - b * T);
        bool spike = false;
        if (n < N) {
            const int p = images[b * N + n];
            spike = p != 0 && poisson_spike(keys[b * N + n], t, thresholds[p]);
        }
        const uint32_t word = __ballot_sync(kFullWarp, spike);
        if ((threadIdx.x & 31) == 0) step_mask[row * words + n / 32] = word;
    }
}

// BSA trains of analog channels (B, N, frames) as dense 0/1 bytes (B, T, N), zeroed by the
// caller (then dense_step_mask_kernel). One thread per (b, channel), sequential in time.
__global__ void bsa_dense_kernel(const double* analog, int B, int N, int frames, int T, uint8_t* dense)
{
    double k[kBsaTaps];
    bsa_kernel(k);
    const size_t total = static_cast<size_t>(B) * N;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    for (size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const size_t b = idx / N;
        const int n = static_cast<int>(idx - b * N);
        bsa_channels<1>(analog + idx * frames, frames, 1, frames, T, k,
                        [&](int, int t) { dense[(b * T + t) * N + n] = 1; });
    }
}

// Neuron mask and spike counts from a step mask. One warp per (b, word of 32 neurons): lane j
// fetches the step word of time t0 + j, then every lane gathers its neuron's bit from all 32.
__global__ void transpose_mask_kernel(const uint32_t* step_mask, int B, int T, int N, int step_words,
                                      int time_words, uint32_t* neuron_mask, int* counts)
{
    const int lane = threadIdx.x & 31;
    const size_t warp = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    if (warp >= static_cast<size_t>(B) * step_words) return;  // whole warps leave together
    const size_t b = warp / step_words;
    const int wn = static_cast<int>(warp - b * step_words);
    const int n = wn * 32 + lane;
    uint32_t* out = neuron_mask + (b * N + n) * time_words;
    int count = 0;
    for (int wt = 0; wt < time_words; ++wt) {
        const int t = wt * 32 + lane;
        const uint32_t step_word = t < T ? step_mask[(b * T + t) * step_words + wn] : 0u;
        uint32_t word = 0;
#pragma unroll
        for (int k = 0; k < 32; ++k) word |= ((__shfl_sync(kFullWarp, step_word, k) >> lane) & 1u) << k;
        if (n < N) out[wt] = word;
        count += __popc(word);
    }
    if (n < N) counts[b * N + n] = count;
}

}  // namespace cuda
}  // namespace hm2bp
