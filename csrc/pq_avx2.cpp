// AVX2 + FMA PQ kernels. Compiled with -mavx2 -mfma and reached only through
// the dispatcher in pq_dispatch.cpp. Same fma order per output element as the scalar
// code (pq.hpp), hence bit-identical results. No standard-library templates.
#include <immintrin.h>

#include "pq.hpp"
#include "pq_kernel_common.hpp"

namespace pyspec {
namespace avx2 {
namespace {

// Rows per register block in assign: 2 rows x 32 centroids = 8 ymm
// accumulators + 4 codebook vectors + 1 broadcast of the 16 registers.
constexpr int kRows = 2;

void assign(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t L, const float* ct,
            const float* cnorm, std::int64_t Kp, std::int32_t* best_j, float* best_v) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  for (std::int64_t r0 = 0; r0 < n; r0 += kRows) {
    const float* xp[kRows];
    for (int p = 0; p < kRows; ++p) {
      const std::int64_t r = r0 + p < n ? r0 + p : n - 1;
      xp[p] = x + r * ldx;
    }
    __m256 bv[kRows];
    __m256i bj[kRows];
    for (int p = 0; p < kRows; ++p) {
      bv[p] = inf;
      bj[p] = _mm256_setzero_si256();
    }
    for (std::int64_t j0 = 0; j0 < Kp; j0 += 32) {
      __m256 a[kRows][4];
      for (int p = 0; p < kRows; ++p)
        for (int t = 0; t < 4; ++t) a[p][t] = _mm256_setzero_ps();
      const float* c = ct + j0 * L;  // blocked layout: L rows of 32 for this block
      for (std::int64_t d = 0; d < L; ++d, c += 32) {
        const __m256 c0 = _mm256_loadu_ps(c), c1 = _mm256_loadu_ps(c + 8);
        const __m256 c2 = _mm256_loadu_ps(c + 16), c3 = _mm256_loadu_ps(c + 24);
#pragma GCC unroll 2
        for (int p = 0; p < kRows; ++p) {
          const __m256 xb = _mm256_broadcast_ss(xp[p] + d);
          a[p][0] = _mm256_fmadd_ps(xb, c0, a[p][0]);
          a[p][1] = _mm256_fmadd_ps(xb, c1, a[p][1]);
          a[p][2] = _mm256_fmadd_ps(xb, c2, a[p][2]);
          a[p][3] = _mm256_fmadd_ps(xb, c3, a[p][3]);
        }
      }
      for (int t = 0; t < 4; ++t) {
        const __m256 nv = _mm256_loadu_ps(cnorm + j0 + 8 * t);
        const __m256i jv = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(j0 + 8 * t)));
        for (int p = 0; p < kRows; ++p) {
          const __m256 v = _mm256_sub_ps(nv, _mm256_add_ps(a[p][t], a[p][t]));
          const __m256 lt = _mm256_cmp_ps(v, bv[p], _CMP_LT_OQ);
          bv[p] = _mm256_blendv_ps(bv[p], v, lt);
          bj[p] = _mm256_castps_si256(
              _mm256_blendv_ps(_mm256_castsi256_ps(bj[p]), _mm256_castsi256_ps(jv), lt));
        }
      }
    }
    for (int p = 0; p < kRows && r0 + p < n; ++p) {
      alignas(32) float v[8];
      alignas(32) std::int32_t j[8];
      _mm256_store_ps(v, bv[p]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(j), bj[p]);
      float m = v[0];
      std::int32_t jm = j[0];
      for (int l = 1; l < 8; ++l)
        if (v[l] < m || (v[l] == m && j[l] < jm)) {
          m = v[l];
          jm = j[l];
        }
      if (!(m < __builtin_inff())) jm = 0;  // all +inf: index 0, as in the scalar scan
      best_j[r0 + p] = jm;
      best_v[r0 + p] = m;
    }
  }
}

// One register tile of the table kernel: QT queries x NB blocks of 32
// centroids (4 * QT * NB ymm accumulators); block rows are read from memory
// operands once per tile and shared by the QT queries.
struct Tiles {
  static constexpr int kQueries = 2;       // 2 queries x 32 centroids = 8 accumulators
  static constexpr int kSingleBlocks = 2;  // one query: 2 blocks = 8 accumulators

