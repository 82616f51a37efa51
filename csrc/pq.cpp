// Product quantisation: scalar kernels, run-time dispatch and the threaded
// drivers (encode, tables, top-k scan, k-means++ seeding, accumulation).
#include "pq.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "cpu_features.hpp"
#include "pq_kernel_common.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Rows per encode task: the x block (64 rows x L pixels) stays in L1/L2 while
// one segment's codebook streams past it.
constexpr std::int64_t kEncodeRows = 64;
// Database rows per ADC block: the distance buffer (4 KiB) and the code block
// stay in L1 while every query of a group scans it.
constexpr std::int64_t kScanBlock = 1024;
// Bytes of ADC tables kept per query group (fits L2 with the code block).
constexpr std::int64_t kTableBudget = 512 * 1024;
constexpr std::int64_t kMaxQueryGroup = 16;
// Queries per table-kernel call: the ISA kernels tile up to 8 queries on
// each codebook block read.
constexpr std::int64_t kTableTile = 8;
// A group's vertical table (pq.hpp) may not exceed this.
constexpr std::int64_t kVTableMaxBytes = std::int64_t(64) << 20;
// Below this many table lookups (nq * n * M) a scan runs on one thread: the
// cost of starting a team exceeds the work.
constexpr std::int64_t kParallelMinLookups = std::int64_t(1) << 20;
// Below this many multiply-adds (n * D * K) encoding runs on one thread.
constexpr std::int64_t kParallelMinFlops = std::int64_t(1) << 22;

// Query tables of the per-query scans live in a per-thread buffer kept
// between calls: a fresh 320 kB vector per query (25 x 3200) was returned to
// the OS and faulted in again each time, and the kernel's page clearing took
// ~9% of a single-query search. Buffers above kKeepScratchFloats (16 MB) are
// freed after the call.
constexpr std::size_t kKeepScratchFloats = std::size_t(4) << 20;

// Zero-filled floats on 64-byte boundaries. The vertical tables hold one
// 64-byte row of 16 query lanes per centroid, read as one zmm: from a plain
// vector (16-byte aligned, at a heap offset that depends on what was
// allocated before) rows straddled cache lines or not depending on
// unrelated allocations, and a batch of 100 queries at 25 x 256 took
// 36-55 ms from one process to the next (aligned: 40-41 ms; 2 MB pages
// measured 39-40, not worth the platform code).
class AlignedFloats {
 public:
  explicit AlignedFloats(std::int64_t n)
      : data_(static_cast<float*>(::operator new[](static_cast<std::size_t>(n) * sizeof(float),
                                                   std::align_val_t(64)))) {
    std::fill(data_, data_ + n, 0.0f);
  }
  ~AlignedFloats() { ::operator delete[](data_, std::align_val_t(64)); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* data() { return data_; }

 private:
  float* data_;
};

// `slot` tells apart buffers alive at the same time in one thread.
enum ScratchSlot { kTablesSlot = 0, kExactSlot = 1, kScratchSlots = 2 };

class TableScratch {
 public:
  explicit TableScratch(std::int64_t n, ScratchSlot slot = kTablesSlot) {
    struct Kept {
      std::unique_ptr<AlignedFloats> buf;
      std::int64_t size = 0;
    };
    thread_local Kept kept[kScratchSlots];
    if (n > static_cast<std::int64_t>(kKeepScratchFloats)) {
      own_ = std::make_unique<AlignedFloats>(n);
      data_ = own_->data();
      return;
    }
    Kept& k = kept[slot];
    if (k.size < n) {
      k.buf = std::make_unique<AlignedFloats>(n);
      k.size = n;
    }
    data_ = k.buf ? k.buf->data() : nullptr;
  }
  float* data() { return data_; }

 private:
  std::unique_ptr<AlignedFloats> own_;
  float* data_ = nullptr;
};

// ---- scalar kernels (the reference order every ISA variant reproduces) ----

void assign_scalar(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t L,
                   const float* ct, const float* cnorm, std::int64_t Kp, std::int32_t* best_j,
                   float* best_v) {
  float acc[kCentroidBlock];
  for (std::int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * ldx;
    float bv = kInf;
    std::int32_t bj = 0;
    for (std::int64_t j0 = 0; j0 < Kp; j0 += kCentroidBlock) {
      for (std::int64_t t = 0; t < kCentroidBlock; ++t) acc[t] = 0.0f;
      for (std::int64_t d = 0; d < L; ++d) {
        const float xd = xr[d];
        const float* c = ct + j0 * L + d * kCentroidBlock;
        for (std::int64_t t = 0; t < kCentroidBlock; ++t) acc[t] = std::fma(xd, c[t], acc[t]);
      }
      for (std::int64_t t = 0; t < kCentroidBlock; ++t) {
        const float v = cnorm[j0 + t] - (acc[t] + acc[t]);
        if (v < bv) {
          bv = v;
          bj = static_cast<std::int32_t>(j0 + t);
        }
      }
    }
    best_j[r] = bj;
    best_v[r] = bv;
  }
}

void table_scalar(const PQCodebook& cb, const float* Q, std::int64_t nq, std::int64_t ldq,
                  std::int64_t m0, std::int64_t m1, float* out, std::int64_t ldo) {
  float acc[kCentroidBlock];
  for (std::int64_t m = m0; m < m1; ++m) {
    const std::int64_t s = cb.bounds[m], L = cb.bounds[m + 1] - s;
    const float* seg = cb.ct + cb.Kp * s;
    for (std::int64_t q = 0; q < nq; ++q) {
      const float* qs = Q + q * ldq + s;
      float* o = out + q * ldo + m * cb.K;
      for (std::int64_t j0 = 0; j0 < cb.K; j0 += kCentroidBlock) {
        for (std::int64_t t = 0; t < kCentroidBlock; ++t) acc[t] = 0.0f;
        const float* blk = seg + j0 * L;
        for (std::int64_t d = 0; d < L; ++d) {
          const float qd = qs[d];
          const float* c = blk + d * kCentroidBlock;
          for (std::int64_t t = 0; t < kCentroidBlock; ++t) {
            const float diff = qd - c[t];
            acc[t] = std::fma(diff, diff, acc[t]);
          }
        }
        const std::int64_t nt = std::min<std::int64_t>(kCentroidBlock, cb.K - j0);
        for (std::int64_t t = 0; t < nt; ++t) o[j0 + t] = acc[t];
      }
    }
  }
}

// Bound-table rows (pq.hpp, "Bound tables"; formula in pq_kernel_common.hpp),
// one fma chain per centroid as in the SIMD kernels, a block at a time.
struct ScalarBounds {
  static constexpr int kWide = 1, kNarrow = 1;

