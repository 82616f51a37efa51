// Multi-index hashing: table build, checks, and the k-NN / range drivers.
//
// Cost notes. A probe reads two neighbouring offsets (one cache miss in a
// table of up to 64 MiB); a candidate reads one code at a random row (one
// miss in the code array; the misses of a bucket overlap, prefetched below).
// The work units of mih.hpp (kMihProbeCost, kMihCandidateCost) price these
// in codes of a single-query linear scan. Check, 2M codes of simulated
// spectra, 100 single queries, 1 thread, machine under load (load average
// 9 on 2 cores): MIH took 14-25 ns per work unit, the scan 12-18 ns per
// code in the same runs, so one unit is about one scanned code.
// The popcounts use the portable build's SWAR count: each candidate costs
// one memory miss, which dwarfs the arithmetic.
#include "mih.hpp"

#include <algorithm>
#include <climits>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "hamming_generic.hpp"
#include "parallel.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

// Rows of one bucket ahead of the one being verified whose codes are
// prefetched: enough to overlap the misses of a large bucket.
constexpr std::uint32_t kPrefetchAhead = 8;

// Substring layout derived from the widths and the bit order: for each
// table, the code bits its key is made of, their mask (for substring
// distances of a code XOR query) and its offset-array base.
struct Layout {
  int m = 0;
  int n_words = 0;
  bool contiguous = true;  // bit order 0, 1, 2, ...: keys are bit ranges
  int starts[kMihMaxTables];
  int widths[kMihMaxTables];
  std::int64_t bases[kMihMaxTables];
  std::uint16_t bits[kMaxCodeWords * 64];  // table t: bits[starts[t] .. + widths[t])
  word_t masks[kMihMaxTables][kMaxCodeWords];
  int max_width = 0;
};

Layout make_layout(const std::int32_t* widths, int n_tables, const std::int32_t* bit_order,
                   int n_words) {
  if (n_tables < 1 || n_tables > kMihMaxTables)
    throw std::invalid_argument("mih: n_tables must be in [1, 64]");
  if (n_words < 1 || n_words > kMaxCodeWords)
    throw std::invalid_argument("mih: n_words must be in [1, 8]");
  Layout l;
  l.m = n_tables;
  l.n_words = n_words;
  int start = 0;
  std::int64_t base = 0;
  for (int t = 0; t < n_tables; ++t) {
    const int w = widths[t];
    if (w < 1 || w > kMihMaxWidth) throw std::invalid_argument("mih: widths must be in [1, 24]");
    l.starts[t] = start;
    l.widths[t] = w;
    l.bases[t] = base;
    start += w;
    if (start > 64 * n_words) throw std::invalid_argument("mih: widths exceed the code length");
    base += (std::int64_t{1} << w) + 1;
    l.max_width = std::max(l.max_width, w);
  }
  // The bit order must list distinct bits: MIH's pigeonhole argument (and so
  // exactness) needs the substrings to be disjoint.
  word_t seen[kMaxCodeWords] = {};
  for (int j = 0; j < start; ++j) {
    const int bit = bit_order == nullptr ? j : bit_order[j];
    if (bit < 0 || bit >= 64 * n_words)
      throw std::invalid_argument("mih: bit_order entries must be bit positions of the code");
    const word_t one = word_t{1} << (bit & 63);
    if (seen[bit >> 6] & one) throw std::invalid_argument("mih: bit_order repeats a bit");
    seen[bit >> 6] |= one;
    l.bits[j] = static_cast<std::uint16_t>(bit);
    if (bit != j) l.contiguous = false;
  }
  for (int t = 0; t < n_tables; ++t) {
    std::fill_n(l.masks[t], kMaxCodeWords, word_t{0});
    for (int j = l.starts[t]; j < l.starts[t] + l.widths[t]; ++j)
      l.masks[t][l.bits[j] >> 6] |= word_t{1} << (l.bits[j] & 63);
  }
  return l;
}

// Bits [start, start + width) of a code (width <= 24, so at most two words).
inline std::uint32_t substring(const word_t* code, int start, int width) {
  const int w = start >> 6;
  const int off = start & 63;
  word_t v = code[w] >> off;
  if (off + width > 64) v |= code[w + 1] << (64 - off);
  return static_cast<std::uint32_t>(v & ((word_t{1} << width) - 1));
}

// Key of table t: its bits of the code, bit j of the key = the table's j-th
// bit. A bit range when the order is the identity; gathered bit by bit
// otherwise (a learned order, mih_build's cost is dominated by this).
inline std::uint32_t table_key(const Layout& l, const word_t* code, int t) {
  if (l.contiguous) return substring(code, l.starts[t], l.widths[t]);
  const std::uint16_t* bits = l.bits + l.starts[t];
  std::uint32_t key = 0;
  for (int j = 0; j < l.widths[t]; ++j)
    key |= static_cast<std::uint32_t>((code[bits[j] >> 6] >> (bits[j] & 63)) & 1) << j;
  return key;
}

