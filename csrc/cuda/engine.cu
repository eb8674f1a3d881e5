// The CUDA engine: SPEC sections 1-5 in the fast form of section 6, the whole batch at once.
// This file is the orchestration (the CudaEngine class: buffers, launch geometry, the kernel
// sequence below, results); the kernels live in one file per concept, and every formula they
// apply is a shared HM2BP_HD function of csrc/hm2bp:
//   encode.cuh          input spikes (dense bytes, or SPEC 2's Poisson trains) as bit masks
//   dense_current.cuh   a dense connection's forward current (SPEC 1's input)
//   dense_spsp_rows.cuh a dense connection's backward pass: the S-PSP rows, the weight
//                       gradient, the pre-deltas (SPEC 4)
//   conv2d.cuh          a convolution (SPEC_CNN 1, 3.3): forward current, dv and side, weight
//                       gradient, pre-deltas
//   pool2d.cuh          a pooling layer (SPEC_CNN 2, 3.2): window counts, pre-deltas
//   population.cuh      a LIF population: SPEC 1's scan, the delta from above, the side term
//   spsp_traces.cuh     the S-PSP traces K of a population (SPEC 4, 6), their sum over a pre
//                       neuron's spike times
//   output_layer.cuh    SPEC 3's loss and predictions, revival, the lateral factor
//   optimizer.cuh       SPEC 5: weight sums, batch mean, regularization, Adam/SGD
//   device_layer.cuh    a layer's device storage; parameter upload and read-back
//   masked_sum.cuh      the shared-tile masked sum behind both dense kernels
//   device_buffer.cuh   device arrays and error checks
//
// Spikes live on the device as bit masks, by step (B, T, words(n)) for the forward rows and by
// neuron (B, n, words(T)) for the traces and S-PSP rows. One batch:
//   dense_step_mask_kernel, or poisson_keys_kernel + poisson_step_mask_kernel; then
//   transpose_mask_kernel: the input masks and counts                          (encode.cuh)
//   weight_sums_kernel (when learning): sum_i W and the regularization scale (optimizer.cuh)
// per layer, upwards:
//   current_kernel    I[b,t,o] = sum over inputs firing at (b,t) of W^T[i,o] (dense_current.cuh)
//                     (conv_current_kernel, pool_current_kernel for spatial layers)
//   lif_scan_kernel   SPEC 1, one thread per neuron (<Real, true>: one block per sample, with
//                     lateral inhibition); writes both masks, counts and the layer's spike
//                     total                                                  (population.cuh)
// then output_loss_kernel: predictions, and when learning delta and cost (output_layer.cuh);
// when learning, from the output layer down:
//   with lateral inhibition, trace_kernel and lateral_kernel on the pre-revival spikes;
//   revival_kernel                                      (population.cuh, output_layer.cuh)
//   per layer, downwards:
//   trace_kernel      K[b,t,o] in gather form (spsp_pair terms summed one by one)
//                                                                          (spsp_traces.cuh)
//   side_kernel       dv and the side term (sum_t K I / n_o)                 (population.cuh)
//   spsp_rows_kernel  e[b,o,i] = sum over spike times of i of K[b,t,o] (K_b tile in shared
//                     memory), g accumulated per sample group without atomics, pre-deltas
//                                                                      (dense_spsp_rows.cuh)
//   a convolution instead: trace_kernel, conv_neuron_kernel (dv, side), conv_grad_kernel and,
//   above a spiking layer, conv_pre_delta_kernel (conv2d.cuh); a pooling layer above a spiking
//   layer: trace_kernel, pool_pre_delta_kernel (pool2d.cuh)
// and to train, update_kernel: the sum of the group partials, batch mean, regularization,
// Adam/SGD (optimizer.cuh); to export the gradients instead, export_gradient_kernel.
// Work and traffic per sample: bench/GPU_NOTES.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../hm2bp/encoding.hpp"
#include "../hm2bp/geometry.hpp"
#include "../hm2bp/loss.hpp"
#include "../hm2bp/neuron.hpp"
#include "../hm2bp/optimizer.hpp"
#include "../hm2bp/spsp.hpp"
#include "../model/engine.hpp"
#include "conv2d.cuh"
#include "cuda_engine.hpp"
#include "dense_current.cuh"
#include "dense_spsp_rows.cuh"
#include "device_buffer.cuh"
#include "device_layer.cuh"
#include "encode.cuh"
#include "optimizer.cuh"
#include "output_layer.cuh"
#include "pool2d.cuh"
#include "population.cuh"
#include "reservoir.cuh"
#include "spsp_traces.cuh"

#ifndef HM2BP_CUDA_ARCHS
#define HM2BP_CUDA_ARCHS ""
#endif

