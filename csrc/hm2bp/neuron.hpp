// SPEC 1: discrete LIF neuron with a first-order synapse.
#pragma once
#include <cmath>

#include "common.hpp"

namespace hm2bp {

template <class Real>
struct LifParams {
    Real vth;
    Real tau_m;
    Real tau_s;
    int t_ref;
};

// Leak of membrane (v) and synaptic (ep) state; runs at every step, t = 0 included.
template <bool PowerOfTwoTaus = false, class Real>
HM2BP_HD void lif_decay(Real& v, Real& ep, const LifParams<Real>& p)
{
    v -= divide<PowerOfTwoTaus>(v, p.tau_m);
    ep -= divide<PowerOfTwoTaus>(ep, p.tau_s);
}

// Integrates the input current r (already delayed by one step) at a step t >= 1 and
// returns whether the neuron fires. The caller applies lif_decay first.
template <bool PowerOfTwoTaus = false, class Real>
HM2BP_HD bool lif_integrate(Real& v, Real& ep, int& ref, Real r, const LifParams<Real>& p)
{
    // Selects rather than branches: in a vector of neurons, some are refractory or fire at
    // almost every step, and a branch on "any of them" mispredicts.
    ep += r;
    v += divide<PowerOfTwoTaus>(ep, p.tau_s);
    const bool refractory = ref > 0;
    v = refractory ? Real(0) : v;
    ref = refractory ? ref - 1 : ref;
    const bool fire = v > p.vth - Real(1e-6);
    ref = fire ? p.t_ref : ref;
    v = fire ? Real(0) : v;
    return fire;
}

}  // namespace hm2bp
