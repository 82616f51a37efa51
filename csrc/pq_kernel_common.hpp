// PQ kernel pieces shared by pq_dispatch.cpp and the ISA files (internal): the ADC
// table driver, the plain per-row ADC sum, the bound-table constants and
// driver, and the exact-entry kernel (pq.hpp, "Bound tables"). The table
// driver cuts one call into register tiles of the including file's
// `Tiles::tile<QT, NB>` kernel (QT queries x NB blocks of 32 centroids), so
// each codebook block read serves Tiles::kQueries queries; the bound driver
// does the same with `Bounds::blocks<NB>`. Everything has internal linkage (anonymous
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
// tables") for one query q. A bound is computed, in this order and in float,
// as
//   r = max(0, fma(sqrt(t), f, -e) - slack),  b = max(0, fma(r * r, g, -tiny))
// with t = sum_d ((q_d - mu_d) * inv_s - h_d)^2 (fma, pixel order), f = 1 -
// delta and g = (1 - delta) s^2 rounded down, and slack = eta + 2^-50;
// an upper bound as
//   R = fma(sqrt(t), fu, e) + slack,  B = fma(R * R, gu, tiny)
// with fu = 1 + delta and gu = (1 + delta) s^2 rounded up:
// eta >= 2^-23 ||q'|| bounds the rounding of q - mu, 2^-50 (scaled units)
// and tiny (about 2^-140 per pixel, unscaled) absorb underflow, which the
// relative margin delta does not cover. The fused steps are written out at
// every level (the compiler contracts a multiply and a subtract in the SIMD
// files) and eta is computed with explicit fma, so all levels give the same
// bits.
struct BoundConsts {
  float inv_s, f, g, fu, gu, tiny, slack;
};
inline float round_down(double x) {  // the largest float <= x (x > 0)
  float y = static_cast<float>(x);
  if (static_cast<double>(y) > x) y = __builtin_nextafterf(y, 0.0f);  // no std:: (pq.hpp)
  return y;
}
inline float round_up(double x) {  // the smallest float >= x (x > 0)
  float y = static_cast<float>(x);
  if (static_cast<double>(y) < x) y = __builtin_nextafterf(y, __builtin_inff());
  return y;
}
inline BoundConsts bound_consts(const PQCodebook& cb, std::int64_t m, const float* q) {
  const std::int64_t s0 = cb.bounds[m], L = cb.bounds[m + 1] - s0;
  const double s = cb.bscale[m];
  const double d = (2.0 * static_cast<double>(L) + 16.0) * 0x1p-24, delta = d < 1.0 ? d : 1.0;
  BoundConsts c;
  c.inv_s = static_cast<float>(1.0 / s);  // exact: s is a power of two
  c.f = round_down(1.0 - delta);
  c.g = round_down((1.0 - delta) * s * s);
  c.fu = round_up(1.0 + delta);
  c.gu = round_up((1.0 + delta) * s * s);
  c.tiny = static_cast<float>((static_cast<double>(L) + 2.0) * 0x1p-140);
  double norm2 = 0.0;
  for (std::int64_t i = 0; i < L; ++i) {
    const double x = static_cast<double>((q[s0 + i] - cb.bmean[s0 + i]) * c.inv_s);
    norm2 = __builtin_fma(x, x, norm2);
  }
  // 2^-22: twice the bound, for the double rounding; then rounded up
  c.slack = static_cast<float>(__builtin_sqrt(norm2) * 0x1p-22 * (1.0 + 0x1p-20) + 0x1p-50);
  return c;
}

// One segment of a query's bound tables, as the ISA kernels see it.
struct BoundSegment {
  const std::int8_t* cq;  // the segment's 8-bit blocks (L x 32 each)
  std::int64_t L, K;
  const float* q;     // the query's pixels of this segment
  const float* mean;  // bmean, same pixels
  BoundConsts bc;
  const float* err;  // berr of the segment (Kp)
  float* lower;      // outputs, K each
  float* upper;
};

