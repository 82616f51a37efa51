// Fast-scan PQ (pq_fastscan.hpp): packing, table quantisation, the scalar
// kernel, the SIMD dispatch, and the search driver (candidate collection,
// threads, float re-rank).
#include "pq_fastscan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "cpu_features.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

constexpr std::uint16_t kNoThreshold = 0xffff;  // every sum passes

// Byte offset of the kernel-layout row of segment 2p + h (pq_fastscan.hpp).
inline std::int64_t lut_row(std::int64_t p, std::int64_t h) {
  return ((p >> 1) * 4 + h * 2 + (p & 1)) * 32;
}

// ---- scalar kernel (plain x86-64 and the reference of the SIMD ones) ----

void scan_scalar(const std::uint8_t* packed, std::int64_t P, std::int64_t b0, std::int64_t b1,
                 const std::uint8_t* lut, std::int64_t lut_stride, std::int64_t nq,
                 int /*group*/, bool saturate, std::uint16_t* thr,
                 const detail::FastScanSink& sink) {
  std::uint16_t sums[kFastScanBlock];
  for (std::int64_t b = b0; b < b1; ++b) {
    const std::uint8_t* blk = packed + b * P * 32;
    for (std::int64_t q = 0; q < nq; ++q) {
      const std::uint8_t* t = lut + q * lut_stride;
      std::uint32_t acc[kFastScanBlock] = {};
      for (std::int64_t p = 0; p < P; ++p) {
        const std::uint8_t* lo = t + lut_row(p, 0);
        const std::uint8_t* hi = t + lut_row(p, 1);
        const std::uint8_t* c = blk + p * 32;
        for (int i = 0; i < kFastScanBlock; ++i) acc[i] += lo[c[i] & 15] + hi[c[i] >> 4];
      }
      std::uint32_t mask = 0;
      for (int i = 0; i < kFastScanBlock; ++i) {
        if (saturate) acc[i] = std::min<std::uint32_t>(acc[i], 255);
        sums[i] = static_cast<std::uint16_t>(acc[i]);
        if (acc[i] <= thr[q]) mask |= std::uint32_t(1) << i;
      }
      if (mask) sink.fn(sink.ctx, q, b, mask, sums);
    }
  }
}

detail::FastScanFn active_kernel() {
  switch (selected_simd_level()) {
#ifdef PYSPEC_HAVE_AVX512
    case SimdLevel::AVX512: return detail::fastscan_kernel_avx512();
#endif
#ifdef PYSPEC_HAVE_AVX2
    case SimdLevel::AVX2: return detail::fastscan_kernel_avx2();
#endif
    default: return detail::fastscan_kernel_scalar();
  }
}

// The kernel of a search's call over nq queries. Byte-path calls of fewer
// than 4 queries take the AVX2 kernel at the AVX-512 level: its 32-byte
// code loads stream the packed codes faster there (1M x 50 codes, one
// query: 0.92 vs 1.08 ms CPU on the AMD EPYC of bench/RESULTS.md, same in
// L2-resident runs of 25 segments), while the AVX-512 tiles of 4 queries
// win for batches.
detail::FastScanFn search_kernel(bool bytes, std::int64_t nq) {
#if defined(PYSPEC_HAVE_AVX512) && defined(PYSPEC_HAVE_AVX2)
  if (bytes && nq < 4 && selected_simd_level() == SimdLevel::AVX512)
    return detail::fastscan_kernel_avx2();
#endif
  (void)bytes;
  (void)nq;
  return active_kernel();
}

// ---- candidate collection (one per query and thread) ----

// The k smallest sums seen (a max-heap) and the rows whose sum was <= the
// threshold when they were met. thr = k-th smallest + margin once k sums
// are known; it only decreases, so every final candidate is collected.
struct Collector {
  std::int64_t k = 0;
  std::int32_t margin = 0;
  std::uint16_t bound = kNoThreshold;  // thr0 of the quantisation
  std::vector<std::uint16_t> heap;
  std::vector<std::uint16_t> cand_sum;
  std::vector<std::int64_t> cand_row;
  std::size_t cap = 4096;

