// AVX-512BW fast-scan kernel: pq_fastscan_impl.hpp with 64-byte vectors,
// two segment pairs of a block per code load (low 256 bits: pair 2d, high:
// pair 2d+1; the halves are summed at the end of the block), eight queries
// per tile (16 of the 32 zmm registers as accumulators). Compiled with
// AVX-512 F/BW and reached only through the dispatcher in pq_fastscan.cpp.
// No standard-library templates (pq.hpp).
#include <immintrin.h>

#include "pq_fastscan.hpp"
#include "pq_fastscan_impl.hpp"

namespace pyspec {
namespace fastscan_avx512 {
namespace {

struct Isa {
  using V = __m512i;
  static constexpr int kPairs = 2, kQueries = 8;
  // byte path: 4 queries x 4 blocks (16 accumulators, 8 table rows), single
  // queries 2 blocks at a time
  static constexpr int kQ8 = 4, kB8 = 4, kB1 = 2;

  static V zero() { return _mm512_setzero_si512(); }
  static V nibble_mask() { return _mm512_set1_epi8(0x0f); }
  // The last unit of a block with an odd number of pairs holds one pair:
  // the load stops there (zeros above; they look up 0 in the padding rows).
  static V load_codes(const std::uint8_t* p, std::int64_t pairs) {
    if (pairs >= 2) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi8(0xffffffffULL, p);
  }
  static V load_lut(const std::uint8_t* p) { return _mm512_loadu_si512(p); }
  static std::int64_t lut_offset(std::int64_t u) { return u * 128; }
  static V shuffle(V table, V idx) { return _mm512_shuffle_epi8(table, idx); }
  static V and_(V a, V b) { return _mm512_and_si512(a, b); }
  static V srli16(V a, int n) { return _mm512_srli_epi16(a, static_cast<unsigned>(n)); }
  static V add8(V a, V b) { return _mm512_add_epi8(a, b); }
  static V add16(V a, V b) { return _mm512_add_epi16(a, b); }
  static V adds8(V a, V b) { return _mm512_adds_epu8(a, b); }
  // The low half through a union (no instruction; GCC 12 warns
  // -Wmaybe-uninitialized about the undefined operand of the cast and
  // extract intrinsics), the high half by one extract.
  union Halves {
    __m512i z;
    __m256i y[2];
  };
  static __m256i fold(V a) {
    Halves h;
    h.z = a;
    return _mm256_add_epi16(h.y[0], h.y[1]);
  }
  static __m256i fold8(V a) {
    Halves h;
    h.z = a;
    return _mm256_adds_epu8(h.y[0], h.y[1]);
  }
  // unsigned compares straight into mask registers (AVX-512BW/VL), the
  // even and odd rows' bits interleaved with pdep (BMI2)
  static std::uint32_t rows_le(__m256i even, __m256i odd, std::uint16_t thr) {
    const __m256i th = _mm256_set1_epi16(static_cast<short>(thr));
    const std::uint32_t me = _mm256_cmple_epu16_mask(even, th);
    const std::uint32_t mo = _mm256_cmple_epu16_mask(odd, th);
    return _pdep_u32(me, 0x55555555u) | _pdep_u32(mo, 0xaaaaaaaau);
  }
  static std::uint32_t rows_le8(__m256i s, std::uint16_t thr) {
    return _mm256_cmple_epu8_mask(s, _mm256_set1_epi8(static_cast<char>(thr)));
  }
};

}  // namespace
}  // namespace fastscan_avx512

namespace detail {
FastScanFn fastscan_kernel_avx512() { return FastScanBody<fastscan_avx512::Isa>::scan; }
}  // namespace detail
}  // namespace pyspec
