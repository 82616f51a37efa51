// Hamming search drivers: dispatch, blocking, threading and top-k.
//
// The per-ISA files only scan one block of codes for one query and report
// the codes at or under a threshold; everything that decides *which* blocks
// and queries meet, and how results are merged, lives here once, so every
// SIMD level runs the same control flow and returns the same integers.
#include "hamming.hpp"

#include <algorithm>
#include <climits>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cpu_features.hpp"
#include "hamming_generic.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {

const HammingKernels& hamming_kernels_scalar() {
  // No transposed path: it only pays where a SIMD row scan needs a
  // horizontal reduction; the scalar loop sums a code's words directly.
  static const HammingKernels kernels{scan_rows_generic, nullptr, nullptr};
  return kernels;
}

namespace {

// A single query streams the database in blocks of this many bytes: large
// enough that per-call overhead is noise, small enough that the candidate
// buffers (8 bytes per code) stay in L2.
constexpr std::size_t kRowBlockBytes = 128 << 10;
// A batch shares each database block of this many bytes between all queries
// of a group. 32 KiB of codes (1024 codes of 256 bits) stay in L1/L2 while
// every query of the group passes over them, so memory is read once per
// group instead of once per query.
constexpr std::size_t kBatchBlockBytes = 32 << 10;
// Queries per group: a thread keeps one top-k per query of its group; 1024
// queries of k = 10 is ~200 KiB of heaps, still cheap next to the codes. For
// large k the group shrinks so its heaps stay within kGroupHeapBytes.
constexpr index_t kMaxQueryGroup = 1024;
constexpr std::size_t kGroupHeapBytes = 64 << 20;
// Above this k, selection uses a distance histogram instead of a heap (see
// knn_by_histogram).
constexpr index_t kHeapMaxK = 2048;
// The transposed layout costs one pass over the block and pays off only when
// the row-major scan needs a horizontal reduction (n_words >= 3) and enough
// queries share the block. Measured on AVX-512 (Zen 4, 50k codes, 64 queries,
// ns per query-code pair, machine under load): 256 bits 0.41 transposed vs
// 0.50 row-major, 512 bits 0.71 vs 0.91, but 64 bits 0.24 vs 0.19 and
// 128 bits 0.29 vs 0.28; with 8 queries per group the transposition was not
// yet repaid (0.57 vs 0.47 at 256 bits), with 16 barely (0.50 vs 0.43), with
// 32 clearly (0.40).
constexpr index_t kTransposeMinQueries = 32;
constexpr int kTransposeMinWords = 3;
// Below this many word comparisons (n_queries * n_codes * n_words) a call runs
// on one thread: starting a team costs a few microseconds.
constexpr double kParallelMinWork = 1 << 18;
// Database slices per thread when one query is split across threads (see
// for_db_chunks); each slice is still many scan blocks long.
constexpr index_t kSlicesPerThread = 8;
// Query groups per thread for batches, for the same reason; groups never get
// smaller than kMinSharedGroup queries so each pass over the database still
// serves many queries.
constexpr index_t kGroupsPerThread = 4;
constexpr index_t kMinSharedGroup = 64;

const HammingKernels& selected_kernels() {
  switch (hamming_simd_level()) {  // AVX-512 only with VPOPCNTDQ
#ifdef PYSPEC_HAVE_AVX512
    case SimdLevel::AVX512: return avx512::hamming_kernels();
#endif
#ifdef PYSPEC_HAVE_AVX2
    case SimdLevel::AVX2: return avx2::hamming_kernels();
#endif
    default: return hamming_kernels_scalar();
  }
}

std::size_t block_codes(std::size_t bytes, int n_words) {
  std::size_t n = bytes / (sizeof(word_t) * static_cast<std::size_t>(n_words));
  n = std::max<std::size_t>(kTransposeLanes, n - n % kTransposeLanes);
  return std::min(n, kScanBlockMax);
}

void check_common(index_t n_queries, index_t n_codes, int n_words) {
  if (n_words < 1 || n_words > kMaxCodeWords)
    throw std::invalid_argument("hamming: n_words must be in [1, 8]");
  if (n_queries < 0 || n_codes < 0) throw std::invalid_argument("hamming: negative size");
}

int effective_threads(int num_threads, index_t n_queries, index_t n_codes, int n_words) {
  const double work = static_cast<double>(n_queries) * static_cast<double>(n_codes) * n_words;
  return work < kParallelMinWork ? 1 : resolve_threads(num_threads);
}

// Sinks receive candidates; threshold() is the largest distance that can
// still matter (it only ever decreases, so a block scanned with a stale
// threshold reports a superset that the sink filters exactly).
class KnnSink {
 public:
  explicit KnnSink(std::size_t k) : top_(k) {}
  std::int32_t threshold() const { return top_.full() ? top_.worst() : INT32_MAX; }
  void add(std::int32_t d, index_t id) { top_.push(d, id); }
  TopK<std::int32_t>& top() { return top_; }
  index_t first_step() const {
    const index_t lanes = static_cast<index_t>(kTransposeLanes);
    const index_t twice_k = 2 * static_cast<index_t>(top_.k());
    return std::max(lanes, (twice_k + lanes - 1) / lanes * lanes);
  }