  template <int QT, int NB>
  static void tile(const float* blk, std::int64_t L, std::int64_t j0, std::int64_t K,
                   const float* const* qp, float* const* op) {
    __m256 acc[QT][NB][4];
    for (int p = 0; p < QT; ++p)
      for (int b = 0; b < NB; ++b)
        for (int h = 0; h < 4; ++h) acc[p][b][h] = _mm256_setzero_ps();
    for (std::int64_t d = 0; d < L; ++d) {
      for (int p = 0; p < QT; ++p) {
        const __m256 qd = _mm256_broadcast_ss(qp[p] + d);
        for (int b = 0; b < NB; ++b)
#pragma GCC unroll 4
          for (int h = 0; h < 4; ++h) {
            const __m256 c = _mm256_loadu_ps(blk + b * 32 * L + d * 32 + 8 * h);
            const __m256 diff = _mm256_sub_ps(qd, c);
            acc[p][b][h] = _mm256_fmadd_ps(diff, diff, acc[p][b][h]);
          }
      }
    }
    for (int p = 0; p < QT; ++p)
      for (int b = 0; b < NB; ++b)
        for (int h = 0; h < 4; ++h) {
          const std::int64_t j = j0 + b * 32 + h * 8;
          if (j + 8 <= K) {
            _mm256_storeu_ps(op[p] + j, acc[p][b][h]);
          } else if (j < K) {
            alignas(32) float tmp[8];
            _mm256_store_ps(tmp, acc[p][b][h]);
            for (std::int64_t l = 0; l < K - j; ++l) op[p][j + l] = tmp[l];
          }
        }
  }
};

void table(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
           std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo) {
  table_tiled<Tiles>(cb, Q, nq, ldq, m0, m1, out, ldo);
}

// Bound-table rows for NB blocks of 32 centroids (see the AVX-512 file):
// 8-bit values widened exactly, 4 * NB independent fma chains (NB = 3: 12
// of the 16 ymm; more concurrent block streams read DRAM faster).
struct Bounds {
  static constexpr int kWide = 3, kNarrow = 1;

  template <int NB>
  static void blocks(const BoundSegment& sg, std::int64_t jb) {
    const std::int64_t L = sg.L, j0 = jb * 32;
    const std::int8_t* blk = sg.cq + j0 * L;
    __m256 acc[4 * NB];
    for (int i = 0; i < 4 * NB; ++i) acc[i] = _mm256_setzero_ps();
    for (std::int64_t d = 0; d < L; ++d) {
      const __m256 qd = _mm256_set1_ps((sg.q[d] - sg.mean[d]) * sg.bc.inv_s);
      for (int b = 0; b < NB; ++b)
#pragma GCC unroll 4
        for (int h = 0; h < 4; ++h) {
          const __m128i v =
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + (b * L + d) * 32 + 8 * h));
          const __m256 diff = _mm256_sub_ps(qd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
          acc[4 * b + h] = _mm256_fmadd_ps(diff, diff, acc[4 * b + h]);
        }
    }
    const BoundConsts& bc = sg.bc;
    const __m256 zero = _mm256_setzero_ps(), f = _mm256_set1_ps(bc.f), g = _mm256_set1_ps(bc.g);
    const __m256 slack = _mm256_set1_ps(bc.slack), tiny = _mm256_set1_ps(bc.tiny);
    const __m256 fu = _mm256_set1_ps(bc.fu), gu = _mm256_set1_ps(bc.gu);
    for (int i = 0; i < 4 * NB; ++i) {
      const std::int64_t j = j0 + 8 * i;
      if (j >= sg.K) break;
      const __m256 root = _mm256_sqrt_ps(acc[i]), e = _mm256_loadu_ps(sg.err + j);
      __m256 r = _mm256_fmsub_ps(root, f, e);
      r = _mm256_max_ps(_mm256_sub_ps(r, slack), zero);
      const __m256 lo = _mm256_max_ps(_mm256_fmsub_ps(_mm256_mul_ps(r, r), g, tiny), zero);
      const __m256 ru = _mm256_add_ps(_mm256_fmadd_ps(root, fu, e), slack);
      const __m256 up = _mm256_fmadd_ps(_mm256_mul_ps(ru, ru), gu, tiny);
      alignas(32) float tl[8], tu[8];
      _mm256_store_ps(tl, lo);
      _mm256_store_ps(tu, up);
      const std::int64_t w = sg.K - j < 8 ? sg.K - j : 8;
      for (std::int64_t l = 0; l < w; ++l) {
        sg.lower[j + l] = tl[l];
        sg.upper[j + l] = tu[l];
      }
    }
  }
};

void bound_table(const PQCodebook& cb, const float* q, std::int64_t m0, std::int64_t m1,
                 float* lower, float* upper) {
  bound_table_tiled<Bounds>(cb, q, m0, m1, lower, upper);
}

