// SPEC 1: discrete LIF neuron with a first-order synapse.
#pragma once
#include <cmath>

#include "../model/network_spec.hpp"
#include "common.hpp"

namespace hm2bp {

template <class Real>
struct LifParams {
    Real vth;
    Real tau_m;
    Real tau_s;
    int t_ref;
    Real fire_margin;  // the fire test is v > vth - fire_margin (lif_params)
};

// A layer's LIF parameters. The firing rule of each layer kind lives here: dense and pooling
// neurons fire on v > vth - 1e-6, convolution neurons on v > vth (the authors' code, SPEC_CNN
// 8.1).
template <class Real>
inline LifParams<Real> lif_params(const Hyper& h, double vth, LayerKind kind)
{
    const Real fire_margin = kind == LayerKind::Conv2d ? Real(0) : Real(1e-6);
    return {Real(vth), Real(h.tau_m), Real(h.tau_s), h.t_ref, fire_margin};
}

// Value is Real, or on the CPU a vector of neurons' Reals (a GCC vector type, with Int the integer
// vector of the same shape); the same code then runs lane by lane.

// Leak of membrane (v) and synaptic (ep) state; runs at every step, t = 0 included.
template <bool PowerOfTwoTaus = false, class Value, class Real>
HM2BP_HD void lif_decay(Value& v, Value& ep, const LifParams<Real>& p)
{
    v -= divide<PowerOfTwoTaus>(v, p.tau_m);
    ep -= divide<PowerOfTwoTaus>(ep, p.tau_s);
}

// Integrates the input current r (already delayed by one step) at a step t >= 1 and
// returns whether the neuron fires (for vectors: a lane mask, all bits set where it fires). The
// caller applies lif_decay first.
template <bool PowerOfTwoTaus = false, class Value, class Int, class Real>
HM2BP_HD auto lif_integrate(Value& v, Value& ep, Int& ref, Value r, const LifParams<Real>& p)
{
    // Selects rather than branches: in a vector of neurons, some are refractory or fire at
    // almost every step, and a branch on "any of them" mispredicts.
    ep += r;
    v += divide<PowerOfTwoTaus>(ep, p.tau_s);
    const auto refractory = ref > 0;
    v = refractory ? Real(0) : v;
    ref = refractory ? ref - 1 : ref;
    const auto fire = v > p.vth - p.fire_margin;
    ref = fire ? p.t_ref : ref;
    v = fire ? Real(0) : v;
    return fire;
}

}  // namespace hm2bp