 private:
  TopK<std::int32_t> top_;
};

class RangeSink {
 public:
  explicit RangeSink(std::int32_t radius) : radius_(radius) {}
  std::int32_t threshold() const { return radius_; }
  index_t first_step() const { return INT64_MAX; }  // fixed threshold: full blocks
  void add(std::int32_t d, index_t id) { hits.emplace_back(d, id); }
  std::vector<std::pair<std::int32_t, index_t>> hits;

 private:
  std::int32_t radius_;
};

// Per-thread buffers: candidate lists for kMultiQueries queries (capacity one
// block each) and the transposed copy of the current block.
struct Scratch {
  std::vector<std::uint32_t> pos;
  std::vector<std::int32_t> dist;
  std::vector<word_t> block;
  std::size_t n_block;
  explicit Scratch(std::size_t n, int n_words, bool transposed)
      : pos(n * (transposed ? kMultiQueries : 1)),
        dist(n * (transposed ? kMultiQueries : 1)),
        block(transposed ? n * n_words : 0),
        n_block(n) {}
};

// Blocks start small and double up to the full size: until a top-k has seen
// enough codes its threshold is loose and most of a block would come back as
// candidates (each costing a heap push). Starting at 2k codes keeps the
// candidate count near k * log2(n / k) instead of one whole block per query.
index_t grow_step(index_t step, const Scratch& s) {
  return std::min(2 * step, static_cast<index_t>(s.n_block));
}

template <class Sink>
void drain(const std::uint32_t* pos, const std::int32_t* dist, std::size_t count,
           const index_t* ids, index_t base, Sink& sink) {
  for (std::size_t j = 0; j < count; ++j) sink.add(dist[j], ids[base + pos[j]]);
}

// One query against database rows [begin, end).
template <class Sink>
void scan_rows(const HammingKernels& kern, const word_t* query, const word_t* codes,
               const index_t* ids, index_t begin, index_t end, int n_words, Sink& sink,
               Scratch& s) {
  index_t step = std::min(sink.first_step(), static_cast<index_t>(s.n_block));
  for (index_t b = begin; b < end; b += step, step = grow_step(step, s)) {
    const std::size_t nb = static_cast<std::size_t>(std::min(step, end - b));
    const std::size_t c = kern.scan(codes + b * n_words, nb, n_words, query,
                                    sink.threshold(), s.pos.data(), s.dist.data());
    drain(s.pos.data(), s.dist.data(), c, ids, b, sink);
  }
}

// Queries [q_begin, q_end) against the whole database, block by block, so
// each block is read from memory once for the whole group.
template <class Sink>
void scan_group(const HammingKernels& kern, const word_t* queries, index_t q_begin,
                index_t q_end, const word_t* codes, const index_t* ids, index_t n_codes,
                int n_words, std::vector<Sink>& sinks, Scratch& s, bool transposed) {
  index_t step = std::min(sinks.empty() ? 0 : sinks[0].first_step(),
                          static_cast<index_t>(s.n_block));
  for (index_t b = 0; b < n_codes; b += step, step = grow_step(step, s)) {
    const std::size_t nb = static_cast<std::size_t>(std::min(step, n_codes - b));
    const word_t* rows = codes + b * n_words;
    if (!transposed) {
      for (index_t q = q_begin; q < q_end; ++q) {
        Sink& sink = sinks[static_cast<std::size_t>(q - q_begin)];
        const std::size_t c = kern.scan(rows, nb, n_words, queries + q * n_words,
                                        sink.threshold(), s.pos.data(), s.dist.data());
        drain(s.pos.data(), s.dist.data(), c, ids, b, sink);
      }
      continue;
    }
    kern.transpose(rows, nb, n_words, s.block.data());
    std::uint32_t* pos[kMultiQueries];
    std::int32_t* dist[kMultiQueries];
    for (std::size_t j = 0; j < kMultiQueries; ++j) {
      pos[j] = s.pos.data() + j * s.n_block;
      dist[j] = s.dist.data() + j * s.n_block;
    }
    for (index_t q = q_begin; q < q_end; q += kMultiQueries) {
      const std::size_t m = static_cast<std::size_t>(
          std::min<index_t>(kMultiQueries, q_end - q));
      Sink* group = &sinks[static_cast<std::size_t>(q - q_begin)];
      std::int32_t thresholds[kMultiQueries];
      std::size_t counts[kMultiQueries];
      for (std::size_t j = 0; j < m; ++j) thresholds[j] = group[j].threshold();
      kern.scan_transposed_multi(s.block.data(), nb, n_words, queries + q * n_words, m,
                                 thresholds, pos, dist, counts);
      for (std::size_t j = 0; j < m; ++j) drain(pos[j], dist[j], counts[j], ids, b, group[j]);
    }
  }
}

// Runs `per_group(q_begin, q_end, scratch, transposed)` over query groups in
// parallel (used when there are at least as many queries as threads).
template <class F>
void for_query_groups(const HammingKernels& kern, index_t n_queries, int n_words, int threads,
                      index_t max_group, F&& per_group) {
  const index_t per_thread = (n_queries + threads - 1) / threads;
  index_t group = per_thread;
  if (group > kMinSharedGroup)
    group = std::max(kMinSharedGroup, (n_queries + kGroupsPerThread * threads - 1) /
                                          (kGroupsPerThread * threads));
  group = std::max<index_t>(1, std::min({kMaxQueryGroup, max_group, group}));
  const index_t n_groups = (n_queries + group - 1) / group;
  const bool transposed = kern.transpose != nullptr && group >= kTransposeMinQueries &&
                          n_words >= kTransposeMinWords;
  const std::size_t nb = block_codes(kBatchBlockBytes, n_words);
  ErrorCapture errors;
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
  {
    std::unique_ptr<Scratch> s;
    errors.run([&] { s = std::make_unique<Scratch>(nb, n_words, transposed); });
PYSPEC_OMP(omp for schedule(dynamic, 1))
    for (index_t g = 0; g < n_groups; ++g) {
      if (!s) continue;  // allocation failed; the error is rethrown below
      const index_t q0 = g * group;
      const index_t q1 = std::min(n_queries, q0 + group);
      errors.run([&] { per_group(q0, q1, *s, transposed); });
    }
  }
  errors.rethrow();
}

// Runs `per_chunk(t, begin, end, scratch)` over slices of the database in
// parallel (few queries, many threads); `t` is the calling thread's slot in
// [0, threads), so per-thread results need no locking. Slices are handed out
// dynamically, several per thread: on a shared machine a thread that loses
// its core for a scheduler tick then delays only its current slice while the
// others take the rest (with one static slice per thread, measured single-
// query times at 2 threads under load were 3-10x the 1-thread time).
template <class F>
void for_db_chunks(index_t n_codes, int n_words, int threads, F&& per_chunk) {
  const std::size_t nb = block_codes(kRowBlockBytes, n_words);
  const index_t slice = std::max<index_t>(
      static_cast<index_t>(nb), (n_codes + kSlicesPerThread * threads - 1) /
                                    (kSlicesPerThread * threads));
  const index_t n_slices = (n_codes + slice - 1) / slice;
  ErrorCapture errors;
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
  {
    std::unique_ptr<Scratch> s;
    errors.run([&] { s = std::make_unique<Scratch>(nb, n_words, false); });
    const int t = thread_id();
PYSPEC_OMP(omp for schedule(dynamic, 1))
    for (index_t c = 0; c < n_slices; ++c) {
      if (!s) continue;
      const index_t begin = c * slice;
      const index_t end = std::min(n_codes, begin + slice);
      errors.run([&] { per_chunk(t, begin, end, *s); });
    }
  }
  errors.rethrow();
}

// Large k: with k in the thousands a heap costs O(log k) cache-missing
// steps per accepted code, and for k near n nearly every code is accepted
// (measured: 300 queries x 200k codes with k = n took 20 s). Distances are
// small integers, so instead: one pass builds the histogram of distances,
// which gives the distance t of the k-th neighbour; a second pass collects
// the codes with distance <= t, which are ordered by (distance, id) and cut to
// k, by a counting sort on the distance. Parallel over queries, each query on
// one thread.
void knn_by_histogram(const HammingKernels& kern, const word_t* queries, index_t n_queries,
                      const word_t* codes, const index_t* ids, index_t n_codes, int n_words,
                      index_t k, std::int32_t pad_distance, int threads,
                      std::int32_t* out_distances, index_t* out_ids) {
  const std::size_t nb = block_codes(kRowBlockBytes, n_words);
  const std::size_t n_bins = static_cast<std::size_t>(64 * n_words) + 1;
  (void)threads;  // only read by the OpenMP clause
  ErrorCapture errors;
  PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
  {
    std::unique_ptr<Scratch> s;
    errors.run([&] { s = std::make_unique<Scratch>(nb, n_words, false); });
    PYSPEC_OMP(omp for schedule(dynamic, 1))
    for (index_t q = 0; q < n_queries; ++q) {
      if (!s) continue;
      errors.run([&] {
        const word_t* query = queries + q * n_words;
        std::vector<index_t> hist(n_bins, 0);
        for (index_t b = 0; b < n_codes; b += static_cast<index_t>(nb)) {
          const std::size_t m = static_cast<std::size_t>(std::min<index_t>(nb, n_codes - b));
          const std::size_t c = kern.scan(codes + b * n_words, m, n_words, query, INT32_MAX,
                                          s->pos.data(), s->dist.data());
          for (std::size_t j = 0; j < c; ++j) ++hist[static_cast<std::size_t>(s->dist[j])];
        }
        std::int32_t t = static_cast<std::int32_t>(n_bins) - 1;
        index_t seen = 0;
        for (std::size_t d = 0; d < n_bins; ++d) {
          seen += hist[d];
          if (seen >= k) {
            t = static_cast<std::int32_t>(d);
            break;
          }
        }
        // Second pass: place every hit in its distance bucket (counting sort,
        // scan order kept), then sort each bucket by id unless it already is
        // (it is whenever ids increase with position, e.g. the default ids).
        std::vector<std::size_t> start(static_cast<std::size_t>(t) + 2, 0);
        for (std::int32_t d = 0; d <= t; ++d)
          start[static_cast<std::size_t>(d) + 1] = start[static_cast<std::size_t>(d)] +
                                                    static_cast<std::size_t>(hist[d]);
        std::vector<index_t> bucketed(start.back());
        std::vector<std::size_t> next(start.begin(), start.end() - 1);
        for (index_t b = 0; b < n_codes; b += static_cast<index_t>(nb)) {
          const std::size_t m = static_cast<std::size_t>(std::min<index_t>(nb, n_codes - b));
          const std::size_t c = kern.scan(codes + b * n_words, m, n_words, query, t,
                                          s->pos.data(), s->dist.data());
          for (std::size_t j = 0; j < c; ++j)
            bucketed[next[static_cast<std::size_t>(s->dist[j])]++] = ids[b + s->pos[j]];
        }
        const std::size_t keep = std::min(bucketed.size(), static_cast<std::size_t>(k));
        std::int32_t* d_row = out_distances + q * k;
        index_t* i_row = out_ids + q * k;
        for (std::int32_t d = 0; d <= t; ++d) {
          const auto first = bucketed.begin() + static_cast<std::ptrdiff_t>(start[d]);
          const auto last = bucketed.begin() + static_cast<std::ptrdiff_t>(start[d + 1]);
          if (!std::is_sorted(first, last)) std::sort(first, last);
        }
        for (std::size_t j = 0; j < keep; ++j) i_row[j] = bucketed[j];
        for (std::int32_t d = 0; d <= t; ++d)
          std::fill(d_row + std::min(start[d], keep), d_row + std::min(start[d + 1], keep), d);
        std::fill(d_row + keep, d_row + k, pad_distance);
        std::fill(i_row + keep, i_row + k, kMissingId);
      });
    }
  }
  errors.rethrow();
}

}  // namespace