// Bits of table t that differ, given x = code XOR query.
inline int table_distance(const Layout& l, const word_t* x, int t) {
  int d = 0;
  for (int w = 0; w < l.n_words; ++w) d += popcount64(x[w] & l.masks[t][w]);
  return d;
}

void check_sizes(index_t n_queries, index_t n_codes) {
  if (n_queries < 0 || n_codes < 0) throw std::invalid_argument("mih: negative size");
  if (n_codes >= static_cast<index_t>(UINT32_MAX))
    throw std::invalid_argument("mih: at most 2^32 - 2 codes");
}

// Next integer with the same number of set bits (Gosper's hack); masks
// enumerate every key at substring distance r from the query's key.
inline std::uint64_t next_same_popcount(std::uint64_t v) {
  const std::uint64_t c = v & (~v + 1);
  const std::uint64_t r = v + c;
  return (((r ^ v) >> 2) / c) | r;
}

// One query's search state: the query, its substring keys and the work spent.
class Searcher {
 public:
  Searcher(const Layout& l, const MihTables& tables, const word_t* codes, const index_t* ids,
           index_t n_codes, int n_words, std::int64_t max_work)
      : l_(l), tables_(tables), codes_(codes), ids_(ids), n_rows_(n_codes), n_words_(n_words),
        max_work_(max_work) {}

  void start(const word_t* query) {
    query_ = query;
    for (int t = 0; t < l_.m; ++t) keys_[t] = table_key(l_, query, t);
    work_ = 0;
  }
  std::int64_t work() const { return work_; }

  // Visits, level by level and table by table, every row whose substring t
  // is at distance r from the query's, calling take(distance, row, t, r).
  // Before each table, done(covered) is asked whether the result is final
  // given that every code with distance <= covered has been seen. Returns
  // false when the work budget ran out first.
  template <class Done, class Take>
  bool run(Done&& done, Take&& take) {
    for (int r = 0; r <= l_.max_width; ++r) {
      for (int t = 0; t < l_.m; ++t) {
        if (done(static_cast<std::int64_t>(l_.m) * r + t - 1)) return true;
        const int w = l_.widths[t];
        if (r > w) continue;
        const std::uint32_t* off = tables_.offsets + l_.bases[t];
        const std::uint32_t* rows = tables_.rows + static_cast<std::int64_t>(t) * n_rows_;
        const std::uint64_t end = std::uint64_t{1} << w;
        for (std::uint64_t mask = (std::uint64_t{1} << r) - 1; mask < end;
             mask = r == 0 ? end : next_same_popcount(mask)) {
          const std::uint32_t key = keys_[t] ^ static_cast<std::uint32_t>(mask);
          const std::uint32_t b0 = off[key], b1 = off[key + 1];
          work_ += kMihProbeCost + kMihCandidateCost * static_cast<std::int64_t>(b1 - b0);
          for (std::uint32_t i = b0; i < b1; ++i) {
            if (i + kPrefetchAhead < b1)
              __builtin_prefetch(codes_ + static_cast<std::size_t>(rows[i + kPrefetchAhead]) *
                                              n_words_);
            const std::uint32_t row = rows[i];
            const word_t* code = codes_ + static_cast<std::size_t>(row) * n_words_;
            take(code_distance_n(code, query_, n_words_), row, t, r);
          }
          if (max_work_ > 0 && work_ > max_work_) return false;
        }
      }
    }
    return true;  // every key of every table probed: every code seen
  }

  // True when (t, r) is the first (level, table) at which `row` is reached:
  // no table has a smaller substring distance and no earlier table the same.
  bool first_match(std::uint32_t row, int t, int r) const {
    const word_t* code = codes_ + static_cast<std::size_t>(row) * n_words_;
    word_t x[kMaxCodeWords];
    for (int w = 0; w < n_words_; ++w) x[w] = code[w] ^ query_[w];
    for (int j = 0; j < l_.m; ++j) {
      if (j == t) continue;
      const int d = table_distance(l_, x, j);
      if (d < r || (j < t && d == r)) return false;
    }
    return true;
  }

  index_t id(std::uint32_t row) const { return ids_[row]; }

 private:
  const Layout& l_;
  const MihTables& tables_;
  const word_t* codes_;
  const index_t* ids_;
  index_t n_rows_;
  int n_words_;
  std::int64_t max_work_;
  const word_t* query_ = nullptr;
  std::uint32_t keys_[kMihMaxTables];
  std::int64_t work_ = 0;
};

