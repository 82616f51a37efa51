// Exact k-NN through the inverted lists: skip codes the triangle inequality rules out.
//
// Hamming distance is a metric, so for a code x stored in the list of
// centroid c and a query q, d(q, x) >= |d(q, c) - d(c, x)|. With tau the
// current k-th distance of the query, a code can only enter the result when
// d(c, x) lies in [d(q, c) - tau, d(q, c) + tau]. The rows of every list are
// stored sorted by d(c, x) ("rings"), with the first row of each distance
// value recorded, so that band is one contiguous run of rows: it is scanned
// with the Hamming block kernels of hamming.hpp, the rest of the list is
// never read.
//
// Order: the lists are visited by increasing d(q, c) (a counting sort of the
// centroid distances), so the nearest lists fill the top-k first and tau
// shrinks before the far lists are reached; a list whose band is empty costs
// a comparison with the list's radii, a list within reach two reads of its
// ring entries (prefetched a chunk of lists ahead) and its band. The band is inclusive
// (codes whose bound equals tau are scanned) and the top-k is ordered by (distance, id), so the
// result is exactly hamming_knn's over all codes, ties included, whatever
// the visiting order or thread count.
//
// Batches (32 queries or more): each query first visits its nearest list
// (more until its top-k is full), then groups of up to 256 queries go
// through all lists in memory order together, each query scanning its band
// of the list while the list is in cache; the codes stream from memory
// once per group instead of once per query in distance order (at 10M codes,
// 3.4x faster per query than the per-query path: bench/RESULTS.md,
// session 10). Same bands, same (distance, id) top-k: the same result.
//
// Threading: `num_threads` 0 = OpenMP default, n >= 1 exact. Batches share
// their groups out; with at least as many queries as threads (and fewer than
// 32) the queries are shared out; a single query shares
// its lists out in visiting order, each thread pruning with its own top-k
// (whose k-th distance is never below the final one, so the pruning stays
// conservative) before the top-k lists are merged. No Python is touched; the
// binding releases the GIL.
//
// Tolerance: none; all outputs are exact integers.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace pyspec {

// k nearest codes of each query among all codes, visiting only the bands.
//
// queries   : uint64 (n_queries, n_words), C-contiguous.
// centroids : uint64 (n_lists, n_words), the list centroids.
// codes     : uint64 (n_codes, n_words), grouped by list and, inside a list,
//             sorted by distance to the list's centroid; ids int64 (n_codes,).
// offsets   : int64 (n_lists + 1,), the list starts, checked like
//             ivf_hamming_knn's.
// radii     : int32 (n_lists, 2): the smallest and largest ring (distance to
//             the centroid) holding a row of each list (an empty list: any
//             pair with first > second). Read first, so a list out of reach
//             costs no random read.
// ring_base, ring_rel: the rings of the rows, compactly: for list l and ring
//             r in [radii[l, 0], radii[l, 1] + 1], ring_rel[ring_base[l] + r -
//             radii[l, 0]] (uint32) is the first row of list l at distance
//             >= r, counted from the list start (so the entry after the last
//             ring is the list size). ring_base int64 (n_lists + 1,), each
//             list spanning radii[l, 1] - radii[l, 0] + 2 entries (0 when
//             empty). A few MB at 10^7 codes instead of the 2 kB per list of
//             a full table: the lookups stay in cache. The caller guarantees
//             the sorting; the kernel checks the spans and that every run it
//             reads lies inside its list (memory safety).
// n_bits    : code length in bits (distances are 0..n_bits).
// k, pad_distance, out_distances, out_ids: as for hamming_knn.
// Throws std::invalid_argument for bad sizes or ring entries.
void ivf_hamming_knn_exact(const word_t* queries, index_t n_queries, const word_t* centroids,
                           index_t n_lists, const word_t* codes, const index_t* ids,
                           index_t n_codes, int n_words, int n_bits, const index_t* offsets,
                           const std::int32_t* radii, const index_t* ring_base,
                           const std::uint32_t* ring_rel, index_t n_ring_rel, index_t k, std::int32_t pad_distance, int num_threads,
                           std::int32_t* out_distances, index_t* out_ids);

}  // namespace pyspec
