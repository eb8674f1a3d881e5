// SPEC 5: weight regularization and the optimizer steps, elementwise.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.hpp"

namespace hm2bp {

struct RegParams {
    double lambda;
    double beta;
    double limit;
};

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
    double lr;
    double b1;
    double b2;
    double eps;
    double bias1;  // 1 - b1^step
    double bias2;  // 1 - b2^step
};

// Adam's parameters for update number `step` (1, 2, ...; one counter for all layers).
inline AdamParams adam_params(double lr, double b1, double b2, double eps, int64_t step)
{
    return {lr, b1, b2, eps, 1.0 - std::pow(b1, double(step)), 1.0 - std::pow(b2, double(step))};
}

template <class Real>
HM2BP_HD void adam_update(Real& w, Real g, Real& m, Real& v, const AdamParams& a)
{
    m = Real(a.b1) * m + Real(1 - a.b1) * g;
    v = Real(a.b2) * v + Real(1 - a.b2) * g * g;
    using std::sqrt;
    w -= Real(a.lr) * (m / Real(a.bias1)) / (sqrt(v / Real(a.bias2)) + Real(a.eps));
}

// SGD with momentum in the authors' form (common/cuBase.cu): the learning rate sits inside the
// velocity, so a learning-rate change acts on new gradients only.
template <class Real>
HM2BP_HD void sgd_update(Real& w, Real g, Real& velocity, double lr, double momentum)
{
    velocity = Real(momentum) * velocity + Real(lr) * g;
    w -= velocity;
}

}  // namespace hm2bp
