// Hamming kernel family: exact k-NN and range search over binary codes.
//
// Codes are rows of `n_words` uint64 words (1 <= n_words <= kMaxCodeWords):
// 64, 128, 256 and 512-bit codes use 1, 2, 4 and 8 words; 32-bit codes use one
// word whose upper half is zero. The distance between two codes is the number
// of differing bits, an exact integer in [0, 64 * n_words], returned as int32.
//
// Three implementations give bit-identical results: a portable scalar
// baseline (hamming.cpp), an AVX2 build of the same loops with the POPCNT
// instruction (hamming_avx2.cpp) and an AVX-512 VPOPCNTDQ variant
// (hamming_avx512.cpp). The public functions below dispatch once per call on
// pyspec::selected_simd_level().
//
// Ordering: every result list is sorted by ascending distance, ties broken by
// ascending id. Because (distance, id) is a total order, the kept set does not
// depend on scan order, block size, SIMD level or thread count.
//
// Threading: `num_threads` 0 means the OpenMP default (OMP_NUM_THREADS), n >= 1
// is exact. With at least as many queries as threads the work is split over
// groups of queries, and each group shares every pass over a cache-sized
// database block; otherwise every query splits the database into slices
// (several per thread, handed out dynamically) and the per-thread top-k
// lists are merged at the end. Inputs below ~2^18 word comparisons run
// serially. None of these functions touch Python; callers release the GIL.
//
// Tolerance: none; all outputs are exact integers.
//
// Top-k selection: each query keeps a bounded heap (topk.hpp) whose current
// worst distance is a rejection threshold passed to the SIMD scan, so almost
// every code is rejected by one vector compare and only the few at or under
// the threshold reach the heap. Cost is one pass over the codes plus about
// k * log(n / k) heap pushes per query. Above k = 2048 the heap would be the
// cost, so selection switches to a histogram of distances (which gives the
// k-th distance) and a second pass that counting-sorts the codes at or under
// it: two passes per query, each query on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "common.hpp"

namespace pyspec {

// k nearest codes of each query.
//
// queries   : uint64 (n_queries, n_words), C-contiguous.
// codes     : uint64 (n_codes, n_words), C-contiguous (the database).
// ids       : int64 (n_codes,), the id reported for each database row; ties
//             in distance are broken by this id (ids need not be sorted).
// k         : results per query, 0 <= k; the caller caps it at n_codes when
//             it wants no padding (the kernel keeps O(k) state per query).
// pad_distance: distance written to rows with fewer than k hits (n_bits + 1);
//             the matching id is kMissingId (-1).
// out_distances : int32 (n_queries, k), out_ids : int64 (n_queries, k),
//             written row by row in (distance, id) order.
// Threading, ordering: as above. Throws std::invalid_argument for n_words
// outside [1, kMaxCodeWords], negative sizes or k < 0, before any work.
void hamming_knn(const word_t* queries, index_t n_queries, const word_t* codes,
                 const index_t* ids, index_t n_codes, int n_words, index_t k,
                 std::int32_t pad_distance, int num_threads,
                 std::int32_t* out_distances, index_t* out_ids);

// All codes within `radius` (distance <= radius) of each query, in CSR form.
//
// Arrays as for hamming_knn. radius >= 0 (a negative radius finds nothing).
// Output vectors are resized here: offsets has n_queries + 1 entries, hits of
// query i are ids[offsets[i] : offsets[i+1]] with their distances, sorted by
// (distance, id). The result size is unknown in advance, so it is collected in
// std::vector storage that the binding hands to NumPy without a copy. Memory
// is proportional to the number of hits. Threading as above; throws as
// hamming_knn.
struct RangeHits {
  std::vector<index_t> offsets;
  std::vector<index_t> ids;
  std::vector<std::int32_t> distances;
};
void hamming_range(const word_t* queries, index_t n_queries, const word_t* codes,
                   const index_t* ids, index_t n_codes, int n_words, std::int32_t radius,
                   int num_threads, RangeHits& out);

// One query's range hits as (distance, id) pairs, before packing.
using RangeHitList = std::vector<std::pair<std::int32_t, index_t>>;

// Packs per-query hit lists (each already sorted by (distance, id)) into the
// CSR form of RangeHits, freeing each list once copied. Serial.
void pack_range_hits(std::vector<RangeHitList>& per_query, RangeHits& out);

// Full distance matrix (for tests and small problems).
//
// queries, codes : as for hamming_knn. out : int32 (n_queries, n_codes),
// C-contiguous, out[i, j] = distance between queries[i] and codes[j].
// Parallel over queries (serial below the small-input threshold).
void hamming_distances(const word_t* queries, index_t n_queries, const word_t* codes,
                       index_t n_codes, int n_words, int num_threads, std::int32_t* out);

// ---------------------------------------------------------------------------
// Per-ISA block kernels (internal). The drivers in hamming.cpp own threading,
// blocking and top-k; these functions scan one block of at most
// kScanBlockMax codes for one query (or a few) and report the candidates.

// Largest block a scan call receives; candidate positions fit in uint32.
constexpr std::size_t kScanBlockMax = 1 << 16;

struct HammingKernels {
  // Scans `n` row-major codes (n_words words each) against `query` and writes
  // the position (0..n-1) and distance of every code with distance <=
  // threshold to pos/dist (capacity n), in any order. Returns the count.
  std::size_t (*scan)(const word_t* codes, std::size_t n, int n_words, const word_t* query,
                      std::int32_t threshold, std::uint32_t* pos, std::int32_t* dist);
  // Optional (nullptr when the level has none): re-lays `n` row-major codes
  // into groups of kTransposeLanes codes, word-major inside a group
  // (out[g][w][lane]), zero-padding the last group. Size of `out` in words:
  // round_up(n, kTransposeLanes) * n_words. Which code of a group sits in
  // which lane is private to the level (its scan_transposed_multi undoes it).
  void (*transpose)(const word_t* codes, std::size_t n, int n_words, word_t* out);
  // Same contract as `scan`, over a block produced by `transpose`, for
  // n_queries <= kMultiQueries queries at once (rows of `queries`): used when
  // many queries share a block, so the transposition is paid once per block,
  // no query needs a horizontal reduction, and each loaded block word serves
  // several queries. thresholds[j], pos[j], dist[j] and counts[j] (output)
  // belong to query j. nullptr exactly when `transpose` is.
  void (*scan_transposed_multi)(const word_t* block, std::size_t n, int n_words,
                                const word_t* queries, std::size_t n_queries,
                                const std::int32_t* thresholds, std::uint32_t* const* pos,
                                std::int32_t* const* dist, std::size_t* counts);
};
constexpr std::size_t kTransposeLanes = 8;
constexpr std::size_t kMultiQueries = 4;

// Scalar baseline (always present).
const HammingKernels& hamming_kernels_scalar();
namespace avx2 {
const HammingKernels& hamming_kernels();
}
namespace avx512 {
const HammingKernels& hamming_kernels();
}
// The variant of hamming_simd_level(), as the drivers use it (ivf.cpp scans
// inverted lists with it).
const HammingKernels& selected_hamming_kernels();

}  // namespace pyspec
