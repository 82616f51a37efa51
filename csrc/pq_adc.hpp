// ADC scan strategies of the per-query scans (internal; included by
// pq_scan.cpp only): grouped scans for large tables, early-exit survivor
// scans, and the segment-major passes over the scan layout. Every strategy
// sums each row's segments in order m = 0..M-1, so all return the same floats.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pq_internal.hpp"
#include "pq_kernel_common.hpp"

namespace pyspec {
namespace {


// Per-query scan for tables that overflow L1 with small K (the study's
// finest split, 1250 segments x 256 centroids = 1.25 MB of table): rows are
// summed over kGroupTableBytes of table at a time, so those segments' rows
// stay in L1 while the block of database rows passes, and each row's
// partial sum is carried in out[] to the next group. Every row still adds
// its segments in order m = 0..M-1 (measured 2.5x the plain interleaved scan
// at M = 1250).
constexpr std::int64_t kGroupTableBytes = 8 * 1024;
constexpr std::int64_t kGroupedMinTableBytes = 128 * 1024;
constexpr int kGroupRows = 8;

inline bool use_grouped_scan(std::int64_t M, std::int64_t K) {
  return M * K * 4 > kGroupedMinTableBytes && kGroupTableBytes / (K * 4) >= 4;
}

// Early exit. Tables built from spectra hold sums of squares (>= 0), so a
// row's partial sum never decreases as segments are added (float addition
// of a non-negative number is monotone). Once it exceeds `bound`, the k-th
// best distance so far, the row cannot enter the top-k and its remaining
// segments can be skipped. The scans below leave such rows with a partial
// sum > bound and every other row with its exact sum, so the top-k (and
// every reported distance) is the same as from a full scan.
//
// Per-query scan with early exit: rows are summed one 64-bit code word
// (8 / sizeof(Code) segments) at a time; after each word only the rows
// still <= bound go on, their indices compacted into `idx` (scratch, n
// entries), four surviving rows interleaved. On random codes (the
// benchmark's worst case) about 40% of the lookups remain.
template <class Code>
void adc_survivors(const float* table, std::int64_t M, std::int64_t K, const Code* codes,
                   std::int64_t n, float bound, float* out, std::int32_t* idx) {
  constexpr std::int64_t kStep = 8 / sizeof(Code);
  constexpr int kBits = 8 * sizeof(Code);
  constexpr std::uint64_t kMask = (std::uint64_t(1) << kBits) - 1;
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = 0.0f;
    idx[i] = static_cast<std::int32_t>(i);
  }
  std::int64_t cnt = n;
  for (std::int64_t m0 = 0; m0 < M && cnt > 0; m0 += kStep) {
    const std::int64_t m1 = std::min(M, m0 + kStep);
    std::int64_t keep = 0, j = 0;
    if (m1 - m0 == kStep) {
      const float* t = table + m0 * K;
      for (; j + 4 <= cnt; j += 4) {
        // idx[j..j+3] are read before any write: keep <= j always.
        const std::int64_t r0 = idx[j], r1 = idx[j + 1], r2 = idx[j + 2], r3 = idx[j + 3];
        std::uint64_t w0, w1, w2, w3;
        std::memcpy(&w0, codes + r0 * M + m0, 8);
        std::memcpy(&w1, codes + r1 * M + m0, 8);
        std::memcpy(&w2, codes + r2 * M + m0, 8);
        std::memcpy(&w3, codes + r3 * M + m0, 8);
        float s0 = out[r0], s1 = out[r1], s2 = out[r2], s3 = out[r3];
        for (int u = 0; u < kStep; ++u) {
          const float* tu = t + u * K;
          s0 += tu[(w0 >> (kBits * u)) & kMask];
          s1 += tu[(w1 >> (kBits * u)) & kMask];
          s2 += tu[(w2 >> (kBits * u)) & kMask];
          s3 += tu[(w3 >> (kBits * u)) & kMask];
        }
        out[r0] = s0;
        out[r1] = s1;
        out[r2] = s2;
        out[r3] = s3;
        idx[keep] = static_cast<std::int32_t>(r0);
        keep += s0 <= bound;
        idx[keep] = static_cast<std::int32_t>(r1);
        keep += s1 <= bound;
        idx[keep] = static_cast<std::int32_t>(r2);
        keep += s2 <= bound;
        idx[keep] = static_cast<std::int32_t>(r3);
        keep += s3 <= bound;
      }
    }
    for (; j < cnt; ++j) {
      const std::int64_t r = idx[j];
      float acc = out[r];
      for (std::int64_t m = m0; m < m1; ++m) acc += table[m * K + codes[r * M + m]];
      out[r] = acc;
      idx[keep] = static_cast<std::int32_t>(r);
      keep += acc <= bound;
    }
    cnt = keep;
  }
}

// Smallest query group for which one vertical scan beats that many
// per-query scans, from per-step costs measured on Zen 4 (bench/RESULTS.md,
// Product quantisation, "Scan paths"): a vertical step (one 64-byte table
// load per row and segment) ~3.3 cycles while the vertical table fits 8 MB
// of cache, ~13 beyond; a per-query lookup ~0.7 cycles with the table in L1,
// ~0.8 over the scan layout (pq.hpp), ~1.1 for the segment-grouped scan and
// ~1.5 from L2. E.g. 5 queries at 25 x 256, 5 at 25 x 3200 with the scan
// layout (3 without), never (> kVLanes) at 1250 x 256 with it (12 without).
inline std::int64_t vertical_min_queries(std::int64_t M, std::int64_t K, bool scan_layout) {
  const std::int64_t table_bytes = M * K * 4;
  const double per_query = table_bytes <= 32 * 1024 ? 0.7
                           : scan_layout            ? 0.8
                           : use_grouped_scan(M, K) ? 1.1
                                                    : 1.5;
  const double vertical = table_bytes * kVLanes <= (std::int64_t(8) << 20) ? 3.3 : 13.0;
  return static_cast<std::int64_t>(std::ceil(vertical / per_query));
}

template <class Code>
void adc_grouped(const float* table, std::int64_t M, std::int64_t K, const Code* codes,
                 std::int64_t n, float bound, float* out) {
  const std::int64_t G = kGroupTableBytes / (K * 4);
  for (std::int64_t i = 0; i < n; ++i) out[i] = 0.0f;
  for (std::int64_t m0 = 0; m0 < M; m0 += G) {
    const std::int64_t m1 = std::min(M, m0 + G);
    std::int64_t i = 0;
    for (; i + kGroupRows <= n; i += kGroupRows) {
      const Code* c = codes + i * M;
      float acc[kGroupRows];
      float low = kInf;
      for (int r = 0; r < kGroupRows; ++r) {
        acc[r] = out[i + r];
        low = std::min(low, acc[r]);
      }
      if (low > bound) continue;  // early exit (pq.hpp): all rows out of the top-k
      const float* t = table + m0 * K;
      for (std::int64_t m = m0; m < m1; ++m, t += K)
        for (int r = 0; r < kGroupRows; ++r) acc[r] += t[c[r * M + m]];
      for (int r = 0; r < kGroupRows; ++r) out[i + r] = acc[r];
    }
    for (; i < n; ++i) {
      const Code* c = codes + i * M;
      float acc = out[i];
      for (std::int64_t m = m0; m < m1; ++m) acc += table[m * K + c[m]];
      out[i] = acc;
    }
  }
}

// Per-query scan over one block of the scan layout (pq.hpp): segments are
// taken in pairs, each pair over all rows of the block, so the pair's two
// table rows stay in L1. A row's sum is built as ((s + t[m]) + t[m+1]), the
// same order as every other path. Codes are read 8 bytes (4 or 8 rows) at a
// time and split with shifts, as in adc_scalar; that and the pairing halve
// the loads per lookup (about 2x the row-major scan at 25 x 3200).
// Plain scalar code: fast at every SIMD level (gathers were slower on Zen 4).
template <class Code, bool Pair>
void segmajor_dense(const float* t0, const float* t1, const Code* c0, const Code* c1,
                    std::int64_t rows, float* out) {
  constexpr int kPerWord = 8 / sizeof(Code);
  constexpr int kBits = 8 * sizeof(Code);
  constexpr std::uint64_t kMask = (std::uint64_t(1) << kBits) - 1;
  for (std::int64_t i = 0; i < rows; i += kPerWord) {  // rows: a multiple of kPerWord
    std::uint64_t w0, w1 = 0;
    std::memcpy(&w0, c0 + i, 8);
    if (Pair) std::memcpy(&w1, c1 + i, 8);
    for (int u = 0; u < kPerWord; ++u) {
      float s = out[i + u] + t0[(w0 >> (kBits * u)) & kMask];
      if (Pair) s += t1[(w1 >> (kBits * u)) & kMask];
      out[i + u] = s;
    }
  }
}

// The same for the rows listed in idx[0, cnt); keeps (compacted in idx) the
// rows whose sum stays <= bound and returns their number (early exit).
template <class Code, bool Pair>
std::int64_t segmajor_sparse(const float* t0, const float* t1, const Code* c0, const Code* c1,
                             std::int32_t* idx, std::int64_t cnt, float bound, float* out) {
  std::int64_t keep = 0;
  for (std::int64_t j = 0; j < cnt; ++j) {
    const std::int32_t r = idx[j];
    float s = out[r] + t0[c0[r]];
    if (Pair) s += t1[c1[r]];
    out[r] = s;
    idx[keep] = r;  // keep <= j: idx[j] was read already
    keep += s <= bound;
  }
  return keep;
}

// Rows whose partial sums estimate the share of a block still alive.
constexpr std::int64_t kSurvivorProbe = 256;

// Segment order for the early exit of one query's scan: segments whose table
// row spreads most (mean - min) first, so partial sums of rows that are far
// from the query pass the bound after fewer segments (on the benchmark's
// spectra about half the lookups of the plain order).
inline void exit_order(const float* table, std::int64_t M, std::int64_t K,
                       std::vector<std::int32_t>& order) {
  // Only a heuristic: float sums in 8 lanes (which the compiler vectorises)
  // keep this pass small next to the scan.
  std::vector<float> spread(M);
  for (std::int64_t m = 0; m < M; ++m) {
    const float* t = table + m * K;
    float sum[8] = {}, low[8];
    for (int l = 0; l < 8; ++l) low[l] = kInf;
    std::int64_t j = 0;
    for (; j + 8 <= K; j += 8)
      for (int l = 0; l < 8; ++l) {
        sum[l] += t[j + l];
        low[l] = std::min(low[l], t[j + l]);
      }
    for (; j < K; ++j) {
      sum[0] += t[j];
      low[0] = std::min(low[0], t[j]);
    }
    float total = 0.0f, lowest = kInf;
    for (int l = 0; l < 8; ++l) {
      total += sum[l];
      lowest = std::min(lowest, low[l]);
    }
    spread[m] = total / static_cast<float>(K) - lowest;
  }
  order.resize(M);
  for (std::int64_t m = 0; m < M; ++m) order[m] = static_cast<std::int32_t>(m);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t x, std::int32_t y) { return spread[x] > spread[y]; });
}

