// AVX-512 VPOPCNTDQ level of the Hamming family. Compiled with AVX-512 flags;
// reached only through the dispatcher in hamming.cpp after cpu_features
// confirmed CPU and OS support.
//
// Row-major scan (one query): 8 codes per iteration. VPOPCNTQ gives one count
// per 64-bit word; the per-code sums are formed with in-lane unpacks and
// 128-bit lane shuffles, which leaves the 8 distances in one register in a
// fixed permuted lane order (kLaneCode* below maps lane -> code). One
// compare against the current threshold rejects all 8 codes at once; only a
// non-zero mask (rare once the top-k is full) goes to scalar code.
//
// Transposed scan (batches): a block laid out word-major per group of 8 codes
// needs no reduction at all: distance lanes = sum over words of
// popcnt(block_word ^ broadcast query word), i.e. two vector ops per word per
// 8 codes plus the adds.
#include <immintrin.h>

#include "hamming.hpp"
#include "hamming_generic.hpp"

namespace pyspec {
namespace avx512 {
namespace {

inline __m512i popcnt_xor(const word_t* p, __m512i q) {
  return _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(p), q));
}

// Sum of adjacent 64-bit lanes of a and b: lane pair j of the result holds
// [a.q(2j) + a.q(2j+1), b.q(2j) + b.q(2j+1)].
inline __m512i pair_sum(__m512i a, __m512i b) {
  return _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

// Adds 128-bit lanes (0 + 1) and (2 + 3) of a and of b: result lanes are
// [a01, a23, b01, b23].
inline __m512i lane_pair_sum(__m512i a, __m512i b) {
  return _mm512_add_epi64(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Lane -> code (within the 8-code group) after each reduction pattern.
constexpr std::uint8_t kLaneCode1[8] = {0, 1, 2, 3, 4, 5, 6, 7};
constexpr std::uint8_t kLaneCode2[8] = {0, 4, 1, 5, 2, 6, 3, 7};
constexpr std::uint8_t kLaneCode4[8] = {0, 2, 1, 3, 4, 6, 5, 7};
constexpr std::uint8_t kLaneCode8[8] = {0, 1, 2, 3, 4, 5, 6, 7};

// Distances of codes [i, i + 8) (row-major) to the broadcast query, permuted.
template <int W>
inline __m512i group_distances(const word_t* p, const __m512i* q);

template <>
inline __m512i group_distances<1>(const word_t* p, const __m512i* q) {
  return popcnt_xor(p, q[0]);
}

template <>
inline __m512i group_distances<2>(const word_t* p, const __m512i* q) {
  // Each 128-bit lane is one code: a = codes 0..3, b = codes 4..7.
  return pair_sum(popcnt_xor(p, q[0]), popcnt_xor(p + 8, q[0]));
}

template <>
inline __m512i group_distances<4>(const word_t* p, const __m512i* q) {
  // Two codes per register; pair_sum leaves half-codes in 128-bit lanes,
  // lane_pair_sum joins the halves.
  const __m512i ab = pair_sum(popcnt_xor(p, q[0]), popcnt_xor(p + 8, q[0]));
  const __m512i cd = pair_sum(popcnt_xor(p + 16, q[0]), popcnt_xor(p + 24, q[0]));
  return lane_pair_sum(ab, cd);
}

template <>
inline __m512i group_distances<8>(const word_t* p, const __m512i* q) {
  // One code per register: a full 8x8 transpose-and-add.
  const __m512i s01 = pair_sum(popcnt_xor(p, q[0]), popcnt_xor(p + 8, q[0]));
  const __m512i s23 = pair_sum(popcnt_xor(p + 16, q[0]), popcnt_xor(p + 24, q[0]));
  const __m512i s45 = pair_sum(popcnt_xor(p + 32, q[0]), popcnt_xor(p + 40, q[0]));
  const __m512i s67 = pair_sum(popcnt_xor(p + 48, q[0]), popcnt_xor(p + 56, q[0]));
  // s01 lanes: [c0 w01, c1 w01], [c0 w23, c1 w23], [c0 w45, ...], [c0 w67, ...]
  const __m512i t0 = lane_pair_sum(s01, s23);  // [c0c1 w0-3], [c0c1 w4-7], [c2c3 w0-3], [c2c3 w4-7]
  const __m512i t1 = lane_pair_sum(s45, s67);
  return lane_pair_sum(t0, t1);  // [c0 c1], [c2 c3], [c4 c5], [c6 c7]
}

template <int W>
inline const std::uint8_t* lane_code() {
  return W == 1 ? kLaneCode1 : W == 2 ? kLaneCode2 : W == 4 ? kLaneCode4 : kLaneCode8;
}

inline std::size_t emit(__mmask8 m, __m512i d, std::size_t base, const std::uint8_t* lane,
                        std::size_t count, std::uint32_t* pos, std::int32_t* dist) {
  alignas(64) std::int64_t tmp[8];
  _mm512_store_si512(tmp, d);
  unsigned bits = m;
  while (bits) {
    const int l = __builtin_ctz(bits);
    bits &= bits - 1;
    pos[count] = static_cast<std::uint32_t>(base + lane[l]);
    dist[count] = static_cast<std::int32_t>(tmp[l]);
    ++count;
  }
  return count;
}

template <int W>
std::size_t scan_rows_avx512(const word_t* codes, std::size_t n, const word_t* query,
                             std::int32_t threshold, std::uint32_t* pos, std::int32_t* dist) {
  // The query repeated to fill a register (W words, 8 / W times).
  alignas(64) word_t rep[8];
  for (int j = 0; j < 8; ++j) rep[j] = query[j % W];
  const __m512i q[1] = {_mm512_load_si512(rep)};
  const __m512i thr = _mm512_set1_epi64(threshold);
  const std::uint8_t* lane = lane_code<W>();
  std::size_t count = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i d = group_distances<W>(codes + i * W, q);
    const __mmask8 m = _mm512_cmple_epi64_mask(d, thr);
    if (m) count = emit(m, d, i, lane, count, pos, dist);
  }
  for (; i < n; ++i) {
    const std::int32_t d = code_distance<W>(codes + i * W, query);
    if (d <= threshold) {
      pos[count] = static_cast<std::uint32_t>(i);
      dist[count] = d;
      ++count;
    }
  }
  return count;
}

std::size_t scan_rows(const word_t* codes, std::size_t n, int n_words, const word_t* query,
                      std::int32_t threshold, std::uint32_t* pos, std::int32_t* dist) {
  switch (n_words) {
    case 1: return scan_rows_avx512<1>(codes, n, query, threshold, pos, dist);
    case 2: return scan_rows_avx512<2>(codes, n, query, threshold, pos, dist);
    case 4: return scan_rows_avx512<4>(codes, n, query, threshold, pos, dist);
    case 8: return scan_rows_avx512<8>(codes, n, query, threshold, pos, dist);
    default: return scan_rows_generic(codes, n, n_words, query, threshold, pos, dist);
  }
}

// Transposed layout of this level: 256-bit codes are transposed with the
// same unpack/lane-shuffle pattern as the row-major reduction (12 shuffles per
// 8 codes instead of 32 scalar loads and stores), which leaves lane l of every
// word vector holding code kLaneCode4[l] of its group; other widths use the
// portable transposition in code order.
template <int W>
inline const std::uint8_t* transposed_lane_code() {
  return W == 4 ? kLaneCode4 : kLaneCode1;
}

void transpose_rows(const word_t* codes, std::size_t n, int n_words, word_t* out) {
  if (n_words != 4) {
    transpose_rows_generic(codes, n, n_words, out);
    return;
  }
  const std::size_t full = n / 8;
  for (std::size_t g = 0; g < full; ++g) {
    const word_t* p = codes + g * 32;
    const __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 8);
    const __m512i c = _mm512_loadu_si512(p + 16), d = _mm512_loadu_si512(p + 24);
    // lo: words 0 and 2, hi: words 1 and 3, of codes (0,2 | 1,3) and (4,6 | 5,7)
    const __m512i lo_ab = _mm512_unpacklo_epi64(a, b), hi_ab = _mm512_unpackhi_epi64(a, b);
    const __m512i lo_cd = _mm512_unpacklo_epi64(c, d), hi_cd = _mm512_unpackhi_epi64(c, d);
    word_t* o = out + g * 32;
    _mm512_storeu_si512(o, _mm512_shuffle_i64x2(lo_ab, lo_cd, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_si512(o + 8, _mm512_shuffle_i64x2(hi_ab, hi_cd, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_si512(o + 16, _mm512_shuffle_i64x2(lo_ab, lo_cd, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_si512(o + 24, _mm512_shuffle_i64x2(hi_ab, hi_cd, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  const std::size_t rest = n - full * 8;
  if (rest == 0) return;
  word_t* o = out + full * 32;
  for (std::size_t l = 0; l < 8; ++l) {
    const std::size_t i = kLaneCode4[l];
    for (int w = 0; w < 4; ++w) o[w * 8 + l] = i < rest ? codes[(full * 8 + i) * 4 + w] : 0;
  }
}

// Distances of 8 transposed codes (x[w] = word w of each) to one query.
template <int W>
inline __m512i distances(const __m512i* x, const __m512i* q) {
  __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(x[0], q[0]));
  for (int w = 1; w < W; ++w)
    d = _mm512_add_epi64(d, _mm512_popcnt_epi64(_mm512_xor_si512(x[w], q[w])));
  return d;
}

// Q queries per pass: the W block words of a group are loaded once and
// XOR-ed with each query's broadcast words, so loads and loop overhead are
// shared and the popcount unit stays busy. Q * W query registers: Q = 4 for
// W <= 4 (16 of the 32 zmm registers), Q = 2 above.
template <int W, int Q>
void scan_transposed_q(const word_t* block, std::size_t n, const word_t* queries,
                       const std::int32_t* thresholds, std::uint32_t* const* pos,
                       std::int32_t* const* dist, std::size_t* counts) {
  __m512i q[Q][W];
  __m512i thr[Q];
  for (int j = 0; j < Q; ++j) {
    for (int w = 0; w < W; ++w)
      q[j][w] = _mm512_set1_epi64(static_cast<long long>(queries[j * W + w]));
    thr[j] = _mm512_set1_epi64(thresholds[j]);
  }
  const std::uint8_t* lane = transposed_lane_code<W>();
  const std::size_t groups = (n + 7) / 8;
  const std::size_t full = n / 8;
  for (std::size_t g = 0; g < groups; ++g) {
    const word_t* p = block + g * 8 * W;
    __m512i x[W];
    for (int w = 0; w < W; ++w) x[w] = _mm512_loadu_si512(p + 8 * w);
    // Masks are OR-ed in mask registers: moving each to a general register
    // first (what the compiler does for a plain `unsigned |= mask`) put a
    // slow k->GPR transfer on the critical path (16% of the loop in perf).
    // The distances are not kept: keeping them made the compiler spill all Q
    // of them to the stack every iteration, and zmm stores were then the
    // bottleneck. The rare candidate path recomputes them instead.
    __mmask8 any = 0;
    for (int j = 0; j < Q; ++j)
      any = _kor_mask8(any, _mm512_cmple_epi64_mask(distances<W>(x, q[j]), thr[j]));
    if (_kortestz_mask8_u8(any, any)) continue;
    __mmask8 valid = 0xFF;
    if (g == full) {  // padded tail group: keep lanes holding real codes
      valid = 0;
      for (int l = 0; l < 8; ++l)
        if (lane[l] < n % 8) valid = static_cast<__mmask8>(valid | (1u << l));
    }
    for (int j = 0; j < Q; ++j) {
      const __m512i d = distances<W>(x, q[j]);
      const __mmask8 mj = _mm512_mask_cmple_epi64_mask(valid, d, thr[j]);
      if (mj) counts[j] = emit(mj, d, g * 8, lane, counts[j], pos[j], dist[j]);
    }
  }
}

// Queries per pass: Q * W query registers, Q = 4 for W <= 4 (16 of the
// 32 zmm registers), Q = 2 above.
template <int W>
constexpr int queries_per_pass() {
  return W <= 4 ? 4 : 2;
}

#include "hamming_batch_impl.inc"

}  // namespace

const HammingKernels& hamming_kernels() {
  static const HammingKernels kernels{scan_rows, transpose_rows,
                                      scan_transposed_multi};
  return kernels;
}

}  // namespace avx512
}  // namespace pyspec