  std::uint16_t threshold() const {
    if (static_cast<std::int64_t>(heap.size()) < k) return bound;
    const std::int64_t t = std::int64_t(heap.front()) + margin;
    return static_cast<std::uint16_t>(std::min<std::int64_t>(t, bound));
  }
  // Drops candidates above `thr`; grows the cap when most of them stay.
  void compact(std::uint16_t thr) {
    std::size_t w = 0;
    for (std::size_t i = 0; i < cand_sum.size(); ++i)
      if (cand_sum[i] <= thr) {
        cand_sum[w] = cand_sum[i];
        cand_row[w++] = cand_row[i];
      }
    cand_sum.resize(w);
    cand_row.resize(w);
    if (w > cap / 2) cap *= 2;
  }
};

struct ScanContext {
  Collector* col;       // one per query of the kernel call
  std::uint16_t* thr;   // the kernel's thresholds
  std::int64_t n;       // rows (the last block's padding rows are skipped)
};

void collect(void* ctx, std::int64_t q, std::int64_t block, std::uint32_t mask,
             const std::uint16_t* sums) {
  auto& sc = *static_cast<ScanContext*>(ctx);
  Collector& c = sc.col[q];
  std::uint16_t& thr = sc.thr[q];
  while (mask) {
    const int i = __builtin_ctz(mask);
    mask &= mask - 1;
    const std::int64_t row = block * kFastScanBlock + i;
    if (row >= sc.n) break;  // padding rows: bits ascend, so the rest are too
    const std::uint16_t s = sums[i];
    if (s > thr) continue;
    c.cand_sum.push_back(s);
    c.cand_row.push_back(row);
    if (static_cast<std::int64_t>(c.heap.size()) < c.k) {
      c.heap.push_back(s);
      std::push_heap(c.heap.begin(), c.heap.end());
    } else if (s < c.heap.front()) {
      std::pop_heap(c.heap.begin(), c.heap.end());
      c.heap.back() = s;
      std::push_heap(c.heap.begin(), c.heap.end());
    } else {
      continue;
    }
    thr = c.threshold();
  }
  if (c.cand_sum.size() > c.cap) c.compact(thr);
}

// Float ADC of one row, segments in order (the sum pq_search reports).
// Codes are trusted by the scan (a nibble >= K reads a 0 entry) but checked
// here, for the few rows re-ranked, before they index the float table.
inline float adc_row(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* c) {
  float s = 0.0f;
  for (std::int64_t m = 0; m < M; ++m) {
    if (c[m] >= K) throw std::invalid_argument("fast-scan: a code exceeds n_centroids");
    s += table[m * K + c[m]];
  }
  return s;
}