  template <int NB>
  static void blocks(const BoundSegment& sg, std::int64_t jb) {
    const std::int64_t L = sg.L, j0 = jb * kCentroidBlock;
    const std::int8_t* blk = sg.cq + j0 * L;
    float acc[kCentroidBlock] = {};
    for (std::int64_t d = 0; d < L; ++d) {
      const float qd = (sg.q[d] - sg.mean[d]) * sg.bc.inv_s;
      for (std::int64_t t = 0; t < kCentroidBlock; ++t) {
        const float diff = qd - static_cast<float>(blk[d * kCentroidBlock + t]);
        acc[t] = std::fma(diff, diff, acc[t]);
      }
    }
    const BoundConsts& bc = sg.bc;
    const std::int64_t nt = std::min<std::int64_t>(kCentroidBlock, sg.K - j0);
    for (std::int64_t t = 0; t < nt; ++t) {
      const float root = std::sqrt(acc[t]), e = sg.err[j0 + t];
      float r = std::fma(root, bc.f, -e) - bc.slack;
      r = r > 0.0f ? r : 0.0f;
      const float lo = std::fma(r * r, bc.g, -bc.tiny);
      sg.lower[j0 + t] = lo > 0.0f ? lo : 0.0f;
      const float ru = std::fma(root, bc.fu, e) + bc.slack;
      sg.upper[j0 + t] = std::fma(ru * ru, bc.gu, bc.tiny);
    }
  }
};

void bound_table_scalar(const PQCodebook& cb, const float* q, std::int64_t m0, std::int64_t m1,
                        float* lower, float* upper) {
  bound_table_tiled<ScalarBounds>(cb, q, m0, m1, lower, upper);
}

// Scalar ADC. Four rows are interleaved (four independent add chains hide
// load and add latency) and codes are read 8 bytes at a time and split with
// shifts, which halves the loads per lookup. Each row still sums its
// segments in order m = 0..M-1, as every variant does.
template <class Code>
void adc_scalar(const float* table, std::int64_t M, std::int64_t K, const Code* codes,
                std::int64_t n, std::int64_t /*readable*/, float* out) {
  constexpr int kPerWord = 8 / sizeof(Code);
  constexpr int kBits = 8 * sizeof(Code);
  constexpr std::uint64_t kMask = (std::uint64_t(1) << kBits) - 1;
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const Code* c = codes + i * M;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    const float* t = table;
    std::int64_t m = 0;
    for (; m + kPerWord <= M; m += kPerWord) {
      std::uint64_t w0, w1, w2, w3;
      std::memcpy(&w0, c + m, 8);
      std::memcpy(&w1, c + M + m, 8);
      std::memcpy(&w2, c + 2 * M + m, 8);
      std::memcpy(&w3, c + 3 * M + m, 8);
      for (int u = 0; u < kPerWord; ++u, t += K) {
        s0 += t[(w0 >> (kBits * u)) & kMask];
        s1 += t[(w1 >> (kBits * u)) & kMask];
        s2 += t[(w2 >> (kBits * u)) & kMask];
        s3 += t[(w3 >> (kBits * u)) & kMask];
      }
    }
    for (; m < M; ++m, t += K) {
      s0 += t[c[m]];
      s1 += t[c[M + m]];
      s2 += t[c[2 * M + m]];
      s3 += t[c[3 * M + m]];
    }
    out[i] = s0;
    out[i + 1] = s1;
    out[i + 2] = s2;
    out[i + 3] = s3;
  }
  adc_rows(table, M, K, codes, i, n, out);
}

// Vertical ADC, portable version (see pq.hpp). The 16-lane inner loop is
// plain float adds, which the compiler vectorises with baseline SSE2.
template <class Code>
void vadc_scalar(const float* vt, std::int64_t M, std::int64_t K, const Code* codes,
                 std::int64_t n, float* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    const Code* c = codes + i * M;
    float acc[kVLanes] = {};
    for (std::int64_t m = 0; m < M; ++m) {
      const float* e = vt + (m * K + c[m]) * kVLanes;
      for (std::int64_t q = 0; q < kVLanes; ++q) acc[q] += e[q];
    }
    for (std::int64_t q = 0; q < kVLanes; ++q) out[i * kVLanes + q] = acc[q];
  }
}

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

// ADC scan variant: the gather kernels of the SIMD level, or the interleaved
// scalar scan. Both return bit-identical sums (same order per row), so the
// choice is purely about speed: gathers are fast on some CPUs and slower than
// plain loads on others (measured slower on AMD Zen 4), hence "auto" times
// both once on a synthetic block and keeps the faster one.
std::atomic<int> g_scan_variant{-1};  // -1 auto (undecided), 0 interleaved, 1 gather

template <class Fn>
double time_scan(Fn fn, const float* table, const std::uint8_t* codes, std::int64_t n,
                 std::int64_t M, float* out) {
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    fn(table, M, 256, codes, n, n, out);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
  }
  return best;
}

int decide_scan_variant(const detail::PQKernels& simd) {
  const std::int64_t n = 4096, M = 24;
  std::vector<float> table(M * 256);
  std::vector<std::uint8_t> codes(n * M);
  std::uint64_t x = 0x2545F4914F6CDD1Dull;
  for (auto& v : table) v = static_cast<float>((x = x * 6364136223846793005ull + 1) >> 40);
  for (auto& c : codes) c = static_cast<std::uint8_t>((x = x * 6364136223846793005ull + 1) >> 56);
  std::vector<float> out(n);
  const double t_gather = time_scan(simd.adc_u8, table.data(), codes.data(), n, M, out.data());
  const double t_plain =
      time_scan(adc_scalar<std::uint8_t>, table.data(), codes.data(), n, M, out.data());
  return t_gather < t_plain ? 1 : 0;
}