namespace hm2bp {
namespace {

using namespace cuda;

constexpr int kThreads = 256;            // plain elementwise kernels
constexpr size_t kTileBytes = 110 * 1024;  // shared tile of the masked sums: two blocks per SM on H100/H200

template <class Real>
class CudaEngine final : public Engine {
public:
    explicit CudaEngine(const NetSpec& spec) : h_(spec.hyper), specs_(spec.layers), shapes_(layer_shapes(spec))
    {
        check_spec(spec);
        if (spec.layers.back().kind != LayerKind::Dense)
            throw std::invalid_argument("CUDA engine: the output layer must be Dense");
        for (size_t l = 0; l < spec.layers.size(); ++l)
            if (spec.layers[l].kind == LayerKind::Reservoir && shapes_[l + 1].size() > kMaxLateralNeurons)
                throw std::invalid_argument("CUDA engine: a Reservoir layer holds at most " +
                                            std::to_string(kMaxLateralNeurons) + " neurons");
        for (const LayerSpec& layer : spec.layers) vth_.push_back(layer.vth);
        for (const Shape& shape : shapes_) sizes_.push_back(static_cast<int>(shape.size()));
        const int L = static_cast<int>(spec.layers.size());
        if (h_.lateral_inhibition != 0.0 && sizes_.back() > kMaxLateralNeurons)
            throw std::invalid_argument("CUDA engine: lateral inhibition supports at most " +
                                        std::to_string(kMaxLateralNeurons) + " output neurons, got " +
                                        std::to_string(sizes_.back()));
        int count = 0;
        const cudaError_t err = cudaGetDeviceCount(&count);
        if (err != cudaSuccess || count == 0) {
            cudaGetLastError();
            throw std::runtime_error(std::string("hm2bp CUDA engine: no usable CUDA device (") +
                                     (err != cudaSuccess ? cudaGetErrorString(err) : "no device found") + ")");
        }
        HM2BP_CUDA_CHECK(cudaGetDevice(&device_));
        HM2BP_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
        cudaFuncAttributes attr;
        if (cudaFuncGetAttributes(&attr, current_kernel<Real>) != cudaSuccess) {
            cudaGetLastError();
            throw std::runtime_error(std::string("hm2bp CUDA engine: this build has no kernels for ") + prop_.name +
                                     " (compute capability " + std::to_string(prop_.major) + "." +
                                     std::to_string(prop_.minor) + "); it was built for " + HM2BP_CUDA_ARCHS);
        }
        tile_bytes_ = std::min(kTileBytes, static_cast<size_t>(prop_.sharedMemPerBlockOptin) - 1024);
        HM2BP_CUDA_CHECK(cudaFuncSetAttribute(current_kernel<Real>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(tile_bytes_)));
        HM2BP_CUDA_CHECK(cudaFuncSetAttribute(spsp_rows_kernel<Real>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(tile_bytes_)));
        const char* sync = std::getenv("HM2BP_CUDA_SYNC");
        sync_each_ = sync && std::strcmp(sync, "0") != 0;

        layers_ = std::vector<DeviceLayer<Real>>(L);
        for (int l = 0; l < L; ++l) {
            // W^T: (n_in, n_out) of a dense layer, (C K K, O) of a convolution, none for pooling
            const LayerKind kind = specs_[l].kind;
            const int K = specs_[l].kernel;
            const int rows = kind == LayerKind::Dense || kind == LayerKind::Reservoir ? sizes_[l]
                             : kind == LayerKind::Conv2d ? shapes_[l].channels * K * K
                                                         : 0;
            const int cols = kind == LayerKind::Pool2d ? 0 : shapes_[l + 1].channels;
            layers_[l].allocate(kind, rows, cols, sizes_[l + 1], sizes_[l]);
            if (is_trainable(kind)) trainable_.push_back(l);
        }
        recurrent_.resize(L);
        for (int l = 0; l < L; ++l)
            if (kind_of(l) == LayerKind::Reservoir) {
                const size_t size = static_cast<size_t>(sizes_[l + 1]) * sizes_[l + 1];
                recurrent_[l] = std::make_unique<DeviceBuffer<Real>>();
                recurrent_[l]->ensure(size);
                HM2BP_CUDA_CHECK(cudaMemset(recurrent_[l]->get(), 0, size * sizeof(Real)));
            }
        uint64_t thresholds[256];
        poisson_thresholds(thresholds);
        thresholds_.ensure(256);
        HM2BP_CUDA_CHECK(cudaMemcpy(thresholds_.get(), thresholds, sizeof(thresholds), cudaMemcpyHostToDevice));
        totals_.ensure(L);
        HM2BP_CUDA_CHECK(cudaDeviceSynchronize());
        HM2BP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        HM2BP_CUDA_CHECK(cudaEventCreateWithFlags(&input_ready_, cudaEventDisableTiming));
    }

    ~CudaEngine() override
    {
        if (!stream_) return;
        cudaSetDevice(device_);
        cudaStreamSynchronize(stream_);
        if (input_ready_) cudaEventDestroy(input_ready_);
        cudaStreamDestroy(stream_);
    }

    CudaEngine(const CudaEngine&) = delete;
    CudaEngine& operator=(const CudaEngine&) = delete;

    void set_param(Param p, int block, ParamValues values) override
    {
        const DeviceLayer<Real>& layer = block_layer(block);
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        std::visit([&](auto* v) { upload_transposed(v, layer.n_in, layer.n_out, layer.param(p).get(), stream_); },
                   values);
    }

