// AVX-512 PQ kernels. Compiled with AVX-512 F/BW/VL/DQ flags and reached only
// through the dispatcher in pq_dispatch.cpp. Each output element is built with the
// same fma sequence as the scalar code (see pq.hpp), so results are
// bit-identical. No standard-library templates are used here (see pq.hpp).
#include <immintrin.h>

#include "pq.hpp"
#include "pq_kernel_common.hpp"

namespace pyspec {
namespace avx512 {
namespace {

// Rows per register block in assign: 8 rows x 32 centroids = 16 zmm
// accumulators, leaving registers for two codebook vectors and a broadcast.
constexpr int kRows = 8;

void assign(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t L, const float* ct,
            const float* cnorm, std::int64_t Kp, std::int32_t* best_j, float* best_v) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  for (std::int64_t r0 = 0; r0 < n; r0 += kRows) {
    const float* xp[kRows];
    for (int p = 0; p < kRows; ++p) {
      const std::int64_t r = r0 + p < n ? r0 + p : n - 1;  // tail rows repeat the last row
      xp[p] = x + r * ldx;
    }
    __m512 bv[kRows];
    __m512i bj[kRows];
    for (int p = 0; p < kRows; ++p) {
      bv[p] = inf;
      bj[p] = _mm512_setzero_si512();
    }
    for (std::int64_t j0 = 0; j0 < Kp; j0 += 32) {
      __m512 a0[kRows], a1[kRows];
#pragma GCC unroll 8
      for (int p = 0; p < kRows; ++p) {
        a0[p] = _mm512_setzero_ps();
        a1[p] = _mm512_setzero_ps();
      }
      const float* c = ct + j0 * L;  // blocked layout: L rows of 32 for this block
      for (std::int64_t d = 0; d < L; ++d, c += 32) {
        const __m512 c0 = _mm512_loadu_ps(c);
        const __m512 c1 = _mm512_loadu_ps(c + 16);
#pragma GCC unroll 8
        for (int p = 0; p < kRows; ++p) {
          const __m512 xb = _mm512_set1_ps(xp[p][d]);
          a0[p] = _mm512_fmadd_ps(xb, c0, a0[p]);
          a1[p] = _mm512_fmadd_ps(xb, c1, a1[p]);
        }
      }
      const __m512 n0 = _mm512_loadu_ps(cnorm + j0);
      const __m512 n1 = _mm512_loadu_ps(cnorm + j0 + 16);
      const __m512i j0v = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(j0)));
      const __m512i j1v = _mm512_add_epi32(j0v, _mm512_set1_epi32(16));
#pragma GCC unroll 8
      for (int p = 0; p < kRows; ++p) {
        const __m512 v0 = _mm512_sub_ps(n0, _mm512_add_ps(a0[p], a0[p]));
        __mmask16 k0 = _mm512_cmp_ps_mask(v0, bv[p], _CMP_LT_OQ);
        bv[p] = _mm512_mask_mov_ps(bv[p], k0, v0);
        bj[p] = _mm512_mask_mov_epi32(bj[p], k0, j0v);
        const __m512 v1 = _mm512_sub_ps(n1, _mm512_add_ps(a1[p], a1[p]));
        __mmask16 k1 = _mm512_cmp_ps_mask(v1, bv[p], _CMP_LT_OQ);
        bv[p] = _mm512_mask_mov_ps(bv[p], k1, v1);
        bj[p] = _mm512_mask_mov_epi32(bj[p], k1, j1v);
      }
    }
    // Each lane kept the smallest index among its equal minima; across lanes
    // take the minimum value, then the smallest index holding it.
    for (int p = 0; p < kRows && r0 + p < n; ++p) {
      const float m = _mm512_reduce_min_ps(bv[p]);
      const __mmask16 eq = _mm512_cmp_ps_mask(bv[p], _mm512_set1_ps(m), _CMP_EQ_OQ);
      std::int32_t j;
      if (eq) {
        j = _mm512_mask_reduce_min_epi32(eq, bj[p]);
      } else {  // every score was +inf: index 0, as in the scalar scan
        j = 0;
      }
      best_j[r0 + p] = j;
      best_v[r0 + p] = m;
    }
  }
}

// One register tile of the table kernel: QT queries x NB blocks of 32
// centroids (2 * QT * NB zmm accumulators). Each block row (32 floats) is
// loaded once and used by all QT queries.
struct Tiles {
  static constexpr int kQueries = 8;       // 8 queries x 32 centroids = 16 accumulators
  static constexpr int kSingleBlocks = 4;  // one query: 4 blocks = 8 accumulators

