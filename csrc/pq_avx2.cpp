// AVX2 + FMA PQ kernels: the shared body of pq_kernels_impl.hpp with 8-lane
// vectors. Compiled with -mavx2 -mfma and reached only through the
// dispatcher in pq_dispatch.cpp. No standard-library templates (pq.hpp).
#include <immintrin.h>

#include "pq.hpp"
#include "pq_kernels_impl.hpp"

namespace pyspec {
namespace avx2 {
namespace {

struct Isa {
  PYSPEC_SIMD_FLOAT_OPS(_mm256, __m256, __m256i)

  // Register tiles (16 ymm): assign 2 rows x 32 centroids = 8 accumulators
  // + 4 codebook vectors; tables 2 queries x 32 centroids (8 accumulators),
  // or one query x 2 blocks; bounds 3 blocks = 12 fma chains; vertical ADC
  // 4 rows x 2 vectors.
  static constexpr int kAssignRows = 2, kQueries = 2, kSingleBlocks = 2;
  static constexpr int kBoundWide = 3, kBoundNarrow = 1, kVRows = 4;

  static I load_i(const std::int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static I and_i(I a, I b) { return _mm256_and_si256(a, b); }
  static void store_first(float* p, F v, int n) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int l = 0; l < n; ++l) p[l] = tmp[l];
  }
  static __m128i load_bytes(const std::int8_t* p) {  // 8 bytes
    return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  }
  static void keep_less(F v, I jv, F& bv, I& bj) {
    const F lt = _mm256_cmp_ps(v, bv, _CMP_LT_OQ);
    bv = _mm256_blendv_ps(bv, v, lt);
    bj = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(bj), _mm256_castsi256_ps(jv), lt));
  }
  static float argmin(F bv, I bj, std::int32_t& j) {
    alignas(32) float v[8];
    alignas(32) std::int32_t idx[8];
    _mm256_store_ps(v, bv);
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), bj);
    float m = v[0];
    j = idx[0];
    for (int l = 1; l < 8; ++l)
      if (v[l] < m || (v[l] == m && idx[l] < j)) {
        m = v[l];
        j = idx[l];
      }
    return m;
  }
  static I gather32(const void* base, I off) {
    return _mm256_i32gather_epi32(static_cast<const int*>(base), off, 1);
  }
  static F gather(const float* table, I idx) { return _mm256_i32gather_ps(table, idx, 4); }
};

}  // namespace
}  // namespace avx2

namespace detail {
PQKernels pq_kernels_avx2() { return make_pq_kernels<avx2::Isa>(); }
}  // namespace detail
}  // namespace pyspec
