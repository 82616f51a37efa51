// 4-bit "fast-scan" PQ: codes of at most 16 centroids per segment, packed so
// that one byte-shuffle instruction (VPSHUFB) looks up 32 (AVX2) or 64
// (AVX-512BW) table entries at once from a query table held in a register.
// The idea is André, Kermarrec & Le Scouarnec, "Cache locality is not
// enough" (VLDB 2015) and faiss's IndexPQFastScan; the layout, the table
// quantisation and the candidate filter below are pyspec's own.
//
// Packed layout ("fast-scan layout"). M segments form P = ceil(M / 2)
// segment pairs; pair p holds segment 2p in the low nibble and segment 2p+1
// (0 when 2p+1 = M) in the high nibble of one byte. Rows are grouped in
// blocks of 32; inside a block the 32 bytes of one pair are contiguous:
//   packed[(b * P + p) * 32 + i] = c[32b+i][2p] | c[32b+i][2p+1] << 4,
// rows past n are 0. One 32-byte load is one pair of 32 rows (AVX2); the
// AVX-512 kernels load two pairs of the same block at once. Size:
// fastscan_blocks(n) * P * 32 bytes (n / 2 * M bytes for even M: half of the
// uint8 codes).
//
// Quantised tables. Per query the float ADC table T (M x K, K <= 16) is
// mapped to bytes: per segment an offset mn_m = min_j T[m][j]; one scale for
// all segments, inv = levels / max_m (max_j T[m][j] - mn_m) rounded to float;
//   t[m][j] = min(levels, rint((T[m][j] - mn_m) * inv))   (float32 ops)
// with levels = min(255 / group, 65535 / M), so a u8 sum of `group` entries
// never wraps and a row's sum over all segments fits uint16 (no saturation
// and no widening pass is needed). A row's quantised sum S = sum_m t[m][c_m]
// then satisfies (the rounding of each entry is at most 1/2 + 1e-4 units)
//   ADC = sum_m mn_m + (S + e) / inv,   |e| <= M (1/2 + 1e-4),
// where ADC is the exact sum; the float32 sum the scan reports differs from
// it by at most gamma_M sum_m max_j |T[m][j]|. `margin` (an integer, per
// query) covers both errors for two rows: with S_k the k-th smallest sum
// over all rows, no row with S > S_k + margin can be among the k smallest
// float ADC distances (the k rows of smallest S are all strictly closer).
//
// Clipped scale. With the scale above the nearest rows of real spectra all
// sum to a few units (one far centroid sets the range, the neighbours sit
// near every segment's minimum), and the margin then admits a third of the
// database. The search first takes D, the k-th smallest float ADC distance
// over a sample of the rows (8 runs of contiguous rows, 1024 or 8k rows in
// all; every row when n <= 2 x that; an upper bound of the true k-th), and scales D - sum_m mn_m to levels - M - 3 units
// instead, saturating larger entries at `levels`. A row of float ADC <= D
// has S <= thr0 = floor((D - sum mn) inv + M (1/2 + 1e-4) + float slack
// + 1) < levels, so rows with a saturated entry (S >= levels) are never
// candidates and every candidate's sum obeys the bound above. The scan's
// threshold is min(thr0, S_k + margin). The clipped scale is used when
// thr0 < levels and it is finer than the plain one or the plain one's
// bound is >= 255 (else the plain scale, with the same thr0 bound).
//
// Byte path. With the clipped scale thr0 < levels <= 255, and no row whose
// sum reaches 255 can be a candidate: the scan then accumulates bytes with
// unsigned saturation (min(S, 255), exact for every row that can pass), one
// instruction per looked-up vector instead of three for the 16-bit sums,
// and the candidates are the same rows with the same sums.
//
// Search = scan + re-rank. The scan keeps, per query, the k smallest sums
// seen and a threshold thr = min(thr0, current k-th + margin); the SIMD
// kernels compare 32 sums with thr in registers and hand only rows with
// S <= thr to the (portable) candidate collector. At the end the candidates
// are cut to S <= min(thr0, S_k + margin) with the final S_k (so the
// candidate set is a function of the sums alone, whatever the thread
// split) and re-ranked with the float table in segment order, in ascending
// S, stopping when the lower bound of the next sum (sum mn + (S - M/2 ...)
// / inv - float slack) exceeds the k-th float distance found: distances and
// ids are bit for bit those of the float ADC scan (pq_search) over the same
// codes, ordered by (distance, id).
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"

