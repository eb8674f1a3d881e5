// SPEC 4 and 6: the spike-train level post-synaptic potential (S-PSP).
//
// e[o, i] = sum over pre spikes tq of i of K[o, tq], where the trace K[o, .] depends only on
// the post spike train of o (the "fast form"). K is a sum of the pairwise terms spsp_pair,
// read from two tables indexed by integer step distances, so no exp() runs on the hot path.
// The GPU sums the terms directly; the CPU builds K in O(T) with ../cpu/spsp_trace_rows.hpp.
#pragma once
#include <cmath>
#include <cstddef>

#include "common.hpp"

namespace hm2bp {

// The two tables of the pairwise term, one array: decay[d] for d in 0..T, then kernel[m] for
// m in -t_ref..T (m = min(s, u) is negative when a revived train's spacing T // desired is
// shorter than t_ref, so s = tp - last < 0):
//   decay[d]  = exp(-d / tau_s) / (1 - tau_s / tau_m)
//   kernel[m] = exp(-m / tau_m) - exp(-m / tau_s)
// Computed in double, then rounded to Real. spsp_decay / spsp_kernel locate them. Sizes and
// offsets are size_t / ptrdiff_t: 2 * (T + 1) overflows int for T near INT_MAX.
inline std::size_t spsp_tables_size(int T, int t_ref)
{
    return 2 * (static_cast<std::size_t>(T) + 1) + static_cast<std::size_t>(t_ref);
}
template <class Real>
HM2BP_HD const Real* spsp_decay(const Real* tables) { return tables; }
template <class Real>
HM2BP_HD Real* spsp_kernel(Real* tables, int T, int t_ref)
{
    return tables + (static_cast<std::ptrdiff_t>(T) + 1) + t_ref;
}

template <class Real>
inline void spsp_tables(int T, int t_ref, double tau_m, double tau_s, Real* tables)
{
    Real* kernel = spsp_kernel(tables, T, t_ref);
    for (std::ptrdiff_t d = 0; d <= T; ++d) tables[d] = Real(std::exp(-d / tau_s) / (1.0 - tau_s / tau_m));
    for (std::ptrdiff_t m = -t_ref; m <= T; ++m) kernel[m] = Real(std::exp(-m / tau_m) - std::exp(-m / tau_s));
}

// Pre spikes within this many steps before a post spike count (SPEC: tq >= tp - 4*tau_m).
inline int spsp_window(double tau_m) { return static_cast<int>(std::floor(4.0 * tau_m)); }

// The pairwise term of SPEC 4 for a post spike tp (s = tp - last) and a pre spike tq at
// u = tp - t_ref - tq >= 0: decay[max(u - s, 0)] * kernel[min(s, u)]. The GPU sums it directly
// (gather form, one K[t] at a time); the CPU's spsp_trace_rows is the same sum in O(T).
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