detail::PQKernels with_scan_variant(detail::PQKernels simd) {
  int v = g_scan_variant.load();
  if (v < 0) {
    v = decide_scan_variant(simd);
    g_scan_variant.store(v);
  }
  if (v == 0) {
    simd.adc_u8 = adc_scalar<std::uint8_t>;
    simd.adc_u16 = adc_scalar<std::uint16_t>;
  }
  return simd;
}

detail::PQKernels kernels() {
  static const detail::PQKernels scalar = detail::pq_kernels_scalar();
#ifdef PYSPEC_HAVE_AVX2
  static const detail::PQKernels avx2_gather = detail::pq_kernels_avx2();
#endif
#ifdef PYSPEC_HAVE_AVX512
  static const detail::PQKernels avx512_gather = detail::pq_kernels_avx512();
#endif
  switch (selected_simd_level()) {
#ifdef PYSPEC_HAVE_AVX512
    case SimdLevel::AVX512: return with_scan_variant(avx512_gather);
#endif
#ifdef PYSPEC_HAVE_AVX2
    case SimdLevel::AVX2: return with_scan_variant(avx2_gather);
#endif
    default: return scalar;
  }
}

// The level's kernels for a code type.
inline detail::AdcU8Fn adc_kernel(const detail::PQKernels& kn, const std::uint8_t*) {
  return kn.adc_u8;
}
inline detail::AdcU16Fn adc_kernel(const detail::PQKernels& kn, const std::uint16_t*) {
  return kn.adc_u16;
}
inline detail::VAdcU8Fn vadc_kernel(const detail::PQKernels& kn, const std::uint8_t*) {
  return kn.vadc_u8;
}
inline detail::VAdcU16Fn vadc_kernel(const detail::PQKernels& kn, const std::uint16_t*) {
  return kn.vadc_u16;
}

// Row-major ADC sums of n rows, by the fastest path for the table shape and
// whether an early-exit bound is known.
template <class Code>
inline void adc(const detail::PQKernels& kn, const float* table, std::int64_t M, std::int64_t K,
                const Code* codes, std::int64_t n, std::int64_t readable, float bound, float* out,
                std::int32_t* idx) {
  if (use_grouped_scan(M, K)) return adc_grouped(table, M, K, codes, n, bound, out);
  if (bound < kInf) return adc_survivors(table, M, K, codes, n, bound, out, idx);
  adc_kernel(kn, codes)(table, M, K, codes, n, readable, out);
}

void check_codebook(const PQCodebook& cb) {
  if (cb.M < 1 || cb.K < 1 || cb.D < cb.M || cb.Kp < cb.K || cb.Kp % kCentroidBlock)
    throw std::invalid_argument("pq: inconsistent codebook sizes");
  if (cb.bounds[0] != 0 || cb.bounds[cb.M] != cb.D)
    throw std::invalid_argument("pq: segment bounds must start at 0 and end at D");
  for (std::int64_t m = 0; m < cb.M; ++m)
    if (cb.bounds[m + 1] <= cb.bounds[m])
      throw std::invalid_argument("pq: segment bounds must be strictly increasing");
}

// Pushes the nb distances d[i] (ids[i]) that can enter the top-k into h.
inline void push_block(TopK<float>& h, const float* d, const index_t* ids, std::int64_t nb) {
  float thr = h.full() ? h.worst() : kInf;
  for (std::int64_t i = 0; i < nb; ++i) {
    if (d[i] <= thr) {  // <=: ties are settled by id inside push()
      h.push(d[i], ids[i]);
      if (h.full()) thr = h.worst();
    }
  }
}

// Pool size at which BoundScan (below) evaluates before the end of its part
// of the database: only degenerate data (many rows with equal bounds) gets
// there; it caps the pool's memory (1 MB).
constexpr std::size_t kPoolRows = 65536;
// Rows per exact-entry batch when a pool is evaluated.
constexpr std::size_t kEvalRows = 8;

// One query's scan over its bound tables (pq.hpp, "Bound tables"), block
// by block, into a top-k h. The pruning bound is the k-th smallest
// upper-bound sum of the rows met so far (valid: those k rows are at least
// that close), kept in `upper_k_`, or h's k-th distance if smaller. Rows
// whose lower-bound sums survive a block (segmajor_passes) wait in a pool
// with their lower-bound sums and add their upper-bound sums. At the end
// the pool is evaluated in order of lower-bound sum: exact distances (from
// ExactEntries, in segment order: the same floats as every other path) are
// pushed into h until the next lower-bound sum passes reordered_bound() of
// h's k-th distance, which proves the rest cannot enter. So exact entries
// (each a random ~400-byte codebook read, ~150 ns) are computed only for
// the rows that end up near the top-k, while the bound tightens block by
// block as it would with exact tables. In the first block (no bound yet)
// the k rows with the smallest lower bounds give the first bound.
template <class Code>
class BoundScan {
 public:
  BoundScan(const float* lower, const std::int32_t* order, ExactEntries& exact, const Code* scan,
            const index_t* ids, std::int64_t M, std::int64_t K, std::size_t k)
      : lower_(lower), upper_(exact.upper()), order_(order), exact_(exact), scan_(scan),
        ids_(ids), M_(M), K_(K), upper_k_(k) {}

  void block(std::int64_t b, std::int64_t nb, TopK<float>& h, float* out, std::int32_t* idx) {
    const std::int64_t i0 = b * kScanLayoutRows;
    const Code* blk = scan_ + b * M_ * kScanLayoutRows;
    const float bound = this->bound(h);
    if (bound < kInf) {
      const std::int64_t cnt = segmajor_passes(lower_, M_, K_, blk, nb, bound, order_, out, idx);
      for (std::int64_t j = 0; j < cnt; ++j) add(out[idx[j]], i0 + idx[j]);
    } else {
      segmajor_passes(lower_, M_, K_, blk, nb, kInf, nullptr, out, idx);
      for (std::int64_t i = 0; i < nb; ++i) idx[i] = static_cast<std::int32_t>(i);
      const std::int64_t first =
          std::min<std::int64_t>(nb, upper_k_.k() - upper_k_.size());
      std::nth_element(idx, idx + first, idx + nb,
                       [&](std::int32_t x, std::int32_t y) { return out[x] < out[y]; });
      for (std::int64_t j = 0; j < first; ++j) add(out[idx[j]], i0 + idx[j]);
      const float pb = reordered_bound(this->bound(h), M_);
      for (std::int64_t j = first; j < nb; ++j)
        if (out[idx[j]] <= pb) add(out[idx[j]], i0 + idx[j]);
    }
    if (pool_.size() >= kPoolRows) evaluate(h);
  }