// Vertical ADC (see pq.hpp): two ymm hold a row's 16 query sums; four rows
// are interleaved so their add chains and table loads overlap.
constexpr int kVRows = 4;

template <class Code>
void vadc(const float* vt, std::int64_t M, std::int64_t K, const Code* codes, std::int64_t n,
          float* out) {
  const std::int64_t stride = K * 16;
  std::int64_t i = 0;
  for (; i + kVRows <= n; i += kVRows) {
    const Code* c = codes + i * M;
    __m256 lo[kVRows], hi[kVRows];
    for (int r = 0; r < kVRows; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    const float* t = vt;
    for (std::int64_t m = 0; m < M; ++m, t += stride) {
#pragma GCC unroll 4
      for (int r = 0; r < kVRows; ++r) {
        const float* e = t + std::int64_t(c[r * M + m]) * 16;
        lo[r] = _mm256_add_ps(lo[r], _mm256_loadu_ps(e));
        hi[r] = _mm256_add_ps(hi[r], _mm256_loadu_ps(e + 8));
      }
    }
    for (int r = 0; r < kVRows; ++r) {
      _mm256_storeu_ps(out + (i + r) * 16, lo[r]);
      _mm256_storeu_ps(out + (i + r) * 16 + 8, hi[r]);
    }
  }
  for (; i < n; ++i) {
    const Code* c = codes + i * M;
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (std::int64_t m = 0; m < M; ++m) {
      const float* e = vt + m * stride + std::int64_t(c[m]) * 16;
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(e));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(e + 8));
    }
    _mm256_storeu_ps(out + i * 16, lo);
    _mm256_storeu_ps(out + i * 16 + 8, hi);
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

void adc_u8(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
            std::int64_t n, std::int64_t readable, float* out) {
  const __m256i row_off =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                         _mm256_set1_epi32(static_cast<int>(M)));
  const __m256i lo8 = _mm256_set1_epi32(0xFF);
  std::int64_t i = 0;
  for (; i + 8 <= n && (i + 8) * M + 3 <= readable * M; i += 8) {
    const int* base = reinterpret_cast<const int*>(codes + i * M);
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t m = 0; m < M; m += 4) {
      const __m256i w = _mm256_i32gather_epi32(
          reinterpret_cast<const int*>(reinterpret_cast<const std::uint8_t*>(base) + m), row_off, 1);
      const std::int64_t nt = M - m < 4 ? M - m : 4;
      for (std::int64_t t = 0; t < nt; ++t) {
        const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_set1_epi32(8 * int(t))), lo8);
        acc = _mm256_add_ps(acc, _mm256_i32gather_ps(table + (m + t) * K, idx, 4));
      }
    }
    _mm256_storeu_ps(out + i, acc);
  }
  adc_rows(table, M, K, codes, i, n, out);
}

void adc_u16(const float* table, std::int64_t M, std::int64_t K, const std::uint16_t* codes,
             std::int64_t n, std::int64_t readable, float* out) {
  const __m256i row_off =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                         _mm256_set1_epi32(static_cast<int>(2 * M)));
  const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
  std::int64_t i = 0;
  for (; i + 8 <= n && (i + 8) * M + 1 <= readable * M; i += 8) {
    const std::uint16_t* base = codes + i * M;
    __m256 acc = _mm256_setzero_ps();
    std::int64_t m = 0;
    for (; m + 2 <= M; m += 2) {
      const __m256i w = _mm256_i32gather_epi32(reinterpret_cast<const int*>(base + m), row_off, 1);
      const float* t = table + m * K;
      acc = _mm256_add_ps(acc, _mm256_i32gather_ps(t, _mm256_and_si256(w, lo16), 4));
      acc = _mm256_add_ps(acc, _mm256_i32gather_ps(t + K, _mm256_srli_epi32(w, 16), 4));
    }
    if (m < M) {
      const __m256i w = _mm256_i32gather_epi32(reinterpret_cast<const int*>(base + m), row_off, 1);
      acc = _mm256_add_ps(acc, _mm256_i32gather_ps(table + m * K, _mm256_and_si256(w, lo16), 4));
    }
    _mm256_storeu_ps(out + i, acc);
  }
  adc_rows(table, M, K, codes, i, n, out);
}

}  // namespace
}  // namespace avx2

namespace detail {
PQKernels pq_kernels_avx2() {
  return PQKernels{avx2::assign,  avx2::table,   avx2::bound_table, exact_entries_kernel,
                   avx2::adc_u8,  avx2::adc_u16, avx2::vadc_u8,     avx2::vadc_u16};
}
}  // namespace detail
}  // namespace pyspec
