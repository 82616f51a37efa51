// Internal pieces shared by the PQ translation units (pq_dispatch.cpp,
// pq_tables.cpp, pq_scan.cpp, pq_train.cpp, ivfpq.cpp): sizes that decide threading and
// blocking, the 64-byte aligned scratch buffers, codebook checks and the
// dispatcher's kernel table. Not included by the ISA files.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>

#include "pq.hpp"

namespace pyspec {
namespace detail {
// The kernels of the selected SIMD level, with the ADC scan variant applied
// (pq_dispatch.cpp).
PQKernels pq_active_kernels();

// The level's row-major ADC kernel for a code type (uint8 or uint16 codes).
inline AdcU8Fn adc_kernel(const PQKernels& kn, const std::uint8_t*) { return kn.adc_u8; }
inline AdcU16Fn adc_kernel(const PQKernels& kn, const std::uint16_t*) { return kn.adc_u16; }
}  // namespace detail

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

inline void check_codebook(const PQCodebook& cb) {
  if (cb.M < 1 || cb.K < 1 || cb.D < cb.M || cb.Kp < cb.K || cb.Kp % kCentroidBlock)
    throw std::invalid_argument("pq: inconsistent codebook sizes");
  if (cb.bounds[0] != 0 || cb.bounds[cb.M] != cb.D)
    throw std::invalid_argument("pq: segment bounds must start at 0 and end at D");
  for (std::int64_t m = 0; m < cb.M; ++m)
    if (cb.bounds[m + 1] <= cb.bounds[m])
      throw std::invalid_argument("pq: segment bounds must be strictly increasing");
}

}  // namespace
}  // namespace pyspec