  void evaluate(TopK<float>& h) {
    auto by_bound = [](const Candidate& a, const Candidate& b) { return a.bound < b.bound; };
    const float pb = reordered_bound(bound(h), M_);
    const auto alive = std::partition(pool_.begin(), pool_.end(),
                                      [&](const Candidate& c) { return c.bound <= pb; });
    std::sort(pool_.begin(), alive, by_bound);
    const std::size_t end = alive - pool_.begin();
    std::size_t done = 0;
    while (done < end && (!h.full() || pool_[done].bound <= reordered_bound(h.worst(), M_))) {
      const std::size_t next = std::min(end, done + kEvalRows);
      push_exact(done, next, h);
      done = next;
    }
    pool_.clear();
  }

 private:
  struct Candidate {
    float bound;
    std::int64_t row;
  };

  // The pruning bound (+inf until k rows have been met).
  float bound(const TopK<float>& h) const {
    const float u = upper_k_.full() ? upper_k_.worst() : kInf;
    return h.full() && h.worst() < u ? h.worst() : u;
  }

  void add(float lower_sum, std::int64_t row) {
    pool_.push_back({lower_sum, row});
    float s = 0.0f;  // segment order: >= the row's exact distance (pq.hpp)
    for (std::int64_t m = 0; m < M_; ++m) s += upper_[m * K_ + scan_code(scan_, M_, row, m)];
    if (!upper_k_.full() || s <= upper_k_.worst()) upper_k_.push(s, row);
  }

  void push_exact(std::size_t a, std::size_t b, TopK<float>& h) {
    // Each row's codes are read once from the scan layout (M random reads).
    codes_.clear();
    for (std::size_t i = a; i < b; ++i)
      for (std::int64_t m = 0; m < M_; ++m) codes_.push_back(scan_code(scan_, M_, pool_[i].row, m));
    const float* t = exact_.fill(codes_.data(), static_cast<std::int64_t>(b - a));
    for (std::size_t i = a; i < b; ++i) {
      const std::int32_t* c = codes_.data() + (i - a) * M_;
      float s = 0.0f;
      for (std::int64_t m = 0; m < M_; ++m) s += t[m * K_ + c[m]];
      if (!h.full() || s <= h.worst()) h.push(s, ids_[pool_[i].row]);
    }
  }

  const float* lower_;
  const float* upper_;
  const std::int32_t* order_;
  ExactEntries& exact_;
  const Code* scan_;
  const index_t* ids_;
  std::int64_t M_, K_;
  TopK<float> upper_k_;  // the k smallest upper-bound sums (row as id)
  std::vector<Candidate> pool_;
  std::vector<std::int32_t> codes_;  // push_exact's rows x M codes
};

// ExactEntries for nq queries Q (D floats each, upper-bound tables `upper`)
// in this thread's scratch; get() is null when nq = 0 (no bound tables).
class ExactScratch {
 public:
  ExactScratch(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
               const float* upper, std::int64_t nq)
      : values_(nq * cb.M * cb.K, kExactSlot) {
    entries_.reserve(nq);
    for (std::int64_t q = 0; q < nq; ++q)
      entries_.emplace_back(kn, cb, Q + q * cb.D, upper + q * cb.M * cb.K,
                            values_.data() + q * cb.M * cb.K);
    for (auto& e : entries_) ptrs_.push_back(&e);
  }
  ExactEntries* const* get() const { return ptrs_.empty() ? nullptr : ptrs_.data(); }

 private:
  TableScratch values_;
  std::vector<ExactEntries> entries_;
  std::vector<ExactEntries*> ptrs_;
};

// Exit orders (exit_order) of gq query tables, computed once per query
// before the database is split among threads; empty unless the scan layout
// is scanned with early exit.
inline std::vector<std::vector<std::int32_t>> exit_orders(const float* const* tabs,
                                                          std::int64_t gq, std::int64_t M,
                                                          std::int64_t K, bool used) {
  std::vector<std::vector<std::int32_t>> orders(used ? gq : 0);
  for (std::size_t g = 0; g < orders.size(); ++g) exit_order(tabs[g], M, K, orders[g]);
  return orders;
}

// Part `part` of `nparts` of the database, scanned for `gq` queries whose
// tables are tabs[g] (M x K each) into heaps[g]. Rows are split evenly, or
// by whole blocks when the scan layout `scan` is given. `early_exit`: every
// table entry is >= 0, so the scan may stop summing rows that cannot enter
// the top-k; over the scan layout it then follows orders[g] (exit_orders).
// Each block of rows is scanned by every query of the group while it is in
// cache. `exact` (scan layout with early exit only): tabs[g] are bound
// tables and exact[g] gives the exact entries (BoundScan).
template <class Code>
void scan_part(const detail::PQKernels& kn, const float* const* tabs, std::int64_t gq,
               std::int64_t M, std::int64_t K, const Code* codes, const Code* scan,
               const index_t* ids, std::int64_t n, std::int64_t part, std::int64_t nparts,
               TopK<float>* heaps, bool early_exit,
               const std::vector<std::vector<std::int32_t>>& orders,
               ExactEntries* const* exact = nullptr) {
  std::vector<float> buf(std::max(kScanBlock, kScanLayoutRows));
  std::vector<std::int32_t> idx(buf.size());
  auto bound = [&](const TopK<float>& h) { return early_exit && h.full() ? h.worst() : kInf; };
  if (scan) {
    const std::int64_t R = kScanLayoutRows, nblk = scan_layout_blocks(n);
    std::vector<BoundScan<Code>> bscan;
    for (std::int64_t g = 0; exact && g < gq; ++g)
      bscan.emplace_back(tabs[g], orders[g].data(), *exact[g], scan, ids, M, K, heaps[g].k());
    for (std::int64_t b = nblk * part / nparts; b < nblk * (part + 1) / nparts; ++b) {
      const std::int64_t i0 = b * R, nb = std::min(R, n - i0);
      for (std::int64_t g = 0; g < gq; ++g) {
        if (exact) {
          bscan[g].block(b, nb, heaps[g], buf.data(), idx.data());
          continue;
        }
        const std::int32_t* order = early_exit ? orders[g].data() : nullptr;
        adc_segmajor(tabs[g], M, K, scan + b * M * R, nb, bound(heaps[g]), order, buf.data(),
                     idx.data());
        push_block(heaps[g], buf.data(), ids + i0, nb);
      }
    }
    for (std::int64_t g = 0; g < static_cast<std::int64_t>(bscan.size()); ++g)
      bscan[g].evaluate(heaps[g]);
    return;
  }
  const std::int64_t hi = n * (part + 1) / nparts;
  for (std::int64_t i0 = n * part / nparts; i0 < hi; i0 += kScanBlock) {
    const std::int64_t nb = std::min(kScanBlock, hi - i0);
    for (std::int64_t g = 0; g < gq; ++g) {
      adc(kn, tabs[g], M, K, codes + i0 * M, nb, n - i0, bound(heaps[g]), buf.data(), idx.data());
      push_block(heaps[g], buf.data(), ids + i0, nb);
    }
  }
}

}  // namespace