// detail::BoundTableFn (pq.hpp): per segment, Bounds::blocks<NB>(segment,
// jb) over NB blocks of 32 centroids from block jb: Bounds::kWide blocks
// while they last, then kNarrow, then single blocks.
template <class Bounds>
void bound_table_tiled(const PQCodebook& cb, const float* q, std::int64_t m0, std::int64_t m1,
                       float* lower, float* upper) {
  const std::int64_t nblk = cb.Kp / 32;
  for (std::int64_t m = m0; m < m1; ++m) {
    const std::int64_t s = cb.bounds[m];
    const BoundSegment sg{cb.cq + cb.Kp * s, cb.bounds[m + 1] - s, cb.K, q + s, cb.bmean + s,
                          bound_consts(cb, m, q), cb.berr + m * cb.Kp, lower + m * cb.K,
                          upper + m * cb.K};
    std::int64_t jb = 0;
    for (; jb + Bounds::kWide <= nblk; jb += Bounds::kWide)
      Bounds::template blocks<Bounds::kWide>(sg, jb);
    for (; jb + Bounds::kNarrow <= nblk; jb += Bounds::kNarrow)
      Bounds::template blocks<Bounds::kNarrow>(sg, jb);
    for (; jb < nblk; ++jb) Bounds::template blocks<1>(sg, jb);
  }
}

// Exact table entries (detail::ExactFn, pq.hpp) read one centroid's L
// pixels each, from random places in the codebook; the kernels prefetch the
// rows of the entries kExactAhead ahead, so the misses overlap.
constexpr std::int64_t kExactAhead = 16;
inline const float* exact_row(const PQCodebook& cb, std::int64_t e) {
  return cb.rows + (e % cb.K) * cb.D + cb.bounds[e / cb.K];
}
inline void prefetch_exact_row(const PQCodebook& cb, std::int64_t e) {
  const char* p = reinterpret_cast<const char*>(exact_row(cb, e));
  const std::int64_t m = e / cb.K, bytes = 4 * (cb.bounds[m + 1] - cb.bounds[m]);
  for (std::int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
  __builtin_prefetch(p + bytes - 1);
}

// Exact entries of Lanes centroids of one segment (L pixels, query part q),
// one fma chain each in pixel order (the table kernels' sequence;
// __builtin_fmaf is an fma instruction in the ISA files). Plain scalar
// chains: GCC's vectorised form of this loop (vectors assembled from scalar
// loads) and gathers both measured 3-7x slower on Zen 4.
#if defined(__GNUC__) && !defined(__clang__)
#define PYSPEC_NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define PYSPEC_NO_VECTORIZE
#endif
template <int Lanes>
PYSPEC_NO_VECTORIZE inline void exact_chains(const float* q, const float* const* rows,
                                             std::int64_t L, float* out) {
  float acc[Lanes] = {};
  for (std::int64_t d = 0; d < L; ++d) {
    const float qd = q[d];
#pragma GCC unroll 16
    for (int t = 0; t < Lanes; ++t) {
      const float diff = qd - rows[t][d];
      acc[t] = __builtin_fmaf(diff, diff, acc[t]);
    }
  }
  for (int t = 0; t < Lanes; ++t) out[t] = acc[t];
}

// detail::ExactFn (pq.hpp): runs of up to kExactLanes entries of one
// segment (callers list entries segment by segment) as interleaved chains;
// a short run repeats its first entry in the idle lanes. The rows of the
// entries kExactAhead ahead are prefetched.
constexpr int kExactLanes = 8;
inline void exact_entries_kernel(const PQCodebook& cb, const float* q,
                                 const std::int64_t* entries, std::int64_t n, float* values) {
  constexpr int W = kExactLanes;
  for (std::int64_t j = 0; j < n && j < kExactAhead; ++j) prefetch_exact_row(cb, entries[j]);
  std::int64_t i = 0;
  while (i < n) {
    const std::int64_t m = entries[i] / cb.K;
    int cnt = 1;
    while (cnt < W && i + cnt < n && entries[i + cnt] / cb.K == m) ++cnt;
    for (std::int64_t j = i + kExactAhead; j < i + cnt + kExactAhead && j < n; ++j)
      prefetch_exact_row(cb, entries[j]);
    const float* rows[W];
    for (int t = 0; t < W; ++t) rows[t] = exact_row(cb, entries[i + (t < cnt ? t : 0)]);
    float out[W];
    const std::int64_t s = cb.bounds[m];
    exact_chains<W>(q + s, rows, cb.bounds[m + 1] - s, out);
    for (int t = 0; t < cnt; ++t) values[entries[i + t]] = out[t];
    i += cnt;
  }
}

}  // namespace
}  // namespace pyspec
