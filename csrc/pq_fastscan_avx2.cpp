// AVX2 fast-scan kernel: pq_fastscan_impl.hpp with 32-byte vectors, one
// segment pair per code load, four queries per tile (8 accumulators of the
// 16 ymm registers; the byte path's tiles are below). Compiled with -mavx2
// and reached only through the dispatcher in pq_fastscan.cpp. No
// standard-library templates (pq.hpp).
#include <immintrin.h>

#include "pq_fastscan.hpp"
#include "pq_fastscan_impl.hpp"

namespace pyspec {
namespace fastscan_avx2 {
namespace {

struct Isa {
  using V = __m256i;
  static constexpr int kPairs = 1, kQueries = 4;
  // byte path: 2 queries x 2 blocks (4 accumulators, 4 table rows), single
  // queries 2 blocks at a time
  static constexpr int kQ8 = 2, kB8 = 2, kB1 = 2;

  static V zero() { return _mm256_setzero_si256(); }
  static V nibble_mask() { return _mm256_set1_epi8(0x0f); }
  static V load_codes(const std::uint8_t* p, std::int64_t /*pairs*/) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static V load_lut(const std::uint8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  // pair u's rows: ((u / 2) * 4 + u % 2) * 32 (pq_fastscan.hpp)
  static std::int64_t lut_offset(std::int64_t u) { return (u >> 1) * 128 + (u & 1) * 32; }
  static V shuffle(V table, V idx) { return _mm256_shuffle_epi8(table, idx); }
  static V and_(V a, V b) { return _mm256_and_si256(a, b); }
  static V srli16(V a, int n) { return _mm256_srli_epi16(a, n); }
  static V add8(V a, V b) { return _mm256_add_epi8(a, b); }
  static V add16(V a, V b) { return _mm256_add_epi16(a, b); }
  static V adds8(V a, V b) { return _mm256_adds_epu8(a, b); }
  static __m256i fold(V a) { return a; }
  static __m256i fold8(V a) { return a; }
  // x <= thr (unsigned) as min(x, thr) == x; movemask gives two bits per
  // 16-bit lane, the low one is kept
  static std::uint32_t rows_le(__m256i even, __m256i odd, std::uint16_t thr) {
    const __m256i th = _mm256_set1_epi16(static_cast<short>(thr));
    const std::uint32_t me = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_min_epu16(even, th), even)));
    const std::uint32_t mo = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_min_epu16(odd, th), odd)));
    return (me & 0x55555555u) | ((mo & 0x55555555u) << 1);
  }
  static std::uint32_t rows_le8(__m256i s, std::uint16_t thr) {
    const __m256i th = _mm256_set1_epi8(static_cast<char>(thr));
    return static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(s, th), s)));
  }
};

}  // namespace
}  // namespace fastscan_avx2

namespace detail {
FastScanFn fastscan_kernel_avx2() { return FastScanBody<fastscan_avx2::Isa>::scan; }
}  // namespace detail
}  // namespace pyspec