// Bound for partial sums taken in another segment order. For non-negative
// terms, float sums of any subset in any order and the full sum in segment
// order each lie within a factor (1 +- gamma_M), gamma_M = M u / (1 - M u),
// u = 2^-24, of the exact sums, and the exact subset sum is at most the
// exact full sum. So a partial sum above bound * (1 + gamma) / (1 - gamma)
// proves the segment-order distance is above bound; 1 + 4 gamma (rounded
// up) covers that factor for any M < 2^20.
inline float reordered_bound(float bound, std::int64_t M) {
  const double u = std::ldexp(1.0, -24), gamma = M * u / (1.0 - M * u);
  return std::nextafter(static_cast<float>(bound * (1.0 + 4.0 * gamma)), kInf);
}

// Code of database row i, segment m, in the scan layout (pq.hpp).
template <class Code>
inline Code scan_code(const Code* scan, std::int64_t M, std::int64_t i, std::int64_t m) {
  const std::int64_t R = kScanLayoutRows;
  return scan[(i / R * M + m) * R + i % R];
}

// Exact table entries of one query for a scan over bound tables (pq.hpp,
// "Bound tables"), computed on demand for the rows that survive the bounds
// and kept at their table positions m * K + j in `values` (M * K floats); a
// bitmask marks those computed for this query. Also carries the query's
// upper-bound table for BoundScan.
class ExactEntries {
 public:
  ExactEntries(const detail::PQKernels& kn, const PQCodebook& cb, const float* q,
               const float* upper, float* values)
      : kn_(kn), cb_(cb), q_(q), upper_(upper), values_(values),
        known_((cb.M * cb.K + 63) / 64, 0) {}