  template <int QT, int NB>
  static void tile(const float* blk, std::int64_t L, std::int64_t j0, std::int64_t K,
                   const float* const* qp, float* const* op) {
    __m512 acc[QT][NB][2];
    for (int p = 0; p < QT; ++p)
      for (int b = 0; b < NB; ++b) acc[p][b][0] = acc[p][b][1] = _mm512_setzero_ps();
    for (std::int64_t d = 0; d < L; ++d) {
      __m512 c[NB][2];
      for (int b = 0; b < NB; ++b) {
        c[b][0] = _mm512_loadu_ps(blk + b * 32 * L + d * 32);
        c[b][1] = _mm512_loadu_ps(blk + b * 32 * L + d * 32 + 16);
      }
#pragma GCC unroll 8
      for (int p = 0; p < QT; ++p) {
        const __m512 qd = _mm512_set1_ps(qp[p][d]);
        for (int b = 0; b < NB; ++b)
          for (int h = 0; h < 2; ++h) {
            const __m512 diff = _mm512_sub_ps(qd, c[b][h]);
            acc[p][b][h] = _mm512_fmadd_ps(diff, diff, acc[p][b][h]);
          }
      }
    }
    for (int p = 0; p < QT; ++p)
      for (int b = 0; b < NB; ++b)
        for (int h = 0; h < 2; ++h) {
          const std::int64_t j = j0 + b * 32 + h * 16;
          if (j + 16 <= K) {
            _mm512_storeu_ps(op[p] + j, acc[p][b][h]);
          } else if (j < K) {
            const __mmask16 mask = static_cast<__mmask16>((1u << (K - j)) - 1u);
            _mm512_mask_storeu_ps(op[p] + j, mask, acc[p][b][h]);
          }
        }
  }

  // All centroid blocks of one segment for QT queries: NB blocks per tile
  // while they last, then single blocks.
};

void table(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
           std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo) {
  table_tiled<Tiles>(cb, Q, nq, ldq, m0, m1, out, ldo);
}

// Vertical ADC (see pq.hpp): one zmm holds a row's 16 query sums; kVRows
// rows are interleaved so their add chains and table loads overlap.
constexpr int kVRows = 8;

template <class Code>
void vadc(const float* vt, std::int64_t M, std::int64_t K, const Code* codes, std::int64_t n,
          float* out) {
  const std::int64_t stride = K * 16;
  std::int64_t i = 0;
  for (; i + kVRows <= n; i += kVRows) {
    const Code* c = codes + i * M;
    __m512 acc[kVRows];
    for (int r = 0; r < kVRows; ++r) acc[r] = _mm512_setzero_ps();
    const float* t = vt;
    for (std::int64_t m = 0; m < M; ++m, t += stride) {
#pragma GCC unroll 8
      for (int r = 0; r < kVRows; ++r)
        acc[r] = _mm512_add_ps(acc[r], _mm512_loadu_ps(t + std::int64_t(c[r * M + m]) * 16));
    }
    for (int r = 0; r < kVRows; ++r) _mm512_storeu_ps(out + (i + r) * 16, acc[r]);
  }
  for (; i < n; ++i) {
    const Code* c = codes + i * M;
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t m = 0; m < M; ++m)
      acc = _mm512_add_ps(acc, _mm512_loadu_ps(vt + m * stride + std::int64_t(c[m]) * 16));
    _mm512_storeu_ps(out + i * 16, acc);
  }
}

void vadc_u8(const float* vt, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
             std::int64_t n, float* out) {
  vadc(vt, M, K, codes, n, out);
}
void vadc_u16(const float* vt, std::int64_t M, std::int64_t K, const std::uint16_t* codes,
              std::int64_t n, float* out) {
  vadc(vt, M, K, codes, n, out);
}

// Distances of 16 rows at once: one 32-bit gather fetches 4 (uint8) or 2
// (uint16) codes of each row, then one float gather per segment reads
// table[m][code]. Sums run in segment order, as in the scalar code.
void adc_u8(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
            std::int64_t n, std::int64_t readable, float* out) {
  const __m512i row_off = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(M)));
  const __m512i lo8 = _mm512_set1_epi32(0xFF);
  std::int64_t i = 0;
  // The 32-bit code gather may read up to 3 bytes past row i+15.
  for (; i + 16 <= n && (i + 16) * M + 3 <= readable * M; i += 16) {
    const std::uint8_t* base = codes + i * M;
    __m512 acc = _mm512_setzero_ps();
    std::int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
      const __m512i w = _mm512_i32gather_epi32(row_off, base + m, 1);
      const float* t = table + m * K;
      acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_and_si512(w, lo8), t, 4));
      acc = _mm512_add_ps(
          acc, _mm512_i32gather_ps(_mm512_and_si512(_mm512_srli_epi32(w, 8), lo8), t + K, 4));
      acc = _mm512_add_ps(
          acc, _mm512_i32gather_ps(_mm512_and_si512(_mm512_srli_epi32(w, 16), lo8), t + 2 * K, 4));
      acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_srli_epi32(w, 24), t + 3 * K, 4));
    }
    if (m < M) {
      const __m512i w = _mm512_i32gather_epi32(row_off, base + m, 1);
      for (int sh = 0; m < M; ++m, sh += 8) {
        const __m512i idx = _mm512_and_si512(_mm512_srli_epi32(w, sh), lo8);
        acc = _mm512_add_ps(acc, _mm512_i32gather_ps(idx, table + m * K, 4));
      }
    }
    _mm512_storeu_ps(out + i, acc);
  }
  adc_rows(table, M, K, codes, i, n, out);
}