void pq_set_scan_variant(int variant) {
  if (variant < -1 || variant > 1) throw std::invalid_argument("scan variant must be -1, 0 or 1");
  g_scan_variant.store(variant);
}

int pq_scan_variant() {
  int v = g_scan_variant.load();
  if (v >= 0 || selected_simd_level() == SimdLevel::Scalar) return v < 0 ? 0 : v;
  (void)kernels();  // decides
  return g_scan_variant.load();
}

namespace detail {
PQKernels pq_kernels_scalar() {
  return PQKernels{assign_scalar,
                   table_scalar,
                   bound_table_scalar,
                   exact_entries_kernel,  // fmaf calls at this level
                   adc_scalar<std::uint8_t>,
                   adc_scalar<std::uint16_t>,
                   vadc_scalar<std::uint8_t>,
                   vadc_scalar<std::uint16_t>};
}
}  // namespace detail

template <class Code>
void pq_encode(const PQCodebook& cb, const float* X, std::int64_t n, Code* codes, float* best,
               int num_threads) {
  check_codebook(cb);
  if (cb.K - 1 > static_cast<std::int64_t>(std::numeric_limits<Code>::max()))
    throw std::invalid_argument("pq_encode: n_centroids does not fit the code type");
  const detail::PQKernels kn = kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t nblocks = (n + kEncodeRows - 1) / kEncodeRows;
  const bool par = nt > 1 && n * cb.D * cb.K >= kParallelMinFlops && nblocks > 1;
  ErrorCapture errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (par)
  for (std::int64_t b = 0; b < nblocks; ++b) {
    errors.run([&] {
      std::int32_t bj[kEncodeRows];
      float bv[kEncodeRows];
      const std::int64_t r0 = b * kEncodeRows;
      const std::int64_t nb = std::min(kEncodeRows, n - r0);
      for (std::int64_t m = 0; m < cb.M; ++m) {
        const std::int64_t s = cb.bounds[m], L = cb.bounds[m + 1] - s;
        kn.assign(X + r0 * cb.D + s, cb.D, nb, L, cb.ct + cb.Kp * s, cb.cnorm + m * cb.Kp, cb.Kp,
                  bj, bv);
        for (std::int64_t r = 0; r < nb; ++r) {
          codes[(r0 + r) * cb.M + m] = static_cast<Code>(bj[r]);
          if (best) best[(r0 + r) * cb.M + m] = bv[r];
        }
      }
    });
  }
  errors.rethrow();
}

void pq_build_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* tables,
                     int num_threads) {
  check_codebook(cb);
  const detail::PQKernels kn = kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t MK = cb.M * cb.K;
  const std::int64_t ntiles = (nq + kTableTile - 1) / kTableTile;
  const bool big = nt > 1 && nq * cb.D * cb.K >= kParallelMinFlops;
  ErrorCapture errors;
  if (big && ntiles < nt && cb.M > 1) {
    // Fewer query tiles than threads (a single query, say): split segments.
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (std::int64_t m = 0; m < cb.M; ++m) {
      errors.run([&] { kn.table(cb, Q, nq, cb.D, m, m + 1, tables, MK); });
    }
  } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (big && ntiles > 1)
    for (std::int64_t t = 0; t < ntiles; ++t) {
      errors.run([&] {
        const std::int64_t q0 = t * kTableTile, tq = std::min(kTableTile, nq - q0);
        kn.table(cb, Q + q0 * cb.D, tq, cb.D, 0, cb.M, tables + q0 * MK, MK);
      });
    }
  }
  errors.rethrow();
}

void pq_build_bound_tables(const PQCodebook& cb, const float* Q, std::int64_t nq, float* lower,
                           float* upper, int num_threads) {
  check_codebook(cb);
  if (!cb.has_bound_copy()) throw std::invalid_argument("pq: codebook has no bound copy");
  const detail::PQKernels kn = kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t MK = cb.M * cb.K;
  const bool big = nt > 1 && nq * cb.D * cb.K >= kParallelMinFlops;
  ErrorCapture errors;
  if (big && nq < nt && cb.M > 1) {  // a single query, say: split segments
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) collapse(2)
    for (std::int64_t q = 0; q < nq; ++q)
      for (std::int64_t m = 0; m < cb.M; ++m)
        errors.run([&] {
          kn.bound_table(cb, Q + q * cb.D, m, m + 1, lower + q * MK, upper + q * MK);
        });
  } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (big && nq > 1)
    for (std::int64_t q = 0; q < nq; ++q)
      errors.run([&] {
        kn.bound_table(cb, Q + q * cb.D, 0, cb.M, lower + q * MK, upper + q * MK);
      });
  }
  errors.rethrow();
}

bool pq_bound_copy_pays(std::int64_t Kp, std::int64_t D) {
  return Kp * D * 4 > (std::int64_t(8) << 20);
}