const HammingKernels& selected_hamming_kernels() { return selected_kernels(); }

void hamming_knn(const word_t* queries, index_t n_queries, const word_t* codes,
                 const index_t* ids, index_t n_codes, int n_words, index_t k,
                 std::int32_t pad_distance, int num_threads, std::int32_t* out_distances,
                 index_t* out_ids) {
  check_common(n_queries, n_codes, n_words);
  if (k < 0) throw std::invalid_argument("hamming_knn: k must be >= 0");
  if (n_queries == 0 || k == 0) return;
  const std::size_t kk = static_cast<std::size_t>(k);
  if (n_codes == 0) {
    std::fill(out_distances, out_distances + n_queries * k, pad_distance);
    std::fill(out_ids, out_ids + n_queries * k, kMissingId);
    return;
  }
  const HammingKernels& kern = selected_kernels();
  const int threads = effective_threads(num_threads, n_queries, n_codes, n_words);

  if (k > kHeapMaxK) {
    knn_by_histogram(kern, queries, n_queries, codes, ids, n_codes, n_words, k, pad_distance,
                     threads, out_distances, out_ids);
    return;
  }
  if (n_queries >= threads) {
    const std::size_t heap_bytes = kk * sizeof(std::pair<std::int32_t, index_t>);
    const index_t max_group = static_cast<index_t>(std::max<std::size_t>(
        1, kGroupHeapBytes / heap_bytes));
    for_query_groups(kern, n_queries, n_words, threads, max_group,
                     [&](index_t q0, index_t q1, Scratch& s, bool transposed) {
                       std::vector<KnnSink> sinks(static_cast<std::size_t>(q1 - q0),
                                                  KnnSink(kk));
                       scan_group(kern, queries, q0, q1, codes, ids, n_codes, n_words, sinks,
                                  s, transposed);
                       for (index_t q = q0; q < q1; ++q)
                         sinks[static_cast<std::size_t>(q - q0)].top().extract_sorted(
                             out_distances + q * k, out_ids + q * k, pad_distance);
                     });
    return;
  }
  // Fewer queries than threads: every thread takes a slice of the database.
  for (index_t q = 0; q < n_queries; ++q) {
    std::vector<KnnSink> parts(static_cast<std::size_t>(threads), KnnSink(kk));
    const word_t* query = queries + q * n_words;
    for_db_chunks(n_codes, n_words, threads,
                  [&](int t, index_t begin, index_t end, Scratch& s) {
                    scan_rows(kern, query, codes, ids, begin, end, n_words,
                              parts[static_cast<std::size_t>(t)], s);
                  });
    for (int t = 1; t < threads; ++t)
      parts[0].top().merge(parts[static_cast<std::size_t>(t)].top());
    parts[0].top().extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
  }
}

