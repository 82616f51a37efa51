// Shared types and layout constants for pyspec's kernels.
//
// Contract for every kernel: arrays are C-contiguous, of the exact dtype named
// in the header comment, aligned only to their element size; sizes are
// validated by the Python wrapper and re-checked by the binding layer.
// Kernels assume finite float input (preprocess masks NaN/Inf before here).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyspec {

using index_t = std::int64_t;   // spectrum / code ids (numpy int64)
using word_t = std::uint64_t;   // one 64-bit word of a binary code

// Binary codes are stored as rows of 64-bit words; 32-bit codes occupy one
// zero-padded word. 256 bits = 4 words is the main layout.
constexpr int kCodeWords256 = 4;
constexpr int kMaxCodeWords = 8;  // 512 bits

// Id used to pad result rows when fewer than k results exist.
constexpr index_t kMissingId = -1;

}  // namespace pyspec