// Bound-table rows for NB blocks of 32 centroids (pq.hpp, "Bound tables";
// pq_kernel_common.hpp for the formula): each pixel row of an 8-bit block is
// 32 bytes, widened exactly (vpmovsxbd, vcvtdq2ps). The kernel reads from
// DRAM, and more blocks at once (more concurrent streams) read faster: with
// the half-precision copy tried first, a single-query bound table at
// 25 x 3200 took 1.10 / 0.98 / 0.77 / 0.70 ms with NB = 2 / 4 / 8 / 12
// (24 of the 32 zmm as accumulators).
struct Bounds {
  static constexpr int kWide = 12, kNarrow = 4;

  template <int NB>
  static void blocks(const BoundSegment& sg, std::int64_t jb) {
    const std::int64_t L = sg.L, j0 = jb * 32;
    const std::int8_t* blk = sg.cq + j0 * L;
    __m512 acc[2 * NB];
    for (int i = 0; i < 2 * NB; ++i) acc[i] = _mm512_setzero_ps();
    for (std::int64_t d = 0; d < L; ++d) {
      const __m512 qd = _mm512_set1_ps((sg.q[d] - sg.mean[d]) * sg.bc.inv_s);
      for (int b = 0; b < NB; ++b) {
        const std::int8_t* row = blk + (b * L + d) * 32;
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        const __m512 h0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(h)));
        const __m512 h1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(h, 1)));
        const __m512 d0 = _mm512_sub_ps(qd, h0), d1 = _mm512_sub_ps(qd, h1);
        acc[2 * b] = _mm512_fmadd_ps(d0, d0, acc[2 * b]);
        acc[2 * b + 1] = _mm512_fmadd_ps(d1, d1, acc[2 * b + 1]);
      }
    }
    const BoundConsts& bc = sg.bc;
    const __m512 zero = _mm512_setzero_ps(), f = _mm512_set1_ps(bc.f), g = _mm512_set1_ps(bc.g);
    const __m512 slack = _mm512_set1_ps(bc.slack), tiny = _mm512_set1_ps(bc.tiny);
    const __m512 fu = _mm512_set1_ps(bc.fu), gu = _mm512_set1_ps(bc.gu);
    for (int i = 0; i < 2 * NB; ++i) {
      const std::int64_t j = j0 + 16 * i;
      if (j >= sg.K) break;
      const __m512 root = _mm512_sqrt_ps(acc[i]), e = _mm512_loadu_ps(sg.err + j);
      __m512 r = _mm512_fmsub_ps(root, f, e);
      r = _mm512_max_ps(_mm512_sub_ps(r, slack), zero);
      const __m512 lo = _mm512_max_ps(_mm512_fmsub_ps(_mm512_mul_ps(r, r), g, tiny), zero);
      const __m512 ru = _mm512_add_ps(_mm512_fmadd_ps(root, fu, e), slack);
      const __m512 up = _mm512_fmadd_ps(_mm512_mul_ps(ru, ru), gu, tiny);
      const std::int64_t left = sg.K - j;
      const __mmask16 keep = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      _mm512_mask_storeu_ps(sg.lower + j, keep, lo);
      _mm512_mask_storeu_ps(sg.upper + j, keep, up);
    }
  }
};

void bound_table(const PQCodebook& cb, const float* q, std::int64_t m0, std::int64_t m1,
                 float* lower, float* upper) {
  bound_table_tiled<Bounds>(cb, q, m0, m1, lower, upper);
}

void adc_u16(const float* table, std::int64_t M, std::int64_t K, const std::uint16_t* codes,
             std::int64_t n, std::int64_t readable, float* out) {
  const __m512i row_off = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(2 * M)));
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
  std::int64_t i = 0;
  // The 32-bit code gather may read up to 2 bytes past row i+15.
  for (; i + 16 <= n && (i + 16) * M + 1 <= readable * M; i += 16) {
    const std::uint16_t* base = codes + i * M;
    __m512 acc = _mm512_setzero_ps();
    std::int64_t m = 0;
    for (; m + 2 <= M; m += 2) {
      const __m512i w = _mm512_i32gather_epi32(row_off, base + m, 1);
      const float* t = table + m * K;
      acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_and_si512(w, lo16), t, 4));
      acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_srli_epi32(w, 16), t + K, 4));
    }
    if (m < M) {
      const __m512i w = _mm512_i32gather_epi32(row_off, base + m, 1);
      acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_and_si512(w, lo16), table + m * K, 4));
    }
    _mm512_storeu_ps(out + i, acc);
  }
  adc_rows(table, M, K, codes, i, n, out);
}

}  // namespace
}  // namespace avx512

namespace detail {
PQKernels pq_kernels_avx512() {
  return PQKernels{avx512::assign, avx512::table,   avx512::bound_table, exact_entries_kernel,
                   avx512::adc_u8, avx512::adc_u16, avx512::vadc_u8,     avx512::vadc_u16};
}
}  // namespace detail
}  // namespace pyspec
