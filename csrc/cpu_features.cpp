#include "cpu_features.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define PYSPEC_X86 1
#endif

namespace pyspec {
namespace {

#ifdef PYSPEC_X86
unsigned long long read_xcr0() {
  unsigned int eax = 0, edx = 0;
  // xgetbv with ecx=0; encoded as bytes so no -mxsave flag is needed.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

struct Detected {
  SimdLevel level;
  bool vpopcntdq;
};

Detected detect() {
  unsigned int a, b, c, d;
  constexpr Detected kScalar{SimdLevel::Scalar, false};
  if (!__get_cpuid(1, &a, &b, &c, &d)) return kScalar;
  const bool osxsave = c & (1u << 27);
  const bool popcnt = c & (1u << 23);
  const bool fma = c & (1u << 12);
  if (!osxsave || !popcnt) return kScalar;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;      // SSE + AVX state
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;    // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return kScalar;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool bmi2 = b & (1u << 8);
  const bool avx512f = b & (1u << 16);
  const bool avx512dq = b & (1u << 17);
  const bool avx512bw = b & (1u << 30);
  const bool avx512vl = b & (1u << 31);
  const bool vpopcntdq = c & (1u << 14);
  if (zmm_os && avx512f && avx512bw && avx512vl && avx512dq && avx2 && fma && bmi2)
    return {SimdLevel::AVX512, vpopcntdq};
  if (ymm_os && avx2 && fma && bmi2) return {SimdLevel::AVX2, false};
  return kScalar;
}
#else
Detected detect() { return {SimdLevel::Scalar, false}; }
#endif

const Detected& detected() {
  static const Detected d = detect();
  return d;
}

SimdLevel min_level(SimdLevel x, SimdLevel y) {
  return static_cast<int>(x) < static_cast<int>(y) ? x : y;
}

SimdLevel initial_level() {
  SimdLevel level = min_level(compiled_simd_level(), detected_simd_level());
  const char* cap = std::getenv("PYSPEC_SIMD");
  if (cap && *cap) {
    SimdLevel capped;
    try {
      capped = parse_simd_level(cap);
    } catch (const std::invalid_argument&) {
      throw ConfigError(std::string("PYSPEC_SIMD='") + cap +
                        "' is not a SIMD level; expected scalar, avx2 or avx512 (or unset)");
    }
    level = min_level(level, capped);
  }
  return level;
}

// A throwing initial_level() leaves the slot uninitialised, so every call
// reports a bad PYSPEC_SIMD again.
std::atomic<int>& level_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_level())};
  return slot;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

SimdLevel parse_simd_level(const std::string& name) {
  if (name == "scalar") return SimdLevel::Scalar;
  if (name == "avx2") return SimdLevel::AVX2;
  if (name == "avx512") return SimdLevel::AVX512;
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "'; expected scalar, avx2 or avx512");
}

SimdLevel compiled_simd_level() {
#if defined(PYSPEC_HAVE_AVX512)
  return SimdLevel::AVX512;
#elif defined(PYSPEC_HAVE_AVX2)
  return SimdLevel::AVX2;
#else
  return SimdLevel::Scalar;
#endif
}

SimdLevel detected_simd_level() { return detected().level; }

bool detected_avx512_popcount() {
  return detected().level == SimdLevel::AVX512 && detected().vpopcntdq;
}

SimdLevel hamming_simd_level() {
  const SimdLevel level = selected_simd_level();
  if (level == SimdLevel::AVX512 && !detected_avx512_popcount()) return SimdLevel::AVX2;
  return level;
}

SimdLevel selected_simd_level() {
  return static_cast<SimdLevel>(level_slot().load(std::memory_order_relaxed));
}

void set_simd_level(SimdLevel level) {
  const SimdLevel limit = min_level(compiled_simd_level(), detected_simd_level());
  if (static_cast<int>(level) > static_cast<int>(limit))
    throw std::invalid_argument(std::string("SIMD level '") + simd_level_name(level) +
                                "' is not available here (best: " + simd_level_name(limit) + ")");
  level_slot().store(static_cast<int>(level), std::memory_order_relaxed);
}

}  // namespace pyspec
