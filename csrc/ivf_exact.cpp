// Exact IVF k-NN with triangle-inequality bands (see ivf_exact.hpp).
#include "ivf_exact.hpp"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <vector>

#include "hamming.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

// Codes handed to one block-kernel call (as in ivf.cpp: the buffers stay in L2).
constexpr std::size_t kBandBlock = 4096;
// Lists of the visiting order taken at a time. The lists are visited in
// distance order, not memory order, so each band costs two or three cache
// misses (ring entries, then codes); a chunk's reachable lists have their
// ring entries prefetched together, then their first codes, then are
// scanned, so the misses overlap instead of queueing.
constexpr index_t kChunk = 32;
// Rows of a band whose cache lines are prefetched (the hardware prefetcher
// follows a longer run by itself).
constexpr index_t kPrefetchRows = 16;
// Lists of the visiting order handed to a thread at a time (single query).
constexpr index_t kThreadChunk = 4 * kChunk;
// Batches of at least this many queries run list-major (Exact::batch); below
// it each query visits its lists nearest first on its own.
constexpr index_t kBatchMinQueries = 32;
// Queries a thread takes through the lists together in a batch (their
// centroid distances, list-major, stay in L2: n_lists * kBatchGroup int16).
constexpr index_t kBatchGroup = 256;
// Lists (of its visiting order, with their ties) each query of a batch visits
// on its own first, more until its top-k is full: its k-th distance then
// prunes the list-major pass. More lists tighten it further, but each costs
// the random reads the list-major pass avoids: at 10M codes (1 thread, batch
// of 1,000) 1 list was 1.4x faster than 64 (bench/RESULTS.md, session 10).
constexpr index_t kBatchWarmLists = 1;
// Below this many queries x lists a call runs on one thread (a query costs at
// least a distance and a radius check per list; a team costs a few microseconds).
constexpr double kParallelMinLists = 1 << 12;

// Per-thread buffers: block-kernel output and the query's list order.
struct Scratch {
  std::vector<std::uint32_t> pos;
  std::vector<std::int32_t> dist;
  std::vector<std::int32_t> list_dist;  // d(q, c) per list
  std::vector<index_t> order;           // lists by increasing d(q, c)
  std::vector<index_t> bucket;          // counting-sort starts, n_bits + 2
  // Sized for n_lists lists; grows only, so a thread's buffers are reused
  // from call to call (fresh ones would page-fault on every query).
  void fit(index_t n_lists, int n_bits) {
    const std::size_t lists = static_cast<std::size_t>(n_lists);
    if (pos.size() < std::max(kBandBlock, lists)) {
      pos.resize(std::max(kBandBlock, lists));
      dist.resize(pos.size());
    }
    if (list_dist.size() < lists) {
      list_dist.resize(lists);
      order.resize(lists);
    }
    bucket.resize(static_cast<std::size_t>(n_bits) + 2);
  }
};

Scratch& thread_scratch(index_t n_lists, int n_bits) {
  thread_local Scratch s;
  s.fit(n_lists, n_bits);
  return s;
}

struct Exact {
  const HammingKernels& kern;
  const word_t* centroids;
  index_t n_lists;
  const word_t* codes;
  const index_t* ids;
  int n_words;
  int n_bits;
  const index_t* offsets;
  const index_t* ring_base;      // (n_lists + 1,): start of each list's ring entries
  const std::uint32_t* ring_rel;  // rows (from the list start) of rings min..max + 1
  const std::int32_t* radii;  // (n_lists, 2): nearest and farthest row's ring

  // Entry of ring r (radii[2l] <= r <= radii[2l + 1] + 1) of list l.
  const std::uint32_t* ring_entry(index_t l, std::int32_t r) const {
    return ring_rel + ring_base[l] + (r - radii[2 * l]);
  }

  // d(q, c) for every list, then the lists ordered by it (counting sort: the
  // distances are 0..n_bits).
  void order_lists(const word_t* query, Scratch& s) const {
    for (index_t b = 0; b < n_lists;) {
      const std::size_t nb = static_cast<std::size_t>(
          std::min<index_t>(static_cast<index_t>(kScanBlockMax), n_lists - b));
      const std::size_t got = kern.scan(centroids + b * n_words, nb, n_words, query, INT32_MAX,
                                        s.pos.data(), s.dist.data());
      for (std::size_t j = 0; j < got; ++j) s.list_dist[b + s.pos[j]] = s.dist[j];
      b += static_cast<index_t>(nb);
    }
    std::fill(s.bucket.begin(), s.bucket.end(), 0);
    for (index_t l = 0; l < n_lists; ++l) ++s.bucket[s.list_dist[l] + 1];
    for (std::size_t r = 1; r < s.bucket.size(); ++r) s.bucket[r] += s.bucket[r - 1];
    for (index_t l = 0; l < n_lists; ++l) s.order[s.bucket[s.list_dist[l]]++] = l;
  }

