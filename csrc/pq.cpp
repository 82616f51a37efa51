// Product quantisation: scalar kernels, run-time dispatch and the threaded
// drivers (encode, tables, top-k scan, k-means++ seeding, accumulation).
#include "pq.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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
// Below this many table lookups (nq * n * M) a scan runs on one thread: the
// cost of starting a team exceeds the work.
constexpr std::int64_t kParallelMinLookups = std::int64_t(1) << 20;
// Below this many multiply-adds (n * D * K) encoding runs on one thread.
constexpr std::int64_t kParallelMinFlops = std::int64_t(1) << 22;

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

void table_scalar(const PQCodebook& cb, const float* q, float* out) {
  float acc[kCentroidBlock];
  for (std::int64_t m = 0; m < cb.M; ++m) {
    const std::int64_t s = cb.bounds[m], L = cb.bounds[m + 1] - s;
    const float* ct = cb.ct + cb.Kp * s;
    for (std::int64_t j0 = 0; j0 < cb.K; j0 += kCentroidBlock) {
      for (std::int64_t t = 0; t < kCentroidBlock; ++t) acc[t] = 0.0f;
      for (std::int64_t d = 0; d < L; ++d) {
        const float qd = q[s + d];
        const float* c = ct + d * cb.Kp + j0;
        for (std::int64_t t = 0; t < kCentroidBlock; ++t) {
          const float diff = qd - c[t];
          acc[t] = std::fma(diff, diff, acc[t]);
        }
      }
      const std::int64_t nt = std::min<std::int64_t>(kCentroidBlock, cb.K - j0);
      for (std::int64_t t = 0; t < nt; ++t) out[m * cb.K + j0 + t] = acc[t];
    }
  }
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
  for (; i < n; ++i) {
    const Code* c = codes + i * M;
    float s = 0.0f;
    for (std::int64_t m = 0; m < M; ++m) s += table[m * K + c[m]];
    out[i] = s;
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

inline void adc(const detail::PQKernels& kn, const float* table, std::int64_t M, std::int64_t K,
                const std::uint8_t* codes, std::int64_t n, std::int64_t readable, float* out) {
  kn.adc_u8(table, M, K, codes, n, readable, out);
}
inline void adc(const detail::PQKernels& kn, const float* table, std::int64_t M, std::int64_t K,
                const std::uint16_t* codes, std::int64_t n, std::int64_t readable, float* out) {
  kn.adc_u16(table, M, K, codes, n, readable, out);
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

// Scans database rows [lo, hi) for `gq` queries whose tables are tabs[g]
// (M x K each), pushing into heaps[g].
template <class Code>
void scan_range(const detail::PQKernels& kn, const float* const* tabs, std::int64_t gq,
                std::int64_t M, std::int64_t K, const Code* codes, const index_t* ids,
                std::int64_t n, std::int64_t lo, std::int64_t hi, TopK<float>* heaps,
                float* buf) {
  for (std::int64_t i0 = lo; i0 < hi; i0 += kScanBlock) {
    const std::int64_t nb = std::min(kScanBlock, hi - i0);
    for (std::int64_t g = 0; g < gq; ++g) {
      adc(kn, tabs[g], M, K, codes + i0 * M, nb, n - i0, buf);
      TopK<float>& h = heaps[g];
      float thr = h.full() ? h.worst() : kInf;
      for (std::int64_t i = 0; i < nb; ++i) {
        if (buf[i] <= thr) {  // <=: ties are settled by id inside push()
          h.push(buf[i], ids[i0 + i]);
          if (h.full()) thr = h.worst();
        }
      }
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
  return PQKernels{assign_scalar, table_scalar, adc_scalar<std::uint8_t>,
                   adc_scalar<std::uint16_t>};
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
  const bool par = nt > 1 && nq > 1 && nq * cb.D * cb.K >= kParallelMinFlops;
  ErrorCapture errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (par)
  for (std::int64_t q = 0; q < nq; ++q) {
    errors.run([&] { kn.table(cb, Q + q * cb.D, tables + q * cb.M * cb.K); });
  }
  errors.rethrow();
}

template <class Code>
void pq_search(const PQCodebook& cb, const float* Q, const float* tables, std::int64_t nq,
               const Code* codes, const index_t* ids, std::int64_t n, std::int64_t k,
               index_t* out_ids, float* out_dist, int num_threads) {
  check_codebook(cb);
  if (k < 0) throw std::invalid_argument("pq_search: k must be >= 0");
  if (!tables && !Q) throw std::invalid_argument("pq_search: need queries or tables");
  if (k == 0 || nq == 0) return;
  const detail::PQKernels kn = kernels();
  const std::int64_t M = cb.M, K = cb.K;
  const std::int64_t table_size = M * K;
  int nt = resolve_threads(num_threads);
  if (nq * n * M < kParallelMinLookups) nt = 1;

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
        std::vector<float> own;
        std::vector<const float*> tabs(gq);
        if (tables) {
          for (std::int64_t t = 0; t < gq; ++t) tabs[t] = tables + (q0 + t) * table_size;
        } else {
          own.resize(gq * table_size);
          for (std::int64_t t = 0; t < gq; ++t) {
            kn.table(cb, Q + (q0 + t) * cb.D, own.data() + t * table_size);
            tabs[t] = own.data() + t * table_size;
          }
        }
        std::vector<TopK<float>> heaps(gq, TopK<float>(k));
        std::vector<float> buf(kScanBlock);
        scan_range(kn, tabs.data(), gq, M, K, codes, ids, n, 0, n, heaps.data(), buf.data());
        for (std::int64_t t = 0; t < gq; ++t)
          heaps[t].extract_sorted(out_dist + (q0 + t) * k, out_ids + (q0 + t) * k, kInf);
      });
    }
    errors.rethrow();
    return;
  }

  // Fewer queries than threads: split the database, one top-k per thread and
  // query, merged afterwards (the (distance, id) order makes the merge exact).
  std::vector<float> own;
  std::vector<const float*> tabs(nq);
  if (tables) {
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = tables + q * table_size;
  } else {
    own.resize(nq * table_size);
    pq_build_tables(cb, Q, nq, own.data(), nt);
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = own.data() + q * table_size;
  }
  std::vector<std::vector<TopK<float>>> local(nt);
  ErrorCapture errors;
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
  for (int t = 0; t < nt; ++t) {
    errors.run([&] {
      const std::int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
      local[t].assign(nq, TopK<float>(k));
      std::vector<float> buf(kScanBlock);
      scan_range(kn, tabs.data(), nq, M, K, codes, ids, n, lo, hi, local[t].data(), buf.data());
    });
  }
  errors.rethrow();
  for (std::int64_t q = 0; q < nq; ++q) {
    TopK<float> merged(k);
    for (int t = 0; t < nt; ++t) merged.merge(local[t][q]);
    merged.extract_sorted(out_dist + q * k, out_ids + q * k, kInf);
  }
}

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
      std::vector<float> pts(L * npad, 0.0f);  // segment m transposed: L x npad
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t d = 0; d < L; ++d) pts[d * npad + i] = X[i * D + s + d];
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
        kn.table(seg, c, dist.data());
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
                                      std::int64_t, const std::uint8_t*, const index_t*,
                                      std::int64_t, std::int64_t, index_t*, float*, int);
template void pq_search<std::uint16_t>(const PQCodebook&, const float*, const float*,
                                       std::int64_t, const std::uint16_t*, const index_t*,
                                       std::int64_t, std::int64_t, index_t*, float*, int);
template void pq_accumulate<std::uint8_t>(const float*, std::int64_t, std::int64_t,
                                          const std::int64_t*, std::int64_t, std::int64_t,
                                          const std::uint8_t*, double*, std::int64_t*, int);
template void pq_accumulate<std::uint16_t>(const float*, std::int64_t, std::int64_t,
                                           const std::int64_t*, std::int64_t, std::int64_t,
                                           const std::uint16_t*, double*, std::int64_t*, int);

}  // namespace pyspec