// Runs `per_query(searcher, q)` for every query in parallel; returns the
// queries for which it returned false (budget exhausted), in query order.
template <class F>
std::vector<index_t> for_queries(index_t n_queries, int threads, const Layout& l,
                                 const MihTables& tables, const word_t* codes,
                                 const index_t* ids, index_t n_codes, int n_words,
                                 std::int64_t max_work, F&& per_query) {
  std::vector<char> fell(static_cast<std::size_t>(n_queries), 0);
  ErrorCapture errors;
  (void)threads;  // only read by the OpenMP clause
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1))
  for (index_t q = 0; q < n_queries; ++q) {
    errors.run([&] {
      Searcher s(l, tables, codes, ids, n_codes, n_words, max_work);
      if (!per_query(s, q)) fell[static_cast<std::size_t>(q)] = 1;
    });
  }
  errors.rethrow();
  std::vector<index_t> out;
  for (index_t q = 0; q < n_queries; ++q)
    if (fell[static_cast<std::size_t>(q)]) out.push_back(q);
  return out;
}

// Copies the listed queries into one contiguous array for the scan fallback.
std::vector<word_t> gather(const word_t* queries, const std::vector<index_t>& which,
                           int n_words) {
  std::vector<word_t> out(which.size() * static_cast<std::size_t>(n_words));
  for (std::size_t i = 0; i < which.size(); ++i)
    std::copy_n(queries + which[i] * n_words, n_words, out.data() + i * n_words);
  return out;
}

int query_threads(int num_threads, index_t n_queries) {
  return n_queries > 1 ? resolve_threads(num_threads) : 1;
}

}  // namespace

std::int64_t mih_offsets_size(const std::int32_t* widths, int n_tables) {
  std::int64_t size = 0;
  for (int t = 0; t < n_tables; ++t) size += (std::int64_t{1} << widths[t]) + 1;
  return size;
}

void mih_build(const word_t* codes, index_t n_codes, int n_words, const std::int32_t* widths,
               int n_tables, const std::int32_t* bit_order, int num_threads,
               std::uint32_t* offsets, std::uint32_t* rows) {
  const Layout l = make_layout(widths, n_tables, bit_order, n_words);
  check_sizes(0, n_codes);
  const int threads = std::min(resolve_threads(num_threads), n_tables);
  (void)threads;  // only read by the OpenMP clause
  // Counting sort per table: counts go to off[key + 1], a prefix sum turns
  // them into bucket starts, the scatter advances off[key] to the bucket's
  // end (= the next bucket's start), and one shift restores the starts.
  // Rows are visited in ascending order, so each bucket lists them sorted.
  // The keys are computed once per table (a gathered key costs one step per
  // bit) and kept for the scatter.
  ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1))
  for (int t = 0; t < n_tables; ++t) {
    errors.run([&] {
      std::uint32_t* off = offsets + l.bases[t];
      std::uint32_t* out = rows + static_cast<std::int64_t>(t) * n_codes;
      const std::size_t n_keys = std::size_t{1} << l.widths[t];
      std::vector<std::uint32_t> keys(static_cast<std::size_t>(n_codes));
      std::fill(off, off + n_keys + 1, 0u);
      for (index_t i = 0; i < n_codes; ++i) {
        keys[static_cast<std::size_t>(i)] = table_key(l, codes + i * n_words, t);
        ++off[keys[static_cast<std::size_t>(i)] + 1];
      }
      for (std::size_t key = 0; key < n_keys; ++key) off[key + 1] += off[key];
      for (index_t i = 0; i < n_codes; ++i)
        out[off[keys[static_cast<std::size_t>(i)]]++] = static_cast<std::uint32_t>(i);
      for (std::size_t key = n_keys; key > 0; --key) off[key] = off[key - 1];
      off[0] = 0;
    });
  }
  errors.rethrow();
}

bool mih_check_tables(const std::int32_t* widths, int n_tables, index_t n_codes,
                      const std::uint32_t* offsets, const std::uint32_t* rows) {
  std::int64_t base = 0;
  for (int t = 0; t < n_tables; ++t) {
    const std::size_t n_keys = std::size_t{1} << widths[t];
    const std::uint32_t* off = offsets + base;
    if (off[0] != 0 || off[n_keys] != static_cast<std::uint64_t>(n_codes)) return false;
    for (std::size_t key = 0; key < n_keys; ++key)
      if (off[key + 1] < off[key]) return false;
    base += static_cast<std::int64_t>(n_keys) + 1;
  }
  const std::int64_t n_rows = static_cast<std::int64_t>(n_tables) * n_codes;
  for (std::int64_t i = 0; i < n_rows; ++i)
    if (rows[i] >= static_cast<std::uint64_t>(n_codes)) return false;
  return true;
}

