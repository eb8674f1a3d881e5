// SPEC 4: the micro-level backward pass, per neuron and per connection.
#pragma once
#include "common.hpp"

namespace hm2bp {

// Effect ratio R[o, i]: e / n_i, or 1 when either neuron is silent.
template <class Real>
HM2BP_HD Real effect_ratio(Real e, int n_post, int n_pre)
{
    return (n_pre == 0 || n_post == 0) ? Real(1) : e / Real(n_pre);
}

// dv[o] = delta[o] / vth: the delta of a layer (from the loss, or the pre-delta of the layer
// above) as a change of membrane potential.
template <class Real>
HM2BP_HD Real voltage_delta(Real delta, Real vth)
{
    return delta / vth;
}

// Per-connection weight of the side term: e / n_o, or 0.5 for a silent post neuron.
template <class Real>
HM2BP_HD Real side_weight(Real e, int n_post)
{
    return n_post > 0 ? e / Real(n_post) : Real(0.5);
}

// side[o] = (1/vth) * sum_i W[o,i] * side_weight(e[o,i], n_o), from the fast form's sums:
// weighted_sum = sum_i W[o,i] e[o,i] (= sum_t K[o,t] I[o,t]) for a firing neuron, weight_sum =
// sum_i W[o,i] for a silent one (every connection then weighs 0.5).
template <class Real>
HM2BP_HD Real side_term(Real weighted_sum, int n_post, Real weight_sum, Real vth)
{
    const Real sum = n_post > 0 ? weighted_sum / Real(n_post) : weight_sum * side_weight(Real(0), 0);
    return (Real(1) / vth) * sum;
}

// One connection's term of pre_delta[i] = sum_o dv[o] * R[o,i] * W[o,i]; e is the connection's
// S-PSP (spsp_value), R its effect ratio, or 1 when the effect ratio is switched off.
template <class Real>
HM2BP_HD Real pre_delta_term(Real dv, Real e, int n_post, int n_pre, bool use_effect_ratio, Real w)
{
    const Real R = use_effect_ratio ? effect_ratio(e, n_post, n_pre) : Real(1);
    return dv * R * w;
}

// One window's share of the delta handed down through a pooling layer (SPEC_CNN 3.2): the pool
// neuron's delta / size^2 times the effect ratio of the connection, NOT divided by the pool's vth.
template <class Real>
HM2BP_HD Real pool_pre_delta_term(Real delta, int size, Real e, int n_post, int n_pre)
{
    return delta / Real(size * size) * effect_ratio(e, n_post, n_pre);
}

// d_j of the lateral factor: 1/vth for an output neuron that fired or is the label, else 0.
template <class Real>
HM2BP_HD Real lateral_gate(int n, bool is_label, Real inv_vth)
{
    return (n > 0 || is_label) ? inv_vth : Real(0);
}

// r_jl of the lateral factor: e_{l|j} / n_j, or 1 when either output neuron is silent.
template <class Real>
HM2BP_HD Real lateral_ratio(Real e, int n_j, int n_l)
{
    return (n_j == 0 || n_l == 0) ? Real(1) : e / Real(n_j);
}

// lat[j] = 1 / (1 - w0^2 * sum_l r_jl d_l r_lj d_j), given that sum.
template <class Real>
HM2BP_HD Real lateral_factor(Real w0, Real coupling_sum)
{
    return Real(1) / (Real(1) - w0 * w0 * coupling_sum);
}

// The per-neuron factor of the weight gradient: g[o, i] = gradient_scale[o] * e[o, i].
// Factored out so that a whole layer can scale its S-PSP traces once (SPEC 6).
template <class Real>
HM2BP_HD Real gradient_scale(Real dv, Real side, Real lat)
{
    return dv * (Real(1) + side) * lat;
}

// Per-sample weight gradient g[o, i] from the neuron's gradient_scale and the S-PSP e[o, i].
template <class Real>
HM2BP_HD Real weight_gradient(Real scale, Real e)
{
    return scale * e;
}

// The same from its factors: g[o, i] = dv * e * (1 + side) * lat.
template <class Real>
HM2BP_HD Real weight_gradient(Real dv, Real e, Real side, Real lat)
{
    return weight_gradient(gradient_scale(dv, side, lat), e);
}

}  // namespace hm2bp
