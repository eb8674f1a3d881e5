// SPEC 5: weight regularization and the optimizer steps, elementwise.
#pragma once
#include <cmath>
#include <cstdint>

#include "../model/network_spec.hpp"
#include "common.hpp"

namespace hm2bp {

struct RegParams {
    double lambda;
    double beta;
    double limit;
    // With lambda or beta 0 the regularization gradient is 0: its scale is not computed.
    bool active() const { return lambda != 0.0 && beta != 0.0; }
};

inline RegParams regularization_params(const Hyper& h) { return {h.reg_lambda, h.reg_beta, h.weight_limit}; }

// The weight regularizer's gradient is scale[o] * W[o, i] / limit, with a per-neuron scale
// lambda * beta * exp(beta * (q - 1)) of q = mean_i (W[o,i] / limit)^2.
template <class Real>
HM2BP_HD Real regularization_scale(Real q, const RegParams& r)
{
    using std::exp;
    return Real(r.lambda) * Real(r.beta) * exp(Real(r.beta) * (q - Real(1)));
}

// One term of q: (W[o, i] / limit)^2.
template <bool PowerOfTwoLimit = false, class Real>
HM2BP_HD Real regularization_term(Real w, const RegParams& r)
{
    const Real x = divide<PowerOfTwoLimit>(w, Real(r.limit));
    return x * x;
}

template <bool PowerOfTwoLimit = false, class Real>
HM2BP_HD Real regularization_grad(Real w, Real scale, const RegParams& r)
{
    return scale * divide<PowerOfTwoLimit>(w, Real(r.limit));
}

struct AdamParams {
    double b1;
    double b2;
    double eps;
    double bias1;  // 1 - b1^step
    double bias2;  // 1 - b2^step
};

// Adam in two halves (the CPU step divides by the bias corrections its own way, exactly):
// the moments m, v after gradient g, then the weight change from the bias-corrected moments
// m_hat = m / bias1 and v_hat = v / bias2.
template <class Real>
HM2BP_HD void adam_moments(Real g, Real& m, Real& v, const AdamParams& a)
{
    m = Real(a.b1) * m + Real(1 - a.b1) * g;
    v = Real(a.b2) * v + Real(1 - a.b2) * g * g;
}

template <class Real>
HM2BP_HD Real adam_change(Real m_hat, Real v_hat, double lr, const AdamParams& a)
{
    using std::sqrt;
    return Real(lr) * m_hat / (sqrt(v_hat) + Real(a.eps));
}

template <class Real>
HM2BP_HD void adam_update(Real& w, Real g, Real& m, Real& v, double lr, const AdamParams& a)
{
    adam_moments(g, m, v, a);
    w -= adam_change(m / Real(a.bias1), v / Real(a.bias2), lr, a);
}

// SGD with momentum in the authors' form (common/cuBase.cu): the learning rate sits inside the
// velocity, so a learning-rate change acts on new gradients only.
template <class Real>
HM2BP_HD void sgd_update(Real& w, Real g, Real& velocity, double lr, double momentum)
{
    velocity = Real(momentum) * velocity + Real(lr) * g;
    w -= velocity;
}

// What one optimizer step applies to every weight of every layer.
struct StepParams {
    double lr;
    bool adam;  // else SGD with momentum
    AdamParams adam_params;
    double momentum;
    RegParams reg;
};

// The parameters of update number `step` (1, 2, ...; one counter for all layers).
inline StepParams step_params(const Hyper& h, double lr, int64_t step)
{
    const AdamParams adam{h.b1, h.b2, h.eps, 1.0 - std::pow(h.b1, double(step)), 1.0 - std::pow(h.b2, double(step))};
    return {lr, h.adam, adam, h.momentum, regularization_params(h)};
}

// The gradient that SPEC 5 feeds the optimizer for weight w: the batch mean of its gradient sum
// over `batch` samples plus the regularization gradient (scale: regularization_scale of its post
// neuron). Also what Gradients mode exports when asked to regularize (hm2bp.torch's .grad).
template <bool PowerOfTwoDivisors = false, class Real>
HM2BP_HD Real mean_gradient(Real grad_sum, Real batch, Real w, Real scale, const RegParams& reg)
{
    return divide<PowerOfTwoDivisors>(grad_sum, batch) + regularization_grad<PowerOfTwoDivisors>(w, scale, reg);
}

// SPEC 5 for one weight w with moments m1 (Adam's first moment or SGD's velocity) and m2
// (Adam's second; untouched by SGD): mean_gradient (scale 0 when the regularization is off),
// then one Adam or SGD step. PowerOfTwoDivisors: the batch size and the weight limit are powers
// of two (divide).
template <bool PowerOfTwoDivisors = false, class Real>
HM2BP_HD void weight_step(Real& w, Real& m1, Real& m2, Real grad_sum, Real batch, Real scale, const StepParams& s)
{
    const Real g = mean_gradient<PowerOfTwoDivisors>(grad_sum, batch, w, scale, s.reg);
    if (s.adam) adam_update(w, g, m1, m2, s.lr, s.adam_params);
    else sgd_update(w, g, m1, s.lr, s.momentum);
}

}  // namespace hm2bp