    void get_param(Param p, int block, double* values) const override
    {
        const DeviceLayer<Real>& layer = block_layer(block);
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        download_transposed(layer.param(p).get(), layer.n_in, layer.n_out, values, stream_);
    }

    void set_fixed(int layer, const double* input, const double* recurrent) override
    {
        const DeviceLayer<Real>& res = reservoir(layer);
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        upload_transposed(input, res.n_in, res.n_out, res.wt.get(), stream_);
        upload_transposed(recurrent, res.n_out, res.n_out, recurrent_[layer]->get(), stream_);
    }

    void get_fixed(int layer, double* input, double* recurrent) const override
    {
        const DeviceLayer<Real>& res = reservoir(layer);
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        download_transposed(res.wt.get(), res.n_in, res.n_out, input, stream_);
        download_transposed(recurrent_[layer]->get(), res.n_out, res.n_out, recurrent, stream_);
    }

    int64_t step() const override { return step_; }
    void set_step(int64_t s) override { step_ = s; }
    std::string device() const override { return std::string("cuda:") + prop_.name; }

    BatchResult run(const BatchRequest& req) override
    {
        check_request(req);
        const InputBatch& in = req.input;
        const int B = in.batch;
        const int T = in.T;
        const int L = n_layers();
        const bool learn = req.mode != Mode::Infer;
        const bool want_spikes = !req.layer_spikes_out.empty();
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        cudaGetLastError();  // a stale error from other code must not be reported as ours

        prepare(B, T, learn, want_spikes);
        HM2BP_CUDA_CHECK(cudaMemsetAsync(totals_.get(), 0, L * sizeof(unsigned long long), stream_));
        encode(in);
        if (learn) {
            upload_targets(req);
            weight_sums();
        }
        for (int l = 0; l < L; ++l) forward_layer(l, B, T, want_spikes);
        const DeviceLayer<Real>& out = layers_.back();
        launch("output_loss_kernel", output_loss_kernel<Real>, div_up(B, 128), 128, 0, out.counts.get(), B,
               out.n_out, learn ? labels_.get() : nullptr, learn && req.sample_weights ? weights_.get() : nullptr,
               CountTargets{h_.desired, h_.undesired, h_.margin}, learn ? delta_.get() : nullptr,
               learn ? cost_.get() : nullptr, predictions_.get());
        if (learn) backward(B, T);
        if (req.mode == Mode::Train) update(B, req.lr);
        return collect(req, B, T, learn);
    }

    void apply_gradients(const std::vector<const double*>& sums, int64_t count, double lr) override
    {
        if (sums.size() != trainable_.size())
            throw std::invalid_argument("CUDA engine: apply_gradients needs one array per trainable layer");
        HM2BP_CUDA_CHECK(cudaSetDevice(device_));
        cudaGetLastError();
        for (size_t l = 0; l < sums.size(); ++l) {
            DeviceLayer<Real>& layer = layers_[trainable_[l]];
            layer.groups = 1;  // the sums are one group
            layer.grad_part.ensure(static_cast<size_t>(layer.n_in) * layer.n_out);
            upload_transposed(sums[l], layer.n_in, layer.n_out, layer.grad_part.get(), stream_);
        }
        weight_sums();
        update(count, lr);
        HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

private:
    Hyper h_;
    std::vector<LayerSpec> specs_;
    std::vector<Shape> shapes_;  // of the input and of every layer
    std::vector<int> sizes_;   // neurons of the input and of every layer
    std::vector<int> trainable_;  // the layers with parameters: parameter block k is layer trainable_[k]
    std::vector<double> vth_;  // per layer
    int device_ = 0;
    cudaDeviceProp prop_{};
    cudaStream_t stream_ = nullptr;
    cudaEvent_t input_ready_ = nullptr;  // device spikes' producer stream, recorded before encode()
    bool sync_each_ = false;
    size_t tile_bytes_ = kTileBytes;
    int64_t step_ = 0;
    int T_ = 0;

    std::vector<DeviceLayer<Real>> layers_;
    DeviceBuffer<Real> tables_;                // spsp_tables for T_
    DeviceBuffer<uint64_t> thresholds_;        // poisson_threshold(p), p = 0..255
    DeviceBuffer<uint8_t> dense_, images_;     // inputs as given (dense_ also from analog_)
    DeviceBuffer<double> analog_;              // (B, n_in, frames), BSA-encoded into dense_
    std::vector<std::unique_ptr<DeviceBuffer<Real>>> recurrent_;  // per layer: W_rec^T of a Reservoir layer, else null
    DeviceBuffer<int64_t> sample_index_;
    DeviceBuffer<uint64_t> keys_;              // (B, n_in) Poisson neuron keys
    DeviceBuffer<uint32_t> in_step_mask_, in_neuron_mask_;
    DeviceBuffer<int> in_counts_;
    DeviceBuffer<int> labels_, predictions_, counts_after_;  // counts_after_: output counts after revival
    DeviceBuffer<double> weights_, cost_;
    DeviceBuffer<unsigned char> export_;       // one layer's exported gradient, float64 or float32
    DeviceBuffer<Real> delta_, lat_;           // output layer (B, n_out)
    DeviceBuffer<unsigned long long> totals_;  // spikes per layer
    std::vector<int> host_labels_;

    int n_layers() const { return static_cast<int>(layers_.size()); }

    const DeviceLayer<Real>& block_layer(int block) const
    {
        if (block < 0 || block >= static_cast<int>(trainable_.size()))
            throw std::out_of_range("CUDA engine: parameter block index out of range");
        return layers_[trainable_[block]];
    }

    // Launches a kernel on the engine's stream and checks the launch (and, with
    // HM2BP_CUDA_SYNC=1, its execution, so that an error names the kernel that caused it).
    template <class... Params, class... Args>
    void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, Args... args) const
    {
        if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
        kernel<<<grid, block, smem, stream_>>>(args...);
        check(cudaGetLastError(), name, __FILE__, __LINE__);
        if (sync_each_) check(cudaStreamSynchronize(stream_), name, __FILE__, __LINE__);
    }

