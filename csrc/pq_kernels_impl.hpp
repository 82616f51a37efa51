// The PQ SIMD kernels, written once for any vector width (internal). Each
// ISA translation unit (pq_avx2.cpp, pq_avx512.cpp) defines a small `Isa`
// struct (the vector types, the operations below as intrinsics, and its
// register-tiling constants) and returns make_pq_kernels<Isa>(), so this body
// is compiled once per ISA with that file's flags (faiss's *_impl pattern).
//
// Bit-exactness: every output element is built with the same operation
// sequence as the scalar code in pq_dispatch.cpp (pq.hpp, "Exact agreement
// across SIMD levels"); tiling only changes which elements are computed
// together, never the order of one element's operations.
//
// `Isa` provides, for W = Isa::W float lanes:
//   F, I                  float and int32 vectors of W lanes
//   zero, load, store, set1, add, sub, mul, max, sqrt, fmadd, fmsub
//   store_first(p, v, n)  store lanes [0, n), n < W
//   load_i8(p)            W int8 values widened to float (exact; from load_bytes)
//   iota_times(s)         int lanes l * s;  set1_i, add_i, and_i, srli(v, bits), load_i
//   keep_less(v, jv, bv, bj)  per lane: if v < bv then (bv, bj) = (v, jv)
//   argmin(bv, bj, j)     smallest lane value; j = smallest index holding it
//   gather32(base, off)   32-bit loads at base + off[l] bytes
//   gather(table, idx)    table[idx[l]]
// and the constants kAssignRows, kQueries, kSingleBlocks, kBoundWide,
// kBoundNarrow, kVRows (register tiles; see each ISA file for the budget).
// Everything has internal linkage (anonymous namespace) and uses no
// standard-library templates (pq.hpp).
#pragma once

#include <cstdint>

#include "pq.hpp"
#include "pq_kernel_common.hpp"

namespace pyspec {
namespace {

template <class Isa>
struct PQSimd {
  using F = typename Isa::F;
  using I = typename Isa::I;
  static constexpr int W = Isa::W;
  static constexpr int kPerBlock = 32 / W;  // vectors per 32-centroid row
  static constexpr int kPerLanes = static_cast<int>(kVLanes) / W;  // per vertical row

  // detail::AssignFn: kAssignRows rows per register block, each against the
  // 32 centroids of a block (kPerBlock vectors), as fma dot products.
  static void assign(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t L,
                     const float* ct, const float* cnorm, std::int64_t Kp, std::int32_t* best_j,
                     float* best_v) {
    constexpr int R = Isa::kAssignRows;
    const F inf = Isa::set1(__builtin_inff());
    for (std::int64_t r0 = 0; r0 < n; r0 += R) {
      const float* xp[R];
      for (int p = 0; p < R; ++p) {
        const std::int64_t r = r0 + p < n ? r0 + p : n - 1;  // tail rows repeat the last row
        xp[p] = x + r * ldx;
      }
      F bv[R];
      I bj[R];
      for (int p = 0; p < R; ++p) {
        bv[p] = inf;
        bj[p] = Isa::set1_i(0);
      }
      for (std::int64_t j0 = 0; j0 < Kp; j0 += 32) {
        F a[R][kPerBlock];
        for (int p = 0; p < R; ++p)
          for (int h = 0; h < kPerBlock; ++h) a[p][h] = Isa::zero();
        const float* c = ct + j0 * L;  // blocked layout: L rows of 32 for this block
        for (std::int64_t d = 0; d < L; ++d, c += 32) {
          F cv[kPerBlock];
          for (int h = 0; h < kPerBlock; ++h) cv[h] = Isa::load(c + h * W);
#pragma GCC unroll 8
          for (int p = 0; p < R; ++p) {
            const F xb = Isa::set1(xp[p][d]);
            for (int h = 0; h < kPerBlock; ++h) a[p][h] = Isa::fmadd(xb, cv[h], a[p][h]);
          }
        }
        for (int h = 0; h < kPerBlock; ++h) {
          const F nv = Isa::load(cnorm + j0 + h * W);
          const I jv = Isa::add_i(Isa::iota_times(1), Isa::set1_i(static_cast<int>(j0 + h * W)));
#pragma GCC unroll 8
          for (int p = 0; p < R; ++p)
            Isa::keep_less(Isa::sub(nv, Isa::add(a[p][h], a[p][h])), jv, bv[p], bj[p]);
        }
      }
      for (int p = 0; p < R && r0 + p < n; ++p) {
        std::int32_t j = 0;
        const float m = Isa::argmin(bv[p], bj[p], j);
        best_j[r0 + p] = m < __builtin_inff() ? j : 0;  // all +inf: index 0, as in the scalar scan
        best_v[r0 + p] = m;
      }
    }
  }

