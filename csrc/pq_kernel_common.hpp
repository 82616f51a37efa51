// PQ kernel pieces shared by pq.cpp and the ISA files (internal): the ADC
// table driver and the plain per-row ADC sum. The driver cuts one call into
// register tiles of the including file's `Tiles::tile<QT, NB>` kernel (QT
// queries x NB blocks of 32 centroids), so each codebook block read serves
// Tiles::kQueries queries. Everything has internal linkage (anonymous
// namespace): each including file compiles its own copy with its own ISA
// flags, as for hamming_generic.hpp.
#pragma once

#include <cstdint>

#include "pq.hpp"

namespace pyspec {
namespace {

// ADC sums of rows [i0, n) one row at a time, segments in order: the
// reference order every kernel reproduces, and the tail of the SIMD scans.
template <class Code>
inline void adc_rows(const float* table, std::int64_t M, std::int64_t K, const Code* codes,
                     std::int64_t i0, std::int64_t n, float* out) {
  for (std::int64_t i = i0; i < n; ++i) {
    const Code* c = codes + i * M;
    float s = 0.0f;
    for (std::int64_t m = 0; m < M; ++m) s += table[m * K + c[m]];
    out[i] = s;
  }
}

// All centroid blocks of one segment for QT queries: NB blocks per tile
// while they last, then single blocks.
template <class Tiles, int QT, int NB>
inline void table_segment(const float* seg, std::int64_t L, std::int64_t K,
                          const float* const* qp, float* const* op) {
  const std::int64_t nblk = (K + 31) / 32;
  std::int64_t jb = 0;
  for (; jb + NB <= nblk; jb += NB)
    Tiles::template tile<QT, NB>(seg + jb * 32 * L, L, jb * 32, K, qp, op);
  for (; jb < nblk; ++jb) Tiles::template tile<QT, 1>(seg + jb * 32 * L, L, jb * 32, K, qp, op);
}

// detail::TableFn (pq.hpp): tiles of Tiles::kQueries queries while they
// last, then one query at a time with Tiles::kSingleBlocks blocks per tile.
template <class Tiles>
void table_tiled(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
                 std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo) {
  constexpr int kQ = Tiles::kQueries;
  const std::int64_t K = cb.K;
  for (std::int64_t m = m0; m < m1; ++m) {
    const std::int64_t s = cb.bounds[m], L = cb.bounds[m + 1] - s;
    const float* seg = cb.ct + cb.Kp * s;
    const float* qp[kQ];
    float* op[kQ];
    std::int64_t q0 = 0;
    for (; q0 + kQ <= nq; q0 += kQ) {
      for (int p = 0; p < kQ; ++p) {
        qp[p] = Q + (q0 + p) * ldq + s;
        op[p] = out + (q0 + p) * ldo + m * K;
      }
      table_segment<Tiles, kQ, 1>(seg, L, K, qp, op);
    }
    for (; q0 < nq; ++q0) {
      qp[0] = Q + q0 * ldq + s;
      op[0] = out + q0 * ldo + m * K;
      table_segment<Tiles, 1, Tiles::kSingleBlocks>(seg, L, K, qp, op);
    }
  }
}

// Per-segment constants of the bound-table kernels (pq.hpp, "Bound
// tables"). A bound is computed, in this order and in float, as
//   r = max(0, fma(sqrt(t), f, -e) - kBoundSlack),  b = max(0, fma(r * r, g, -tiny))
// with t = sum_d (q_d * inv_s - h_d)^2 (fma, pixel order), f = 1 - delta and
// g = (1 - delta) s^2 rounded down. The fused steps are written out at
// every level (the compiler contracts a multiply and a subtract in the
// SIMD files), so all levels give the same bits. kBoundSlack (scaled units) and tiny
// (about 2^-140 per pixel, unscaled) absorb the absolute errors of
// underflow, which the relative margin delta does not.
constexpr float kBoundSlack = 0x1p-50f;
struct BoundConsts {
  float inv_s, f, g, tiny;
};
inline float round_down(double x) {  // the largest float <= x (x > 0)
  float y = static_cast<float>(x);
  if (static_cast<double>(y) > x) y = __builtin_nextafterf(y, 0.0f);  // no std:: (pq.hpp)
  return y;
}
inline BoundConsts bound_consts(const PQCodebook& cb, std::int64_t m) {
  const std::int64_t L = cb.bounds[m + 1] - cb.bounds[m];
  const double s = cb.hscale[m];
  const double d = (2.0 * static_cast<double>(L) + 16.0) * 0x1p-24, delta = d < 1.0 ? d : 1.0;
  BoundConsts c;
  c.inv_s = static_cast<float>(1.0 / s);  // exact: s is a power of two
  c.f = round_down(1.0 - delta);
  c.g = round_down((1.0 - delta) * s * s);
  c.tiny = static_cast<float>((static_cast<double>(L) + 2.0) * 0x1p-140);
  return c;
}

// Exact table entries (detail::ExactFn, pq.hpp) read one centroid's L
// pixels each, from random places in the codebook; the kernels prefetch the
// rows of the entries kExactAhead ahead, so the misses overlap.
constexpr std::int64_t kExactAhead = 32;
inline const float* exact_row(const PQCodebook& cb, std::int64_t e) {
  return cb.rows + (e % cb.K) * cb.D + cb.bounds[e / cb.K];
}
inline void prefetch_exact_row(const PQCodebook& cb, std::int64_t e) {
  const char* p = reinterpret_cast<const char*>(exact_row(cb, e));
  const std::int64_t m = e / cb.K, bytes = 4 * (cb.bounds[m + 1] - cb.bounds[m]);
  for (std::int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
  __builtin_prefetch(p + bytes - 1);
}

// Exact entries of Lanes centroids, one fma chain each in pixel order (the
// table kernels' sequence; __builtin_fmaf is an fma instruction in the ISA
// files). Lane t reads q[t] and rows[t] for L[t] pixels; the lanes may come
// from different segments, whose lengths differ by at most one pixel, so
// the chains run together up to the shortest and finish alone. Plain scalar
// chains: GCC's vectorised form of this loop (vectors assembled from scalar
// loads) and gathers both measured 3-7x slower on Zen 4.
#if defined(__GNUC__) && !defined(__clang__)
#define PYSPEC_NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define PYSPEC_NO_VECTORIZE
#endif
template <int Lanes>
PYSPEC_NO_VECTORIZE inline void exact_chains(const float* const* q, const float* const* rows,
                                             const std::int64_t* L, float* out) {
  std::int64_t common = L[0];
  for (int t = 1; t < Lanes; ++t) common = L[t] < common ? L[t] : common;
  float acc[Lanes] = {};
  for (std::int64_t d = 0; d < common; ++d) {
#pragma GCC unroll 16
    for (int t = 0; t < Lanes; ++t) {
      const float diff = q[t][d] - rows[t][d];
      acc[t] = __builtin_fmaf(diff, diff, acc[t]);
    }
  }
  for (int t = 0; t < Lanes; ++t) {
    for (std::int64_t d = common; d < L[t]; ++d) {
      const float diff = q[t][d] - rows[t][d];
      acc[t] = __builtin_fmaf(diff, diff, acc[t]);
    }
    out[t] = acc[t];
  }
}

// detail::ExactFn (pq.hpp): entries in groups of kExactLanes chains (the
// last group pads with its first entry), with the rows of the entries
// kExactAhead ahead prefetched.
constexpr int kExactLanes = 8;
inline void exact_entries_kernel(const PQCodebook& cb, const float* q,
                                 const std::int64_t* entries, std::int64_t n, float* values) {
  constexpr int W = kExactLanes;
  for (std::int64_t j = 0; j < n && j < kExactAhead; ++j) prefetch_exact_row(cb, entries[j]);
  for (std::int64_t i = 0; i < n; i += W) {
    const int cnt = n - i < W ? static_cast<int>(n - i) : W;
    for (std::int64_t j = i + kExactAhead; j < i + cnt + kExactAhead && j < n; ++j)
      prefetch_exact_row(cb, entries[j]);
    const float* qs[W];
    const float* rows[W];
    std::int64_t L[W];
    for (int t = 0; t < W; ++t) {
      const std::int64_t e = entries[i + (t < cnt ? t : 0)], m = e / cb.K;
      qs[t] = q + cb.bounds[m];
      rows[t] = exact_row(cb, e);
      L[t] = cb.bounds[m + 1] - cb.bounds[m];
    }
    float out[W];
    exact_chains<W>(qs, rows, L, out);
    for (int t = 0; t < cnt; ++t) values[entries[i + t]] = out[t];
  }
}

}  // namespace
}  // namespace pyspec
