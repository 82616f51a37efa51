// Inverted-file product quantisation (IVFPQ) k-NN: ADC over a few lists.
//
// The PQ codes are stored grouped by coarse list (CSR): list l holds rows
// [offsets[l], offsets[l + 1]). Each query scans only the lists in its row
// of `probes` (chosen by the caller: nearest coarse centroids). The distance
// of query q to row i of a list probed at position p is, in float32,
//
//   d = ((adc(q, i) + code_terms[i]) + probe_terms[q][p])
//
// where adc(q, i) = sum over m = 0..M-1, in that order, of
// tables[q][m][codes[i][m]] (the same float sequence as pq_search, computed
// by the same per-ISA ADC kernels), and either term is left out when its
// pointer is null. Without terms this is plain ADC over the probed lists:
// probing every list gives pq_search's distances and ids. With residual
// codes (codes of x - c_l) the caller passes
//   code_terms[i]  = 2 <c_l, r_i>         (r_i the decoded residual)
//   probe_terms    = ||q - c_l||^2 - ||q||^2
// and tables of the query itself, since
//   ||q - c_l - r_i||^2 = ||q - r_i||^2 + 2 <c_l, r_i> + ||c_l||^2 - 2 <q, c_l>;
// one table per query serves every probed list (per-list tables would cost
// M x K x L multiply-adds per list, more than scanning a list of hundreds of
// codes).
//
// Each query keeps a top-k ordered by (distance, id), a total order, so the
// result is the exact top-k of the probed lists whatever the probe order,
// block split or thread count.
//
// Threading: `num_threads` 0 = OpenMP default, n >= 1 exact. With at least as
// many queries as threads the queries are shared out (dynamically: lists
// differ in size); otherwise each query's probed lists are shared out and
// the per-thread top-k lists merged. Small calls run serially. No Python is
// touched; the binding releases the GIL.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace pyspec {

// tables      : float32 (n_queries, M, K), ADC tables of the queries.
// codes       : (n_codes, M) uint8/uint16, every value < K (checked by the
//               caller when codes are stored), grouped by list; ids int64.
// code_terms  : float32 (n_codes,) or null.
// offsets     : int64 (n_lists + 1,), 0 .. n_codes, non-decreasing.
// probes      : int64 (n_queries, n_probe), list numbers in [0, n_lists);
//               -1 entries are skipped. probe_terms: float32 (n_queries,
//               n_probe) or null.
// out_ids int64 / out_dist float32 (n_queries, k): ascending by (distance,
//               id), padded with (-1, +inf).
// Throws std::invalid_argument for bad sizes, offsets or probe numbers
// before any work.
template <class Code>
void ivfpq_search(const float* tables, index_t n_queries, std::int64_t M, std::int64_t K,
                  const Code* codes, const index_t* ids, const float* code_terms,
                  index_t n_codes, const index_t* offsets, index_t n_lists,
                  const index_t* probes, const float* probe_terms, index_t n_probe, index_t k,
                  int num_threads, index_t* out_ids, float* out_dist);

}  // namespace pyspec
