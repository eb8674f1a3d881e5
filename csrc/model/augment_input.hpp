// SPEC_CNN 5's augmentation on the host as the input of a training sequence (Engine::train_steps)
// and of the Python functions hm2bp.data.augment.*: parameters from their Python names, the
// epoch-mode map kept between calls, and one sample's warped image Poisson-encoded from its
// rates (the spikes of encode_rates(augment(...)) bit for bit).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../hm2bp/augment.hpp"
#include "../hm2bp/encoding.hpp"

namespace hm2bp {

inline AugmentMode augment_mode(const std::string& name)
{
    if (name == "epoch") return AugmentMode::Epoch;
    if (name == "sample") return AugmentMode::Sample;
    throw std::invalid_argument("mode must be 'epoch' or 'sample'");
}

inline AugmentParams augment_params(int size, bool elastic_fix, double distortion, double scale, double rotation,
                                    double sigma, int field)
{
    if (size < 2) throw std::invalid_argument("the image side must be >= 2");
    if (field < 1 || field % 2 == 0) throw std::invalid_argument("field must be odd and >= 1");
    AugmentParams p;
    p.size = size;
    p.elastic_fix = elastic_fix;
    p.distortion = distortion;
    p.scale = scale;
    p.rotation = rotation;
    p.sigma = sigma;
    p.field = field;
    return p;
}

// The side S of square images of `pixels` = S * S pixels.
inline int image_side(int64_t pixels)
{
    const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(pixels))));
    if (static_cast<int64_t>(side) * side != pixels) throw std::invalid_argument("images must be square (B, S*S)");
    return side;
}

// The last epoch-mode map drawn. Training at batch 1 (the paper's setting) asks for the same map
// (one per epoch) sample after sample, and drawing it (a 21 x 21 window per pixel) is most of what
// augmenting one image costs; a map is a function of its key and parameters alone, so the one
// kept is the one that would be drawn again.
struct EpochMap {
    std::mutex lock;
    bool valid = false;
    uint64_t key = 0;
    AugmentParams p;
    std::vector<double> map;  // 4 * S * S: disp_h, disp_v, then displacement_map's scratch

    bool holds(uint64_t k, const AugmentParams& q) const
    {
        return valid && key == k && p.size == q.size && p.distortion == q.distortion && p.scale == q.scale &&
               p.rotation == q.rotation && p.sigma == q.sigma && p.field == q.field && p.elastic_fix == q.elastic_fix;
    }
};

// Copies the epoch-mode map of key into out (2 * S * S: disp_h, disp_v), drawing it only when
// it is not the one kept (one map for the whole process: inline, so every caller shares it).
inline void epoch_map(const AugmentParams& p, uint64_t key, double* out)
{
    static EpochMap kept;
    const int n = p.size * p.size;
    const std::lock_guard<std::mutex> guard(kept.lock);
    if (!kept.holds(key, p)) {
        kept.valid = false;
        kept.map.resize(4 * static_cast<size_t>(n));
        displacement_map(p, gaussian_kernel(p).data(), key, kept.map.data() + 2 * n, kept.map.data(),
                         kept.map.data() + n);
        kept.key = key;
        kept.p = p;
        kept.valid = true;
    }
    std::copy_n(kept.map.data(), 2 * n, out);
}

// How a sequence's images are augmented: SPEC_CNN 5's parameters and map mode.
struct AugmentInput {
    AugmentParams params;
    AugmentMode mode = AugmentMode::Epoch;
};

// Augmented samples of one epoch, each warped and Poisson-encoded on its own (any thread).
class AugmentEncoder {
public:
    AugmentEncoder(const AugmentInput& a, uint64_t seed, uint64_t epoch)
        : p_(a.params), mode_(a.mode), seed_(seed), epoch_(epoch)
    {
        const int n = p_.size * p_.size;
        if (mode_ == AugmentMode::Epoch) {
            shared_.resize(2 * static_cast<size_t>(n));
            epoch_map(p_, augment_key(seed, epoch, mode_, 0), shared_.data());
        } else {
            G_ = gaussian_kernel(p_);
        }
    }

    // Per-thread scratch of encode.
    struct Scratch {
        std::vector<double> map, rates;
    };

    // The warped rates (S*S) of `image`, sample `index` of the data (augment_rates): the epoch's
    // map, or in sample mode its own, drawn into s.map.
    void warp(const uint8_t* image, int64_t index, Scratch& s, double* rates) const
    {
        const int n = p_.size * p_.size;
        const double* map = shared_.data();
        if (mode_ == AugmentMode::Sample) {
            s.map.resize(4 * static_cast<size_t>(n));
            displacement_map(p_, G_.data(), augment_key(seed_, epoch_, mode_, static_cast<uint64_t>(index)),
                             s.map.data() + 2 * n, s.map.data(), s.map.data() + n);
            map = s.map.data();
        }
        warp_rates(image, p_.size, map, map + n, rates);
    }

    // The spikes (T, S*S) of `image`: its warped rates, encoded as encode_rates encodes them.
    void encode(const uint8_t* image, int64_t index, int T, Scratch& s, uint8_t* dense) const
    {
        const int n = p_.size * p_.size;
        s.rates.resize(n);
        warp(image, index, s, s.rates.data());
        encode_rates_sample(s.rates.data(), poisson_sample_key(seed_, static_cast<uint64_t>(index), epoch_), T, n,
                            dense);
    }

private:
    AugmentParams p_;
    AugmentMode mode_;
    uint64_t seed_, epoch_;
    std::vector<double> shared_, G_;
};

}  // namespace hm2bp