// Lower bound of a row's float ADC distance from its quantised sum S
// (pq_fastscan.hpp): sum mn + (S - M (1/2 + 1e-4)) / inv - gamma_M sum |T|,
// less a relative 1e-12 for the float64 evaluation. -inf without a scale.
struct SumLowerBound {
  double base = 0.0, per_unit = 0.0;  // bound = base + S * per_unit
  SumLowerBound(const float* table, std::int64_t M, std::int64_t K, float inv) {
    if (!(inv > 0.0f)) {
      base = -std::numeric_limits<double>::infinity();
      return;
    }
    double off_sum = 0.0, abs_sum = 0.0;
    for (std::int64_t m = 0; m < M; ++m) {
      const float* row = table + m * K;
      const float lo = *std::min_element(row, row + K), hi = *std::max_element(row, row + K);
      off_sum += lo;
      abs_sum += std::max(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
    }
    const double u = std::ldexp(1.0, -24), gamma = M * u / (1.0 - M * u);
    per_unit = 1.0 / inv;
    base = off_sum - M * (0.5 + 1e-4) * per_unit - gamma * abs_sum - 1e-12 * (abs_sum + 1.0);
  }
  double at(std::uint16_t S) const { return base + S * per_unit; }
};

// Merges the collectors of one query (one per thread part), cuts the
// candidates to S <= min(thr0, S_k + margin) with the global k-th sum, and
// re-ranks them in ascending S, stopping once the lower bound of the next
// sum exceeds the k-th float distance found (so far fewer rows than the
// cut set are read from the row-major codes, in random order).
void finish_query(Collector* parts, int nparts, const float* table, std::int64_t M,
                  std::int64_t K, float inv, const std::uint8_t* codes, const index_t* ids,
                  std::int64_t k, index_t* out_ids, float* out_dist, std::int64_t* n_candidates,
                  std::vector<std::int64_t>* candidates) {
  Collector all;
  all.k = k;
  all.margin = parts[0].margin;
  all.bound = parts[0].bound;
  for (int t = 0; t < nparts; ++t)
    for (const std::uint16_t s : parts[t].heap) {
      if (static_cast<std::int64_t>(all.heap.size()) < k) {
        all.heap.push_back(s);
        std::push_heap(all.heap.begin(), all.heap.end());
      } else if (s < all.heap.front()) {
        std::pop_heap(all.heap.begin(), all.heap.end());
        all.heap.back() = s;
        std::push_heap(all.heap.begin(), all.heap.end());
      }
    }
  const std::uint16_t thr = all.threshold();
  // counting sort of the cut set by S (sums span at most thr + 1 values)
  std::vector<std::int64_t> start(static_cast<std::size_t>(thr) + 2, 0);
  std::int64_t count = 0;
  for (int t = 0; t < nparts; ++t)
    for (const std::uint16_t s : parts[t].cand_sum)
      if (s <= thr) {
        ++start[s + 1];
        ++count;
      }
  for (std::size_t v = 1; v < start.size(); ++v) start[v] += start[v - 1];
  std::vector<std::int64_t> rows(static_cast<std::size_t>(count));
  std::vector<std::uint16_t> sums(static_cast<std::size_t>(count));
  for (int t = 0; t < nparts; ++t) {
    const Collector& c = parts[t];
    for (std::size_t i = 0; i < c.cand_sum.size(); ++i)
      if (c.cand_sum[i] <= thr) {
        const std::int64_t at = start[c.cand_sum[i]]++;
        rows[at] = c.cand_row[i];
        sums[at] = c.cand_sum[i];
      }
  }
  const SumLowerBound lower(table, M, K, inv);
  TopK<float> top(static_cast<std::size_t>(k));
  constexpr std::int64_t kAhead = 8;  // rows requested ahead: the reads are scattered
  for (std::int64_t i = 0; i < std::min(kAhead, count); ++i)
    __builtin_prefetch(codes + rows[i] * M);
  for (std::int64_t i = 0; i < count; ++i) {
    if (i + kAhead < count) __builtin_prefetch(codes + rows[i + kAhead] * M);
    if (top.full() && lower.at(sums[i]) > static_cast<double>(top.worst())) break;
    top.push(adc_row(table, M, K, codes + rows[i] * M), ids[rows[i]]);
  }
  top.extract_sorted(out_dist, out_ids, std::numeric_limits<float>::infinity());
  if (n_candidates) *n_candidates = count;
  if (candidates) {
    *candidates = rows;
    std::sort(candidates->begin(), candidates->end());
  }
}

// Rows (at least) of the float-ADC sample that bounds the k-th distance.
constexpr std::int64_t kFastScanSample = 1024;
constexpr std::int64_t kSampleChunks = 8;
// Below this many (query, block, pair) steps a search runs on one thread.
constexpr std::int64_t kParallelMinSteps = std::int64_t(1) << 16;
// Queries per task when a batch is split over threads: their tables (about
// 0.5 kB each at 25 segments) stay in L1 with a chunk of blocks.
constexpr std::int64_t kQueryGroup = 32;
// With fewer queries per thread the threads split the database instead:
// the query tiles stay full and no thread waits on a short last group.
constexpr std::int64_t kMinQueriesPerThread = 8;

}  // namespace