  // Rings [lo, hi] of list l within tau of d(q, c), clipped to the rings the
  // list occupies; lo > hi when none.
  void band(index_t l, std::int32_t dqc, std::int32_t tau, std::int32_t& lo,
            std::int32_t& hi) const {
    lo = std::max(dqc - tau, radii[2 * l]);
    hi = std::min(dqc + tau, radii[2 * l + 1]);
  }

  // Folds the rows of list l in its band (under the current k-th distance)
  // into top.
  void scan_band(const word_t* query, index_t l, std::int32_t dqc, TopK<std::int32_t>& top,
                 Scratch& s) const {
    std::int32_t lo, hi;
    band(l, dqc, top.full() ? top.worst() : n_bits, lo, hi);
    if (lo > hi) return;
    const index_t first = offsets[l] + *ring_entry(l, lo);
    const index_t end = offsets[l] + *ring_entry(l, hi + 1);
    if (first < offsets[l] || end > offsets[l + 1] || first > end)
      throw std::invalid_argument("ivf_hamming_knn_exact: ring offsets out of order");
    for (index_t b = first; b < end;) {
      const std::size_t nb = static_cast<std::size_t>(
          std::min<index_t>(static_cast<index_t>(kBandBlock), end - b));
      const std::int32_t threshold = top.full() ? top.worst() : INT32_MAX;
      const std::size_t found = kern.scan(codes + b * n_words, nb, n_words, query, threshold,
                                          s.pos.data(), s.dist.data());
      for (std::size_t j = 0; j < found; ++j) top.push(s.dist[j], ids[b + s.pos[j]]);
      b += static_cast<index_t>(nb);
    }
  }

  // Reachable lists of order[c:stop) under tau (written to reach, count
  // returned), their ring entries prefetched.
  int reachable(const index_t* order, const std::int32_t* list_dist, index_t c, index_t stop,
                std::int32_t tau, index_t* reach) const {
    int m = 0;
    for (index_t i = c; i < stop; ++i) {
      const index_t l = order[i];
      std::int32_t lo, hi;
      band(l, list_dist[l], tau, lo, hi);
      if (lo > hi) continue;
      __builtin_prefetch(ring_entry(l, lo));
      __builtin_prefetch(ring_entry(l, hi + 1));
      reach[m++] = l;
    }
    return m;
  }

  // Prefetches the first codes of the bands of reach[0:m) under tau (which
  // only narrows before they are scanned).
  void prefetch_codes(const index_t* reach, int m, const std::int32_t* list_dist,
                      std::int32_t tau) const {
    for (int j = 0; j < m; ++j) {
      const index_t l = reach[j];
      std::int32_t lo, hi;
      band(l, list_dist[l], tau, lo, hi);
      const index_t first = std::min(offsets[l] + *ring_entry(l, lo), offsets[l + 1]);
      const index_t end = std::min({offsets[l] + *ring_entry(l, hi + 1), offsets[l + 1],
                                    first + kPrefetchRows});
      const index_t rows_per_line = std::max(1, 8 / n_words);
      for (index_t r = first; r < end; r += rows_per_line) __builtin_prefetch(codes + r * n_words);
    }
  }

  // Visits lists order[begin:end) of the visiting order, a chunk at a time,
  // as a three-stage pipeline: chunk i + 2 is filtered by radii and its ring
  // entries prefetched, chunk i + 1 has its first codes prefetched, chunk i
  // is scanned; each miss has a chunk's work to arrive.
  void visit(const word_t* query, const index_t* order, const std::int32_t* list_dist,
             index_t begin, index_t end, TopK<std::int32_t>& top, Scratch& s) const {
    index_t reach[3][kChunk];
    int count[3] = {0, 0, 0};
    std::int32_t tau_at[3] = {n_bits, n_bits, n_bits};
    const index_t n_chunks = (end - begin + kChunk - 1) / kChunk;
    for (index_t i = 0; i < n_chunks + 2; ++i) {
      const std::int32_t tau = top.full() ? top.worst() : n_bits;
      if (i < n_chunks) {
        const index_t c = begin + i * kChunk;
        const int slot = static_cast<int>(i % 3);
        count[slot] = reachable(order, list_dist, c, std::min(end, c + kChunk), tau,
                                reach[slot]);
        tau_at[slot] = tau;
      }
      if (i >= 1 && i - 1 < n_chunks) {
        const int slot = static_cast<int>((i - 1) % 3);
        prefetch_codes(reach[slot], count[slot], list_dist, tau_at[slot]);
      }
      if (i >= 2) {
        const int slot = static_cast<int>((i - 2) % 3);
        for (int j = 0; j < count[slot]; ++j)
          scan_band(query, reach[slot][j], list_dist[reach[slot][j]], top, s);
      }
    }
  }