void hamming_range(const word_t* queries, index_t n_queries, const word_t* codes,
                   const index_t* ids, index_t n_codes, int n_words, std::int32_t radius,
                   int num_threads, RangeHits& out) {
  check_common(n_queries, n_codes, n_words);
  using Hits = RangeHitList;
  std::vector<Hits> per_query(static_cast<std::size_t>(n_queries));
  const HammingKernels& kern = selected_kernels();
  const int threads = effective_threads(num_threads, n_queries, n_codes, n_words);

  if (n_codes > 0 && radius >= 0) {
    if (n_queries >= threads) {
      for_query_groups(kern, n_queries, n_words, threads, kMaxQueryGroup,
                       [&](index_t q0, index_t q1, Scratch& s, bool transposed) {
                         std::vector<RangeSink> sinks(static_cast<std::size_t>(q1 - q0),
                                                      RangeSink(radius));
                         scan_group(kern, queries, q0, q1, codes, ids, n_codes, n_words, sinks,
                                    s, transposed);
                         for (index_t q = q0; q < q1; ++q) {
                           Hits& h = sinks[static_cast<std::size_t>(q - q0)].hits;
                           std::sort(h.begin(), h.end());
                           per_query[static_cast<std::size_t>(q)] = std::move(h);
                         }
                       });
    } else {
      for (index_t q = 0; q < n_queries; ++q) {
        std::vector<RangeSink> parts(static_cast<std::size_t>(threads), RangeSink(radius));
        const word_t* query = queries + q * n_words;
        for_db_chunks(n_codes, n_words, threads,
                      [&](int t, index_t begin, index_t end, Scratch& s) {
                        scan_rows(kern, query, codes, ids, begin, end, n_words,
                                  parts[static_cast<std::size_t>(t)], s);
                      });
        Hits& h = per_query[static_cast<std::size_t>(q)];
        for (auto& p : parts) h.insert(h.end(), p.hits.begin(), p.hits.end());
        std::sort(h.begin(), h.end());
      }
    }
  }
  pack_range_hits(per_query, out);
}