namespace detail {
FastScanFn fastscan_kernel_scalar() { return scan_scalar; }

void fastscan_lut_layout(const std::uint8_t* q, std::int64_t M, std::uint8_t* lut) {
  std::memset(lut, 0, static_cast<std::size_t>(fastscan_lut_bytes(M)));
  for (std::int64_t m = 0; m < M; ++m) {
    std::uint8_t* row = lut + lut_row(m / 2, m % 2);
    std::memcpy(row, q + m * kFastScanK, kFastScanK);
    std::memcpy(row + kFastScanK, q + m * kFastScanK, kFastScanK);
  }
}
}  // namespace detail

std::int64_t fastscan_lut_bytes(std::int64_t M) { return (fastscan_pairs(M) + 1) / 2 * 128; }

void pq_fastscan_pack(const std::uint8_t* codes, std::int64_t n, std::int64_t M,
                      std::uint8_t* packed, int num_threads) {
  const std::int64_t P = fastscan_pairs(M), nb = fastscan_blocks(n);
  [[maybe_unused]] const int nt = nb * P < kParallelMinSteps ? 1 : resolve_threads(num_threads);
  PYSPEC_OMP(omp parallel for num_threads(nt) schedule(static))
  for (std::int64_t b = 0; b < nb; ++b) {
    std::uint8_t* blk = packed + b * P * 32;
    std::memset(blk, 0, static_cast<std::size_t>(P * 32));
    const std::int64_t rows = std::min<std::int64_t>(kFastScanBlock, n - b * kFastScanBlock);
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::uint8_t* c = codes + (b * kFastScanBlock + i) * M;
      for (std::int64_t m = 0; m < M; ++m)
        blk[(m / 2) * 32 + i] |= static_cast<std::uint8_t>((c[m] & 15) << (4 * (m % 2)));
    }
  }
}

void pq_fastscan_unpack(const std::uint8_t* packed, std::int64_t n, std::int64_t M,
                        std::uint8_t* codes) {
  const std::int64_t P = fastscan_pairs(M);
  for (std::int64_t r = 0; r < n; ++r) {
    const std::uint8_t* blk = packed + (r / kFastScanBlock) * P * 32;
    for (std::int64_t m = 0; m < M; ++m)
      codes[r * M + m] = (blk[(m / 2) * 32 + r % kFastScanBlock] >> (4 * (m % 2))) & 15;
  }
}

int fastscan_default_group(std::int64_t /*M*/) {
  // single segments (levels 255): the finer scale's fewer candidates win
  // over the cheaper byte sums of g = 2 on simulated spectra
  return 1;
}

int fastscan_levels(std::int64_t M, int group) {
  if (group != 1 && group != 2 && group != 4)
    throw std::invalid_argument("fast-scan group must be 1, 2 or 4");
  const std::int64_t by_sum = 65535 / std::max<std::int64_t>(M, 1);
  return static_cast<int>(std::min<std::int64_t>(255 / group, by_sum));
}

