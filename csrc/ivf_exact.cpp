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
// Below this many queries x lists a call runs on one thread (a query costs at
// least a distance and a ring lookup per list; a team costs a few microseconds).
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
  const index_t* rings;

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

  // Folds the band of list l allowed by the current k-th distance into top.
  void scan_band(const word_t* query, index_t l, std::int32_t dqc, TopK<std::int32_t>& top,
                 Scratch& s) const {
    const index_t stride = n_bits + 1;
    const std::int32_t tau = top.full() ? top.worst() : n_bits;
    const index_t lo_r = std::max<std::int32_t>(0, dqc - tau);
    const index_t hi_r = std::min<std::int32_t>(n_bits, dqc + tau) + 1;
    if (lo_r >= hi_r) return;
    const index_t* ring = rings + l * stride;
    const index_t first = ring[lo_r], end = ring[hi_r];
    if (first < ring[0] || end > ring[stride] || first > end)
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
};

void check_inputs(index_t n_queries, index_t n_lists, index_t n_codes, int n_words, int n_bits,
                  const index_t* rings, index_t k) {
  if (n_words < 1 || n_words > kMaxCodeWords)
    throw std::invalid_argument("ivf_hamming_knn_exact: n_words must be in [1, 8]");
  if (n_bits < 1 || n_bits > 64 * n_words)
    throw std::invalid_argument("ivf_hamming_knn_exact: n_bits must be in [1, 64 * n_words]");
  if (n_queries < 0 || n_codes < 0 || n_lists < 0 || k < 0)
    throw std::invalid_argument("ivf_hamming_knn_exact: negative size");
  const index_t stride = n_bits + 1;
  if (rings[0] != 0 || rings[n_lists * stride] != n_codes)
    throw std::invalid_argument("ivf_hamming_knn_exact: rings must run from 0 to n_codes");
  for (index_t l = 0; l < n_lists; ++l)
    if (rings[(l + 1) * stride] < rings[l * stride])
      throw std::invalid_argument("ivf_hamming_knn_exact: ring offsets out of order");
}

}  // namespace

void ivf_hamming_knn_exact(const word_t* queries, index_t n_queries, const word_t* centroids,
                           index_t n_lists, const word_t* codes, const index_t* ids,
                           index_t n_codes, int n_words, int n_bits, const index_t* rings,
                           index_t k, std::int32_t pad_distance, int num_threads,
                           std::int32_t* out_distances, index_t* out_ids) {
  check_inputs(n_queries, n_lists, n_codes, n_words, n_bits, rings, k);
  if (n_queries == 0 || k == 0) return;
  const Exact ex{selected_hamming_kernels(), centroids, n_lists, codes, ids,
                 n_words, n_bits, rings};
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
          for (index_t i = 0; i < n_lists; ++i) {
            const index_t l = s->order[i];
            ex.scan_band(query, l, s->list_dist[l], *top, *s);
          }
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
PYSPEC_OMP(omp for schedule(dynamic, 16))
      for (index_t i = 0; i < n_lists; ++i) {
        if (!s) continue;
        errors.run([&] {
          const index_t l = shared.order[i];
          ex.scan_band(query, l, shared.list_dist[l], top, *s);
        });
      }
    }
    errors.rethrow();
    for (int t = 1; t < threads; ++t) parts[0].merge(parts[static_cast<std::size_t>(t)]);
    parts[0].extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
  }
}

}  // namespace pyspec
