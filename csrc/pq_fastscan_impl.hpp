// The fast-scan kernel (pq_fastscan.hpp), written once for any byte-vector
// width (internal). pq_fastscan_avx2.cpp and pq_fastscan_avx512.cpp define
// an `Isa` struct and return FastScanBody<Isa>::scan, so this body is
// compiled per ISA with that file's flags, like pq_kernels_impl.hpp.
//
// One "unit" is one vector of codes: Isa::kPairs segment pairs (1 for AVX2,
// 2 for AVX-512) of the 32 rows of a block. Its low and high nibbles index
// the unit's two 16-entry table rows with one byte shuffle each. Per query
// two uint16 accumulators take the shuffle results without widening: the
// results read as 16-bit lanes are added to `a` (lane j: even row 2j plus
// 256 x odd row 2j+1) and, shifted right by 8, to `b` (odd row 2j); at the
// end the even sums are a - (b << 8) (mod 2^16, exact because every sum
// fits 16 bits). With group g > 1, the byte results of g segments are first
// added as bytes (levels * g <= 255, so no byte wraps), which halves (g = 2)
// or quarters (g = 4) the 16-bit work per segment.
//
// Saturating byte path (`saturate`): when every query's threshold is below
// 255 (the clipped scale, pq_fastscan.hpp), a row whose sum reaches 255 can
// never be kept, so the sums are accumulated in bytes with unsigned
// saturating adds (min(S, 255), exact below 255): one add per looked-up
// vector instead of two 16-bit adds and a shift, and the 32 rows of a block
// come out in order in one 256-bit vector. Its tiles are kQ8 queries x kB8
// blocks (singles: 1 x kB1): each table row loaded into a register serves
// kB8 blocks and each code vector kQ8 queries.
//
// `Isa` provides: V (the byte vector), kPairs, kQueries (query tile),
// zero(), nibble_mask(), load_codes(p, pairs) (the unit's 32 * pairs bytes,
// zero above), load_lut(p), lut_offset(unit) (bytes from a query table's
// start to the unit's low-nibble rows; the high-nibble rows follow 64 bytes
// later), shuffle(table, idx), and_(a, b), srli16(a, n), add8, add16,
// fold(v) -> __m256i (the sum of the 256-bit halves of 16-bit lanes;
// identity for AVX2), and rows_le(even, odd, thr): the 32-bit mask of the
// block's rows whose sum is <= thr (bit 2j: even[j], row 2j; bit 2j+1:
// odd[j]); for the byte path kQ8, kB8, kB1, adds8 (unsigned saturating),
// fold8(v) -> __m256i (saturating sum of the halves) and rows_le8(s, thr):
// the mask of rows whose byte sum is <= thr (thr <= 255).
// No standard-library templates (pq.hpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "pq_fastscan.hpp"

namespace pyspec {
namespace {

// Distance of the byte path's software prefetch (about 10 blocks of 50
// segments; 4-16 kB measured alike, none was 2-4x slower at 1M x 50 codes).
constexpr std::int64_t kPrefetchBytes = 8192;

template <class Isa>
struct FastScanBody {
  using V = typename Isa::V;

  // Adds a byte vector of shuffle results to a query's accumulators.
  static inline void acc16(V r, V& a, V& b) {
    a = Isa::add16(a, r);
    b = Isa::add16(b, Isa::srli16(r, 8));
  }

  // Looked-up bytes of one unit (low + high nibble rows added as bytes for
  // G > 1) for one query table.
  template <int G>
  static inline void unit(const std::uint8_t* lut, std::int64_t u, V lo, V hi, V& a, V& b) {
    const std::uint8_t* t = lut + Isa::lut_offset(u);
    const V rl = Isa::shuffle(Isa::load_lut(t), lo);
    const V rh = Isa::shuffle(Isa::load_lut(t + 64), hi);
    if (G == 1) {
      acc16(rl, a, b);
      acc16(rh, a, b);
    } else {
      acc16(Isa::add8(rl, rh), a, b);
    }
  }