namespace {
// Interleaves the tables of gq <= kVLanes queries (tabs[q], M*K each) into
// the vertical layout; lanes q >= gq are zero.
void interleave_tables(const float* const* tabs, std::int64_t gq, std::int64_t MK, float* vt) {
  for (std::int64_t e = 0; e < MK; ++e) {
    float* dst = vt + e * kVLanes;
    for (std::int64_t q = 0; q < gq; ++q) dst[q] = tabs[q][e];
    for (std::int64_t q = gq; q < kVLanes; ++q) dst[q] = 0.0f;
  }
}

// Builds the vertical table of queries [q0, q0 + gq) from given tables or
// from the queries.
void vertical_table(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
                    const float* tables, std::int64_t q0, std::int64_t gq, float* vt) {
  const std::int64_t MK = cb.M * cb.K;
  std::vector<float> own;
  const float* tabs[kVLanes];
  if (tables) {
    for (std::int64_t q = 0; q < gq; ++q) tabs[q] = tables + (q0 + q) * MK;
  } else {
    own.resize(gq * MK);
    kn.table(cb, Q + q0 * cb.D, gq, cb.D, 0, cb.M, own.data(), MK);
    for (std::int64_t q = 0; q < gq; ++q) tabs[q] = own.data() + q * MK;
  }
  interleave_tables(tabs, gq, MK, vt);
}

// Scans rows [lo, hi) with one vertical table, pushing lane q into heaps[q].
template <class Code>
void scan_range_vertical(const detail::PQKernels& kn, const float* vt, std::int64_t gq,
                         std::int64_t M, std::int64_t K, const Code* codes, const index_t* ids,
                         std::int64_t lo, std::int64_t hi, TopK<float>* heaps, float* buf) {
  float thr[kVLanes];
  for (std::int64_t q = 0; q < gq; ++q) thr[q] = heaps[q].full() ? heaps[q].worst() : kInf;
  for (std::int64_t i0 = lo; i0 < hi; i0 += kScanBlock) {
    const std::int64_t nb = std::min(kScanBlock, hi - i0);
    vadc_kernel(kn, codes)(vt, M, K, codes + i0 * M, nb, buf);
    for (std::int64_t i = 0; i < nb; ++i) {
      const float* row = buf + i * kVLanes;
      for (std::int64_t q = 0; q < gq; ++q) {
        if (row[q] <= thr[q]) {  // <=: ties are settled by id inside push()
          heaps[q].push(row[q], ids[i0 + i]);
          if (heaps[q].full()) thr[q] = heaps[q].worst();
        }
      }
    }
  }
}

// Query groups for the vertical scan: at most kVLanes queries each, split
// evenly among threads when that keeps groups of at least `vmin`. Returns
// the group size, or 0 when groups would be smaller than `vmin` (per-query
// scans are then faster).
std::int64_t vertical_group_size(std::int64_t nq, int nt, std::int64_t vmin) {
  std::int64_t ngroups = (nq + kVLanes - 1) / kVLanes;
  if (ngroups > 1 && ngroups % nt) {
    const std::int64_t even = (ngroups / nt + 1) * nt;
    if (nq / even >= vmin) ngroups = even;
  }
  const std::int64_t gsize = (nq + ngroups - 1) / ngroups;
  return gsize >= vmin ? gsize : 0;
}

// k-NN through vertical tables, queries in groups of `gsize`; with fewer
// groups than threads each group's database is also split, and the per-part
// top-k lists are merged exactly.
template <class Code>
void search_vertical(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
                     const float* tables, std::int64_t nq, std::int64_t gsize, const Code* codes,
                     const index_t* ids, std::int64_t n, std::int64_t k, index_t* out_ids,
                     float* out_dist, int nt) {
  const std::int64_t M = cb.M, K = cb.K, vsize = M * K * kVLanes;
  const std::int64_t ngroups = (nq + gsize - 1) / gsize;
  const std::int64_t nparts = ngroups >= nt ? 1 : std::max<std::int64_t>(1, nt / ngroups);
  ErrorCapture errors;
  if (nparts == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (std::int64_t g = 0; g < ngroups; ++g) {
      errors.run([&] {
        const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
        AlignedFloats vt(vsize);
        std::vector<float> buf(kScanBlock * kVLanes);
        vertical_table(kn, cb, Q, tables, q0, gq, vt.data());
        std::vector<TopK<float>> heaps(gq, TopK<float>(k));
        scan_range_vertical(kn, vt.data(), gq, M, K, codes, ids, 0, n, heaps.data(), buf.data());
        for (std::int64_t q = 0; q < gq; ++q)
          heaps[q].extract_sorted(out_dist + (q0 + q) * k, out_ids + (q0 + q) * k, kInf);
      });
    }
    errors.rethrow();
    return;
  }
  AlignedFloats vts(ngroups * vsize);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && ngroups > 1)
  for (std::int64_t g = 0; g < ngroups; ++g) {
    errors.run([&] {
      const std::int64_t q0 = g * gsize;
      vertical_table(kn, cb, Q, tables, q0, std::min(gsize, nq - q0), vts.data() + g * vsize);
    });
  }
  errors.rethrow();
  const std::int64_t ntasks = ngroups * nparts;
  std::vector<std::vector<TopK<float>>> local(ntasks);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (std::int64_t task = 0; task < ntasks; ++task) {
    errors.run([&] {
      const std::int64_t g = task / nparts, part = task % nparts;
      const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
      const std::int64_t lo = n * part / nparts, hi = n * (part + 1) / nparts;
      std::vector<float> buf(kScanBlock * kVLanes);
      local[task].assign(gq, TopK<float>(k));
      scan_range_vertical(kn, vts.data() + g * vsize, gq, M, K, codes, ids, lo, hi,
                          local[task].data(), buf.data());
    });
  }
  errors.rethrow();
  for (std::int64_t g = 0; g < ngroups; ++g) {
    const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
    for (std::int64_t q = 0; q < gq; ++q) {
      TopK<float> merged(k);
      for (std::int64_t part = 0; part < nparts; ++part) merged.merge(local[g * nparts + part][q]);
      merged.extract_sorted(out_dist + (q0 + q) * k, out_ids + (q0 + q) * k, kInf);
    }
  }
}
}  // namespace

