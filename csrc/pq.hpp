// Product quantisation kernels: k-means++ seeding and centroid accumulation
// (training), batch encoding, ADC distance tables and ADC scans with top-k.
//
// Codebook layout shared by every kernel ("PQ layout"):
//   D pixels are cut into M contiguous segments; segment m covers pixels
//   [bounds[m], bounds[m+1]) with length L_m (bounds: int64 (M+1,), bounds[0]
//   = 0, bounds[M] = D). K centroids per segment; Kp = K rounded up to a
//   multiple of kCentroidBlock (32). `ct` (float32, Kp * D values) is
//   *blocked*: segment m starts at offset Kp * bounds[m] and holds one
//   contiguous L_m x 32 block per group of 32 centroids, so
//   ct[Kp*bounds[m] + j0*L_m + d*32 + t] is pixel d of centroid j0 + t.
//   Padding centroids (j >= K) are zero. Every kernel streams a block
//   front to back: 32 centroids' worth of one segment is one sequential read
//   (L_m x 128 bytes), which the hardware prefetcher follows, instead of L_m
//   rows spread Kp * 4 bytes apart (which it does not: at K = 3200 a table
//   built from the plain transposed layout ran at memory latency, not
//   bandwidth). `cnorm` (float32, M * Kp) holds ||c_mj||^2 with +inf in the
//   padding columns so a padded centroid is never the nearest.
//
// Exact agreement across SIMD levels: every float result is a sequence of
// fused multiply-adds (std::fma in the scalar code, vfmadd in AVX2/AVX-512)
// applied in the same order per output element (pixel order inside a
// segment, segment order in an ADC sum), so scalar, AVX2 and AVX-512 return
// bit-identical distances and codes. Nothing else multiplies and adds (2x is
// written x + x), so compiler contraction cannot change a result.
//
// Threading: `num_threads` 0 = OpenMP default, n >= 1 exact; small inputs run
// serially. Results never depend on the thread count: each output element is
// computed by one thread in a fixed order, and top-k merges use the total
// order (distance, id).
//
// Files: pq_layout.cpp (the layouts below, from the plain codebook),
// pq_train.cpp (k-means++ seeding, centroid sums), pq_tables.cpp (encode,
// ADC and bound tables), pq_scan.cpp + pq_adc.hpp (ADC k-NN scans),
// pq_dispatch.cpp (scalar kernels, SIMD level and scan-variant dispatch),
// pq_kernels_impl.hpp (the SIMD kernels, written once and compiled per ISA
// by pq_avx2.cpp and pq_avx512.cpp), pq_kernel_common.hpp (pieces shared by
// the scalar and SIMD kernels).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.hpp"