  // Sums of one block (32 rows, P pairs in U units) for QT queries, then the
  // threshold test and the sink for rows that pass.
  template <int QT, int G>
  static void block(const std::uint8_t* blk, std::int64_t b, std::int64_t P, std::int64_t U,
                    const std::uint8_t* const* lut, std::int64_t q0, std::uint16_t* thr,
                    const detail::FastScanSink& sink) {
    V a[QT], bb[QT];
    for (int t = 0; t < QT; ++t) a[t] = bb[t] = Isa::zero();
    const V m4 = Isa::nibble_mask();
    std::int64_t u = 0;
    if (G == 4) {
      for (; u + 2 <= U; u += 2) {
        const V c0 = Isa::load_codes(blk + u * Isa::kPairs * 32, P - u * Isa::kPairs);
        const V c1 = Isa::load_codes(blk + (u + 1) * Isa::kPairs * 32, P - (u + 1) * Isa::kPairs);
        const V lo0 = Isa::and_(c0, m4), hi0 = Isa::and_(Isa::srli16(c0, 4), m4);
        const V lo1 = Isa::and_(c1, m4), hi1 = Isa::and_(Isa::srli16(c1, 4), m4);
#pragma GCC unroll 8
        for (int t = 0; t < QT; ++t) {
          const std::uint8_t* t0 = lut[t] + Isa::lut_offset(u);
          const std::uint8_t* t1 = lut[t] + Isa::lut_offset(u + 1);
          const V r0 = Isa::add8(Isa::shuffle(Isa::load_lut(t0), lo0),
                                 Isa::shuffle(Isa::load_lut(t0 + 64), hi0));
          const V r1 = Isa::add8(Isa::shuffle(Isa::load_lut(t1), lo1),
                                 Isa::shuffle(Isa::load_lut(t1 + 64), hi1));
          acc16(Isa::add8(r0, r1), a[t], bb[t]);
        }
      }
    }
    for (; u < U; ++u) {
      const V c = Isa::load_codes(blk + u * Isa::kPairs * 32, P - u * Isa::kPairs);
      const V lo = Isa::and_(c, m4), hi = Isa::and_(Isa::srli16(c, 4), m4);
#pragma GCC unroll 8
      for (int t = 0; t < QT; ++t) unit<(G == 1 ? 1 : 2)>(lut[t], u, lo, hi, a[t], bb[t]);
    }
    for (int t = 0; t < QT; ++t) {
      const __m256i odd = Isa::fold(bb[t]);
      const __m256i even = _mm256_sub_epi16(Isa::fold(a[t]), _mm256_slli_epi16(odd, 8));
      const std::uint32_t mask = Isa::rows_le(even, odd, thr[q0 + t]);
      if (mask == 0) continue;
      // rows in order: 16-bit lanes interleaved even/odd, then 128-bit halves
      const __m256i ul = _mm256_unpacklo_epi16(even, odd), uh = _mm256_unpackhi_epi16(even, odd);
      alignas(32) std::uint16_t sums[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums), _mm256_permute2x128_si256(ul, uh, 0x20));
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 16),
                         _mm256_permute2x128_si256(ul, uh, 0x31));
      sink.fn(sink.ctx, q0 + t, b, mask, sums);
    }
  }

  // Hands the rows of block b whose byte sum is <= thr[q] to the sink.
  static inline void emit8(__m256i s, std::int64_t b, std::int64_t q, std::uint16_t* thr,
                           const detail::FastScanSink& sink) {
    const std::uint32_t mask = Isa::rows_le8(s, thr[q] < 255 ? thr[q] : 255);
    if (mask == 0) return;
    alignas(32) std::uint16_t sums[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums),
                       _mm256_cvtepu8_epi16(_mm256_castsi256_si128(s)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 16),
                       _mm256_cvtepu8_epi16(_mm256_extracti128_si256(s, 1)));
    sink.fn(sink.ctx, q, b, mask, sums);
  }

  // Saturated byte sums of blocks b .. b + B - 1 for QT queries (the byte
  // path above): per unit, the QT queries' table rows are loaded once and
  // each block's codes are split into nibbles once.
  template <int QT, int B>
  static void tile8(const std::uint8_t* packed, std::int64_t b, std::int64_t b_end,
                    std::int64_t P, std::int64_t U, const std::uint8_t* const* lut,
                    std::int64_t q0, std::uint16_t* thr, const detail::FastScanSink& sink) {
    const std::int64_t stride = P * 32;
    const std::uint8_t* ahead = (b + B) * stride + kPrefetchBytes <= b_end * stride
                                    ? packed + b * stride + kPrefetchBytes
                                    : nullptr;
    V acc[QT][B];
    for (int t = 0; t < QT; ++t)
      for (int j = 0; j < B; ++j) acc[t][j] = Isa::zero();
    const V m4 = Isa::nibble_mask();
    for (std::int64_t u = 0; u < U; ++u) {
      V tl[QT], th[QT];
      for (int t = 0; t < QT; ++t) {
        const std::uint8_t* r = lut[t] + Isa::lut_offset(u);
        tl[t] = Isa::load_lut(r);
        th[t] = Isa::load_lut(r + 64);
      }
      const std::uint8_t* cu = packed + b * stride + u * Isa::kPairs * 32;
      // The tile reads its B blocks unit by unit, B interleaved streams
      // that the hardware prefetcher follows poorly: the tile's bytes
      // kPrefetchBytes ahead are requested in order, a share per unit.
      if (ahead) {
        const std::int64_t lines = B * stride / 64;
        for (std::int64_t l = lines * u / U; l < lines * (u + 1) / U; ++l)
          _mm_prefetch(reinterpret_cast<const char*>(ahead + l * 64), _MM_HINT_T0);
      }
#pragma GCC unroll 16
      for (int j = 0; j < B; ++j) {
        const V c = Isa::load_codes(cu + j * stride, P - u * Isa::kPairs);
        const V lo = Isa::and_(c, m4), hi = Isa::and_(Isa::srli16(c, 4), m4);
#pragma GCC unroll 8
        for (int t = 0; t < QT; ++t)
          acc[t][j] = Isa::adds8(acc[t][j],
                                 Isa::adds8(Isa::shuffle(tl[t], lo), Isa::shuffle(th[t], hi)));
      }
    }
    for (int t = 0; t < QT; ++t)
      for (int j = 0; j < B; ++j) emit8(Isa::fold8(acc[t][j]), b + j, q0 + t, thr, sink);
  }

  // Tiles of QT queries over blocks [bc, be): B blocks at a time, then one.
  // (b_end: the end of the kernel call's range, the prefetch's limit)
  template <int QT, int B>
  static void sweep8(const std::uint8_t* packed, std::int64_t bc, std::int64_t be,
                     std::int64_t b_end, std::int64_t P, std::int64_t U,
                     const std::uint8_t* const* lut, std::int64_t q0, std::uint16_t* thr,
                     const detail::FastScanSink& sink) {
    std::int64_t b = bc;
    for (; b + B <= be; b += B) tile8<QT, B>(packed, b, b_end, P, U, lut, q0, thr, sink);
    for (; b < be; ++b) tile8<QT, 1>(packed, b, b_end, P, U, lut, q0, thr, sink);
  }

  // The byte path over chunks of blocks that stay in L1 while every query
  // of the call passes over them: tiles of kQ8 queries, then single queries.
  static void scan8(const std::uint8_t* packed, std::int64_t P, std::int64_t b0,
                    std::int64_t b1, const std::uint8_t* lut, std::int64_t lut_stride,
                    std::int64_t nq, std::uint16_t* thr, const detail::FastScanSink& sink) {
    constexpr int QT = Isa::kQ8;
    const std::int64_t U = (P + Isa::kPairs - 1) / Isa::kPairs, stride = P * 32;
    std::int64_t chunk = (std::int64_t(16) << 10) / stride;
    constexpr std::int64_t R = Isa::kB8 > Isa::kB1 ? Isa::kB8 : Isa::kB1;  // powers of 2
    chunk = chunk < R ? R : chunk - chunk % R;
    for (std::int64_t bc = b0; bc < b1; bc += chunk) {
      const std::int64_t be = bc + chunk < b1 ? bc + chunk : b1;
      std::int64_t q0 = 0;
      for (; q0 + QT <= nq; q0 += QT) {
        const std::uint8_t* luts[QT];
        for (int t = 0; t < QT; ++t) luts[t] = lut + (q0 + t) * lut_stride;
        sweep8<QT, Isa::kB8>(packed, bc, be, b1, P, U, luts, q0, thr, sink);
      }
      for (; q0 < nq; ++q0) {
        const std::uint8_t* l1[1] = {lut + q0 * lut_stride};
        sweep8<1, Isa::kB1>(packed, bc, be, b1, P, U, l1, q0, thr, sink);
      }
    }
  }

  // Query tiles of kQueries (then single queries) over chunks of blocks
  // that stay in L1 while every query of the call passes over them.
  template <int G>
  static void scan_g(const std::uint8_t* packed, std::int64_t P, std::int64_t b0,
                     std::int64_t b1, const std::uint8_t* lut, std::int64_t lut_stride,
                     std::int64_t nq, std::uint16_t* thr, const detail::FastScanSink& sink) {
    constexpr int QT = Isa::kQueries;
    const std::int64_t U = (P + Isa::kPairs - 1) / Isa::kPairs, stride = P * 32;
    std::int64_t chunk = (std::int64_t(16) << 10) / stride;
    if (chunk < 1) chunk = 1;
    for (std::int64_t bc = b0; bc < b1; bc += chunk) {
      const std::int64_t be = bc + chunk < b1 ? bc + chunk : b1;
      std::int64_t q0 = 0;
      for (; q0 + QT <= nq; q0 += QT) {
        const std::uint8_t* luts[QT];
        for (int t = 0; t < QT; ++t) luts[t] = lut + (q0 + t) * lut_stride;
        for (std::int64_t b = bc; b < be; ++b)
          block<QT, G>(packed + b * stride, b, P, U, luts, q0, thr, sink);
      }
      for (; q0 < nq; ++q0) {
        const std::uint8_t* l1[1] = {lut + q0 * lut_stride};
        for (std::int64_t b = bc; b < be; ++b)
          block<1, G>(packed + b * stride, b, P, U, l1, q0, thr, sink);
      }
    }
  }

  // detail::FastScanFn
  static void scan(const std::uint8_t* packed, std::int64_t P, std::int64_t b0, std::int64_t b1,
                   const std::uint8_t* lut, std::int64_t lut_stride, std::int64_t nq, int group,
                   bool saturate, std::uint16_t* thr, const detail::FastScanSink& sink) {
    if (saturate)
      scan8(packed, P, b0, b1, lut, lut_stride, nq, thr, sink);
    else if (group == 4)
      scan_g<4>(packed, P, b0, b1, lut, lut_stride, nq, thr, sink);
    else if (group == 2)
      scan_g<2>(packed, P, b0, b1, lut, lut_stride, nq, thr, sink);
    else
      scan_g<1>(packed, P, b0, b1, lut, lut_stride, nq, thr, sink);
  }
};

}  // namespace
}  // namespace pyspec