    // Blocks for a grid-stride loop over `total` items.
    unsigned grid_for(size_t total) const
    {
        const size_t cap = static_cast<size_t>(prop_.multiProcessorCount) * 32;
        return static_cast<unsigned>(std::max<size_t>(1, std::min(div_up(total, kThreads), cap)));
    }

    // Rows of M per shared tile for a masked sum over d in [0, D): a multiple of 32 (whole mask
    // words), at most 32 words, within the tile budget.
    int chunk_rows(int D) const
    {
        const size_t fit = tile_bytes_ / (kTileCols * sizeof(Real)) / 32 * 32;
        return static_cast<int>(std::min<size_t>({round_up(D, 32), fit, static_cast<size_t>(kMaxChunkRows)}));
    }

    LayerKind kind_of(int l) const { return specs_[l].kind; }

    const DeviceLayer<Real>& reservoir(int layer) const
    {
        if (layer < 0 || layer >= n_layers() || kind_of(layer) != LayerKind::Reservoir)
            throw std::out_of_range("layer " + std::to_string(layer) + " is not a Reservoir layer");
        return layers_[layer];
    }

    void check_request(const BatchRequest& req) const
    {
        const InputBatch& in = req.input;
        const int L = n_layers();
        if (in.batch < 1) throw std::invalid_argument("CUDA engine: batch must hold at least one sample");
        if (in.T < 2) throw std::invalid_argument("CUDA engine: T must be at least 2");
        if (in.n_in != sizes_[0])
            throw std::invalid_argument("CUDA engine: input has " + std::to_string(in.n_in) + " neurons, the network " +
                                        std::to_string(sizes_[0]));
        if (!in.dense && !in.analog && !(in.images && in.sample_index))
            throw std::invalid_argument("CUDA engine: input needs dense spikes, analog channels or images with "
                                        "sample indices");
        if (in.dense && in.dense_on_device) check_device_spikes(in);
        if (!req.layer_spikes_out.empty() && static_cast<int>(req.layer_spikes_out.size()) != L)
            throw std::invalid_argument("CUDA engine: layer_spikes_out needs one array per layer");
        if (req.mode == Mode::Infer) return;
        if (!req.labels) throw std::invalid_argument("CUDA engine: learning needs labels");
        if (h_.desired < 1 || in.T < h_.desired)
            throw std::invalid_argument("CUDA engine: learning needs T >= desired");
        for (int b = 0; b < in.batch; ++b)
            if (req.labels[b] < 0 || req.labels[b] >= sizes_.back())
                throw std::invalid_argument("CUDA engine: label out of range");
        if (req.mode == Mode::Gradients && req.gradients_out.size() != trainable_.size())
            throw std::invalid_argument("CUDA engine: gradients_out needs one array per trainable layer");
    }

    // Device spikes must be device (or managed) memory of this engine's GPU, first byte to last:
    // a host pointer or another GPU's memory would be a sticky illegal-address fault that ends
    // the process's CUDA context (the caller's framework included).
    void check_device_spikes(const InputBatch& in) const
    {
        const size_t bytes = static_cast<size_t>(in.batch) * in.T * in.n_in;
        for (const uint8_t* p : {in.dense, in.dense + bytes - 1}) {
            cudaPointerAttributes attr{};
            if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
                cudaGetLastError();
                attr.type = cudaMemoryTypeUnregistered;
            }
            if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
                throw std::invalid_argument(std::string("CUDA engine: the device spikes (") + std::to_string(bytes) +
                                            " bytes) are not all in GPU memory" +
                                            (attr.type == cudaMemoryTypeHost ? " (pinned host memory)" : "") +
                                            "; pass a CUDA array, or a host array to copy");
            if (attr.device != device_)
                throw std::invalid_argument("CUDA engine: the device spikes are on cuda:" + std::to_string(attr.device) +
                                            ", the network on cuda:" + std::to_string(device_) +
                                            "; move them, or build the network while cuda:" +
                                            std::to_string(attr.device) + " is the current device");
        }
    }

