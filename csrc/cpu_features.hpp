// CPU/OS feature detection and the SIMD level the dispatchers use.
//
// The level is chosen once (lazily, thread-safe) as the best level that is
// (a) compiled in, (b) supported by the CPU and enabled by the OS (XSAVE state
// for YMM/ZMM registers), and (c) not above the cap given by the environment
// variable PYSPEC_SIMD=scalar|avx2|avx512. set_simd_level() lets tests force
// any lower-or-equal available level at run time.
#pragma once

#include <string>

namespace pyspec {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

const char* simd_level_name(SimdLevel level);
// Parses "scalar", "avx2", "avx512"; throws std::invalid_argument otherwise.
SimdLevel parse_simd_level(const std::string& name);

// Highest level compiled into this build.
SimdLevel compiled_simd_level();
// Highest level this CPU and OS support (independent of the build).
SimdLevel detected_simd_level();
// Level the dispatchers use now.
SimdLevel selected_simd_level();
// Forces the dispatch level; throws std::invalid_argument if the level is
// above min(compiled, detected). Not thread-safe against running kernels.
void set_simd_level(SimdLevel level);

}  // namespace pyspec