  // Stores v to out[j ..], lanes below `limit - j` only.
  static void store_upto(float* out, std::int64_t j, std::int64_t limit, F v) {
    if (j + W <= limit) {
      Isa::store(out + j, v);
    } else if (j < limit) {
      Isa::store_first(out + j, v, static_cast<int>(limit - j));
    }
  }

  // One register tile of the table kernel (pq_kernel_common.hpp,
  // table_tiled): QT queries x NB blocks of 32 centroids; each block row
  // vector is loaded once and used by all QT queries.
  struct Tiles {
    static constexpr int kQueries = Isa::kQueries;
    static constexpr int kSingleBlocks = Isa::kSingleBlocks;

    template <int QT, int NB>
    static void tile(const float* blk, std::int64_t L, std::int64_t j0, std::int64_t K,
                     const float* const* qp, float* const* op) {
      F acc[QT][NB][kPerBlock];
      for (int p = 0; p < QT; ++p)
        for (int b = 0; b < NB; ++b)
          for (int h = 0; h < kPerBlock; ++h) acc[p][b][h] = Isa::zero();
      for (std::int64_t d = 0; d < L; ++d) {
        F qd[QT];
        for (int p = 0; p < QT; ++p) qd[p] = Isa::set1(qp[p][d]);
        for (int b = 0; b < NB; ++b)
#pragma GCC unroll 4
          for (int h = 0; h < kPerBlock; ++h) {
            const F c = Isa::load(blk + b * 32 * L + d * 32 + h * W);
#pragma GCC unroll 8
            for (int p = 0; p < QT; ++p) {
              const F diff = Isa::sub(qd[p], c);
              acc[p][b][h] = Isa::fmadd(diff, diff, acc[p][b][h]);
            }
          }
      }
      for (int p = 0; p < QT; ++p)
        for (int b = 0; b < NB; ++b)
          for (int h = 0; h < kPerBlock; ++h)
            store_upto(op[p], j0 + b * 32 + h * W, K, acc[p][b][h]);
    }
  };

  static void table(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
                    std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo) {
    table_tiled<Tiles>(cb, Q, nq, ldq, m0, m1, out, ldo);
  }

  // Bound-table rows for NB blocks of 32 centroids (pq.hpp, "Bound
  // tables"; pq_kernel_common.hpp for the formula): 8-bit values widened
  // exactly, NB * kPerBlock independent fma chains. The kernel reads from
  // DRAM, and more blocks at once (more concurrent streams) read faster.
  struct Bounds {
    static constexpr int kWide = Isa::kBoundWide, kNarrow = Isa::kBoundNarrow;

