// SPEC 1: discrete LIF neuron with a first-order synapse.
#pragma once
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
template <class Real>
HM2BP_HD void lif_decay(Real& v, Real& ep, const LifParams<Real>& p)
{
    v -= v / p.tau_m;
    ep -= ep / p.tau_s;
}

// Integrates the input current r (already delayed by one step) at a step t >= 1 and
// returns whether the neuron fires. The caller applies lif_decay first.
template <class Real>
HM2BP_HD bool lif_integrate(Real& v, Real& ep, int& ref, Real r, const LifParams<Real>& p)
{
    ep += r;
    v += ep / p.tau_s;
    if (ref > 0) {
        v = Real(0);
        --ref;
    }
    const bool fire = v > p.vth - Real(1e-6);
    if (fire) {
        ref = p.t_ref;
        v = Real(0);
    }
    return fire;
}

}  // namespace hm2bp
