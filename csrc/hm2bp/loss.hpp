// SPEC 3: the macro-level output loss on spike counts.
#pragma once
#include "common.hpp"

namespace hm2bp {

struct CountTargets {
    int desired;
    int undesired;
    int margin;
};

// delta of one output neuron (before sample weighting); adds its term to cost.
template <class Real>
HM2BP_HD Real output_delta(int count, bool is_label, const CountTargets& c, Real& cost)
{
    const int diff = count - (is_label ? c.desired : c.undesired);
    const int mag = diff < 0 ? -diff : diff;
    if (mag <= c.margin) return Real(0);
    cost += Real(diff) * Real(diff);
    return Real(diff);
}

// The prediction: the output neuron with the most spikes, the first one on ties (SPEC 1).
template <class Count>
HM2BP_HD int predicted_class(const Count* counts, int n)
{
    int best = 0;
    for (int o = 1; o < n; ++o)
        if (counts[o] > counts[best]) best = o;
    return best;
}

// "Revival": a silent label neuron gets regular spikes every revival_interval steps
// (callers require T >= desired, so the interval is at least 1).
HM2BP_HD int revival_interval(int T, int desired) { return T / desired; }

}  // namespace hm2bp