namespace pyspec {

constexpr std::int64_t kFastScanBlock = 32;  // rows per packed block
constexpr std::int64_t kFastScanK = 16;      // centroids per segment (4 bits)
// Bytes of one query's quantised table in the kernel layout (see below).
std::int64_t fastscan_lut_bytes(std::int64_t M);
inline std::int64_t fastscan_blocks(std::int64_t n) {
  return (n + kFastScanBlock - 1) / kFastScanBlock;
}
inline std::int64_t fastscan_pairs(std::int64_t M) { return (M + 1) / 2; }

// Packs row-major codes (n, M), every value < 16, into the layout above
// (fastscan_blocks(n) * fastscan_pairs(M) * 32 bytes); unpack inverts it.
void pq_fastscan_pack(const std::uint8_t* codes, std::int64_t n, std::int64_t M,
                      std::uint8_t* packed, int num_threads);
void pq_fastscan_unpack(const std::uint8_t* packed, std::int64_t n, std::int64_t M,
                        std::uint8_t* codes);

// Table quantisation (above) of nq float tables (nq, M, K), K <= 16, for a
// given group (1, 2 or 4): q (nq, M, 16) bytes (entries j >= K are 0),
// offsets (nq, M), inv (nq), margin (nq), thr0 (nq). kth_bound (nq,
// optional): an upper bound D of each query's k-th smallest float ADC
// distance; see "Clipped scale" below. Without it thr0 = 65535.
void pq_fastscan_quantise(const float* tables, std::int64_t nq, std::int64_t M, std::int64_t K,
                          int group, const float* kth_bound, std::uint8_t* q, float* offsets,
                          float* inv, std::int32_t* margin, std::uint16_t* thr0);
// levels of the quantisation for M segments and a group.
int fastscan_levels(std::int64_t M, int group);
// The group a search uses when given 0: 1. With g = 2 the scan is ~10%
// faster on random codes, but the coarser scale doubles (M = 25) to
// quadruples (M = 50) the candidates on simulated spectra, and the search
// was slower (1M codes, M = 25: 0.76 vs 0.63 ms per query).
int fastscan_default_group(std::int64_t M);

// Quantised sums of every row for nq byte tables q (nq, M, 16): out (nq, n)
// uint16. The caller guarantees sum_m max_j q[m][j] <= 65535 and that a
// u8 sum of `group` entries cannot wrap (max entry * group <= 255).
// saturate: min(S, 255) from the byte path of the search.
void pq_fastscan_sums(const std::uint8_t* packed, std::int64_t n, std::int64_t M,
                      const std::uint8_t* q, std::int64_t nq, int group, bool saturate,
                      std::uint16_t* out, int num_threads);

// k-NN search (above). tables: float32 (nq, M, K) ADC tables, K <= 16;
// codes: (n, M) row-major, packed: the same codes in the fast-scan layout;
// ids: (n,). group: 1, 2, 4 or 0 (fastscan_default_group). Output (nq, k) ascending by (distance, id), padded (-1, +inf).
// n_candidates (nq, optional): rows re-ranked per query. candidates
// (optional): the candidate rows of each query, sorted. Parallel over
// queries when there are at least 8 per thread (equal groups of at most 32,
// a multiple of the threads; each task bounds, quantises and scans its
// own), else over database blocks. A kernel call takes the byte path
// (pq_fastscan_impl.hpp) when all its queries' thr0 are < 255.
void pq_fastscan_search(const float* tables, std::int64_t nq, std::int64_t M, std::int64_t K,
                        const std::uint8_t* codes, const std::uint8_t* packed,
                        const index_t* ids, std::int64_t n, std::int64_t k, int group,
                        index_t* out_ids, float* out_dist, std::int64_t* n_candidates,
                        std::vector<std::vector<std::int64_t>>* candidates, int num_threads);

namespace detail {
// Kernel layout of one query's quantised table: 32-byte rows, each holding
// the 16 entries of one segment twice (one copy per 128-bit lane, as
// VPSHUFB looks up within lanes). Row (p, h) -- segment 2p + h -- is at
// ((p / 2) * 4 + h * 2 + p % 2) * 32, so that the two low-nibble rows of
// pairs 2d, 2d+1 (and the two high-nibble rows) are 64 contiguous bytes, one
// AVX-512 load. Rows of missing segments are 0. fastscan_lut_bytes(M) =
// ceil(P / 2) * 128.
void fastscan_lut_layout(const std::uint8_t* q, std::int64_t M, std::uint8_t* lut);

// Called by the scan kernels for a block (rows 32 * block ..) where some
// row of query `query` (index into the kernel call's queries) has a sum <=
// thr[query]: `mask` bit i = row i passes, sums[i] = its sum. The callee
// may lower thr[query]; the kernel re-reads it.
struct FastScanSink {
  void (*fn)(void* ctx, std::int64_t query, std::int64_t block, std::uint32_t mask,
             const std::uint16_t* sums);
  void* ctx;
};
// Scans blocks [b0, b1) of `packed` (P pairs) for nq queries (kernel-layout
// tables at lut + q * lut_stride), comparing sums with thr[q]. `group` as in
// pq_fastscan_quantise. saturate: the sums are min(S, 255) (byte
// accumulation with unsigned saturation, `group` unused), for callers whose
// thresholds are all < 255, so that no saturated row can pass.
using FastScanFn = void (*)(const std::uint8_t* packed, std::int64_t P, std::int64_t b0,
                            std::int64_t b1, const std::uint8_t* lut, std::int64_t lut_stride,
                            std::int64_t nq, int group, bool saturate, std::uint16_t* thr,
                            const FastScanSink& sink);
FastScanFn fastscan_kernel_scalar();
#ifdef PYSPEC_HAVE_AVX2
FastScanFn fastscan_kernel_avx2();
#endif
#ifdef PYSPEC_HAVE_AVX512
FastScanFn fastscan_kernel_avx512();
#endif
}  // namespace detail

}  // namespace pyspec