    // Sizes the per-batch buffers (they only grow) and the S-PSP tables for this T.
    void prepare(int B, int T, bool learn, bool want_spikes)
    {
        if (T != T_) {
            std::vector<Real> host(spsp_tables_size(T, h_.t_ref));
            spsp_tables(T, h_.t_ref, h_.tau_m, h_.tau_s, host.data());
            tables_.ensure(host.size());
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(tables_.get(), host.data(), host.size() * sizeof(Real),
                                             cudaMemcpyHostToDevice, stream_));
            HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream_));
            T_ = T;
        }
        const size_t Bs = static_cast<size_t>(B), BT = Bs * T;
        const int N0 = sizes_[0];
        const int time_words = words_for(T);
        in_step_mask_.ensure(BT * words_for(N0));
        in_neuron_mask_.ensure(Bs * N0 * time_words);
        in_counts_.ensure(Bs * N0);
        for (int l = 0; l < n_layers(); ++l)
            layers_[l].prepare(B, T, learn, want_spikes, l > 0 && !is_fixed(kind_of(l - 1)));
        const size_t O = sizes_.back();
        predictions_.ensure(Bs);
        if (learn) {
            labels_.ensure(Bs);
            weights_.ensure(Bs);
            cost_.ensure(Bs);
            delta_.ensure(Bs * O);
            lat_.ensure(Bs * O);
            counts_after_.ensure(Bs * O);
        }
    }

    // Input spikes as the two masks and counts of the input layer.
    void encode(const InputBatch& in)
    {
        const int B = in.batch, T = in.T, N = in.n_in;
        const size_t BT = static_cast<size_t>(B) * T;
        const int step_words = words_for(N);
        if (in.dense) {
            const uint8_t* dense = in.dense;
            if (in.dense_on_device) {
                // Read in place, ordered after the work queued so far on the producer's stream,
                // without a host wait. collect() waits for this run before returning, so the
                // producer cannot overwrite the spikes while they are read.
                HM2BP_CUDA_CHECK(cudaEventRecord(input_ready_, reinterpret_cast<cudaStream_t>(in.producer_stream)));
                HM2BP_CUDA_CHECK(cudaStreamWaitEvent(stream_, input_ready_, 0));
            } else {
                dense_.ensure(BT * N);
                HM2BP_CUDA_CHECK(cudaMemcpyAsync(dense_.get(), in.dense, BT * N, cudaMemcpyHostToDevice, stream_));
                dense = dense_.get();
            }
            launch("dense_step_mask_kernel", dense_step_mask_kernel, grid_for(BT * step_words * 32), kThreads, 0,
                   dense, BT, N, step_words, in_step_mask_.get());
        } else if (in.analog) {
            const size_t values = static_cast<size_t>(B) * N * in.frames;
            analog_.ensure(values);
            dense_.ensure(BT * N);
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(analog_.get(), in.analog, values * sizeof(double), cudaMemcpyHostToDevice,
                                             stream_));
            HM2BP_CUDA_CHECK(cudaMemsetAsync(dense_.get(), 0, BT * N, stream_));
            launch("bsa_dense_kernel", bsa_dense_kernel, grid_for(static_cast<size_t>(B) * N), kThreads, 0,
                   analog_.get(), B, N, in.frames, T, dense_.get());
            launch("dense_step_mask_kernel", dense_step_mask_kernel, grid_for(BT * step_words * 32), kThreads, 0,
                   dense_.get(), BT, N, step_words, in_step_mask_.get());
        } else {
            const size_t BN = static_cast<size_t>(B) * N;
            images_.ensure(BN);
            sample_index_.ensure(B);
            keys_.ensure(BN);
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(images_.get(), in.images, BN, cudaMemcpyHostToDevice, stream_));
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(sample_index_.get(), in.sample_index, B * sizeof(int64_t),
                                             cudaMemcpyHostToDevice, stream_));
            launch("poisson_keys_kernel", poisson_keys_kernel, grid_for(BN), kThreads, 0, sample_index_.get(), B, N,
                   in.seed, in.epoch, keys_.get());
            launch("poisson_step_mask_kernel", poisson_step_mask_kernel, grid_for(BT * step_words * 32), kThreads, 0,
                   images_.get(), keys_.get(), thresholds_.get(), B, T, N, step_words, in_step_mask_.get());
        }
        launch("transpose_mask_kernel", transpose_mask_kernel,
               static_cast<unsigned>(div_up(static_cast<size_t>(B) * step_words * 32, kThreads)), kThreads, 0,
               in_step_mask_.get(), B, T, N, step_words, words_for(T), in_neuron_mask_.get(), in_counts_.get());
    }

    void upload_targets(const BatchRequest& req)
    {
        const int B = req.input.batch;
        host_labels_.assign(req.labels, req.labels + B);
        HM2BP_CUDA_CHECK(cudaMemcpyAsync(labels_.get(), host_labels_.data(), B * sizeof(int), cudaMemcpyHostToDevice,
                                         stream_));
        if (req.sample_weights)
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(weights_.get(), req.sample_weights, B * sizeof(double),
                                             cudaMemcpyHostToDevice, stream_));
    }

    // SPEC 1 for layer l over the batch: current, then the scan.
    void forward_layer(int l, int B, int T, bool want_spikes)
    {
        DeviceLayer<Real>& layer = layers_[l];
        const uint32_t* input = l == 0 ? in_step_mask_.get() : layers_[l - 1].step_mask.get();
        const size_t rows = static_cast<size_t>(B) * T;
        const int O = layer.neurons;
        if (layer.kind == LayerKind::Dense || layer.kind == LayerKind::Reservoir) dense_current(layer, input, rows);
        else if (layer.kind == LayerKind::Conv2d)
            launch("conv_current_kernel", conv_current_kernel<Real>, grid_for(rows * O), kThreads, 0, input,
                   words_for(layer.inputs), rows, layer.wt.get(), conv_geometry(shapes_[l], specs_[l]),
                   layer.current.get());
        else
            launch("pool_current_kernel", pool_current_kernel<Real>, grid_for(rows * O), kThreads, 0, input,
                   words_for(layer.inputs), rows, pool_geometry(shapes_[l], specs_[l]), layer.current.get());

        const ScanOutputs out{layer.step_mask.get(), layer.neuron_mask.get(), layer.counts.get(), totals_.get() + l,
                              want_spikes ? layer.fired.get() : nullptr, words_for(O), words_for(T)};
        const LifParams<Real> p = lif_params<Real>(h_, vth_[l], layer.kind);
        if (layer.kind == LayerKind::Reservoir) {
            launch("reservoir_scan_kernel", reservoir_scan_kernel<Real>, B, static_cast<unsigned>(round_up(O, 32)), 0,
                   layer.current.get(), recurrent_[l]->get(), T, O, p, out);
        } else if (l == n_layers() - 1 && h_.lateral_inhibition != 0.0) {
            launch("lif_scan_kernel<lateral>", lif_scan_kernel<Real, true>, B, static_cast<unsigned>(round_up(O, 32)),
                   0, layer.current.get(), T, O, p, Real(h_.lateral_inhibition), out);
        } else {
            const int threads = static_cast<int>(std::min<size_t>(kScanThreads, round_up(O, 32)));
            launch("lif_scan_kernel", lif_scan_kernel<Real, false>, static_cast<unsigned>(B * div_up(O, threads)),
                   threads, 0, layer.current.get(), B, T, O, p, out);
        }
    }

    // The dense layer's input current over `rows` rows (b, t).
    void dense_current(DeviceLayer<Real>& layer, const uint32_t* input, size_t rows)
    {
        const int N = layer.n_in, O = layer.n_out;
        const int chunk = chunk_rows(N);
        const int tiles = column_tiles(O);
        const size_t rows_per_group = (kTileThreads / 32) * kRowsPerWarp;
        // One wave of blocks (two per SM), each with a long run of rows to reuse its W tile.
        const size_t splits = div_up(2 * prop_.multiProcessorCount, tiles);
        const size_t rows_per_block = round_up(div_up(rows, splits), rows_per_group);
        launch("current_kernel", current_kernel<Real>, dim3(tiles, static_cast<unsigned>(div_up(rows, rows_per_block))),
               kTileThreads, static_cast<size_t>(chunk) * kTileCols * sizeof(Real), input, words_for(N), rows,
               rows_per_block, layer.wt.get(), N, O, chunk, layer.current.get());
    }

    void launch_trace(DeviceLayer<Real>& layer, int B, int T)
    {
        const int O = layer.neurons;
        const size_t blocks = static_cast<size_t>(B) * div_up(T, 32) * column_tiles(O);
        launch("trace_kernel", trace_kernel<Real>, static_cast<unsigned>(blocks), kTraceThreads, 0,
               layer.neuron_mask.get(), T, O, words_for(T), spsp_window(h_.tau_m), h_.t_ref,
               spsp_decay(tables_.get()), spsp_kernel(tables_.get(), T, h_.t_ref), layer.trace.get());
    }

    // SPEC 3-4 from the output layer down: grad_part and pre-deltas of every layer.
    void backward(int B, int T)
    {
        const int L = n_layers();
        DeviceLayer<Real>& out = layers_.back();
        const int O_out = out.n_out;
        const int time_words = words_for(T);
        const bool lateral = h_.lateral_inhibition != 0.0;
        if (lateral) {  // on the spikes before revival
            launch_trace(out, B, T);
            launch("lateral_kernel", lateral_kernel<Real>, static_cast<unsigned>(div_up(static_cast<size_t>(B) * O_out, 128)),
                   128, 0, out.trace.get(), out.neuron_mask.get(), out.counts.get(), labels_.get(), B, T, O_out,
                   time_words, Real(1) / Real(vth_.back()), Real(h_.lateral_inhibition), lat_.get());
        }
        launch("revival_kernel", revival_kernel, static_cast<unsigned>(div_up(B, 128)), 128, 0, out.counts.get(),
               labels_.get(), B, T, O_out, time_words, revival_interval(T, h_.desired), out.neuron_mask.get(),
               counts_after_.get());

        // down to the first fixed layer (SPEC_SPEECH 3.6): it and the layers below it do not learn
        for (int l = L - 1; l >= 0 && !is_fixed(kind_of(l)); --l) {
            DeviceLayer<Real>& layer = layers_[l];
            const bool below_learns = l > 0 && !is_fixed(kind_of(l - 1));
            if (layer.kind == LayerKind::Conv2d) {
                backward_conv(l, B, T);
                continue;
            }
            if (layer.kind == LayerKind::Pool2d) {
                if (below_learns) backward_pool(l, B, T);  // pooling the data layer: nothing to hand down
                continue;
            }
            const int N = layer.n_in, O = layer.n_out;
            const bool top = l == L - 1;
            const int* post_counts = top ? counts_after_.get() : layer.counts.get();
            launch_trace(layer, B, T);
            launch("side_kernel", side_kernel<Real>, grid_for(static_cast<size_t>(B) * O), kThreads, 0,
                   layer.trace.get(), layer.current.get(), B, T, O, post_counts, top ? delta_.get() : nullptr,
                   top ? nullptr : layers_[l + 1].pd_part.get(), top ? 0 : layers_[l + 1].pd_tiles,
                   layer.row_sum.get(), Real(vth_[l]), layer.dv.get(), layer.side.get());
            HM2BP_CUDA_CHECK(cudaMemsetAsync(layer.grad_part.get(), 0,
                                             static_cast<size_t>(layer.groups) * N * O * sizeof(Real), stream_));
            SpspRowsArgs<Real> a;
            a.K = layer.trace.get();
            a.pre_mask = l == 0 ? in_neuron_mask_.get() : layers_[l - 1].neuron_mask.get();
            a.pre_counts = l == 0 ? in_counts_.get() : layers_[l - 1].counts.get();
            a.post_counts = post_counts;
            a.dv = layer.dv.get();
            a.side = layer.side.get();
            a.lat = top && lateral ? lat_.get() : nullptr;
            a.wt = layer.wt.get();
            a.grad_part = layer.grad_part.get();
            a.pd_part = below_learns ? layer.pd_part.get() : nullptr;
            a.B = B;
            a.T = T;
            a.N = N;
            a.O = O;
            a.time_words = time_words;
            a.samples_per_group = layer.samples_per_group;
            a.chunk_rows = chunk_rows(T);
            a.use_effect_ratio = h_.effect_ratio;
            launch("spsp_rows_kernel", spsp_rows_kernel<Real>, dim3(column_tiles(O), layer.groups), kTileThreads,
                   static_cast<size_t>(a.chunk_rows) * kTileCols * sizeof(Real), a);
        }
    }

    // SPEC_CNN 3.3 for convolution l (never the output layer): its delta comes from layer l + 1.
    void backward_conv(int l, int B, int T)
    {
        DeviceLayer<Real>& layer = layers_[l];
        const DeviceLayer<Real>& above = layers_[l + 1];
        const int N = layer.neurons;
        launch_trace(layer, B, T);
        ConvBackArgs<Real> a{layer.trace.get(), layer.counts.get(),
                             l == 0 ? in_neuron_mask_.get() : layers_[l - 1].neuron_mask.get(),
                             l == 0 ? in_counts_.get() : layers_[l - 1].counts.get(),
                             layer.wt.get(), layer.dv.get(), layer.side.get(), B, T, words_for(T),
                             conv_geometry(shapes_[l], specs_[l])};
        launch("conv_neuron_kernel", conv_neuron_kernel<Real>, grid_for(static_cast<size_t>(B) * N), kThreads, 0, a,
               above.pd_part.get(), above.pd_tiles, Real(vth_[l]), layer.dv.get(), layer.side.get());
        launch("conv_grad_kernel", conv_grad_kernel<Real>, grid_for(static_cast<size_t>(layer.n_in) * layer.n_out),
               kThreads, 0, a, layer.grad_part.get());
        if (l > 0 && !is_fixed(kind_of(l - 1)))  // a convolution of the data layer hands nothing down (SPEC_CNN 3.3)
            launch("conv_pre_delta_kernel", conv_pre_delta_kernel<Real>,
                   grid_for(static_cast<size_t>(B) * layer.inputs), kThreads, 0, a, layer.pd_part.get());
    }

    // SPEC_CNN 3.2 for pooling layer l > 0: the pre-deltas of the layer below.
    void backward_pool(int l, int B, int T)
    {
        DeviceLayer<Real>& layer = layers_[l];
        const DeviceLayer<Real>& above = layers_[l + 1];
        const DeviceLayer<Real>& below = layers_[l - 1];
        launch_trace(layer, B, T);
        launch("pool_pre_delta_kernel", pool_pre_delta_kernel<Real>, grid_for(static_cast<size_t>(B) * layer.inputs),
               kThreads, 0, layer.trace.get(), layer.counts.get(), below.neuron_mask.get(), below.counts.get(),
               above.pd_part.get(), above.pd_tiles, B, T, words_for(T), pool_geometry(shapes_[l], specs_[l]),
               layer.pd_part.get());
    }

    // Per trainable layer: the column sums of W^T (sum_i W, the side term of a dense layer's
    // silent neurons; per kernel of a convolution) and the regularization scale.
    void weight_sums()
    {
        const RegParams reg = regularization_params(h_);
        for (int l : trainable_) {
            DeviceLayer<Real>& layer = layers_[l];
            launch("weight_sums_kernel", weight_sums_kernel<Real>, div_up(layer.n_out, 128), 128, 0, layer.wt.get(),
                   layer.n_in, layer.n_out, reg, reg.active(), layer.row_sum.get(), layer.reg_scale.get());
        }
    }

    // SPEC 5: batch mean + regularization, one Adam or SGD step per weight.
    void update(int64_t count, double lr)
    {
        ++step_;
        const StepParams step = step_params(h_, lr, step_);
        for (int l : trainable_) {
            DeviceLayer<Real>& layer = layers_[l];
            launch("update_kernel", update_kernel<Real>, grid_for(static_cast<size_t>(layer.n_in) * layer.n_out),
                   kThreads, 0, layer.wt.get(), layer.moment1.get(), layer.moment2.get(), layer.grad_part.get(),
                   layer.groups, layer.n_in, layer.n_out, Real(count), layer.reg_scale.get(), step);
        }
    }

    // Copies the results to the host (the only device-to-host traffic of a run) and waits.
    BatchResult collect(const BatchRequest& req, int B, int T, bool learn)
    {
        const int L = n_layers();
        const int O = sizes_.back();
        std::vector<int> counts(static_cast<size_t>(B) * O), predictions(B);
        std::vector<double> cost(learn ? B : 0);
        std::vector<unsigned long long> totals(L);
        HM2BP_CUDA_CHECK(cudaMemcpyAsync(counts.data(), layers_.back().counts.get(), counts.size() * sizeof(int),
                                         cudaMemcpyDeviceToHost, stream_));
        HM2BP_CUDA_CHECK(cudaMemcpyAsync(predictions.data(), predictions_.get(), B * sizeof(int),
                                         cudaMemcpyDeviceToHost, stream_));
        HM2BP_CUDA_CHECK(cudaMemcpyAsync(totals.data(), totals_.get(), L * sizeof(unsigned long long),
                                         cudaMemcpyDeviceToHost, stream_));
        if (learn)
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(cost.data(), cost_.get(), B * sizeof(double), cudaMemcpyDeviceToHost,
                                             stream_));
        for (size_t l = 0; l < req.layer_spikes_out.size(); ++l)
            HM2BP_CUDA_CHECK(cudaMemcpyAsync(req.layer_spikes_out[l], layers_[l].fired.get(),
                                             static_cast<size_t>(B) * T * layers_[l].neurons, cudaMemcpyDeviceToHost,
                                             stream_));
        if (req.mode == Mode::Gradients) {
            const RegParams reg = regularization_params(h_);
            const bool regularize = req.regularize && reg.active();
            for (size_t l = 0; l < trainable_.size(); ++l) {
                const DeviceLayer<Real>& layer = layers_[trainable_[l]];
                const size_t size = static_cast<size_t>(layer.n_in) * layer.n_out;
                const Real divisor = req.reduce == Reduce::Mean ? Real(B) : Real(1);
                std::visit([&](auto* host) {
                    using Out = std::remove_pointer_t<decltype(host)>;
                    export_.ensure(size * sizeof(Out));
                    Out* out = reinterpret_cast<Out*>(export_.get());
                    // reg_scale: weight_sums() of this run, from the current weights
                    launch("export_gradient_kernel", export_gradient_kernel<Real, Out>, grid_for(size), kThreads, 0,
                           layer.grad_part.get(), layer.groups, layer.n_in, layer.n_out, divisor,
                           regularize ? layer.wt.get() : nullptr, layer.reg_scale.get(), reg, out);
                    HM2BP_CUDA_CHECK(
                        cudaMemcpyAsync(host, out, size * sizeof(Out), cudaMemcpyDeviceToHost, stream_));
                }, req.gradients_out[l]);
                HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream_));  // export_ is reused by the next layer
            }
        }
        HM2BP_CUDA_CHECK(cudaStreamSynchronize(stream_));

        BatchResult res;
        res.counts.assign(counts.begin(), counts.end());
        res.predictions.assign(predictions.begin(), predictions.end());
        res.layer_spikes.assign(totals.begin(), totals.end());
        double cost_sum = 0.0;
        for (double c : cost) cost_sum += c;
        res.loss = learn ? cost_sum / B : 0.0;
        return res;
    }
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const NetSpec& spec, bool float64)
{
    if (float64) return std::make_unique<CudaEngine<double>>(spec);
    return std::make_unique<CudaEngine<float>>(spec);
}

std::vector<std::string> cuda_architectures()
{
    std::vector<std::string> archs;
    std::string item;
    for (const char* c = HM2BP_CUDA_ARCHS;; ++c) {
        if (*c == ';' || *c == ' ' || *c == '\0') {
            if (!item.empty()) archs.push_back(item);
            item.clear();
            if (*c == '\0') break;
        } else {
            item += *c;
        }
    }
    return archs;
}

std::string cuda_device_name()
{
    int count = 0;
    int device = 0;
    cudaDeviceProp prop;
    cudaFuncAttributes attr;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0 || cudaGetDevice(&device) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, device) != cudaSuccess ||
        cudaFuncGetAttributes(&attr, cuda::current_kernel<float>) != cudaSuccess) {
        cudaGetLastError();
        return "";
    }
    return prop.name;
}

}  // namespace hm2bp
