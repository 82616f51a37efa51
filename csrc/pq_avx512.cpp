// AVX-512 PQ kernels: the shared body of pq_kernels_impl.hpp with 16-lane
// vectors. Compiled with AVX-512 F/BW/VL/DQ (no VPOPCNTDQ: nothing here
// counts bits) and reached only through the dispatcher in pq_dispatch.cpp.
// No standard-library templates (pq.hpp).
#include <immintrin.h>

#include "pq.hpp"
#include "pq_kernels_impl.hpp"

namespace pyspec {
namespace avx512 {
namespace {

struct Isa {
  PYSPEC_SIMD_FLOAT_OPS(_mm512, __m512, __m512i)

  // Register tiles (32 zmm): assign 8 rows x 32 centroids = 16
  // accumulators; tables 8 queries x 32 centroids (16 accumulators), or one
  // query x 4 blocks; vertical ADC 8 rows. Bounds: with the half-precision
  // copy tried first, a single-query bound table at 25 x 3200 took 1.10 /
  // 0.98 / 0.77 / 0.70 ms with 2 / 4 / 8 / 12 blocks at once (24 of the 32
  // zmm as accumulators): the kernel reads DRAM, and more concurrent block
  // streams read it faster.
  static constexpr int kAssignRows = 8, kQueries = 8, kSingleBlocks = 4;
  static constexpr int kBoundWide = 12, kBoundNarrow = 4, kVRows = 8;

  static I load_i(const std::int32_t* p) { return _mm512_loadu_si512(p); }
  static I and_i(I a, I b) { return _mm512_and_si512(a, b); }
  static void store_first(float* p, F v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  }
  static __m128i load_bytes(const std::int8_t* p) {  // 16 bytes
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  }
  static void keep_less(F v, I jv, F& bv, I& bj) {
    const __mmask16 lt = _mm512_cmp_ps_mask(v, bv, _CMP_LT_OQ);
    bv = _mm512_mask_mov_ps(bv, lt, v);
    bj = _mm512_mask_mov_epi32(bj, lt, jv);
  }
  // Each lane kept the smallest index among its equal minima; across lanes
  // take the minimum value, then the smallest index holding it.
  static float argmin(F bv, I bj, std::int32_t& j) {
    const float m = _mm512_reduce_min_ps(bv);
    const __mmask16 eq = _mm512_cmp_ps_mask(bv, _mm512_set1_ps(m), _CMP_EQ_OQ);
    j = eq ? _mm512_mask_reduce_min_epi32(eq, bj) : 0;
    return m;
  }
  static I gather32(const void* base, I off) { return _mm512_i32gather_epi32(off, base, 1); }
  static F gather(const float* table, I idx) { return _mm512_i32gather_ps(idx, table, 4); }
};

}  // namespace
}  // namespace avx512

namespace detail {
PQKernels pq_kernels_avx512() { return make_pq_kernels<avx512::Isa>(); }
}  // namespace detail
}  // namespace pyspec
