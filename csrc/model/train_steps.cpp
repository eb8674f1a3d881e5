// Engine::train_steps for any engine: each batch through run(), augmented images encoded on
// the host first (one thread: the engines without an override of their own are the CUDA one).
#include <stdexcept>
#include <vector>

#include "engine.hpp"

namespace hm2bp {

InputBatch batch_input(const InputBatch& in, int first, int count)
{
    InputBatch part = in;
    part.batch = count;
    const size_t at = static_cast<size_t>(first);
    if (in.dense) part.dense = in.dense + at * in.T * in.n_in;
    if (in.images) part.images = in.images + at * in.n_in;
    if (in.sample_index) part.sample_index = in.sample_index + at;
    if (in.analog) part.analog = in.analog + at * in.n_in * in.frames;
    return part;
}

std::vector<BatchResult> Engine::train_steps(const StepsRequest& req)
{
    if (req.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
    if (!req.augment) return for_each_batch(*this, req, [&](const BatchRequest& batch, int) { return run(batch); });
    if (!req.input.images) throw std::invalid_argument("augmentation needs images");
    const AugmentEncoder encoder(*req.augment, req.input.seed, req.input.epoch);
    AugmentEncoder::Scratch scratch;
    std::vector<uint8_t> dense;
    return for_each_batch(*this, req, [&](BatchRequest batch, int) {
        InputBatch& in = batch.input;
        const size_t sample = static_cast<size_t>(in.T) * in.n_in;
        dense.resize(in.batch * sample);
        for (int b = 0; b < in.batch; ++b)
            encoder.encode(in.images + static_cast<size_t>(b) * in.n_in, in.sample_index[b], in.T, scratch,
                           dense.data() + b * sample);
        in.dense = dense.data();
        in.images = nullptr;
        return run(batch);
    });
}

}  // namespace hm2bp