namespace pyspec {

// Centroid columns are padded to this multiple (one AVX-512 register pair).
constexpr std::int64_t kCentroidBlock = 32;

struct PQCodebook {
  const float* ct;             // Kp * D, transposed segments (see above)
  const float* cnorm;          // M * Kp, squared centroid norms (+inf padding)
  const std::int64_t* bounds;  // M + 1 segment boundaries
  std::int64_t M;              // segments
  std::int64_t K;              // centroids per segment
  std::int64_t Kp;             // K padded to kCentroidBlock
  std::int64_t D;              // pixels
  // Optional 8-bit copy for bound tables (below); all null when absent.
  const std::int8_t* cq = nullptr;  // Kp * D, blocked like ct: round((c - bmean) / bscale[m])
  const float* bmean = nullptr;     // D per-pixel offsets
  const float* bscale = nullptr;    // M powers of two in [2^-40, 2^40]
  const float* berr = nullptr;      // M * Kp, >= ||(c_mj - bmean) / bscale[m] - cq_mj||
  const float* rows = nullptr;      // K * D centroids, row layout (pq_kmeanspp), for exact entries
  bool has_bound_copy() const { return cq && bmean && bscale && berr && rows; }
};

// The layout above from the plain codebook `rows` (float32 (K, D), row
// layout; bounds as above, Kp = K rounded up to kCentroidBlock): ct (Kp * D)
// and cnorm (M * Kp, ||c||^2 summed in float64, then rounded to float).
void pq_build_layout(const float* rows, std::int64_t K, std::int64_t D, const std::int64_t* bounds,
                     std::int64_t M, std::int64_t Kp, float* ct, float* cnorm);
// The 8-bit bound copy (PQCodebook::cq, bmean, bscale, berr; "Bound tables"
// below) of the same codebook: bmean = midpoint of each pixel's centroid
// range, bscale[m] the smallest power of two >= max |c - bmean| / 127 over
// segment m, cq = round-half-even((c - bmean) / bscale) in the blocked
// layout, berr = ||(c - bmean) / bscale - cq|| rounded up to float (padding
// 0). Returns false when a scale falls outside [2^-40, 2^40] (no copy).
bool pq_build_bound_copy(const float* rows, std::int64_t K, std::int64_t D,
                         const std::int64_t* bounds, std::int64_t M, std::int64_t Kp,
                         std::int8_t* cq, float* bmean, float* bscale, float* berr);

// Nearest centroid of every segment of every row of X. Each codebook block
// (L x 128 bytes) stays in L1 while a block of rows passes.
// X: float32 (n, D) C-contiguous. codes: uint8 or uint16 (n, M) output (the
// caller guarantees K fits the code type). best: optional float32 (n, M)
// output, ||c||^2 - 2 x.c of the chosen centroid (add ||x_m||^2 for the
// squared distance). Ties go to the smaller centroid index. The score is
// computed as ||c||^2 - 2 x.c (blocked dot products), so a centroid whose
// exact distance is within float rounding of the best may be chosen instead.
// Parallel over blocks of rows.
template <class Code>
void pq_encode(const PQCodebook& cb, const float* X, std::int64_t n, Code* codes, float* best,
               int num_threads);

// ADC tables: tables[q][m][j] = sum_d (Q[q][bounds[m]+d] - c_mj[d])^2,
// float32 (nq, M, K), accumulated with fma in pixel order. Q: float32 (nq, D).
// Queries are processed in tiles that share each codebook block read (the
// codebook is 32 MB at D = 2500, K = 3200: reading it once per query made
// batch tables memory-bound). Parallel over query tiles, or over segments
// when there are fewer tiles than threads.
void pq_build_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* tables,
                     int num_threads);

// Bound tables: lower bounds of the ADC table entries, read from an 8-bit
// copy of the codebook (cb.cq, a quarter of the bytes of ct). The
// single-query table at D = 2500, K = 3200 reads the whole 32 MB codebook
// and runs at DRAM bandwidth (~1.3 ms of a ~2.9 ms search on Zen 4); the
// bound table reads 8 MB. Per segment, with mu = bmean, s = bscale[m] (a
// power of two, so dividing by s and multiplying by s^2 are exact),
// c' = (c - mu) / s, h = round(c') (cq) and e >= ||c' - h|| (berr), and q'
// the query's (q - mu) / s as computed in float (each coordinate within
// 2^-24 of its exact value, relatively; eta bounds the norm of that error),
// the triangle inequality gives
//   ||q - c||^2 = s^2 ||(q - mu)/s - c'||^2 >= s^2 (||q' - h|| - e - eta)^2,
// and the kernels evaluate the right side in float with a relative margin
// delta = (2 L + 16) 2^-24 (L = segment length) that covers the rounding of
// the sum, the square root and the products, and of the exact table entry
// itself: every bound is <= the pq_build_tables entry it bounds (tested).
// The per-pixel offset centres each pixel's centroid values, so the 255
// steps span their spread rather than the flux level (on the benchmark's
// spectra bounds lie ~1% under the exact entries). The pruning passes of a
// search sum bounds; rows that survive get exact entries, computed from
// cb.rows with the table kernels' fma sequence, so reported distances are
// the same floats as without bounds. The same terms give upper bounds,
//   ||q - c||^2 <= s^2 (||q' - h|| + e + eta)^2,
// evaluated with the margin the other way (every upper bound >= its exact
// entry, tested); a scan takes the k-th smallest upper-bound sum of the rows
// it has met as its pruning bound, so it needs exact entries only for the
// rows that can still enter the top-k at the end. lower, upper: float32
// (nq, M, K). Requires cb.has_bound_copy().
void pq_build_bound_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* lower,
                           float* upper, int num_threads);