    template <int NB>
    static void blocks(const BoundSegment& sg, std::int64_t jb) {
      constexpr int V = NB * kPerBlock;
      const std::int64_t L = sg.L, j0 = jb * 32;
      const std::int8_t* blk = sg.cq + j0 * L;
      F acc[V];
      for (int i = 0; i < V; ++i) acc[i] = Isa::zero();
      for (std::int64_t d = 0; d < L; ++d) {
        const F qd = Isa::set1((sg.q[d] - sg.mean[d]) * sg.bc.inv_s);
        for (int b = 0; b < NB; ++b)
#pragma GCC unroll 4
          for (int h = 0; h < kPerBlock; ++h) {
            const F diff = Isa::sub(qd, Isa::load_i8(blk + (b * L + d) * 32 + h * W));
            acc[b * kPerBlock + h] = Isa::fmadd(diff, diff, acc[b * kPerBlock + h]);
          }
      }
      const BoundConsts& bc = sg.bc;
      const F zero = Isa::zero(), f = Isa::set1(bc.f), g = Isa::set1(bc.g);
      const F slack = Isa::set1(bc.slack), tiny = Isa::set1(bc.tiny);
      const F fu = Isa::set1(bc.fu), gu = Isa::set1(bc.gu);
      for (int i = 0; i < V; ++i) {
        const std::int64_t j = j0 + W * i;
        if (j >= sg.K) break;
        const F root = Isa::sqrt(acc[i]), e = Isa::load(sg.err + j);
        const F r = Isa::max(Isa::sub(Isa::fmsub(root, f, e), slack), zero);
        const F lo = Isa::max(Isa::fmsub(Isa::mul(r, r), g, tiny), zero);
        const F ru = Isa::add(Isa::fmadd(root, fu, e), slack);
        const F up = Isa::fmadd(Isa::mul(ru, ru), gu, tiny);
        store_upto(sg.lower, j, sg.K, lo);
        store_upto(sg.upper, j, sg.K, up);
      }
    }
  };

  static void bound_table(const PQCodebook& cb, const float* q, std::int64_t m0, std::int64_t m1,
                          float* lower, float* upper) {
    bound_table_tiled<Bounds>(cb, q, m0, m1, lower, upper);
  }

  // Vertical ADC (pq.hpp): a row's 16 query sums are kPerLanes vectors;
  // kVRows rows are interleaved so their add chains and table loads overlap.
  template <int R, class Code>
  static void vadc_rows(const float* vt, std::int64_t M, std::int64_t K, const Code* c,
                        float* out) {
    const std::int64_t stride = K * kVLanes;
    F acc[R][kPerLanes];
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < kPerLanes; ++h) acc[r][h] = Isa::zero();
    const float* t = vt;
    for (std::int64_t m = 0; m < M; ++m, t += stride) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const float* e = t + std::int64_t(c[r * M + m]) * kVLanes;
        for (int h = 0; h < kPerLanes; ++h) acc[r][h] = Isa::add(acc[r][h], Isa::load(e + h * W));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < kPerLanes; ++h) Isa::store(out + r * kVLanes + h * W, acc[r][h]);
  }

  template <class Code>
  static void vadc(const float* vt, std::int64_t M, std::int64_t K, const Code* codes,
                   std::int64_t n, float* out) {
    constexpr int R = Isa::kVRows;
    std::int64_t i = 0;
    for (; i + R <= n; i += R) vadc_rows<R>(vt, M, K, codes + i * M, out + i * kVLanes);
    for (; i < n; ++i) vadc_rows<1>(vt, M, K, codes + i * M, out + i * kVLanes);
  }

  // Distances of W rows at once: one 32-bit gather fetches 4 (uint8) or 2
  // (uint16) codes of each row, then one float gather per segment reads
  // table[m][code]. Sums run in segment order, as in the scalar code. The
  // 32-bit code gather may read up to 3 (uint8) or 2 (uint16) bytes past the
  // last row of a group, hence `readable`.
  template <class Code>
  static void adc(const float* table, std::int64_t M, std::int64_t K, const Code* codes,
                  std::int64_t n, std::int64_t readable, float* out) {
    constexpr int kPer = 4 / static_cast<int>(sizeof(Code));  // codes per 32-bit word
    constexpr int kBits = 8 * static_cast<int>(sizeof(Code));
    const I row_off = Isa::iota_times(static_cast<int>(sizeof(Code) * M));
    const I mask = Isa::set1_i(static_cast<int>((1u << kBits) - 1u));
    std::int64_t i = 0;
    for (; i + W <= n && (i + W) * M + (kPer - 1) <= readable * M; i += W) {
      const Code* base = codes + i * M;
      F acc = Isa::zero();
      std::int64_t m = 0;
      for (; m + kPer <= M; m += kPer) {
        const I w = Isa::gather32(base + m, row_off);
        const float* t = table + m * K;
#pragma GCC unroll 4
        for (int u = 0; u < kPer; ++u)
          acc = Isa::add(acc, Isa::gather(t + u * K, Isa::and_i(Isa::srli(w, kBits * u), mask)));
      }
      if (m < M) {
        const I w = Isa::gather32(base + m, row_off);
        for (int sh = 0; m < M; ++m, sh += kBits)
          acc = Isa::add(acc, Isa::gather(table + m * K, Isa::and_i(Isa::srli(w, sh), mask)));
      }
      Isa::store(out + i, acc);
    }
    adc_rows(table, M, K, codes, i, n, out);
  }