void pq_fastscan_quantise(const float* tables, std::int64_t nq, std::int64_t M, std::int64_t K,
                          int group, const float* kth_bound, std::uint8_t* q, float* offsets,
                          float* inv, std::int32_t* margin, std::uint16_t* thr0) {
  if (K < 1 || K > kFastScanK) throw std::invalid_argument("fast-scan needs 1..16 centroids");
  const int levels = fastscan_levels(M, group);
  const double u = std::ldexp(1.0, -24), gamma = M * u / (1.0 - M * u);
  const double entry_err = M * (0.5 + 1e-4);  // one row's entry rounding, units
  for (std::int64_t i = 0; i < nq; ++i) {
    const float* T = tables + i * M * K;
    float range = 0.0f;
    double abs_sum = 0.0, off_sum = 0.0;
    for (std::int64_t m = 0; m < M; ++m) {
      const float* row = T + m * K;
      const float lo = *std::min_element(row, row + K), hi = *std::max_element(row, row + K);
      offsets[i * M + m] = lo;
      off_sum += lo;
      range = std::max(range, hi - lo);
      abs_sum += std::max(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
    }
    // Bound on the row sums that can reach the top k, in units of the scale
    // s: -1 when there is none. Rows of float ADC <= D have
    // S <= (D - sum mn) s + entry_err + float slack.
    auto sum_bound = [&](float s) -> double {
      if (!kth_bound) return -1.0;
      return std::floor((kth_bound[i] - off_sum) * s + entry_err + 2.0 * gamma * abs_sum * s + 1.0);
    };
    float s = range > 0.0f ? static_cast<float>(levels / static_cast<double>(range)) : 0.0f;
    double bound = sum_bound(s);
    if (kth_bound && kth_bound[i] - off_sum > 0.0 && levels > M + 3) {
      // Clipped scale: (D - sum mn) maps to levels - M - 3 units, entries
      // beyond saturate at `levels`; kept when finer and when a saturated
      // entry alone exceeds the bound (so clipped rows are never candidates).
      const float sc = static_cast<float>((levels - M - 3) / (kth_bound[i] - off_sum));
      const double bc = sum_bound(sc);
      // also when coarser, if the plain scale's bound would keep the scan
      // off the byte path (thr0 >= 255): a twice slower scan costs more than
      // the extra candidates (0.5% of the queries at 50 segments)
      if ((sc > s || bound >= 255.0) && bc < levels) {
        s = sc;
        bound = bc;
      }
    }
    inv[i] = s;
    thr0[i] = static_cast<std::uint16_t>(bound < 0.0 ? kNoThreshold : std::min(bound, 65535.0));
    std::uint8_t* qi = q + i * M * kFastScanK;
    std::memset(qi, 0, static_cast<std::size_t>(M * kFastScanK));
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t j = 0; j < K; ++j) {
        const float v = std::nearbyint((T[m * K + j] - offsets[i * M + m]) * s);
        qi[m * kFastScanK + j] = static_cast<std::uint8_t>(std::min(v, static_cast<float>(levels)));
      }
    // two rows' entry rounding, twice the float sum's error, plus 1
    const double m_units = 2.0 * entry_err + 2.0 * gamma * abs_sum * s + 1.0;
    margin[i] = static_cast<std::int32_t>(std::min(std::ceil(m_units), 65535.0));
  }
}

namespace {
// Float ADC k-th smallest over a sample of the rows (pq_fastscan.hpp):
// an upper bound of the k-th smallest over all rows. The sample is
// kSampleChunks runs of contiguous rows spread over the database (runs, not
// single strided rows: a strided row costs a cache miss each), or every row
// when there are at most twice as many as wanted (runs never overlap).
// Appends the float ADC of rows [r0, r1) to buf, each summed in segment
// order (adc_row's value), 8 rows interleaved: one row's sum is a chain of
// dependent adds, 8 independent chains keep the adder busy (the sample took
// ~5% of a single query at 1M x 50 codes).
void adc_rows(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
              std::int64_t r0, std::int64_t r1, std::vector<float>& buf) {
  constexpr int kRows = 8;
  std::int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    const std::uint8_t* c = codes + r * M;
    float s[kRows] = {};
    std::uint8_t top = 0;
    for (std::int64_t m = 0; m < M; ++m)
      for (int j = 0; j < kRows; ++j) {
        const std::uint8_t v = c[j * M + m];
        top = std::max(top, v);
        s[j] += table[m * K + (v < K ? v : 0)];  // a bad code throws below
      }
    if (top >= K) throw std::invalid_argument("fast-scan: a code exceeds n_centroids");
    buf.insert(buf.end(), s, s + kRows);
  }
  for (; r < r1; ++r) buf.push_back(adc_row(table, M, K, codes + r * M));
}

float sample_kth(const float* table, std::int64_t M, std::int64_t K, const std::uint8_t* codes,
                 std::int64_t n, std::int64_t k, std::vector<float>& buf) {
  const std::int64_t want = std::max<std::int64_t>(kFastScanSample, 8 * k);
  buf.clear();
  if (n <= 2 * want) {
    adc_rows(table, M, K, codes, 0, n, buf);
  } else {
    const std::int64_t len = (want + kSampleChunks - 1) / kSampleChunks;
    for (std::int64_t c = 0; c < kSampleChunks; ++c) {
      const std::int64_t r0 = (n - len) * c / (kSampleChunks - 1);
      adc_rows(table, M, K, codes, r0, r0 + len, buf);
    }
  }
  const std::int64_t kk = std::min<std::int64_t>(k, static_cast<std::int64_t>(buf.size())) - 1;
  std::nth_element(buf.begin(), buf.begin() + kk, buf.end());
  return buf[kk];
}
}  // namespace

