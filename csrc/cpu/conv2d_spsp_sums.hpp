// The fast-form S-PSP sums of one conv output position (SPEC_CNN 3.4, SPEC 6): for each of its
// connections from an input that spiked, the sum of its firing channels' traces K over the
// input's spike times.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "../hm2bp/geometry.hpp"
#include "row_sums.hpp"
#include "spike_train.hpp"

namespace hm2bp {

// Scratch of position_spsp_sums; keep one per thread.
template <class Real>
struct PositionSums {
    std::vector<int> r, q, by_count, histogram;  // the active connections; their order by spike count
    std::vector<const int*> times;
    std::vector<int> count;
    std::vector<Real*> out;
};

// sums[r * n_cols + c] = sum over the spike times tq of input q of traces[tq * trace_stride +
// col_lo + c], c in [0, n_cols) (whole vectors of lanes), for every connection (r, q) of output
// position (x, y) whose input spiked; other rows are not written. Each sum runs in the order
// of the input's spike times (sum_rows_interleaved); the connections go in order of falling
// spike count (a counting sort), so that the lists summed side by side have similar lengths.
template <class Real>
void position_spsp_sums(const ConvGeometry& geo, const SpikeTrain& pre, int x, int y, const Real* traces,
                        size_t trace_stride, int col_lo, int n_cols, PositionSums<Real>& s, Real* sums)
{
    s.r.clear();
    s.q.clear();
    int most = 0;
    geo.for_each_connection(x, y, [&](int r, int q) {
        const int n = pre.count(q);
        if (n == 0) return;
        s.r.push_back(r);
        s.q.push_back(q);
        most = std::max(most, n);
    });
    const int n_active = static_cast<int>(s.r.size());
    s.histogram.assign(most + 2, 0);  // slot most - count + 1: descending counts
    for (int a = 0; a < n_active; ++a) ++s.histogram[most - pre.count(s.q[a]) + 1];
    for (int k = 1; k <= most + 1; ++k) s.histogram[k] += s.histogram[k - 1];
    s.by_count.resize(n_active);
    for (int a = 0; a < n_active; ++a) s.by_count[s.histogram[most - pre.count(s.q[a])]++] = a;
    s.times.resize(n_active);
    s.count.resize(n_active);
    s.out.resize(n_active);
    for (int k = 0; k < n_active; ++k) {
        const int a = s.by_count[k];
        s.times[k] = pre.times(s.q[a]);
        s.count[k] = pre.count(s.q[a]);
        s.out[k] = sums + static_cast<size_t>(s.r[a]) * n_cols;
    }
    sum_rows_interleaved(traces, trace_stride, col_lo, n_cols, s.times.data(), s.count.data(), n_active,
                         s.out.data());
}

}  // namespace hm2bp
