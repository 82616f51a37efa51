// Multi-index hashing (MIH): exact Hamming k-NN and range search that reads
// only the codes sharing a nearly equal substring with the query.
//
// Method (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
// multi-index hashing", CVPR 2012): the n_bits of a code are split into m
// disjoint substrings of widths[t] bits (t = 0..m-1, sum = n_bits). If two
// codes differ in d bits, at least one substring differs in at most
// floor(d / m) bits (pigeonhole), so probing, in each substring's table, all
// keys within a small radius of the query's substring finds every code
// within distance d. Each table is a direct-address CSR: bucket `key` of
// table t lists, in ascending row order, the rows whose substring t equals
// `key`.
//
// Exactness: candidates are verified on the full code and kept in the same
// bounded top-k (topk.hpp) as the linear scan, ordered by (distance, id), so
// results are the linear scan's results, tie order included. Search runs
// level by level (substring radius r = 0, 1, ...), table by table; after
// table t at level r every code with distance <= m*r + t has been seen
// (every unseen code differs in >= r+1 bits in tables 0..t and >= r bits in
// the others), which is the stopping rule for k-NN and the coverage rule
// for range search. A code that matches several tables is counted once: it
// is only taken at its first (level, table) match, which is decided from
// its own substring distances, so no per-query visited set is needed.
//
// Work budget: clustered codes can put many rows in one bucket, and a far
// k-th neighbour needs many probes (sum_j C(width, j) keys per table). Each
// query counts its work in units of "codes a linear scan reads in the same
// time" (kMihProbeCost per bucket probe, kMihCandidateCost per candidate
// verified); a query whose work passes `max_work` stops and is answered by
// the linear scan (hamming.hpp) instead, so a query never costs much more
// than max_work plus one scan, and results stay exact.
//
// Table layout (built by mih_build, read by the searches):
//   widths  : int32 (m,), 1 <= widths[t] <= kMihMaxWidth, sum <= 64 * n_words.
//   bit_order : int32 (sum(widths),) distinct bit positions, or none (the
//             identity 0, 1, 2, ...). Substring t is made of the code bits
//             bit_order[sum(widths[:t]) .. sum(widths[:t+1])), the j-th of
//             them is bit j of the key; bit p of a code is bit p % 64 of
//             word p / 64. Any order keeps results exact (the pigeonhole
//             argument only needs disjoint substrings); a learned order that
//             groups weakly correlated bits spreads clustered codes over
//             more buckets (pyspec/index/_mih.py chooses it).
//   offsets : uint32, concatenation over t of (2^widths[t] + 1) entries;
//             bucket `key` of table t is rows_t[off_t[key] : off_t[key+1]].
//   rows    : uint32 (m, n_codes); rows_t is a permutation of 0..n_codes-1.
// Codes must have every bit outside the substrings zero (queries too). n_codes < 2^32.
//
// Threading: parallel over queries (each query on one thread, dynamic
// schedule); results do not depend on the thread count. The scan fallback
// runs after the MIH pass, on all fallen-back queries together, with all
// threads. Nothing here touches Python; callers release the GIL.
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"
#include "hamming.hpp"

namespace pyspec {

// Widest substring: its table has 2^24 + 1 uint32 offsets (64 MiB).
constexpr int kMihMaxWidth = 24;
constexpr int kMihMaxTables = 64;
// Work units (codes a single-query linear scan reads in the same time) of
// one bucket probe and one candidate verification (random memory reads
// against a streamed code); see mih.cpp for the check of these prices.
constexpr std::int64_t kMihProbeCost = 16;
constexpr std::int64_t kMihCandidateCost = 24;

// Number of uint32 entries of the concatenated offsets for these widths.
std::int64_t mih_offsets_size(const std::int32_t* widths, int n_tables);

// Builds the tables of `codes` (uint64 (n_codes, n_words)) into `offsets`
// (mih_offsets_size entries) and `rows` (uint32 (n_tables, n_codes)).
// `bit_order` as in the layout above (nullptr: the identity). Parallel over
// tables. Throws std::invalid_argument for bad widths, a bit order that
// repeats a bit or names one outside the code, or n_codes >= 2^32.
void mih_build(const word_t* codes, index_t n_codes, int n_words, const std::int32_t* widths,
               int n_tables, const std::int32_t* bit_order, int num_threads,
               std::uint32_t* offsets, std::uint32_t* rows);

// Checks tables read from a file before they are searched (a corrupted
// table could index out of bounds): offsets non-decreasing per table,
// starting at 0 and ending at n_codes, every row < n_codes. Returns false
// on the first violation.
bool mih_check_tables(const std::int32_t* widths, int n_tables, index_t n_codes,
                      const std::uint32_t* offsets, const std::uint32_t* rows);

// The tables as the searches take them.
struct MihTables {
  const std::int32_t* widths;
  int n_tables;
  const std::uint32_t* offsets;
  const std::uint32_t* rows;
  const std::int32_t* bit_order;  // sum(widths) bits, or nullptr: 0, 1, 2, ...
};

// k nearest codes of each query; same arrays, ordering, padding and errors
// as hamming_knn (hamming.hpp), plus the tables, `max_work` (per query,
// work units as above; <= 0 means no limit) and out_work: int64
// (n_queries,), the work each query spent in MIH, negated (-work - 1) when
// the query fell back to the linear scan.
void mih_knn(const word_t* queries, index_t n_queries, const word_t* codes, const index_t* ids,
             index_t n_codes, int n_words, const MihTables& tables, index_t k,
             std::int32_t pad_distance, std::int64_t max_work, int num_threads,
             std::int32_t* out_distances, index_t* out_ids, std::int64_t* out_work);

// All codes within `radius` of each query, in CSR form exactly as
// hamming_range returns them; `max_work` and out_work as for mih_knn.
void mih_range(const word_t* queries, index_t n_queries, const word_t* codes,
               const index_t* ids, index_t n_codes, int n_words, const MihTables& tables,
               std::int32_t radius, std::int64_t max_work, int num_threads, RangeHits& out,
               std::int64_t* out_work);

}  // namespace pyspec
