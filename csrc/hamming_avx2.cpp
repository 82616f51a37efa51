// AVX2 level of the Hamming family. Compiled with -mavx2 -mpopcnt; reached
// only through the dispatcher in hamming.cpp after cpu_features confirmed
// support.
//
// Single queries: AVX2 has no vector popcount, and four scalar POPCNTs per
// 256-bit code are as fast as a vector emulation plus a horizontal sum, so
// the row scan is the portable loop of hamming_generic.hpp compiled with
// POPCNT (the portable build has to emulate popcount; see bench/RESULTS.md).
//
// Batches: blocks are transposed (8 codes per group, word-major) and several
// queries share each loaded block word. Popcount is the nibble-table method
// (vpshufb on the low and high nibbles of each byte): because XOR commutes
// with nibble extraction, the block's nibbles are split once per group and
// each query only XORs them with its own pre-split nibbles. Byte counts are
// summed over the words of a code (at most 8 * 8 = 64 per byte, no overflow)
// and folded to one count per 64-bit lane with vpsadbw.
#include <immintrin.h>

#include "hamming.hpp"
#include "hamming_generic.hpp"

namespace pyspec {
namespace avx2 {
namespace {

// Count of set bits in each 4-bit value, repeated for both 128-bit lanes.
inline __m256i nibble_table() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
}

// Q queries against one transposed block (lanes in code order).
template <int W, int Q>
void scan_transposed_q(const word_t* block, std::size_t n, const word_t* queries,
                       const std::int32_t* thresholds, std::uint32_t* const* pos,
                       std::int32_t* const* dist, std::size_t* counts) {
  const __m256i table = nibble_table();
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i zero = _mm256_setzero_si256();
  __m256i q_lo[Q][W], q_hi[Q][W], thr[Q];
  for (int j = 0; j < Q; ++j) {
    for (int w = 0; w < W; ++w) {
      const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(queries[j * W + w]));
      q_lo[j][w] = _mm256_and_si256(qv, low);
      q_hi[j][w] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), low);
    }
    thr[j] = _mm256_set1_epi64x(thresholds[j]);
  }
  const std::size_t groups = (n + 7) / 8;
  for (std::size_t g = 0; g < groups; ++g) {
    const word_t* p = block + g * 8 * W;
    const std::size_t base = g * 8;
    for (int half = 0; half < 2; ++half) {  // lanes 0-3, then 4-7
      __m256i x_lo[W], x_hi[W];
      for (int w = 0; w < W; ++w) {
        const __m256i x =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * w + 4 * half));
        x_lo[w] = _mm256_and_si256(x, low);
        x_hi[w] = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
      }
      for (int j = 0; j < Q; ++j) {
        __m256i bytes = zero;
        for (int w = 0; w < W; ++w) {
          bytes = _mm256_add_epi8(
              bytes, _mm256_shuffle_epi8(table, _mm256_xor_si256(x_lo[w], q_lo[j][w])));
          bytes = _mm256_add_epi8(
              bytes, _mm256_shuffle_epi8(table, _mm256_xor_si256(x_hi[w], q_hi[j][w])));
        }
        const __m256i d = _mm256_sad_epu8(bytes, zero);  // 4 distances
        // lanes with d <= threshold: not (d > threshold)
        const unsigned over = static_cast<unsigned>(
            _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(d, thr[j]))));
        unsigned hit = ~over & 0xFu;
        if (!hit) continue;
        alignas(32) std::int64_t tmp[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), d);
        while (hit) {
          const int l = __builtin_ctz(hit);
          hit &= hit - 1;
          const std::size_t i = base + 4 * static_cast<std::size_t>(half) + l;
          if (i >= n) break;  // zero-padded tail lanes (in order, so stop)
          pos[j][counts[j]] = static_cast<std::uint32_t>(i);
          dist[j][counts[j]] = static_cast<std::int32_t>(tmp[l]);
          ++counts[j];
        }
      }
    }
  }
}

// Queries per pass (16 ymm): W words of low/high nibbles per query.
template <int W>
constexpr int queries_per_pass() {
  return W <= 2 ? 4 : 2;
}

#include "hamming_batch_impl.inc"

}  // namespace

const HammingKernels& hamming_kernels() {
  static const HammingKernels kernels{scan_rows_generic, transpose_rows_generic,
                                      scan_transposed_multi};
  return kernels;
}

}  // namespace avx2
}  // namespace pyspec