void pq_fastscan_sums(const std::uint8_t* packed, std::int64_t n, std::int64_t M,
                      const std::uint8_t* q, std::int64_t nq, int group, bool saturate,
                      std::uint16_t* out, int num_threads) {
  const std::int64_t P = fastscan_pairs(M), nb = fastscan_blocks(n), lb = fastscan_lut_bytes(M);
  std::vector<std::uint8_t> lut(static_cast<std::size_t>(nq * lb));
  for (std::int64_t i = 0; i < nq; ++i)
    detail::fastscan_lut_layout(q + i * M * kFastScanK, M, lut.data() + i * lb);
  struct Out {
    std::uint16_t* out;
    std::int64_t n;
    static void fn(void* ctx, std::int64_t qi, std::int64_t block, std::uint32_t /*mask*/,
                   const std::uint16_t* sums) {
      const Out& o = *static_cast<Out*>(ctx);
      for (std::int64_t i = 0; i < kFastScanBlock && block * kFastScanBlock + i < o.n; ++i)
        o.out[qi * o.n + block * kFastScanBlock + i] = sums[i];
    }
  };
  const detail::FastScanFn kernel = active_kernel();
  // every query in one kernel call (its query tiles), block ranges over threads
  const int nt = nq * nb * P < kParallelMinSteps ? 1 : resolve_threads(num_threads);
  PYSPEC_OMP(omp parallel for num_threads(nt) schedule(static, 1))
  for (int t = 0; t < nt; ++t) {
    Out o{out, n};
    std::vector<std::uint16_t> thr(static_cast<std::size_t>(nq), kNoThreshold);
    kernel(packed, P, nb * t / nt, nb * (t + 1) / nt, lut.data(), lb, nq, group, saturate,
           thr.data(), detail::FastScanSink{Out::fn, &o});
  }
}