template <class Code>
void pq_search(const PQCodebook& cb, const float* Q, const float* tables, std::int64_t nq,
               const Code* codes, const Code* scan, const index_t* ids, std::int64_t n,
               std::int64_t k, index_t* out_ids, float* out_dist, int num_threads) {
  check_codebook(cb);
  if (k < 0) throw std::invalid_argument("pq_search: k must be >= 0");
  if (!tables && !Q) throw std::invalid_argument("pq_search: need queries or tables");
  if (k == 0 || nq == 0) return;
  const detail::PQKernels kn = kernels();
  const std::int64_t M = cb.M, K = cb.K;
  const std::int64_t table_size = M * K;
  int nt = resolve_threads(num_threads);
  if (nq * n * M < kParallelMinLookups) nt = 1;
  // Built tables are sums of squares; given tables are checked once.
  const bool early_exit =
      !tables || std::all_of(tables, tables + nq * table_size, [](float v) { return v >= 0.0f; });
  // Per-query scans over the scan layout may read bound tables (pq.hpp).
  const bool bound_scan = scan && !tables && cb.has_bound_copy();
  if (nq > 1 && M * K * kVLanes * 4 <= kVTableMaxBytes) {
    const std::int64_t gsize = vertical_group_size(nq, nt, vertical_min_queries(M, K, scan != nullptr));
    if (gsize > 0) {
      search_vertical(kn, cb, Q, tables, nq, gsize, codes, ids, n, k, out_ids, out_dist, nt);
      return;
    }
  }

  if (nq >= nt) {
    // Parallel over groups of queries; each group scans the whole database
    // block by block so a code block is reused by every query of the group.
    const std::int64_t group = std::max<std::int64_t>(
        1, std::min<std::int64_t>(kMaxQueryGroup, kTableBudget / (table_size * 4)));
    const std::int64_t ngroups = (nq + group - 1) / group;
    ErrorCapture errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (std::int64_t g = 0; g < ngroups; ++g) {
      errors.run([&] {
        const std::int64_t q0 = g * group, gq = std::min(group, nq - q0);
        std::vector<const float*> tabs(gq);
        TableScratch own(tables ? 0 : (bound_scan ? 2 : 1) * gq * table_size);
        float* upper = own.data() + gq * table_size;  // bound_scan: upper bounds
        if (tables) {
          for (std::int64_t t = 0; t < gq; ++t) tabs[t] = tables + (q0 + t) * table_size;
        } else if (bound_scan) {
          for (std::int64_t t = 0; t < gq; ++t)
            kn.bound_table(cb, Q + (q0 + t) * cb.D, 0, M, own.data() + t * table_size,
                           upper + t * table_size);
        } else {
          kn.table(cb, Q + q0 * cb.D, gq, cb.D, 0, M, own.data(), table_size);
        }
        if (!tables)
          for (std::int64_t t = 0; t < gq; ++t) tabs[t] = own.data() + t * table_size;
        ExactScratch ex(kn, cb, bound_scan ? Q + q0 * cb.D : nullptr, bound_scan ? upper : nullptr,
                        bound_scan ? gq : 0);
        std::vector<TopK<float>> heaps(gq, TopK<float>(k));
        scan_part(kn, tabs.data(), gq, M, K, codes, scan, ids, n, 0, 1, heaps.data(), early_exit,
                  exit_orders(tabs.data(), gq, M, K, scan && early_exit), ex.get());
        for (std::int64_t t = 0; t < gq; ++t)
          heaps[t].extract_sorted(out_dist + (q0 + t) * k, out_ids + (q0 + t) * k, kInf);
      });
    }
    errors.rethrow();
    return;
  }

  // Fewer queries than threads: split the database, one top-k per thread and
  // query, merged afterwards (the (distance, id) order makes the merge exact).
  std::vector<const float*> tabs(nq);
  TableScratch own(tables ? 0 : (bound_scan ? 2 : 1) * nq * table_size);
  float* upper = own.data() + nq * table_size;  // bound_scan: upper bounds
  if (tables) {
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = tables + q * table_size;
  } else {
    if (bound_scan) {
      pq_build_bound_tables(cb, Q, nq, own.data(), upper, nt);
    } else {
      pq_build_tables(cb, Q, nq, own.data(), nt);
    }
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = own.data() + q * table_size;
  }
  const auto orders = exit_orders(tabs.data(), nq, M, K, scan && early_exit);
  std::vector<std::vector<TopK<float>>> local(nt);
  ErrorCapture errors;
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
  for (int t = 0; t < nt; ++t) {
    errors.run([&] {
      local[t].assign(nq, TopK<float>(k));
      // per thread: entries are written
      ExactScratch ex(kn, cb, Q, bound_scan ? upper : nullptr, bound_scan ? nq : 0);
      scan_part(kn, tabs.data(), nq, M, K, codes, scan, ids, n, t, nt, local[t].data(),
                early_exit, orders, ex.get());
    });
  }
  errors.rethrow();
  for (std::int64_t q = 0; q < nq; ++q) {
    TopK<float> merged(k);
    for (int t = 0; t < nt; ++t) merged.merge(local[t][q]);
    merged.extract_sorted(out_dist + q * k, out_ids + q * k, kInf);
  }
}

template <class Code>
void pq_scan_layout(const Code* codes, std::int64_t n, std::int64_t M, Code* scan,
                    int num_threads) {
  const std::int64_t R = kScanLayoutRows, nblk = scan_layout_blocks(n);
  const int nt = resolve_threads(num_threads);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && nblk > 1)
  for (std::int64_t b = 0; b < nblk; ++b) {
    const std::int64_t i0 = b * R, nb = std::min(R, n - i0);
    Code* dst = scan + b * M * R;
    for (std::int64_t r = 0; r < nb; ++r) {
      const Code* src = codes + (i0 + r) * M;
      for (std::int64_t m = 0; m < M; ++m) dst[m * R + r] = src[m];
    }
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t r = nb; r < R; ++r) dst[m * R + r] = 0;
  }
}

bool pq_scan_layout_pays(std::int64_t M, std::int64_t K) { return M * K * 4 > 32 * 1024; }

namespace {
// splitmix64: tiny, well-mixed, and fully specified, so seeding is
// reproducible on every platform.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  std::int64_t below(std::int64_t n) {
    const std::int64_t r = static_cast<std::int64_t>(uniform() * static_cast<double>(n));
    return r < n ? r : n - 1;
  }
};

// Points per block of the k-means++ sampling pass: block sums let the
// weighted draw skip whole blocks instead of walking every point.
constexpr std::int64_t kSeedBlock = 64;
}  // namespace

