// SPEC_CNN 5: the mnist-cnn data augmentation exactly as the authors' code does it
// (dataAugmentation/cuTransformation.cu, layers/DataLayerSpiking.cu), in float64: a displacement
// map from 2*S*S uniforms (Gaussian-smoothed elastic noise + zoom + rotation), a bilinear warp of
// the image by it, and every warped pixel's spike probability per step. The per-pixel math is
// HM2BP_HD so that a CUDA kernel can reuse it; the host drivers at the bottom fill whole maps.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.hpp"
#include "encoding.hpp"

namespace hm2bp {

// Defaults: the mnist-cnn preset (SCALE 12, ROTATION 12, DISTORTION 3.4; sigma 4, F 21).
struct AugmentParams {
    int size = 28;             // S: images are S x S, the centre is pixel S / 2 (14, not 13.5)
    double distortion = 3.4;   // elastic amplitude; below 0.1 the authors skip the elastic field
    double scale = 12.0;       // largest zoom, percent of the distance to the centre
    double rotation = 12.0;    // largest angle in degrees; |rotation| >= 0.01 clips the zoom to >= 0
    double sigma = 4.0;        // width of the elastic field's Gaussian
    int field = 21;            // F: side of the (odd) Gaussian window
    bool elastic_fix = false;  // V's elastic field from r[S*S..2*S*S-1]; the authors reuse H's (SPEC_CNN 8.6)
};

// "epoch": one map per epoch for every sample (the authors'); "sample": one map per sample too.
enum class AugmentMode { Epoch, Sample };

// The map's counter RNG (SPEC_CNN 5.4), u[k] = U(0,1] of mix64(key ^ k), k = 0..2*S*S-1, with
//   epoch mode:  key = mix64(mix64(mix64(seed) ^ AUGMENT_TAG) ^ epoch)
//   sample mode: key = mix64(epoch-mode key ^ sample id)
// AUGMENT_TAG has bit 63 set and sample indices are int64 >= 0, so the epoch-mode key is never
// a Poisson sample key (poisson_sample_key(seed, sample, epoch)) and the uniforms never repeat
// the bits of an input spike.
constexpr uint64_t AUGMENT_TAG = 0x8000000000617567ull;  // "aug" | 2^63

constexpr double AUGMENT_PI = 3.1415926535897932384626433832795;  // pi as the authors spell it

HM2BP_HD uint64_t augment_key(uint64_t seed, uint64_t epoch, AugmentMode mode, uint64_t sample)
{
    const uint64_t key = mix64(mix64(mix64(seed) ^ AUGMENT_TAG) ^ epoch);
    return mode == AugmentMode::Sample ? mix64(key ^ sample) : key;
}

// U(0,1] like curand's uniforms: the top 53 bits plus one, times 2^-53 (exact in a double).
HM2BP_HD double augment_uniform(uint64_t key, uint64_t k)
{
    return static_cast<double>((mix64(key ^ k) >> 11) + 1) * 0x1p-53;
}

// The authors' Gaussian, normalised by 1 / (2 pi sigma), not 1 / (2 pi sigma^2) (SPEC_CNN 8.8):
// the elastic amplitude 3.4 only means what it does with this kernel. a, b in 0..F-1.
HM2BP_HD double gaussian_weight(const AugmentParams& p, int a, int b)
{
    const int half = p.field / 2;
    const double d2 = (a - half) * (a - half) + (b - half) * (b - half);
    return 1.0 / (p.sigma * 2.0 * AUGMENT_PI) * std::exp(-1.0 * d2 / (2.0 * (p.sigma * p.sigma)));
}

// Displacement (dispH, dispV) of pixel (row, col), SPEC_CNN 5.2. r: the 2*S*S values 2u - 1;
// G: the F x F gaussian_weight table. Sums and products in the authors' order.
HM2BP_HD void displacement_at(const AugmentParams& p, const double* r, const double* G, int row, int col,
                              double& disp_h, double& disp_v)
{
    const int S = p.size;
    disp_h = 0.0;
    disp_v = 0.0;
    if (p.distortion >= 0.1) {
        // Correlation of r (0 outside the image) with G, the column offset a in the outer loop.
        // The window is clipped to the image: the authors' terms outside it add 0.0, a no-op.
        const int half = p.field / 2;
        const int a_end = min_of(p.field, S + half - col), b_begin = max_of(0, half - row);
        const int b_end = min_of(p.field, S + half - row);
        double sum_h = 0.0, sum_v = 0.0;
        for (int a = max_of(0, half - col); a < a_end; ++a) {
            const int origin = (row - half) * S + (col - half + a);  // r index at b = 0, maybe outside
            for (int b = b_begin; b < b_end; ++b) sum_h += r[origin + b * S] * G[b * p.field + a];
            if (p.elastic_fix)  // else the authors' V field is H's (SPEC_CNN 8.6)
                for (int b = b_begin; b < b_end; ++b) sum_v += r[S * S + origin + b * S] * G[b * p.field + a];
        }
        disp_h = p.distortion * sum_h;
        disp_v = p.distortion * (p.elastic_fix ? sum_v : sum_h);
    }
    // r[0] drives the horizontal zoom, the angle and the elastic noise at pixel (0, 0) at once.
    double s1 = r[0], s2 = r[1];
    if (std::fabs(p.rotation) >= 0.01) {
        s1 = max_of(s1, 0.0);
        s2 = max_of(s2, 0.0);
    }
    const int mid = S / 2;
    disp_h += p.scale / 100.0 * s1 * (col - mid);
    disp_v += p.scale / 100.0 * s2 * (row - mid);
    const double angle = p.rotation * r[0] * AUGMENT_PI / 180.0;
    const double x = row - mid, y = col - mid;
    disp_h += y - y * std::cos(angle) - x * std::sin(angle);
    disp_v += x - x * std::cos(angle) + y * std::sin(angle);
}

// Pixel p as the authors' warp sees it, -1..1.
HM2BP_HD double pixel_signal(uint8_t p) { return p * 2.0 / 255.0 - 1.0; }

// Spike probability per step of pixel (row, col) of the warped S x S image (SPEC_CNN 5.3).
HM2BP_HD double warped_rate(const uint8_t* image, int S, double disp_h, double disp_v, int row, int col)
{
    // Undisplaced: the authors copy the pixel, whose rate is p / (5.5 * 255). Returning that
    // quotient itself keeps this path bit-identical to poisson_threshold(p): the round trip
    // ((2p/255 - 1) + 1) * 255/2 / 1402.5 is 1 to 23 ulps off for 34 of the 256 values (2 of
    // which change the threshold), as is any displaced pixel that lands on a whole coordinate.
    if (std::fabs(disp_v) < 1e-9 && std::fabs(disp_h) < 1e-9) return image[row * S + col] / (5.5 * 255.0);
    const double sr = row - disp_v, sc = col - disp_h;
    // The authors' bounds test on the truncated coordinates, int(s) < 0 or int(s) + 1 >= S,
    // written on s itself so that no huge or NaN displacement reaches the int conversion.
    // s in (-1, 0) truncates to 0 and extrapolates from rows (columns) 0 and 1 (SPEC_CNN 8.9).
    if (!(sr > -1.0 && sr < S - 1 && sc > -1.0 && sc < S - 1)) return 0.0;  // the authors' -1: black
    const int r0 = static_cast<int>(sr), c0 = static_cast<int>(sc);  // toward zero, not floor
    const double fr = sr - r0, fc = sc - c0;
    const uint8_t* px = image + r0 * S + c0;
    const double out = (1.0 - fr) * (1.0 - fc) * pixel_signal(px[0]) + (1.0 - fr) * fc * pixel_signal(px[1]) +
                       fr * (1.0 - fc) * pixel_signal(px[S]) + fr * fc * pixel_signal(px[S + 1]);
    return (out + 1.0) * 255.0 / 2.0 / (5.5 * 255.0);
}

// Host drivers.

// The F x F gaussian_weight table, G[b * F + a].
inline std::vector<double> gaussian_kernel(const AugmentParams& p)
{
    std::vector<double> G(static_cast<size_t>(p.field) * p.field);
    for (int b = 0; b < p.field; ++b)
        for (int a = 0; a < p.field; ++a) G[b * p.field + a] = gaussian_weight(p, a, b);
    return G;
}

// One displacement map into disp_h, disp_v (S*S each); r: scratch of 2*S*S doubles.
inline void displacement_map(const AugmentParams& p, const double* G, uint64_t key, double* r, double* disp_h,
                             double* disp_v)
{
    const int n = p.size * p.size;
    for (int k = 0; k < 2 * n; ++k) r[k] = 2.0 * augment_uniform(key, static_cast<uint64_t>(k)) - 1.0;
    for (int row = 0; row < p.size; ++row)
        for (int col = 0; col < p.size; ++col)
            displacement_at(p, r, G, row, col, disp_h[row * p.size + col], disp_v[row * p.size + col]);
}

// The rates of one S x S image warped by a map.
inline void warp_rates(const uint8_t* image, int S, const double* disp_h, const double* disp_v, double* rates)
{
    for (int row = 0; row < S; ++row)
        for (int col = 0; col < S; ++col)
            rates[row * S + col] = warped_rate(image, S, disp_h[row * S + col], disp_v[row * S + col], row, col);
}

}  // namespace hm2bp
