// PQ training kernels: k-means++ seeding and the centroid sums of a Lloyd
// step (the k-means control flow is in pyspec.models.pq).
#include "pq.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "parallel.hpp"
#include "pq_internal.hpp"

namespace pyspec {

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
  const detail::PQKernels kn = detail::pq_active_kernels();
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
  const std::int64_t npad = (n + kCentroidBlock - 1) / kCentroidBlock * kCentroidBlock;
  const std::int64_t nblocks = (n + kSeedBlock - 1) / kSeedBlock;
  ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && M > 1))
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
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
  std::fill(sums, sums + K * D, 0.0);
  std::fill(counts, counts + M * K, std::int64_t(0));
  ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && M > 1 && n * D > 65536))
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


template void pq_accumulate<std::uint8_t>(const float*, std::int64_t, std::int64_t,
                                          const std::int64_t*, std::int64_t, std::int64_t,
                                          const std::uint8_t*, double*, std::int64_t*, int);
template void pq_accumulate<std::uint16_t>(const float*, std::int64_t, std::int64_t,
                                           const std::int64_t*, std::int64_t, std::int64_t,
                                           const std::uint16_t*, double*, std::int64_t*, int);

}  // namespace pyspec
