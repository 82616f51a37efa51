// PQ scalar kernels (the reference every ISA variant reproduces bit for bit)
// and the run-time dispatch: SIMD level and ADC scan variant.
#include "pq.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu_features.hpp"
#include "pq_internal.hpp"
#include "pq_kernel_common.hpp"

namespace pyspec {
namespace {

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

// ADC scan variant at the AVX2/AVX-512 levels: 1 = the level's gather
// kernels, 0 = the interleaved scalar scan (adc_scalar). Both return
// bit-identical sums (same order per row); the choice only trades speed.
//
// Static rule: interleaved at every level, unless overridden. The first wave
// chose by timing both once per process on a synthetic 4096 x 24 uint8 block
// (K = 256); on the benchmark machine (AMD EPYC, Zen 4) that timing chose
// the interleaved scan in every process at both levels, and gathers are
// microcoded on AMD Zen and slowed by Intel's Gather Data Sampling
// mitigation, so a timing race decided between near-equal speeds and made
// speed differ between processes. Override: the environment variable
// PYSPEC_PQ_SCAN=interleaved|gather (read at first use; any other value is
// a ConfigError), or pq_set_scan_variant() (which wins over the variable).
constexpr int kDefaultScanVariant = 0;

int parse_scan_variant(const std::string& name) {
  if (name == "interleaved") return 0;
  if (name == "gather") return 1;
  throw ConfigError("PYSPEC_PQ_SCAN='" + name +
                    "' is not a PQ scan variant; expected 'interleaved' or 'gather'");
}

int env_scan_variant() {
  // A throwing initialiser leaves the static unset, so every later call
  // reports the bad value again.
  static const int variant = [] {
    const char* env = std::getenv("PYSPEC_PQ_SCAN");
    return env && *env ? parse_scan_variant(env) : kDefaultScanVariant;
  }();
  return variant;
}

std::atomic<int> g_scan_override{-1};  // -1: follow the rule (env, then default)

int scan_variant_in_use() {
  const int v = g_scan_override.load();
  return v >= 0 ? v : env_scan_variant();
}

[[maybe_unused]] detail::PQKernels with_scan_variant(detail::PQKernels simd) {
  if (scan_variant_in_use() == 0) {
    simd.adc_u8 = adc_scalar<std::uint8_t>;
    simd.adc_u16 = adc_scalar<std::uint16_t>;
  }
  return simd;
}
}  // namespace

void pq_set_scan_variant(int variant) {
  if (variant < -1 || variant > 1) throw std::invalid_argument("scan variant must be -1, 0 or 1");
  g_scan_override.store(variant);
}

int pq_scan_variant() {
  const int v = scan_variant_in_use();
  return selected_simd_level() == SimdLevel::Scalar ? 0 : v;
}

namespace detail {
PQKernels pq_active_kernels() {
  static const PQKernels scalar = pq_kernels_scalar();
#ifdef PYSPEC_HAVE_AVX2
  static const PQKernels avx2_gather = pq_kernels_avx2();
#endif
#ifdef PYSPEC_HAVE_AVX512
  static const PQKernels avx512_gather = pq_kernels_avx512();
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

}  // namespace pyspec