void hamming_distances(const word_t* queries, index_t n_queries, const word_t* codes,
                       index_t n_codes, int n_words, int num_threads, std::int32_t* out) {
  check_common(n_queries, n_codes, n_words);
  if (n_queries == 0 || n_codes == 0) return;
  const HammingKernels& kern = selected_kernels();
  const int threads = effective_threads(num_threads, n_queries, n_codes, n_words);
  (void)threads;  // only read by the OpenMP clause
  const std::size_t nb = block_codes(kRowBlockBytes, n_words);
  ErrorCapture errors;
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
  {
    std::unique_ptr<Scratch> s;
    errors.run([&] { s = std::make_unique<Scratch>(nb, n_words, false); });
PYSPEC_OMP(omp for schedule(static))
    for (index_t q = 0; q < n_queries; ++q) {
      if (!s) continue;
      std::int32_t* row = out + q * n_codes;
      for (index_t b = 0; b < n_codes; b += static_cast<index_t>(nb)) {
        const std::size_t m = static_cast<std::size_t>(std::min<index_t>(nb, n_codes - b));
        const std::size_t c = kern.scan(codes + b * n_words, m, n_words, queries + q * n_words,
                                        INT32_MAX, s->pos.data(), s->dist.data());
        for (std::size_t j = 0; j < c; ++j) row[b + s->pos[j]] = s->dist[j];
      }
    }
  }
  errors.rethrow();
}

void pack_range_hits(std::vector<RangeHitList>& per_query, RangeHits& out) {
  const std::size_t n_queries = per_query.size();
  out.offsets.assign(n_queries + 1, 0);
  for (std::size_t q = 0; q < n_queries; ++q)
    out.offsets[q + 1] = out.offsets[q] + static_cast<index_t>(per_query[q].size());
  const std::size_t total = static_cast<std::size_t>(out.offsets.back());
  out.ids.resize(total);
  out.distances.resize(total);
  for (std::size_t q = 0; q < n_queries; ++q) {
    std::size_t o = static_cast<std::size_t>(out.offsets[q]);
    for (const auto& p : per_query[q]) {
      out.distances[o] = p.first;
      out.ids[o] = p.second;
      ++o;
    }
    RangeHitList().swap(per_query[q]);
  }
}

}  // namespace pyspec
