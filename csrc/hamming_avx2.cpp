// AVX2 level of the Hamming family. Compiled with -mavx2 -mpopcnt; reached
// only through the dispatcher in hamming.cpp after cpu_features confirmed
// support.
//
// AVX2 has no vector popcount. The nibble-table (vpshufb) popcount needs
// about six instructions per 256 bits plus a horizontal sum per code, while
// four scalar POPCNTs per 256-bit code already issue at several per cycle, so
// this level is the portable loop of hamming_generic.hpp compiled with POPCNT.
// That is where its gain over the scalar build comes from: the portable build
// has to emulate popcount with shifts and masks (see bench/RESULTS.md).
#include "hamming.hpp"
#include "hamming_generic.hpp"

namespace pyspec {
namespace avx2 {

const HammingKernels& hamming_kernels() {
  static const HammingKernels kernels{scan_rows_generic, nullptr, nullptr};
  return kernels;
}

}  // namespace avx2
}  // namespace pyspec
