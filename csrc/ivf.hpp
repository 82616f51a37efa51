// Inverted-file (IVF) k-NN over binary codes: scan a few lists, not the database.
//
// The codes are stored grouped by list (CSR): list l holds database rows
// [offsets[l], offsets[l + 1]). Each query scans only the lists named in its
// row of `probes` (chosen by the caller, nearest coarse centroid first) with
// the Hamming block kernels of hamming.hpp and keeps a top-k ordered by
// (distance, id). Because (distance, id) is a total order, the result is the
// exact top-k of the union of the probed lists, whatever the probe order,
// block split or thread count; probing every list gives exactly hamming_knn.
//
// Threading: `num_threads` 0 = OpenMP default, n >= 1 exact. With at least
// as many queries as threads the queries are shared out (dynamically: lists
// differ in size); a single query (fewer queries than threads) splits its
// probed lists over the threads, whose top-k lists are merged at the end.
// Calls reading fewer than ~2^18 words run serially. No Python is touched;
// the binding releases the GIL.
//
// Tolerance: none; all outputs are exact integers.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace pyspec {

// k nearest codes of each query among the codes of its probed lists.
//
// queries : uint64 (n_queries, n_words), C-contiguous.
// codes   : uint64 (n_codes, n_words), grouped by list; ids int64 (n_codes,).
// offsets : int64 (n_lists + 1,), offsets[0] = 0, non-decreasing,
//           offsets[n_lists] = n_codes.
// probes  : int64 (n_queries, n_probe), distinct list numbers in [0, n_lists)
//           per row; -1 entries are skipped.
// k, pad_distance, out_distances, out_ids: as for hamming_knn (rows with
//           fewer than k codes in their probed lists are padded).
// Throws std::invalid_argument for bad sizes, offsets or probe numbers,
// before any work.
void ivf_hamming_knn(const word_t* queries, index_t n_queries, const word_t* codes,
                     const index_t* ids, index_t n_codes, int n_words, const index_t* offsets,
                     index_t n_lists, const index_t* probes, index_t n_probe, index_t k,
                     std::int32_t pad_distance, int num_threads, std::int32_t* out_distances,
                     index_t* out_ids);

}  // namespace pyspec
