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

}  // namespace
}  // namespace pyspec
