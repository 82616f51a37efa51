// PQ encoding and distance tables: nearest-centroid codes, ADC tables and
// their bound tables (threaded drivers over the dispatched kernels).
#include "pq.hpp"

#include <algorithm>
#include <limits>

#include "parallel.hpp"
#include "pq_internal.hpp"

namespace pyspec {

template <class Code>
void pq_encode(const PQCodebook& cb, const float* X, std::int64_t n, Code* codes, float* best,
               int num_threads) {
  check_codebook(cb);
  if (cb.K - 1 > static_cast<std::int64_t>(std::numeric_limits<Code>::max()))
    throw std::invalid_argument("pq_encode: n_centroids does not fit the code type");
  const detail::PQKernels kn = detail::pq_active_kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t nblocks = (n + kEncodeRows - 1) / kEncodeRows;
  [[maybe_unused]] const bool par = nt > 1 && n * cb.D * cb.K >= kParallelMinFlops && nblocks > 1;
  ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (par))
  for (std::int64_t b = 0; b < nblocks; ++b) {
    errors.run([&] {
      std::int32_t bj[kEncodeRows];
      float bv[kEncodeRows];
      const std::int64_t r0 = b * kEncodeRows;
      const std::int64_t nb = std::min(kEncodeRows, n - r0);
      for (std::int64_t m = 0; m < cb.M; ++m) {
        const std::int64_t s = cb.bounds[m], L = cb.bounds[m + 1] - s;
        kn.assign(X + r0 * cb.D + s, cb.D, nb, L, cb.ct + cb.Kp * s, cb.cnorm + m * cb.Kp, cb.Kp,
                  bj, bv);
        for (std::int64_t r = 0; r < nb; ++r) {
          codes[(r0 + r) * cb.M + m] = static_cast<Code>(bj[r]);
          if (best) best[(r0 + r) * cb.M + m] = bv[r];
        }
      }
    });
  }
  errors.rethrow();
}

void pq_build_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* tables,
                     int num_threads) {
  check_codebook(cb);
  const detail::PQKernels kn = detail::pq_active_kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t MK = cb.M * cb.K;
  const std::int64_t ntiles = (nq + kTableTile - 1) / kTableTile;
  const bool big = nt > 1 && nq * cb.D * cb.K >= kParallelMinFlops;
  ErrorCapture errors;
  if (big && ntiles < nt && cb.M > 1) {
    // Fewer query tiles than threads (a single query, say): split segments.
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt))
    for (std::int64_t m = 0; m < cb.M; ++m) {
      errors.run([&] { kn.table(cb, Q, nq, cb.D, m, m + 1, tables, MK); });
    }
  } else {
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (big && ntiles > 1))
    for (std::int64_t t = 0; t < ntiles; ++t) {
      errors.run([&] {
        const std::int64_t q0 = t * kTableTile, tq = std::min(kTableTile, nq - q0);
        kn.table(cb, Q + q0 * cb.D, tq, cb.D, 0, cb.M, tables + q0 * MK, MK);
      });
    }
  }
  errors.rethrow();
}

void pq_build_bound_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* lower,
                           float* upper, int num_threads) {
  check_codebook(cb);
  if (!cb.has_bound_copy()) throw std::invalid_argument("pq: codebook has no bound copy");
  const detail::PQKernels kn = detail::pq_active_kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t MK = cb.M * cb.K;
  const bool big = nt > 1 && nq * cb.D * cb.K >= kParallelMinFlops;
  ErrorCapture errors;
  if (big && nq < nt && cb.M > 1) {  // a single query, say: split segments
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) collapse(2))
    for (std::int64_t q = 0; q < nq; ++q)
      for (std::int64_t m = 0; m < cb.M; ++m)
        errors.run([&] {
          kn.bound_table(cb, Q + q * cb.D, m, m + 1, lower + q * MK, upper + q * MK);
        });
  } else {
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (big && nq > 1))
    for (std::int64_t q = 0; q < nq; ++q)
      errors.run([&] {
        kn.bound_table(cb, Q + q * cb.D, 0, cb.M, lower + q * MK, upper + q * MK);
      });
  }
  errors.rethrow();
}

bool pq_bound_copy_pays(std::int64_t Kp, std::int64_t D) {
  return Kp * D * 4 > (std::int64_t(8) << 20);
}

template void pq_encode<std::uint8_t>(const PQCodebook&, const float*, std::int64_t,
                                      std::uint8_t*, float*, int);
template void pq_encode<std::uint16_t>(const PQCodebook&, const float*, std::int64_t,
                                       std::uint16_t*, float*, int);

}  // namespace pyspec
