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

// x / tau. Dividing by a power of two and multiplying by its reciprocal (then exact) give the
// same number, bit for bit, and the multiplication is several times cheaper: callers whose taus
// are powers of two (the presets' 64 and 8) instantiate the LIF with PowerOfTwoTaus = true.
template <bool PowerOfTwoTaus, class Real>
HM2BP_HD Real divide_by_tau(Real x, Real tau)
{
    return PowerOfTwoTaus ? x * (Real(1) / tau) : x / tau;
}

inline bool is_power_of_two(double x)
{
    int exponent;
    return x > 0 && std::frexp(x, &exponent) == 0.5;
}

// Leak of membrane (v) and synaptic (ep) state; runs at every step, t = 0 included.
template <bool PowerOfTwoTaus = false, class Real>
HM2BP_HD void lif_decay(Real& v, Real& ep, const LifParams<Real>& p)
{
    v -= divide_by_tau<PowerOfTwoTaus>(v, p.tau_m);
    ep -= divide_by_tau<PowerOfTwoTaus>(ep, p.tau_s);
}

// Integrates the input current r (already delayed by one step) at a step t >= 1 and
// returns whether the neuron fires. The caller applies lif_decay first.
template <bool PowerOfTwoTaus = false, class Real>
HM2BP_HD bool lif_integrate(Real& v, Real& ep, int& ref, Real r, const LifParams<Real>& p)
{
    // Selects rather than branches: in a vector of neurons, some are refractory or fire at
    // almost every step, and a branch on "any of them" mispredicts.
    ep += r;
    v += divide_by_tau<PowerOfTwoTaus>(ep, p.tau_s);
    const bool refractory = ref > 0;
    v = refractory ? Real(0) : v;
    ref = refractory ? ref - 1 : ref;
    const bool fire = v > p.vth - Real(1e-6);
    ref = fire ? p.t_ref : ref;
    v = fire ? Real(0) : v;
    return fire;
}

}  // namespace hm2bp
