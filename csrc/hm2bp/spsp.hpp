// SPEC 4 and 6: the spike-train level post-synaptic potential (S-PSP).
//
// e[o, i] = sum over pre spikes tq of i of K[o, tq], where the trace K[o, .] depends only on
// the post spike train of o (the "fast form"). spsp_trace builds K; the pairwise terms come
// from two tables indexed by integer step distances, so no exp() runs on the hot path.
#pragma once
#include <cmath>

#include "common.hpp"

namespace hm2bp {

// The two tables of the pairwise term, one array: decay[d] for d in 0..T, then kernel[m] for
// m in -t_ref..T (m = min(s, u) is negative when a revived train's spacing T // desired is
// shorter than t_ref, so s = tp - last < 0):
//   decay[d]  = exp(-d / tau_s) / (1 - tau_s / tau_m)
//   kernel[m] = exp(-m / tau_m) - exp(-m / tau_s)
// Computed in double, then rounded to Real. spsp_decay / spsp_kernel locate them.
inline int spsp_tables_size(int T, int t_ref) { return 2 * (T + 1) + t_ref; }
template <class Real>
HM2BP_HD const Real* spsp_decay(const Real* tables) { return tables; }
template <class Real>
HM2BP_HD const Real* spsp_kernel(const Real* tables, int T, int t_ref) { return tables + (T + 1) + t_ref; }

template <class Real>
inline void spsp_tables(int T, int t_ref, double tau_m, double tau_s, Real* tables)
{
    Real* kernel = tables + (T + 1) + t_ref;
    for (int d = 0; d <= T; ++d) tables[d] = Real(std::exp(-d / tau_s) / (1.0 - tau_s / tau_m));
    for (int m = -t_ref; m <= T; ++m) kernel[m] = Real(std::exp(-m / tau_m) - std::exp(-m / tau_s));
}

// Pre spikes within this many steps before a post spike count (SPEC: tq >= tp - 4*tau_m).
inline int spsp_window(double tau_m) { return static_cast<int>(std::floor(4.0 * tau_m)); }

// Adds the trace of one post train (ascending spike times) to K[0..T) (zeroed by the caller).
// For a post spike tp and a pre spike tq, with s = tp - last and u = tp - (tq + t_ref) >= 0,
// the SPEC's pairwise term is decay[max(u - s, 0)] * kernel[min(s, u)]; the two loops below
// are that term on u <= s and on u > s, split so that each is a plain vector loop.
template <class Real>
HM2BP_HD void spsp_trace(const int* post, int n_post, int window, int t_ref,
                         const Real* decay, const Real* kernel, Real* K)
{
    int last = 1;
    for (int k = 0; k < n_post; ++k) {
        const int tp = post[k];
        const int s = tp - last;
        const int lo = max_of(1, tp - window);
        const int hi = tp - t_ref;  // pre spikes later than this fall in the refractory shift
        const int u_max = hi - lo;  // u = hi - tq
        const int u_split = min_of(s, u_max);
        for (int u = 0; u <= u_split; ++u) K[hi - u] += decay[0] * kernel[u];
        for (int u = max_of(u_split + 1, 0); u <= u_max; ++u) K[hi - u] += decay[u - s] * kernel[s];
        last = tp + t_ref;
    }
}

// One term of spsp_trace, for the GPU's gather form (one K[t] at a time): the post spike tp,
// s = tp - last, and a pre spike at u = tp - t_ref - tq >= 0. Equal to the two loops above.
template <class Real>
HM2BP_HD Real spsp_pair(int u, int s, const Real* decay, const Real* kernel)
{
    return u <= s ? decay[0] * kernel[u] : decay[u - s] * kernel[s];
}

// The S-PSP of a connection from its fast-form sum: the SPEC's 0.1 rule for a silent post
// neuron with an active pre neuron.
template <class Real>
HM2BP_HD Real spsp_value(Real e_fast, int n_post, int n_pre)
{
    return (n_post == 0 && n_pre != 0) ? Real(0.1) : e_fast;
}

}  // namespace hm2bp
