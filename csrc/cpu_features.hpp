// CPU/OS feature detection and the SIMD level the dispatchers use.
//
// The level is chosen once (lazily, thread-safe) as the best level that is
// (a) compiled in, (b) supported by the CPU and enabled by the OS (XSAVE state
// for YMM/ZMM registers), and (c) not above the cap given by the environment
// variable PYSPEC_SIMD=scalar|avx2|avx512 (any other value is a ConfigError,
// raised by the first kernel call). set_simd_level() lets tests force any
// lower-or-equal available level at run time.
//
// Requirements per family: the AVX-512 level needs AVX-512 F/BW/VL/DQ (plus
// AVX2/FMA/BMI2), which is all the PQ float kernels use; the Hamming
// popcount kernels also need VPOPCNTDQ and run at AVX2 where it is missing
// (hamming_simd_level()).
#pragma once

#include <stdexcept>
#include <string>

namespace pyspec {

// A bad environment setting (PYSPEC_SIMD, PYSPEC_PQ_SCAN); the bindings map
// it to pyspec.errors.ConfigurationError.
struct ConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

const char* simd_level_name(SimdLevel level);
// Parses "scalar", "avx2", "avx512"; throws std::invalid_argument otherwise.
SimdLevel parse_simd_level(const std::string& name);

// Highest level compiled into this build.
SimdLevel compiled_simd_level();
// Highest level this CPU and OS support (independent of the build).
SimdLevel detected_simd_level();
// Level the dispatchers use now (throws ConfigError for a bad PYSPEC_SIMD).
SimdLevel selected_simd_level();
// Whether the CPU has AVX-512 VPOPCNTDQ (with the AVX-512 level's features).
bool detected_avx512_popcount();
// Level of the Hamming kernels: the selected level, but AVX2 in place of
// AVX-512 when the CPU lacks VPOPCNTDQ.
SimdLevel hamming_simd_level();
// Forces the dispatch level; throws std::invalid_argument if the level is
// above min(compiled, detected). Not thread-safe against running kernels.
void set_simd_level(SimdLevel level);

}  // namespace pyspec