void mih_knn(const word_t* queries, index_t n_queries, const word_t* codes, const index_t* ids,
             index_t n_codes, int n_words, const MihTables& tables, index_t k,
             std::int32_t pad_distance, std::int64_t max_work, int num_threads,
             std::int32_t* out_distances, index_t* out_ids, std::int64_t* out_work) {
  const Layout l = make_layout(tables.widths, tables.n_tables, tables.bit_order, n_words);
  check_sizes(n_queries, n_codes);
  if (k < 0) throw std::invalid_argument("mih_knn: k must be >= 0");
  std::fill(out_work, out_work + n_queries, 0);
  if (n_queries == 0 || k == 0) return;
  if (n_codes == 0) {
    std::fill(out_distances, out_distances + n_queries * k, pad_distance);
    std::fill(out_ids, out_ids + n_queries * k, kMissingId);
    return;
  }
  const std::size_t kk = static_cast<std::size_t>(k);
  const std::vector<index_t> fell = for_queries(
      n_queries, query_threads(num_threads, n_queries), l, tables, codes, ids, n_codes,
      n_words, max_work, [&](Searcher& s, index_t q) {
        TopK<std::int32_t> top(kk);
        s.start(queries + q * n_words);
        const bool finished = s.run(
            [&](std::int64_t covered) { return top.full() && top.worst() <= covered; },
            [&](std::int32_t d, std::uint32_t row, int t, int r) {
              const index_t id = s.id(row);
              if (top.accepts(d, id) && s.first_match(row, t, r)) top.push(d, id);
            });
        out_work[q] = finished ? s.work() : -s.work() - 1;
        if (finished) top.extract_sorted(out_distances + q * k, out_ids + q * k, pad_distance);
        return finished;
      });
  if (fell.empty()) return;
  const std::vector<word_t> again = gather(queries, fell, n_words);
  const index_t nf = static_cast<index_t>(fell.size());
  std::vector<std::int32_t> d(static_cast<std::size_t>(nf * k));
  std::vector<index_t> i(static_cast<std::size_t>(nf * k));
  hamming_knn(again.data(), nf, codes, ids, n_codes, n_words, k, pad_distance, num_threads,
              d.data(), i.data());
  for (index_t j = 0; j < nf; ++j) {
    std::copy_n(d.data() + j * k, k, out_distances + fell[j] * k);
    std::copy_n(i.data() + j * k, k, out_ids + fell[j] * k);
  }
}

void mih_range(const word_t* queries, index_t n_queries, const word_t* codes,
               const index_t* ids, index_t n_codes, int n_words, const MihTables& tables,
               std::int32_t radius, std::int64_t max_work, int num_threads, RangeHits& out,
               std::int64_t* out_work) {
  const Layout l = make_layout(tables.widths, tables.n_tables, tables.bit_order, n_words);
  check_sizes(n_queries, n_codes);
  using Hits = RangeHitList;
  std::vector<Hits> per_query(static_cast<std::size_t>(n_queries));
  std::fill(out_work, out_work + n_queries, 0);
  std::vector<index_t> fell;
  if (n_codes > 0 && radius >= 0) {
    fell = for_queries(
        n_queries, query_threads(num_threads, n_queries), l, tables, codes, ids, n_codes,
        n_words, max_work, [&](Searcher& s, index_t q) {
          Hits& h = per_query[static_cast<std::size_t>(q)];
          s.start(queries + q * n_words);
          const bool finished = s.run(
              [&](std::int64_t covered) { return covered >= radius; },
              [&](std::int32_t d, std::uint32_t row, int t, int r) {
                if (d <= radius && s.first_match(row, t, r)) h.emplace_back(d, s.id(row));
              });
          out_work[q] = finished ? s.work() : -s.work() - 1;
          if (finished) std::sort(h.begin(), h.end());
          else Hits().swap(h);
          return finished;
        });
  }
  if (!fell.empty()) {
    const std::vector<word_t> again = gather(queries, fell, n_words);
    RangeHits scanned;
    hamming_range(again.data(), static_cast<index_t>(fell.size()), codes, ids, n_codes, n_words,
                  radius, num_threads, scanned);
    for (std::size_t j = 0; j < fell.size(); ++j) {
      Hits& h = per_query[static_cast<std::size_t>(fell[j])];
      for (index_t o = scanned.offsets[j]; o < scanned.offsets[j + 1]; ++o)
        h.emplace_back(scanned.distances[o], scanned.ids[o]);
    }
  }
  pack_range_hits(per_query, out);
}

}  // namespace pyspec
