// Portable Hamming block scans written with __builtin_popcountll (internal).
//
// Included by hamming.cpp (portable flags: the compiler emits a bit-twiddling
// popcount, which is why the scalar level is slow) and by the ISA files, which
// are compiled with -mpopcnt so the same loops become one POPCNT per word.
// Everything here has internal linkage (anonymous namespace): each including
// file gets its own copy compiled with its own flags, so the linker can never
// substitute a copy built for a different ISA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hamming.hpp"

namespace pyspec {
namespace {

// One instruction where the file is compiled with POPCNT. Without it GCC
// turns __builtin_popcountll into a call to libgcc's __popcountdi2, so the
// portable build uses the branch-free SWAR count instead (a dozen inlined
// integer operations per word): 11.9 -> 5.1 ns per 256-bit code, CPU time,
// 1M codes, one query.
inline int popcount64(word_t x) {
#ifdef __POPCNT__
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
#endif
}

template <int W>
inline std::int32_t code_distance(const word_t* a, const word_t* b) {
  std::int32_t d = 0;
  for (int w = 0; w < W; ++w) d += popcount64(a[w] ^ b[w]);
  return d;
}

inline std::int32_t code_distance_n(const word_t* a, const word_t* b, int n_words) {
  std::int32_t d = 0;
  for (int w = 0; w < n_words; ++w) d += popcount64(a[w] ^ b[w]);
  return d;
}

// Row-major scan with the word count known at compile time (1, 2, 4, 8), so
// the inner loop is fully unrolled.
template <int W>
std::size_t scan_rows_fixed(const word_t* codes, std::size_t n, const word_t* query,
                            std::int32_t threshold, std::uint32_t* pos, std::int32_t* dist) {
  word_t q[W];
  for (int w = 0; w < W; ++w) q[w] = query[w];
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t d = code_distance<W>(codes + i * W, q);
    if (d <= threshold) {
      pos[count] = static_cast<std::uint32_t>(i);
      dist[count] = d;
      ++count;
    }
  }
  return count;
}

inline std::size_t scan_rows_generic(const word_t* codes, std::size_t n, int n_words,
                                     const word_t* query, std::int32_t threshold,
                                     std::uint32_t* pos, std::int32_t* dist) {
  switch (n_words) {
    case 1: return scan_rows_fixed<1>(codes, n, query, threshold, pos, dist);
    case 2: return scan_rows_fixed<2>(codes, n, query, threshold, pos, dist);
    case 4: return scan_rows_fixed<4>(codes, n, query, threshold, pos, dist);
    case 8: return scan_rows_fixed<8>(codes, n, query, threshold, pos, dist);
    default: break;
  }
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t d = code_distance_n(codes + i * n_words, query, n_words);
    if (d <= threshold) {
      pos[count] = static_cast<std::uint32_t>(i);
      dist[count] = d;
      ++count;
    }
  }
  return count;
}

// Row-major -> groups of kTransposeLanes codes, word-major inside a group.
inline void transpose_rows_generic(const word_t* codes, std::size_t n, int n_words,
                                   word_t* out) {
  const std::size_t lanes = kTransposeLanes;
  const std::size_t groups = (n + lanes - 1) / lanes;
  for (std::size_t g = 0; g < groups; ++g) {
    word_t* dst = out + g * lanes * n_words;
    for (std::size_t l = 0; l < lanes; ++l) {
      const std::size_t i = g * lanes + l;
      for (int w = 0; w < n_words; ++w)
        dst[w * lanes + l] = i < n ? codes[i * n_words + w] : 0;
    }
  }
}

}  // namespace
}  // namespace pyspec