  static void adc_u8(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
                     std::int64_t n, std::int64_t readable, float* out) {
    adc(table, M, K, codes, n, readable, out);
  }
  static void adc_u16(const float* table, std::int64_t M, std::int64_t K,
                      const std::uint16_t* codes, std::int64_t n, std::int64_t readable,
                      float* out) {
    adc(table, M, K, codes, n, readable, out);
  }
  static void vadc_u8(const float* vt, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
                      std::int64_t n, float* out) {
    vadc(vt, M, K, codes, n, out);
  }
  static void vadc_u16(const float* vt, std::int64_t M, std::int64_t K,
                       const std::uint16_t* codes, std::int64_t n, float* out) {
    vadc(vt, M, K, codes, n, out);
  }
};

template <class Isa>
detail::PQKernels make_pq_kernels() {
  using S = PQSimd<Isa>;
  return detail::PQKernels{S::assign, S::table,   S::bound_table, exact_entries_kernel,
                           S::adc_u8, S::adc_u16, S::vadc_u8,     S::vadc_u16};
}

// Float operations that differ between ISAs only in their prefix and vector
// type (_mm256_add_ps, _mm512_add_ps, ...): one definition for every Isa.
#define PYSPEC_SIMD_FLOAT_OPS(P, FT, IT)                                              \
  using F = FT;                                                                        \
  using I = IT;                                                                        \
  static constexpr int W = static_cast<int>(sizeof(FT) / sizeof(float));               \
  static F zero() { return P##_setzero_ps(); }                                         \
  static F load(const float* p) { return P##_loadu_ps(p); }                            \
  static void store(float* p, F v) { P##_storeu_ps(p, v); }                            \
  static F set1(float x) { return P##_set1_ps(x); }                                    \
  static F add(F a, F b) { return P##_add_ps(a, b); }                                  \
  static F sub(F a, F b) { return P##_sub_ps(a, b); }                                  \
  static F mul(F a, F b) { return P##_mul_ps(a, b); }                                  \
  static F max(F a, F b) { return P##_max_ps(a, b); }                                  \
  static F sqrt(F a) { return P##_sqrt_ps(a); }                                        \
  static F fmadd(F a, F b, F c) { return P##_fmadd_ps(a, b, c); }                      \
  static F fmsub(F a, F b, F c) { return P##_fmsub_ps(a, b, c); }                      \
  static I set1_i(int x) { return P##_set1_epi32(x); }                                 \
  static I add_i(I a, I b) { return P##_add_epi32(a, b); }                             \
  static I srli(I a, int bits) { return P##_srli_epi32(a, bits); }                     \
  static F load_i8(const std::int8_t* p) { /* exact: int8 -> int32 -> float */         \
    return P##_cvtepi32_ps(P##_cvtepi8_epi32(load_bytes(p)));                          \
  }                                                                                    \
  static I iota_times(int s) {                                                         \
    alignas(64) std::int32_t v[W];                                                     \
    for (int l = 0; l < W; ++l) v[l] = l * s;                                          \
    return load_i(v);                                                                  \
  }

}  // namespace
}  // namespace pyspec
