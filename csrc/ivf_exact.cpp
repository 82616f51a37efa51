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
// distance order, not memory order, so each band costs cache misses; a
// chunk's reachable lists have their ring entries prefetched together.
// (Prefetching the bands' first codes too, or pipelining chunks three deep,
// measured no faster at 10M codes.)
constexpr index_t kChunk = 32;
// Lists of the visiting order handed to a thread at a time (single query).
constexpr index_t kThreadChunk = 4 * kChunk;
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
  Scratch(index_t n_lists, int n_bits)
      : pos(std::max<std::size_t>(kBandBlock, static_cast<std::size_t>(n_lists))),
        dist(pos.size()),
        list_dist(static_cast<std::size_t>(n_lists)),
        order(static_cast<std::size_t>(n_lists)),
        bucket(static_cast<std::size_t>(n_bits) + 2) {}
};

struct Exact {
  const HammingKernels& kern;
  const word_t* centroids;
  index_t n_lists;
  const word_t* codes;
  const index_t* ids;
  int n_words;
  int n_bits;
  const index_t* offsets;
  const index_t* rings;
  const std::int32_t* radii;  // (n_lists, 2): nearest and farthest row's ring

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
    const index_t* ring = rings + l * (n_bits + 1);
    const index_t first = ring[lo], end = ring[hi + 1];
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
      const index_t* ring = rings + l * (n_bits + 1);
      __builtin_prefetch(ring + lo);
      __builtin_prefetch(ring + hi + 1);
      reach[m++] = l;
    }
    return m;
  }

  // Visits lists order[begin:end) of the visiting order, a chunk at a time:
  // the chunk's reachable lists first (their ring entries prefetched
  // together, so the misses overlap), then their bands.
  void visit(const word_t* query, const index_t* order, const std::int32_t* list_dist,
             index_t begin, index_t end, TopK<std::int32_t>& top, Scratch& s) const {
    index_t reach[kChunk];
    for (index_t c = begin; c < end; c += kChunk) {
      const std::int32_t tau = top.full() ? top.worst() : n_bits;
      const int m = reachable(order, list_dist, c, std::min(end, c + kChunk), tau, reach);
      for (int j = 0; j < m; ++j) scan_band(query, reach[j], list_dist[reach[j]], top, s);
    }
  }
};

void check_inputs(index_t n_queries, index_t n_lists, index_t n_codes, int n_words, int n_bits,
                  const index_t* offsets, const std::int32_t* radii, index_t k) {
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
    if (radii[2 * l] <= radii[2 * l + 1] && (radii[2 * l] < 0 || radii[2 * l + 1] > n_bits))
      throw std::invalid_argument("ivf_hamming_knn_exact: list radii out of range");
  }
}

}  // namespace

void ivf_hamming_knn_exact(const word_t* queries, index_t n_queries, const word_t* centroids,
                           index_t n_lists, const word_t* codes, const index_t* ids,
                           index_t n_codes, int n_words, int n_bits, const index_t* offsets,
                           const index_t* rings, const std::int32_t* radii, index_t k,
                           std::int32_t pad_distance, int num_threads,
                           std::int32_t* out_distances, index_t* out_ids) {
  check_inputs(n_queries, n_lists, n_codes, n_words, n_bits, offsets, radii, k);
  if (n_queries == 0 || k == 0) return;
  const Exact ex{selected_hamming_kernels(), centroids, n_lists, codes, ids,
                 n_words, n_bits, offsets, rings, radii};
  const std::size_t kk = static_cast<std::size_t>(k);
  const double work = static_cast<double>(n_queries) * static_cast<double>(n_lists);
  const int threads = work < kParallelMinLists ? 1 : resolve_threads(num_threads);
  ErrorCapture errors;

  if (n_queries >= threads) {
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
      std::unique_ptr<Scratch> s;
      std::unique_ptr<TopK<std::int32_t>> top;
      errors.run([&] {
        s = std::make_unique<Scratch>(n_lists, n_bits);
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
  Scratch shared(n_lists, n_bits);
  for (index_t q = 0; q < n_queries; ++q) {
    const word_t* query = queries + q * n_words;
    ex.order_lists(query, shared);
    std::vector<TopK<std::int32_t>> parts(static_cast<std::size_t>(threads),
                                          TopK<std::int32_t>(kk));
PYSPEC_OMP(omp parallel num_threads(threads))
    {
      std::unique_ptr<Scratch> s;
      errors.run([&] { s = std::make_unique<Scratch>(0, n_bits); });
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