// Whether the bound copy pays for a codebook of Kp x D floats: it is larger
// than a core's share of cache (8 MB), so tables are read from DRAM.
bool pq_bound_copy_pays(std::int64_t Kp, std::int64_t D);

// Segment-major "scan layout" of codes, read by the per-query ADC scan when
// the table does not fit L1. Rows are grouped in blocks of kScanLayoutRows;
// inside a block the codes of one segment are contiguous:
//   scan[(b * M + m) * kScanLayoutRows + r] = codes[(b * kScanLayoutRows + r) * M + m],
// rows past n are 0. A scan can then take one segment pair at a time for a
// whole block: two table rows (2 x K floats, 25 kB at K = 3200) stay in L1
// while the block's codes stream past, where the row-major scan touches all
// M table rows per database row and misses L1 on nearly every lookup at
// K = 3200 (measured 1.4 vs 2.7 ms per query on 200,000 x 25 codes, Zen 4).
// The price is a second copy of the codes (PQIndex keeps it next to the
// row-major array). Size: scan_layout_blocks(n) * M * kScanLayoutRows.
constexpr std::int64_t kScanLayoutRows = 2048;
inline std::int64_t scan_layout_blocks(std::int64_t n) {
  return (n + kScanLayoutRows - 1) / kScanLayoutRows;
}
template <class Code>
void pq_scan_layout(const Code* codes, std::int64_t n, std::int64_t M, Code* scan,
                    int num_threads);
// Whether the scan layout speeds up per-query scans with M x K tables: the
// table (M * K floats) overflows L1 (32 kB).
bool pq_scan_layout_pays(std::int64_t M, std::int64_t K);

// ADC k-NN scan. Distance of query q to row i = sum over m = 0..M-1 (in that
// order, float32) of tables[q][m][codes[i][m]]. Either `tables` (nq, M, K)
// is given, or it is null and tables are built per query group from `Q` and
// `cb` (bounded scratch memory). codes: (n, M) uint8/uint16 with every value
// < K (not re-checked per search: PQIndex validates codes on add and load,
// the table-only binding checks them), ids: int64 (n,). `scan`: null, or
// the same codes in the scan layout (above; the caller keeps the two
// consistent), which the per-query scans then read; batches scanned
// vertically read `codes`. Every path gives the same distances.
// Output: out_ids int64 (nq, k), out_dist float32 (nq, k), ascending by
// (distance, id), padded with (-1, +inf). Parallel over queries when
// nq >= threads, else over database blocks with per-thread top-k merged.
template <class Code>
void pq_search(const PQCodebook& cb, const float* Q, const float* tables, std::int64_t nq,
               const Code* codes, const Code* scan, const index_t* ids, std::int64_t n,
               std::int64_t k, index_t* out_ids, float* out_dist, int num_threads);

// k-means++ seeding, independently per segment, on training rows X (n, D).
// seeds: uint64 (M,), one random stream per segment (splitmix64), so the
// result does not depend on the thread count. Writes centroid j of segment
// m to centers[j * D + bounds[m] + d] (float32 (K, D), "row layout").
// Squared distances are accumulated in pixel order in float64. When all
// remaining points coincide with chosen centres the next centre is drawn
// uniformly. Parallel over segments.
void pq_kmeanspp(const float* X, std::int64_t n, std::int64_t D, const std::int64_t* bounds,
                 std::int64_t M, std::int64_t K, const std::uint64_t* seeds, float* centers,
                 int num_threads);

// Per-cluster sums (float64 (K, D), row layout as above) and counts (int64
// (M, K)) of training rows X (n, D) under `codes` (n, M). Rows are added in
// index order for each segment (deterministic). Parallel over segments.
template <class Code>
void pq_accumulate(const float* X, std::int64_t n, std::int64_t D, const std::int64_t* bounds,
                   std::int64_t M, std::int64_t K, const Code* codes, double* sums,
                   std::int64_t* counts, int num_threads);

