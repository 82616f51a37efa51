// Inverted-file k-NN over binary codes (see ivf.hpp for the contract).
#include "ivf.hpp"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <vector>

#include "hamming.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

// Codes handed to one block-kernel call; lists longer than this are cut.
// 4096 codes of 256 bits are 128 kB: the candidate buffers stay in L1/L2.
constexpr std::size_t kListBlock = 4096;
// Below this many words read in total a call runs on one thread (starting a
// team costs a few microseconds; hamming.cpp uses the same threshold).
constexpr double kParallelMinWords = 1 << 18;

struct Candidates {
  std::vector<std::uint32_t> pos = std::vector<std::uint32_t>(kListBlock);
  std::vector<std::int32_t> dist = std::vector<std::int32_t>(kListBlock);
};

// Folds list `list` into `top` for one query, block by block, passing the
// top-k's current worst distance as the kernel's rejection threshold.
void scan_list(const HammingKernels& kern, const word_t* query, const word_t* codes,
               const index_t* ids, const index_t* offsets, index_t list, int n_words,
               TopK<std::int32_t>& top, Candidates& c) {
  for (index_t b = offsets[list], end = offsets[list + 1]; b < end;) {
    const std::size_t nb = static_cast<std::size_t>(
        std::min<index_t>(static_cast<index_t>(kListBlock), end - b));
    const std::int32_t threshold = top.full() ? top.worst() : INT32_MAX;
    const std::size_t found = kern.scan(codes + b * n_words, nb, n_words, query, threshold,
                                        c.pos.data(), c.dist.data());
    for (std::size_t j = 0; j < found; ++j) top.push(c.dist[j], ids[b + c.pos[j]]);
    b += static_cast<index_t>(nb);
  }
}

void check_inputs(index_t n_queries, index_t n_codes, int n_words, const index_t* offsets,
                  index_t n_lists, const index_t* probes, index_t n_probe, index_t k) {
  if (n_words < 1 || n_words > kMaxCodeWords)
    throw std::invalid_argument("ivf_hamming_knn: n_words must be in [1, 8]");
  if (n_queries < 0 || n_codes < 0 || n_lists < 0 || n_probe < 0 || k < 0)
    throw std::invalid_argument("ivf_hamming_knn: negative size");
  if (offsets[0] != 0 || offsets[n_lists] != n_codes)
    throw std::invalid_argument("ivf_hamming_knn: offsets must run from 0 to n_codes");
  for (index_t l = 0; l < n_lists; ++l)
    if (offsets[l + 1] < offsets[l])
      throw std::invalid_argument("ivf_hamming_knn: offsets must be non-decreasing");
  for (index_t i = 0; i < n_queries * n_probe; ++i)
    if (probes[i] < -1 || probes[i] >= n_lists)
      throw std::invalid_argument("ivf_hamming_knn: probe list number out of range");
}

// Words a query's probes make the kernels read.
double probed_words(const index_t* offsets, const index_t* probe_row, index_t n_probe,
                    int n_words) {
  double words = 0;
  for (index_t p = 0; p < n_probe; ++p)
    if (probe_row[p] >= 0)
      words += static_cast<double>(offsets[probe_row[p] + 1] - offsets[probe_row[p]]);
  return words * n_words;
}

}  // namespace

void ivf_hamming_knn(const word_t* queries, index_t n_queries, const word_t* codes,
                     const index_t* ids, index_t n_codes, int n_words, const index_t* offsets,
                     index_t n_lists, const index_t* probes, index_t n_probe, index_t k,
                     std::int32_t pad_distance, int num_threads, std::int32_t* out_distances,
                     index_t* out_ids) {
  check_inputs(n_queries, n_codes, n_words, offsets, n_lists, probes, n_probe, k);
  if (n_queries == 0 || k == 0) return;
  const HammingKernels& kern = selected_hamming_kernels();
  const std::size_t kk = static_cast<std::size_t>(k);
  double work = 0;
  for (index_t q = 0; q < n_queries; ++q)
    work += probed_words(offsets, probes + q * n_probe, n_probe, n_words);
  const int threads = work < kParallelMinWords ? 1 : resolve_threads(num_threads);
  ErrorCapture errors;

  if (n_queries >= threads) {
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
      std::unique_ptr<Candidates> c;
      std::unique_ptr<TopK<std::int32_t>> top;
      errors.run([&] {
        c = std::make_unique<Candidates>();
        top = std::make_unique<TopK<std::int32_t>>(kk);
      });
PYSPEC_OMP(omp for schedule(dynamic, 4))
      for (index_t q = 0; q < n_queries; ++q) {
        if (!c || !top) continue;  // allocation failed; rethrown below
        errors.run([&] {
          top->reset(kk);
          const index_t* row = probes + q * n_probe;
          for (index_t p = 0; p < n_probe; ++p)
            if (row[p] >= 0)
              scan_list(kern, queries + q * n_words, codes, ids, offsets, row[p], n_words,
                        *top, *c);
          top->extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
        });
      }
    }
    errors.rethrow();
    return;
  }
  // Fewer queries than threads: each query's probed lists are shared out.
  for (index_t q = 0; q < n_queries; ++q) {
    std::vector<TopK<std::int32_t>> parts(static_cast<std::size_t>(threads),
                                          TopK<std::int32_t>(kk));
    const index_t* row = probes + q * n_probe;
PYSPEC_OMP(omp parallel num_threads(threads))
    {
      std::unique_ptr<Candidates> c;
      errors.run([&] { c = std::make_unique<Candidates>(); });
      TopK<std::int32_t>& top = parts[static_cast<std::size_t>(thread_id())];
PYSPEC_OMP(omp for schedule(dynamic, 1))
      for (index_t p = 0; p < n_probe; ++p) {
        if (!c || row[p] < 0) continue;
        errors.run([&] {
          scan_list(kern, queries + q * n_words, codes, ids, offsets, row[p], n_words, top, *c);
        });
      }
    }
    errors.rethrow();
    for (int t = 1; t < threads; ++t) parts[0].merge(parts[static_cast<std::size_t>(t)]);
    parts[0].extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
  }
}

}  // namespace pyspec