void pq_fastscan_search(const float* tables, std::int64_t nq, std::int64_t M, std::int64_t K,
                        const std::uint8_t* codes, const std::uint8_t* packed,
                        const index_t* ids, std::int64_t n, std::int64_t k, int group,
                        index_t* out_ids, float* out_dist, std::int64_t* n_candidates,
                        std::vector<std::vector<std::int64_t>>* candidates, int num_threads) {
  if (candidates) candidates->assign(static_cast<std::size_t>(nq), {});
  if (k <= 0 || nq <= 0) return;
  if (group == 0) group = fastscan_default_group(M);
  const std::int64_t P = fastscan_pairs(M), nb = fastscan_blocks(n), lb = fastscan_lut_bytes(M);
  std::vector<std::uint8_t> q(static_cast<std::size_t>(nq * M * kFastScanK));
  std::vector<float> offsets(static_cast<std::size_t>(nq * M)), inv(static_cast<std::size_t>(nq));
  std::vector<std::int32_t> margin(static_cast<std::size_t>(nq));
  std::vector<std::uint16_t> thr0(static_cast<std::size_t>(nq));
  std::vector<float> kth(static_cast<std::size_t>(nq));
  std::vector<std::uint8_t> lut(static_cast<std::size_t>(nq * lb));
  const bool sampled = n >= k;  // else every row is a candidate anyway
  // bounds, quantised tables and kernel-layout tables of queries [i0, i1);
  // true when they can take the byte path (every thr0 < 255)
  auto prepare = [&](std::int64_t i0, std::int64_t i1) {
    std::vector<float> buf;
    if (sampled)
      for (std::int64_t i = i0; i < i1; ++i)
        kth[i] = sample_kth(tables + i * M * K, M, K, codes, n, k, buf);
    pq_fastscan_quantise(tables + i0 * M * K, i1 - i0, M, K, group,
                         sampled ? kth.data() + i0 : nullptr, q.data() + i0 * M * kFastScanK,
                         offsets.data() + i0 * M, inv.data() + i0, margin.data() + i0,
                         thr0.data() + i0);
    bool bytes = true;
    for (std::int64_t i = i0; i < i1; ++i) {
      detail::fastscan_lut_layout(q.data() + i * M * kFastScanK, M, lut.data() + i * lb);
      bytes = bytes && thr0[i] < 255;
    }
    return bytes;
  };
  auto collectors = [&](Collector* col, std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      col[i - i0].k = k;
      col[i - i0].margin = margin[i];
      col[i - i0].bound = thr0[i];
    }
  };
  auto finish = [&](Collector* parts, int nparts, std::int64_t i) {
    finish_query(parts, nparts, tables + i * M * K, M, K, inv[i], codes, ids, k, out_ids + i * k,
                 out_dist + i * k, n_candidates ? n_candidates + i : nullptr,
                 candidates ? &(*candidates)[static_cast<std::size_t>(i)] : nullptr);
  };
  const int nt = nq * nb * P < kParallelMinSteps ? 1 : resolve_threads(num_threads);
  ErrorCapture errors;
  if (nt == 1 || nq >= kMinQueriesPerThread * nt) {
    // batches: equal query groups (at most kQueryGroup, a multiple of the
    // threads, so that no thread is left with a short last group), each
    // group prepared and scanned over every block by one task
    // (at least 4 groups per thread while they keep kMinQueriesPerThread
    // queries: a thread that is descheduled on a busy machine then holds
    // back a small group, not half of the batch)
    const std::int64_t per_round = kQueryGroup * nt;
    const std::int64_t few = std::min<std::int64_t>(4, nq / (kMinQueriesPerThread * nt));
    const std::int64_t rounds = std::max((nq + per_round - 1) / per_round, few);
    const std::int64_t ngroups = nt * std::max<std::int64_t>(rounds, 1);
    PYSPEC_OMP(omp parallel for num_threads(nt) schedule(dynamic, 1))
    for (std::int64_t g = 0; g < ngroups; ++g) {
      errors.run([&] {
        const std::int64_t q0 = nq * g / ngroups, q1 = nq * (g + 1) / ngroups, cnt = q1 - q0;
        if (cnt == 0) return;
        const bool bytes = prepare(q0, q1);
        std::vector<Collector> col(static_cast<std::size_t>(cnt));
        collectors(col.data(), q0, q1);
        std::vector<std::uint16_t> thr(thr0.begin() + q0, thr0.begin() + q1);
        ScanContext sc{col.data(), thr.data(), n};
        search_kernel(bytes, cnt)(packed, P, 0, nb, lut.data() + q0 * lb, lb, cnt, group, bytes,
                                  thr.data(), detail::FastScanSink{collect, &sc});
        for (std::int64_t i = 0; i < cnt; ++i) finish(&col[i], 1, q0 + i);
      });
    }
  } else {
    // few queries per thread: database blocks over threads, then one merge
    // per query
    const bool bytes = prepare(0, nq);
    std::vector<Collector> col(static_cast<std::size_t>(nt * nq));
    for (int t = 0; t < nt; ++t) collectors(col.data() + t * nq, 0, nq);
    PYSPEC_OMP(omp parallel for num_threads(nt) schedule(static, 1))
    for (int t = 0; t < nt; ++t) {
      errors.run([&] {
        const std::int64_t b0 = nb * t / nt, b1 = nb * (t + 1) / nt;
        std::vector<std::uint16_t> thr(thr0);
        ScanContext sc{col.data() + t * nq, thr.data(), n};
        search_kernel(bytes, nq)(packed, P, b0, b1, lut.data(), lb, nq, group, bytes, thr.data(),
                                 detail::FastScanSink{collect, &sc});
      });
    }
    errors.rethrow();
    std::vector<Collector> parts(static_cast<std::size_t>(nt));
    for (std::int64_t i = 0; i < nq; ++i) {
      for (int t = 0; t < nt; ++t) parts[t] = std::move(col[t * nq + i]);
      finish(parts.data(), nt, i);
    }
  }
  errors.rethrow();
}

}  // namespace pyspec