// ADC scan variant used at the AVX2/AVX-512 levels: 1 = gather kernels,
// 0 = the interleaved scalar scan, -1 = the static rule (interleaved unless
// PYSPEC_PQ_SCAN=gather; see pq_dispatch.cpp for why). All variants return
// bit-identical results; this only trades speed.
void pq_set_scan_variant(int variant);
// The variant in use; 0 at scalar level.
int pq_scan_variant();

// Queries per vertical ADC group (one zmm of float32 sums per database row).
constexpr std::int64_t kVLanes = 16;

// ---- ISA variants (internal). Each level provides the same kernel
// table; pq_dispatch.cpp holds the scalar ones and the dispatch. They use no
// standard-library templates, so no inline function compiled with ISA flags
// can be picked by the linker for portable code.
namespace detail {
// Argmin over the Kp padded centroids of one segment for rows x[r*ldx ..],
// r < n, segment length L. ct: blocked (Kp/32 blocks of L x 32), cnorm: Kp. Writes best_j[r], best_v[r].
using AssignFn = void (*)(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t L,
                          const float* ct, const float* cnorm, std::int64_t Kp,
                          std::int32_t* best_j, float* best_v);
// Table rows of segments [m0, m1) for nq queries Q[q*ldq ..]:
// out[q*ldo + m*K + j], j < K.
using TableFn = void (*)(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
                         std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo);
// Bound-table rows (pq_build_bound_tables) of segments [m0, m1) for one
// query q (D floats): lower[m*K + j] and upper[m*K + j], j < K.
using BoundTableFn = void (*)(const PQCodebook& cb, const float* q, std::int64_t m0,
                              std::int64_t m1, float* lower, float* upper);
// Exact table entries (the pq_build_tables floats) of one query q at table
// positions entries[i] = m * K + j, into values[entries[i]], from cb.rows;
// entries of one segment should be adjacent (they are computed in runs).
using ExactFn = void (*)(const PQCodebook& cb, const float* q, const std::int64_t* entries,
                         std::int64_t n, float* values);
// ADC sums for rows [0, n) of codes (M per row); `readable` = rows that may
// be read from `codes` (>= n), which lets SIMD code over-read a few bytes.
using AdcU8Fn = void (*)(const float* table, std::int64_t M, std::int64_t K,
                         const std::uint8_t* codes, std::int64_t n, std::int64_t readable,
                         float* out);
using AdcU16Fn = void (*)(const float* table, std::int64_t M, std::int64_t K,
                          const std::uint16_t* codes, std::int64_t n, std::int64_t readable,
                          float* out);

// "Vertical" ADC for a group of kVLanes queries at once. vt interleaves the
// group's tables: vt[(m*K + j)*kVLanes + q] = tables[q][m][j]. out[i*kVLanes
// + q] = sum over m = 0..M-1 (in order) of vt[(m*K + codes[i][m])*kVLanes +
// q]: one 64-byte load and one vector add per row and segment serve all 16
// queries, where the per-query scan needs 16 scalar lookups. Per lane the
// sum is the same float sequence as the per-query scan, so results agree.
using VAdcU8Fn = void (*)(const float* vt, std::int64_t M, std::int64_t K,
                          const std::uint8_t* codes, std::int64_t n, float* out);
using VAdcU16Fn = void (*)(const float* vt, std::int64_t M, std::int64_t K,
                           const std::uint16_t* codes, std::int64_t n, float* out);

struct PQKernels {
  AssignFn assign;
  TableFn table;
  BoundTableFn bound_table;
  ExactFn exact;
  AdcU8Fn adc_u8;
  AdcU16Fn adc_u16;
  VAdcU8Fn vadc_u8;
  VAdcU16Fn vadc_u16;
};
PQKernels pq_kernels_scalar();
#ifdef PYSPEC_HAVE_AVX2
PQKernels pq_kernels_avx2();
#endif
#ifdef PYSPEC_HAVE_AVX512
PQKernels pq_kernels_avx512();
#endif
}  // namespace detail

}  // namespace pyspec