  // A batch of queries[0:m): each query first visits its nearest lists on
  // its own (visit(), as a single query), then the group goes through all
  // lists in memory order, every query scanning its band of the list
  // (scan_band() under its current k-th distance) while the list's codes
  // are in cache. The lists are read in address order, once per group, so
  // the hardware prefetcher streams them, where a query alone jumps between
  // lists in distance order. Lists a query already visited are skipped (its
  // warm set is every list within warm_dist of it, so no code is pushed
  // twice). Exact for the same reason as visit(): any order of lists with
  // bands under the current k-th distance gives the scan's top-k.
  void batch(const word_t* queries, index_t m, TopK<std::int32_t>* tops, std::int16_t* dqc,
             std::int32_t* warm_dist, Scratch& s) const {
    for (index_t q = 0; q < m; ++q) {
      const word_t* query = queries + q * n_words;
      order_lists(query, s);
      // the nearest list and those tied with it, then further lists (with
      // their ties) until the top-k is full
      std::int32_t last = -1;
      for (index_t end = 0; end < n_lists && (end < kBatchWarmLists || !tops[q].full());) {
        last = s.list_dist[s.order[end]];
        index_t stop = end + 1;
        while (stop < n_lists && s.list_dist[s.order[stop]] == last) ++stop;
        visit(query, s.order.data(), s.list_dist.data(), end, stop, tops[q], s);
        end = stop;
      }
      warm_dist[q] = last;
      for (index_t l = 0; l < n_lists; ++l)
        dqc[l * m + q] = static_cast<std::int16_t>(s.list_dist[l]);
    }
    for (index_t l = 0; l < n_lists; ++l) {
      const std::int16_t* row = dqc + l * m;
      if (l + 1 < n_lists) __builtin_prefetch(codes + offsets[l + 1] * n_words);
      for (index_t q = 0; q < m; ++q) {
        if (row[q] <= warm_dist[q]) continue;
        scan_band(queries + q * n_words, l, row[q], tops[q], s);
      }
    }
  }
};

void check_inputs(index_t n_queries, index_t n_lists, index_t n_codes, int n_words, int n_bits,
                  const index_t* offsets, const std::int32_t* radii, const index_t* ring_base,
                  index_t n_ring_rel, index_t k) {
  if (n_words < 1 || n_words > kMaxCodeWords)
    throw std::invalid_argument("ivf_hamming_knn_exact: n_words must be in [1, 8]");
  if (n_bits < 1 || n_bits > 64 * n_words)
    throw std::invalid_argument("ivf_hamming_knn_exact: n_bits must be in [1, 64 * n_words]");
  if (n_queries < 0 || n_codes < 0 || n_lists < 0 || k < 0)
    throw std::invalid_argument("ivf_hamming_knn_exact: negative size");
  if (offsets[0] != 0 || offsets[n_lists] != n_codes)
    throw std::invalid_argument("ivf_hamming_knn_exact: offsets must run from 0 to n_codes");
  for (index_t l = 0; l < n_lists; ++l) {
    if (offsets[l + 1] < offsets[l])
      throw std::invalid_argument("ivf_hamming_knn_exact: offsets must be non-decreasing");
    const bool filled = radii[2 * l] <= radii[2 * l + 1];
    if (filled && (radii[2 * l] < 0 || radii[2 * l + 1] > n_bits))
      throw std::invalid_argument("ivf_hamming_knn_exact: list radii out of range");
    const index_t span = filled ? radii[2 * l + 1] - radii[2 * l] + 2 : 0;
    if (ring_base[l + 1] - ring_base[l] != span)
      throw std::invalid_argument("ivf_hamming_knn_exact: ring entries disagree with radii");
  }
  if (ring_base[0] != 0 || ring_base[n_lists] != n_ring_rel)
    throw std::invalid_argument("ivf_hamming_knn_exact: ring entries must run from 0 to their "
                                "count");
}

}  // namespace

