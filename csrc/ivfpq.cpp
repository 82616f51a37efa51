// IVFPQ k-NN over the probed inverted lists (see ivfpq.hpp for the contract).
// The ADC sums come from the PQ kernels of the selected SIMD level
// (pq_active_kernels: scalar, AVX2 or AVX-512 gather/interleaved variants,
// chosen at run time), or the segment-grouped scan for tables that overflow
// L1 (pq_adc.hpp), so a list block is summed exactly as pq_search sums it.
#include "ivfpq.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include "parallel.hpp"
#include "pq_adc.hpp"
#include "pq_internal.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

// Per-thread buffers: one block of ADC sums (kScanBlock floats, L1).
struct Scratch {
  std::vector<float> sums = std::vector<float>(kScanBlock);
};

struct Scan {
  detail::PQKernels kern;
  std::int64_t M, K;
  bool grouped;  // table overflows L1: segment-grouped scan (pq_adc.hpp)
};

// Folds list `list` into `top` for the query with table `table`; `bias` is
// the probe term (0 without). Rows are summed a block at a time, then the
// terms are added in the contract's order and candidates pushed.
template <class Code>
void scan_list(const Scan& s, const float* table, const Code* codes, const index_t* ids,
               const float* code_terms, index_t n_codes, index_t begin, index_t end,
               const float* bias, TopK<float>& top, Scratch& scratch) {
  float* sums = scratch.sums.data();
  for (index_t b = begin; b < end; b += kScanBlock) {
    const std::int64_t nb = std::min<std::int64_t>(kScanBlock, end - b);
    const Code* blk = codes + b * s.M;
    if (s.grouped)
      adc_grouped(table, s.M, s.K, blk, nb, kInf, sums);
    else
      detail::adc_kernel(s.kern, blk)(table, s.M, s.K, blk, nb, n_codes - b, sums);
    if (code_terms)
      for (std::int64_t i = 0; i < nb; ++i) sums[i] = sums[i] + code_terms[b + i];
    if (bias)
      for (std::int64_t i = 0; i < nb; ++i) sums[i] = sums[i] + *bias;
    float thr = top.full() ? top.worst() : kInf;
    for (std::int64_t i = 0; i < nb; ++i) {
      if (sums[i] <= thr) {  // <=: ties are settled by id inside push()
        top.push(sums[i], ids[b + i]);
        if (top.full()) thr = top.worst();
      }
    }
  }
}

void check_inputs(index_t n_queries, std::int64_t M, std::int64_t K, index_t n_codes,
                  const index_t* offsets, index_t n_lists, const index_t* probes,
                  index_t n_probe, index_t k) {
  if (n_queries < 0 || M < 1 || K < 1 || n_codes < 0 || n_lists < 0 || n_probe < 0 || k < 0)
    throw std::invalid_argument("ivfpq_search: bad sizes");
  if (offsets[0] != 0 || offsets[n_lists] != n_codes)
    throw std::invalid_argument("ivfpq_search: offsets must run from 0 to n_codes");
  for (index_t l = 0; l < n_lists; ++l)
    if (offsets[l + 1] < offsets[l])
      throw std::invalid_argument("ivfpq_search: offsets must be non-decreasing");
  for (index_t i = 0; i < n_queries * n_probe; ++i)
    if (probes[i] < -1 || probes[i] >= n_lists)
      throw std::invalid_argument("ivfpq_search: probe list number out of range");
}

}  // namespace

template <class Code>
void ivfpq_search(const float* tables, index_t n_queries, std::int64_t M, std::int64_t K,
                  const Code* codes, const index_t* ids, const float* code_terms,
                  index_t n_codes, const index_t* offsets, index_t n_lists,
                  const index_t* probes, const float* probe_terms, index_t n_probe, index_t k,
                  int num_threads, index_t* out_ids, float* out_dist) {
  check_inputs(n_queries, M, K, n_codes, offsets, n_lists, probes, n_probe, k);
  if (n_queries == 0 || k == 0) return;
  const Scan s{detail::pq_active_kernels(), M, K, use_grouped_scan(M, K)};
  const std::size_t kk = static_cast<std::size_t>(k);
  double lookups = 0;
  for (index_t i = 0; i < n_queries * n_probe; ++i)
    if (probes[i] >= 0) lookups += double(offsets[probes[i] + 1] - offsets[probes[i]]) * M;
  const int threads = lookups < double(kParallelMinLookups) ? 1 : resolve_threads(num_threads);
  auto list_of = [&](index_t q, index_t p, TopK<float>& top, Scratch& scratch) {
    const index_t l = probes[q * n_probe + p];
    if (l < 0) return;
    scan_list(s, tables + q * M * K, codes, ids, code_terms, n_codes, offsets[l],
              offsets[l + 1], probe_terms ? probe_terms + q * n_probe + p : nullptr, top,
              scratch);
  };
  ErrorCapture errors;
  if (n_queries >= threads) {
PYSPEC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
      std::unique_ptr<Scratch> scratch;
      std::unique_ptr<TopK<float>> top;
      errors.run([&] {
        scratch = std::make_unique<Scratch>();
        top = std::make_unique<TopK<float>>(kk);
      });
PYSPEC_OMP(omp for schedule(dynamic, 4))
      for (index_t q = 0; q < n_queries; ++q) {
        if (!scratch || !top) continue;  // allocation failed; rethrown below
        errors.run([&] {
          top->reset(kk);
          for (index_t p = 0; p < n_probe; ++p) list_of(q, p, *top, *scratch);
          top->extract_sorted(out_dist + q * k, out_ids + q * k, kInf);
        });
      }
    }
    errors.rethrow();
    return;
  }
  // Fewer queries than threads: each query's probed lists are shared out.
  for (index_t q = 0; q < n_queries; ++q) {
    std::vector<TopK<float>> parts(static_cast<std::size_t>(threads), TopK<float>(kk));
PYSPEC_OMP(omp parallel num_threads(threads))
    {
      std::unique_ptr<Scratch> scratch;
      errors.run([&] { scratch = std::make_unique<Scratch>(); });
      TopK<float>& top = parts[static_cast<std::size_t>(thread_id())];
PYSPEC_OMP(omp for schedule(dynamic, 1))
      for (index_t p = 0; p < n_probe; ++p) {
        if (!scratch) continue;
        errors.run([&] { list_of(q, p, top, *scratch); });
      }
    }
    errors.rethrow();
    for (int t = 1; t < threads; ++t) parts[0].merge(parts[static_cast<std::size_t>(t)]);
    parts[0].extract_sorted(out_dist + q * k, out_ids + q * k, kInf);
  }
}

template void ivfpq_search<std::uint8_t>(const float*, index_t, std::int64_t, std::int64_t,
                                         const std::uint8_t*, const index_t*, const float*,
                                         index_t, const index_t*, index_t, const index_t*,
                                         const float*, index_t, index_t, int, index_t*, float*);
template void ivfpq_search<std::uint16_t>(const float*, index_t, std::int64_t, std::int64_t,
                                          const std::uint16_t*, const index_t*, const float*,
                                          index_t, const index_t*, index_t, const index_t*,
                                          const float*, index_t, index_t, int, index_t*, float*);

}  // namespace pyspec
