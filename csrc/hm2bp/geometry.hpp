// SPEC_CNN 1-2: which neurons a convolution and a pooling layer connect. Neuron (c, x, y) of a
// (channels, height, width) map has the flat index (c * height + x) * width + y. The CPU layers
// and the CUDA kernels walk connections only through these functions, in the orders given here
// (the summation orders that make the two engines agree bit for bit).
#pragma once
#include "../model/network_spec.hpp"
#include "common.hpp"

namespace hm2bp {

// A convolution (SPEC_CNN 1): O kernels of K x K x C over a (C, H, W) input, stride 1, zero
// padding P, output (O, D, E). Neuron (k, x, y) sees input q = (c, x + i - P, y + j - P) through
// W[k, c, i, j], the kernel entry r = (c * K + i) * K + j; inputs outside the map (zero padding)
// have no connection.
struct ConvGeometry {
    int C, H, W;  // input channels, height, width
    int O, D, E;  // output channels, height, width
    int K, P;     // kernel size, zero padding

    // Whether every kernel entry of output position (x, y) lies inside the map (no zero padding).
    HM2BP_HD bool interior(int x, int y) const
    {
        return x - P >= 0 && x - P + K <= H && y - P >= 0 && y - P + K <= W;
    }

    // fn(r, q) for every connection of the neurons at output position (x, y), ascending r.
    template <class Fn>
    HM2BP_HD void for_each_connection(int x, int y, Fn fn) const
    {
        for (int c = 0; c < C; ++c)
            for (int i = 0; i < K; ++i) {
                const int h = x + i - P;
                if (h < 0 || h >= H) continue;
                for (int j = 0; j < K; ++j) {
                    const int w = y + j - P;
                    if (w >= 0 && w < W) fn((c * K + i) * K + j, (c * H + h) * W + w);
                }
            }
    }

    // Channel, row and column of input q.
    HM2BP_HD void input_coords(int q, int& c, int& h, int& w) const
    {
        c = q / (H * W);
        h = q / W % H;
        w = q % W;
    }

    // fn(x, y, r) for every output position (x, y) with x_lo <= x < x_hi that input q reaches,
    // through kernel entry r; x, then y ascending.
    template <class Fn>
    HM2BP_HD void for_each_position(int q, int x_lo, int x_hi, Fn fn) const
    {
        int c, h, w;
        input_coords(q, c, h, w);
        for_each_position(c, h, w, x_lo, x_hi, fn);
    }

    // The same for the input at (c, h, w) (input_coords).
    template <class Fn>
    HM2BP_HD void for_each_position(int c, int h, int w, int x_lo, int x_hi, Fn fn) const
    {
        // x = h - i + P for i in [0, K), inside [x_lo, x_hi); y likewise inside [0, E)
        for (int x = max_of(x_lo, h + P - K + 1); x <= min_of(x_hi - 1, h + P); ++x)
            for (int y = max_of(0, w + P - K + 1); y <= min_of(E - 1, w + P); ++y)
                fn(x, y, (c * K + h - x + P) * K + w - y + P);
    }

    // fn(x, y, q) for every connection through kernel entry r: the output positions (x, y) whose
    // input q = (c, x + i - P, y + j - P) lies inside the map; x, then y ascending.
    template <class Fn>
    HM2BP_HD void for_each_use(int r, Fn fn) const
    {
        const int c = r / (K * K), i = r / K % K, j = r % K;
        for (int x = 0; x < D; ++x) {
            const int h = x + i - P;
            if (h < 0 || h >= H) continue;
            for (int y = 0; y < E; ++y) {
                const int w = y + j - P;
                if (w >= 0 && w < W) fn(x, y, (c * H + h) * W + w);
            }
        }
    }
};

// A pooling layer (SPEC_CNN 2): pool neuron p = (c, X, Y) of the (C, D, E) output sums the
// size x size window of channel c starting at (X * stride, Y * stride), clipped at the border
// of the (C, H, W) input.
struct PoolGeometry {
    int C, H, W;  // channels, input height, width
    int D, E;     // output height, width: ceil(H / stride), ceil(W / stride)
    int size, stride;

    // fn(p) for every pool neuron p whose window holds input q; (X, Y) ascending.
    template <class Fn>
    HM2BP_HD void for_each_window(int q, Fn fn) const
    {
        const int c = q / (H * W), h = q / W % H, w = q % W;
        // windows X with X * stride <= h < X * stride + size
        const int x_lo = h >= size ? (h - size) / stride + 1 : 0, x_hi = min_of(D - 1, h / stride);
        const int y_lo = w >= size ? (w - size) / stride + 1 : 0, y_hi = min_of(E - 1, w / stride);
        for (int X = x_lo; X <= x_hi; ++X)
            for (int Y = y_lo; Y <= y_hi; ++Y) fn((c * D + X) * E + Y);
    }

    // fn(q) for every input q in pool neuron p's window, ascending.
    template <class Fn>
    HM2BP_HD void for_each_member(int p, Fn fn) const
    {
        const int c = p / (D * E), X = p / E % D, Y = p % E;
        for (int h = X * stride; h < min_of(H, X * stride + size); ++h)
            for (int w = Y * stride; w < min_of(W, Y * stride + size); ++w) fn((c * H + h) * W + w);
    }
};

// The geometry of a Conv2d or Pool2d layer with input shape `in`.
inline ConvGeometry conv_geometry(const Shape& in, const LayerSpec& layer)
{
    const Shape out = output_shape(in, layer);
    return {in.channels, in.height, in.width, out.channels, out.height, out.width, layer.kernel, layer.padding};
}

inline PoolGeometry pool_geometry(const Shape& in, const LayerSpec& layer)
{
    const Shape out = output_shape(in, layer);
    return {in.channels, in.height, in.width, out.height, out.width, layer.kernel, pool_stride(layer)};
}

}  // namespace hm2bp