void ivf_hamming_knn_exact(const word_t* queries, index_t n_queries, const word_t* centroids,
                           index_t n_lists, const word_t* codes, const index_t* ids,
                           index_t n_codes, int n_words, int n_bits, const index_t* offsets,
                           const std::int32_t* radii, const index_t* ring_base,
                           const std::uint32_t* ring_rel, index_t n_ring_rel, index_t k,
                           std::int32_t pad_distance, int num_threads,
                           std::int32_t* out_distances, index_t* out_ids) {
  check_inputs(n_queries, n_lists, n_codes, n_words, n_bits, offsets, radii, ring_base,
               n_ring_rel, k);
  if (n_queries == 0 || k == 0) return;
  const Exact ex{selected_hamming_kernels(), centroids, n_lists, codes, ids,
                 n_words, n_bits, offsets, ring_base, ring_rel, radii};
  const std::size_t kk = static_cast<std::size_t>(k);
  const double work = static_cast<double>(n_queries) * static_cast<double>(n_lists);
  const int threads = work < kParallelMinLists ? 1 : resolve_threads(num_threads);
  ErrorCapture errors;

  if (n_queries >= kBatchMinQueries) {
    // groups of at most kBatchGroup queries, at least one per thread
    const index_t group = std::max<index_t>(
        1, std::min(kBatchGroup, (n_queries + threads - 1) / threads));
    const index_t n_groups = (n_queries + group - 1) / group;
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
      Scratch* s = nullptr;
      std::vector<TopK<std::int32_t>> tops;
      std::vector<std::int16_t> dqc;
      std::vector<std::int32_t> warm;
      errors.run([&] {
        s = &thread_scratch(n_lists, n_bits);
        tops.assign(static_cast<std::size_t>(group), TopK<std::int32_t>(kk));
        dqc.resize(static_cast<std::size_t>(n_lists) * static_cast<std::size_t>(group));
        warm.resize(static_cast<std::size_t>(group));
      });
PYSPEC_OMP(omp for schedule(dynamic, 1))
      for (index_t g = 0; g < n_groups; ++g) {
        if (!s || warm.empty()) continue;  // allocation failed; rethrown below
        errors.run([&] {
          const index_t first = g * group;
          const index_t m = std::min(group, n_queries - first);
          for (index_t q = 0; q < m; ++q) tops[static_cast<std::size_t>(q)].reset(kk);
          ex.batch(queries + first * n_words, m, tops.data(), dqc.data(), warm.data(), *s);
          for (index_t q = 0; q < m; ++q)
            tops[static_cast<std::size_t>(q)].extract_sorted(
                out_distances + (first + q) * k, out_ids + (first + q) * k, pad_distance);
        });
      }
    }
    errors.rethrow();
    return;
  }
  if (n_queries >= threads) {
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
      Scratch* s = nullptr;
      std::unique_ptr<TopK<std::int32_t>> top;
      errors.run([&] {
        s = &thread_scratch(n_lists, n_bits);
        top = std::make_unique<TopK<std::int32_t>>(kk);
      });
PYSPEC_OMP(omp for schedule(dynamic, 1))
      for (index_t q = 0; q < n_queries; ++q) {
        if (!s || !top) continue;  // allocation failed; rethrown below
        errors.run([&] {
          const word_t* query = queries + q * n_words;
          top->reset(kk);
          ex.order_lists(query, *s);
          ex.visit(query, s->order.data(), s->list_dist.data(), 0, n_lists, *top, *s);
          top->extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
        });
      }
    }
    errors.rethrow();
    return;
  }
  // Fewer queries than threads: one query's lists are shared out in visiting
  // order, each thread pruning with its own top-k.
  Scratch& shared = thread_scratch(n_lists, n_bits);
  for (index_t q = 0; q < n_queries; ++q) {
    const word_t* query = queries + q * n_words;
    ex.order_lists(query, shared);
    std::vector<TopK<std::int32_t>> parts(static_cast<std::size_t>(threads),
                                          TopK<std::int32_t>(kk));
PYSPEC_OMP(omp parallel num_threads(threads))
    {
      Scratch* s = nullptr;
      // the calling thread's scratch holds the shared order: the team member
      // on the calling thread (thread 0) uses a buffer of its own
      thread_local Scratch own;
      errors.run([&] {
        own.fit(0, n_bits);
        s = &own;
      });
      TopK<std::int32_t>& top = parts[static_cast<std::size_t>(thread_id())];
PYSPEC_OMP(omp for schedule(dynamic, 1))
      for (index_t c = 0; c < n_lists; c += kThreadChunk) {
        if (!s) continue;
        errors.run([&] {
          ex.visit(query, shared.order.data(), shared.list_dist.data(), c,
                   std::min(n_lists, c + kThreadChunk), top, *s);
        });
      }
    }
    errors.rethrow();
    for (int t = 1; t < threads; ++t) parts[0].merge(parts[static_cast<std::size_t>(t)]);
    parts[0].extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
  }
}

}  // namespace pyspec
