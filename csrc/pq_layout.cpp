// PQ codebook layouts built from the plain codebook (K x D floats, row
// layout): the blocked, padded centroids with their squared norms that every
// kernel reads, and the 8-bit bound copy (pq.hpp). The Python model keeps
// only the plain codebook and asks for these.
#include <cmath>
#include <cstdint>
#include <vector>

#include "pq.hpp"

namespace pyspec {
namespace {

// Sum of x[0..n) in float64 in numpy's pairwise order (np.add.reduce over a
// contiguous axis: eight interleaved partial sums per block of up to 128,
// halves above that), so the bound copy's error norms are the same doubles
// the first wave's numpy code computed.
double pairwise_sum(const double* x, std::int64_t n) {
  if (n < 8) {
    double s = -0.0;  // numpy starts from -0.0 so that sum([-0.0]) is -0.0
    for (std::int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = x[j];
    std::int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += x[i + j];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += x[i];
    return s;
  }
  std::int64_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(x, half) + pairwise_sum(x + half, n - half);
}

// Segment m of the blocked layout: value v of centroid j, pixel d (of L).
inline std::int64_t blocked_at(std::int64_t Kp, std::int64_t s, std::int64_t L, std::int64_t j,
                               std::int64_t d) {
  return Kp * s + (j / kCentroidBlock) * kCentroidBlock * L + d * kCentroidBlock +
         j % kCentroidBlock;
}

}  // namespace

void pq_build_layout(const float* rows, std::int64_t K, std::int64_t D, const std::int64_t* bounds,
                     std::int64_t M, std::int64_t Kp, float* ct, float* cnorm) {
  for (std::int64_t i = 0; i < Kp * D; ++i) ct[i] = 0.0f;
  for (std::int64_t m = 0; m < M; ++m) {
    const std::int64_t s = bounds[m], L = bounds[m + 1] - s;
    for (std::int64_t j = 0; j < K; ++j) {
      const float* c = rows + j * D + s;
      double norm = 0.0;
      for (std::int64_t d = 0; d < L; ++d) {
        ct[blocked_at(Kp, s, L, j, d)] = c[d];
        norm += static_cast<double>(c[d]) * static_cast<double>(c[d]);
      }
      cnorm[m * Kp + j] = static_cast<float>(norm);
    }
    for (std::int64_t j = K; j < Kp; ++j) cnorm[m * Kp + j] = INFINITY;
  }
}

bool pq_build_bound_copy(const float* rows, std::int64_t K, std::int64_t D,
                         const std::int64_t* bounds, std::int64_t M, std::int64_t Kp,
                         std::int8_t* cq, float* bmean, float* bscale, float* berr) {
  // Each pixel centred on the midpoint of its centroids' range; c - mean is
  // exact in float64.
  std::vector<double> mean(D);
  for (std::int64_t d = 0; d < D; ++d) {
    double lo = rows[d], hi = rows[d];
    for (std::int64_t j = 1; j < K; ++j) {
      lo = std::fmin(lo, rows[j * D + d]);
      hi = std::fmax(hi, rows[j * D + d]);
    }
    bmean[d] = static_cast<float>((hi + lo) / 2);
  }
  for (std::int64_t d = 0; d < D; ++d) mean[d] = bmean[d];
  for (std::int64_t i = 0; i < Kp * D; ++i) cq[i] = 0;
  for (std::int64_t i = 0; i < M * Kp; ++i) berr[i] = 0.0f;
  std::vector<double> sq;
  for (std::int64_t m = 0; m < M; ++m) {
    const std::int64_t s = bounds[m], L = bounds[m + 1] - s;
    double peak = 0.0;
    for (std::int64_t j = 0; j < K; ++j)
      for (std::int64_t d = 0; d < L; ++d)
        peak = std::fmax(peak, std::fabs(rows[j * D + s + d] - mean[s + d]));
    int exponent = 0;
    std::frexp(peak / 127, &exponent);  // peak / 127 < 2^exponent
    if (exponent < -40 || exponent > 40) return false;
    const double scale = std::ldexp(1.0, exponent);
    bscale[m] = static_cast<float>(scale);
    sq.resize(L);
    for (std::int64_t j = 0; j < K; ++j) {
      for (std::int64_t d = 0; d < L; ++d) {
        const double scaled = (rows[j * D + s + d] - mean[s + d]) / scale;  // exact, |.| < 127
        const double rounded = std::nearbyint(scaled);  // ties to even, as np.rint
        cq[blocked_at(Kp, s, L, j, d)] = static_cast<std::int8_t>(rounded);
        sq[d] = (scaled - rounded) * (scaled - rounded);
      }
      const double err = std::sqrt(pairwise_sum(sq.data(), L));
      float e32 = static_cast<float>(err);  // rounded up: berr must not undershoot
      if (static_cast<double>(e32) < err) e32 = std::nextafter(e32, INFINITY);
      berr[m * Kp + j] = e32;
    }
  }
  return true;
}

}  // namespace pyspec