  // The query's upper-bound table (pq_build_bound_tables).
  const float* upper() const { return upper_; }

  // Makes valid the entries of cnt rows whose codes are codes[j * M + m];
  // returns the table that holds them.
  const float* fill(const std::int32_t* codes, std::int64_t cnt) {
    todo_.clear();
    for (std::int64_t m = 0; m < cb_.M; ++m) {  // segment by segment (kn.exact runs)
      for (std::int64_t j = 0; j < cnt; ++j) {
        const std::int64_t e = m * cb_.K + codes[j * cb_.M + m];
        const std::uint64_t bit = std::uint64_t(1) << (e & 63);
        if (!(known_[e >> 6] & bit)) {
          known_[e >> 6] |= bit;
          todo_.push_back(e);
        }
      }
    }
    if (!todo_.empty())
      kn_.exact(cb_, q_, todo_.data(), static_cast<std::int64_t>(todo_.size()), values_);
    return values_;
  }

 private:
  detail::PQKernels kn_;
  const PQCodebook& cb_;
  const float* q_;
  const float* upper_;
  float* values_;
  std::vector<std::uint64_t> known_;
  std::vector<std::int64_t> todo_;
};

// ADC passes over the first nb rows of one scan-layout block (M x
// kScanLayoutRows codes) into out[0, nb). With bound = +inf: dense passes
// in segment order, which leave every row's exact sum; returns -1. With a
// finite bound (early exit) the pairs follow `order` (exit_order): dense
// while most rows are alive, then, once fewer than half can still enter the
// top-k, only the survivors; a row whose partial sum passes
// reordered_bound() stops there (its distance is provably above bound).
// Returns the number of rows still alive at the end, listed in idx; their
// out[] are sums in `order`, the other rows' partial sums above bound.
// out and idx need kScanLayoutRows entries.
template <class Code>
std::int64_t segmajor_passes(const float* table, std::int64_t M, std::int64_t K,
                             const Code* block, std::int64_t nb, float bound,
                             const std::int32_t* order, float* out, std::int32_t* idx) {
  constexpr std::int64_t kPerWord = 8 / sizeof(Code);
  const std::int64_t R = kScanLayoutRows;
  // Whole code words; rows in [nb, rows) are padding (code 0) and never read back.
  const std::int64_t rows = (nb + kPerWord - 1) / kPerWord * kPerWord;
  for (std::int64_t i = 0; i < rows; ++i) out[i] = 0.0f;
  const bool exit = bound < kInf;
  const float pbound = exit ? reordered_bound(bound, M) : kInf;
  std::int64_t cnt = -1;  // -1: dense, else idx[0, cnt) are the survivors
  for (std::int64_t p = 0; p < M && cnt != 0; p += 2) {
    const std::int64_t m0 = exit ? order[p] : p;
    const float* t0 = table + m0 * K;
    const Code* c0 = block + m0 * R;
    const bool pair = p + 1 < M;
    const std::int64_t m1 = pair ? (exit ? order[p + 1] : p + 1) : m0;
    const float* t1 = table + m1 * K;
    const Code* c1 = block + m1 * R;
    if (cnt < 0) {
      if (pair) {
        segmajor_dense<Code, true>(t0, t1, c0, c1, rows, out);
      } else {
        segmajor_dense<Code, false>(t0, nullptr, c0, nullptr, rows, out);
      }
      if (exit) {
        // Estimated on the first rows (database order carries no meaning),
        // so the check stays small next to the pass itself.
        const int probe = static_cast<int>(std::min(nb, kSurvivorProbe));
        int alive = 0;  // int and a select: the compiler vectorises this count
        for (int i = 0; i < probe; ++i) alive += out[i] <= pbound ? 1 : 0;
        if (2 * alive < probe) cnt = 0;
      }
      if (cnt == 0) {
        for (std::int64_t i = 0; i < nb; ++i) {
          idx[cnt] = static_cast<std::int32_t>(i);
          cnt += out[i] <= pbound;
        }
      }
    } else if (pair) {
      cnt = segmajor_sparse<Code, true>(t0, t1, c0, c1, idx, cnt, pbound, out);
    } else {
      cnt = segmajor_sparse<Code, false>(t0, nullptr, c0, nullptr, idx, cnt, pbound, out);
    }
  }
  if (!exit) return -1;
  if (cnt < 0) {  // still dense: list the survivors
    cnt = 0;
    for (std::int64_t i = 0; i < nb; ++i) {
      idx[cnt] = static_cast<std::int32_t>(i);
      cnt += out[i] <= pbound;
    }
  }
  return cnt;
}

// ADC sums of one scan-layout block (segmajor_passes), with the rows still
// alive at the end summed again in segment order, so every distance that
// can enter the top-k is the exact segment-order sum (the same float as
// every other path); rows left with a partial sum are above bound and never
// pushed.
template <class Code>
void adc_segmajor(const float* table, std::int64_t M, std::int64_t K, const Code* block,
                  std::int64_t nb, float bound, const std::int32_t* order, float* out,
                  std::int32_t* idx) {
  const std::int64_t R = kScanLayoutRows;
  const std::int64_t cnt = segmajor_passes(table, M, K, block, nb, bound, order, out, idx);
  for (std::int64_t j = 0; j < cnt; ++j) {
    const std::int32_t r = idx[j];
    float s = 0.0f;
    for (std::int64_t m = 0; m < M; ++m) s += table[m * K + block[m * R + r]];
    out[r] = s;
  }
}

}  // namespace
}  // namespace pyspec