// k-means++ per segment. The distances of all points to the newest centre
// are one "ADC table" of that centre against the points (the segment's
// points transposed, as a codebook of n entries), so the vectorised,
// level-independent table kernel does the n * L work of each step; the
// minimum/sum/draw pass is O(n) with 64-point block sums in float64.
void pq_kmeanspp(const float* X, std::int64_t n, std::int64_t D, const std::int64_t* bounds,
                 std::int64_t M, std::int64_t K, const std::uint64_t* seeds, float* centers,
                 int num_threads) {
  if (n < 1 || K < 1) throw std::invalid_argument("pq_kmeanspp: need n >= 1 and K >= 1");
  const detail::PQKernels kn = kernels();
  const int nt = resolve_threads(num_threads);
  const std::int64_t npad = (n + kCentroidBlock - 1) / kCentroidBlock * kCentroidBlock;
  const std::int64_t nblocks = (n + kSeedBlock - 1) / kSeedBlock;
  ErrorCapture errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && M > 1)
  for (std::int64_t m = 0; m < M; ++m) {
    errors.run([&] {
      const std::int64_t s = bounds[m], L = bounds[m + 1] - s;
      // Segment m's points as a codebook in the blocked layout (pq.hpp).
      std::vector<float> pts(L * npad, 0.0f);
      for (std::int64_t i = 0; i < n; ++i) {
        float* dst = pts.data() + (i / kCentroidBlock) * kCentroidBlock * L + i % kCentroidBlock;
        for (std::int64_t d = 0; d < L; ++d) dst[d * kCentroidBlock] = X[i * D + s + d];
      }
      const std::int64_t one_seg[2] = {0, L};
      const PQCodebook seg{pts.data(), nullptr, one_seg, 1, n, npad, L};
      std::vector<float> dist(n), mind(n, std::numeric_limits<float>::infinity());
      std::vector<double> bsum(nblocks);
      SplitMix64 rng{seeds[m]};
      std::int64_t pick = rng.below(n);
      for (std::int64_t j = 0; j < K; ++j) {
        float* c = centers + j * D + s;
        std::memcpy(c, X + pick * D + s, sizeof(float) * L);
        if (j + 1 == K) break;
        kn.table(seg, c, 1, L, 0, 1, dist.data(), n);
        double total = 0.0;
        for (std::int64_t b = 0; b < nblocks; ++b) {
          const std::int64_t lo = b * kSeedBlock, hi = std::min(n, lo + kSeedBlock);
          float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          std::int64_t i = lo;
          for (; i + 8 <= hi; i += 8)
            for (int t = 0; t < 8; ++t) {
              const float v = dist[i + t] < mind[i + t] ? dist[i + t] : mind[i + t];
              mind[i + t] = v;
              lane[t] += v;
            }
          for (; i < hi; ++i) {
            mind[i] = dist[i] < mind[i] ? dist[i] : mind[i];
            lane[0] += mind[i];
          }
          double bs = 0.0;
          for (int t = 0; t < 8; ++t) bs += lane[t];
          bsum[b] = bs;
          total += bs;
        }
        if (!(total > 0.0)) {
          pick = rng.below(n);  // every point coincides with a centre already
          continue;
        }
        const double u = rng.uniform() * total;
        double cum = 0.0;
        std::int64_t b = 0;
        while (b + 1 < nblocks && cum + bsum[b] <= u) cum += bsum[b++];
        // Within the block walk point by point; rounding between the block
        // sum and this walk can leave u unreached: then the block's last
        // point with non-zero weight is taken.
        const std::int64_t lo = b * kSeedBlock, hi = std::min(n, lo + kSeedBlock);
        pick = -1;
        std::int64_t last = -1;
        for (std::int64_t i = lo; i < hi; ++i) {
          if (mind[i] > 0.0f) last = i;
          cum += mind[i];
          if (cum > u && mind[i] > 0.0f) {
            pick = i;
            break;
          }
        }
        if (pick < 0) pick = last >= 0 ? last : rng.below(n);
      }
    });
  }
  errors.rethrow();
}

template <class Code>
void pq_accumulate(const float* X, std::int64_t n, std::int64_t D, const std::int64_t* bounds,
                   std::int64_t M, std::int64_t K, const Code* codes, double* sums,
                   std::int64_t* counts, int num_threads) {
  const int nt = resolve_threads(num_threads);
  std::fill(sums, sums + K * D, 0.0);
  std::fill(counts, counts + M * K, std::int64_t(0));
  ErrorCapture errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && M > 1 && n * D > 65536)
  for (std::int64_t m = 0; m < M; ++m) {
    errors.run([&] {
      const std::int64_t s = bounds[m], L = bounds[m + 1] - s;
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = codes[i * M + m];
        if (c >= K) throw std::out_of_range("pq_accumulate: code >= n_centroids");
        counts[m * K + c] += 1;
        double* dst = sums + c * D + s;
        const float* src = X + i * D + s;
        for (std::int64_t d = 0; d < L; ++d) dst[d] += src[d];
      }
    });
  }
  errors.rethrow();
}

template void pq_encode<std::uint8_t>(const PQCodebook&, const float*, std::int64_t,
                                      std::uint8_t*, float*, int);
template void pq_encode<std::uint16_t>(const PQCodebook&, const float*, std::int64_t,
                                       std::uint16_t*, float*, int);
template void pq_search<std::uint8_t>(const PQCodebook&, const float*, const float*,
                                      std::int64_t, const std::uint8_t*, const std::uint8_t*,
                                      const index_t*, std::int64_t, std::int64_t, index_t*,
                                      float*, int);
template void pq_search<std::uint16_t>(const PQCodebook&, const float*, const float*,
                                       std::int64_t, const std::uint16_t*, const std::uint16_t*,
                                       const index_t*, std::int64_t, std::int64_t, index_t*,
                                       float*, int);
template void pq_scan_layout<std::uint8_t>(const std::uint8_t*, std::int64_t, std::int64_t,
                                           std::uint8_t*, int);
template void pq_scan_layout<std::uint16_t>(const std::uint16_t*, std::int64_t, std::int64_t,
                                            std::uint16_t*, int);
template void pq_accumulate<std::uint8_t>(const float*, std::int64_t, std::int64_t,
                                          const std::int64_t*, std::int64_t, std::int64_t,
                                          const std::uint8_t*, double*, std::int64_t*, int);
template void pq_accumulate<std::uint16_t>(const float*, std::int64_t, std::int64_t,
                                           const std::int64_t*, std::int64_t, std::int64_t,
                                           const std::uint16_t*, double*, std::int64_t*, int);

}  // namespace pyspec
