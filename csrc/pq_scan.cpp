// PQ ADC k-NN search: the per-query scans (with early exit, scan layout
// and bound tables), the vertical batch scan, and the scan-layout copy.
#include "pq.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "parallel.hpp"
#include "pq_adc.hpp"
#include "pq_internal.hpp"
#include "pq_kernel_common.hpp"
#include "topk.hpp"

namespace pyspec {
namespace {

// The level's segment-major kernels for a code type.
inline detail::VAdcU8Fn vadc_kernel(const detail::PQKernels& kn, const std::uint8_t*) {
  return kn.vadc_u8;
}
inline detail::VAdcU16Fn vadc_kernel(const detail::PQKernels& kn, const std::uint16_t*) {
  return kn.vadc_u16;
}

// Row-major ADC sums of n rows, by the fastest path for the table shape and
// whether an early-exit bound is known.
template <class Code>
inline void adc(const detail::PQKernels& kn, const float* table, std::int64_t M, std::int64_t K,
                const Code* codes, std::int64_t n, std::int64_t readable, float bound, float* out,
                std::int32_t* idx) {
  if (use_grouped_scan(M, K)) return adc_grouped(table, M, K, codes, n, bound, out);
  if (bound < kInf) return adc_survivors(table, M, K, codes, n, bound, out, idx);
  detail::adc_kernel(kn, codes)(table, M, K, codes, n, readable, out);
}

// Pushes the nb distances d[i] (ids[i]) that can enter the top-k into h.
inline void push_block(TopK<float>& h, const float* d, const index_t* ids, std::int64_t nb) {
  float thr = h.full() ? h.worst() : kInf;
  for (std::int64_t i = 0; i < nb; ++i) {
    if (d[i] <= thr) {  // <=: ties are settled by id inside push()
      h.push(d[i], ids[i]);
      if (h.full()) thr = h.worst();
    }
  }
}

// Pool size at which BoundScan (below) evaluates before the end of its part
// of the database: only degenerate data (many rows with equal bounds) gets
// there; it caps the pool's memory (1 MB).
constexpr std::size_t kPoolRows = 65536;
// Rows per exact-entry batch when a pool is evaluated.
constexpr std::size_t kEvalRows = 8;

// One query's scan over its bound tables (pq.hpp, "Bound tables"), block
// by block, into a top-k h. The pruning bound is the k-th smallest
// upper-bound sum of the rows met so far (valid: those k rows are at least
// that close), kept in `upper_k_`, or h's k-th distance if smaller. Rows
// whose lower-bound sums survive a block (segmajor_passes) wait in a pool
// with their lower-bound sums and add their upper-bound sums. At the end
// the pool is evaluated in order of lower-bound sum: exact distances (from
// ExactEntries, in segment order: the same floats as every other path) are
// pushed into h until the next lower-bound sum passes reordered_bound() of
// h's k-th distance, which proves the rest cannot enter. So exact entries
// (each a random ~400-byte codebook read, ~150 ns) are computed only for
// the rows that end up near the top-k, while the bound tightens block by
// block as it would with exact tables. In the first block (no bound yet)
// the k rows with the smallest lower bounds give the first bound.
template <class Code>
class BoundScan {
 public:
  BoundScan(const float* lower, const std::int32_t* order, ExactEntries& exact, const Code* scan,
            const index_t* ids, std::int64_t M, std::int64_t K, std::size_t k)
      : lower_(lower), upper_(exact.upper()), order_(order), exact_(exact), scan_(scan),
        ids_(ids), M_(M), K_(K), upper_k_(k) {}

  void block(std::int64_t b, std::int64_t nb, TopK<float>& h, float* out, std::int32_t* idx) {
    const std::int64_t i0 = b * kScanLayoutRows;
    const Code* blk = scan_ + b * M_ * kScanLayoutRows;
    const float bound = this->bound(h);
    if (bound < kInf) {
      const std::int64_t cnt = segmajor_passes(lower_, M_, K_, blk, nb, bound, order_, out, idx);
      for (std::int64_t j = 0; j < cnt; ++j) add(out[idx[j]], i0 + idx[j]);
    } else {
      segmajor_passes(lower_, M_, K_, blk, nb, kInf, nullptr, out, idx);
      for (std::int64_t i = 0; i < nb; ++i) idx[i] = static_cast<std::int32_t>(i);
      const std::int64_t first =
          std::min<std::int64_t>(nb, upper_k_.k() - upper_k_.size());
      std::nth_element(idx, idx + first, idx + nb,
                       [&](std::int32_t x, std::int32_t y) { return out[x] < out[y]; });
      for (std::int64_t j = 0; j < first; ++j) add(out[idx[j]], i0 + idx[j]);
      const float pb = reordered_bound(this->bound(h), M_);
      for (std::int64_t j = first; j < nb; ++j)
        if (out[idx[j]] <= pb) add(out[idx[j]], i0 + idx[j]);
    }
    if (pool_.size() >= kPoolRows) evaluate(h);
  }

  void evaluate(TopK<float>& h) {
    auto by_bound = [](const Candidate& a, const Candidate& b) { return a.bound < b.bound; };
    const float pb = reordered_bound(bound(h), M_);
    const auto alive = std::partition(pool_.begin(), pool_.end(),
                                      [&](const Candidate& c) { return c.bound <= pb; });
    std::sort(pool_.begin(), alive, by_bound);
    const std::size_t end = alive - pool_.begin();
    std::size_t done = 0;
    while (done < end && (!h.full() || pool_[done].bound <= reordered_bound(h.worst(), M_))) {
      const std::size_t next = std::min(end, done + kEvalRows);
      push_exact(done, next, h);
      done = next;
    }
    pool_.clear();
  }

 private:
  struct Candidate {
    float bound;
    std::int64_t row;
  };

  // The pruning bound (+inf until k rows have been met).
  float bound(const TopK<float>& h) const {
    const float u = upper_k_.full() ? upper_k_.worst() : kInf;
    return h.full() && h.worst() < u ? h.worst() : u;
  }

  void add(float lower_sum, std::int64_t row) {
    pool_.push_back({lower_sum, row});
    float s = 0.0f;  // segment order: >= the row's exact distance (pq.hpp)
    for (std::int64_t m = 0; m < M_; ++m) s += upper_[m * K_ + scan_code(scan_, M_, row, m)];
    if (!upper_k_.full() || s <= upper_k_.worst()) upper_k_.push(s, row);
  }

  void push_exact(std::size_t a, std::size_t b, TopK<float>& h) {
    // Each row's codes are read once from the scan layout (M random reads).
    codes_.clear();
    for (std::size_t i = a; i < b; ++i)
      for (std::int64_t m = 0; m < M_; ++m) codes_.push_back(scan_code(scan_, M_, pool_[i].row, m));
    const float* t = exact_.fill(codes_.data(), static_cast<std::int64_t>(b - a));
    for (std::size_t i = a; i < b; ++i) {
      const std::int32_t* c = codes_.data() + (i - a) * M_;
      float s = 0.0f;
      for (std::int64_t m = 0; m < M_; ++m) s += t[m * K_ + c[m]];
      if (!h.full() || s <= h.worst()) h.push(s, ids_[pool_[i].row]);
    }
  }

  const float* lower_;
  const float* upper_;
  const std::int32_t* order_;
  ExactEntries& exact_;
  const Code* scan_;
  const index_t* ids_;
  std::int64_t M_, K_;
  TopK<float> upper_k_;  // the k smallest upper-bound sums (row as id)
  std::vector<Candidate> pool_;
  std::vector<std::int32_t> codes_;  // push_exact's rows x M codes
};

// ExactEntries for nq queries Q (D floats each, upper-bound tables `upper`)
// in this thread's scratch; get() is null when nq = 0 (no bound tables).
class ExactScratch {
 public:
  ExactScratch(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
               const float* upper, std::int64_t nq)
      : values_(nq * cb.M * cb.K, kExactSlot) {
    entries_.reserve(nq);
    for (std::int64_t q = 0; q < nq; ++q)
      entries_.emplace_back(kn, cb, Q + q * cb.D, upper + q * cb.M * cb.K,
                            values_.data() + q * cb.M * cb.K);
    for (auto& e : entries_) ptrs_.push_back(&e);
  }
  ExactEntries* const* get() const { return ptrs_.empty() ? nullptr : ptrs_.data(); }

 private:
  TableScratch values_;
  std::vector<ExactEntries> entries_;
  std::vector<ExactEntries*> ptrs_;
};

// Exit orders (exit_order) of gq query tables, computed once per query
// before the database is split among threads; empty unless the scan layout
// is scanned with early exit.
inline std::vector<std::vector<std::int32_t>> exit_orders(const float* const* tabs,
                                                          std::int64_t gq, std::int64_t M,
                                                          std::int64_t K, bool used) {
  std::vector<std::vector<std::int32_t>> orders(used ? gq : 0);
  for (std::size_t g = 0; g < orders.size(); ++g) exit_order(tabs[g], M, K, orders[g]);
  return orders;
}

// Part `part` of `nparts` of the database, scanned for `gq` queries whose
// tables are tabs[g] (M x K each) into heaps[g]. Rows are split evenly, or
// by whole blocks when the scan layout `scan` is given. `early_exit`: every
// table entry is >= 0, so the scan may stop summing rows that cannot enter
// the top-k; over the scan layout it then follows orders[g] (exit_orders).
// Each block of rows is scanned by every query of the group while it is in
// cache. `exact` (scan layout with early exit only): tabs[g] are bound
// tables and exact[g] gives the exact entries (BoundScan).
template <class Code>
void scan_part(const detail::PQKernels& kn, const float* const* tabs, std::int64_t gq,
               std::int64_t M, std::int64_t K, const Code* codes, const Code* scan,
               const index_t* ids, std::int64_t n, std::int64_t part, std::int64_t nparts,
               TopK<float>* heaps, bool early_exit,
               const std::vector<std::vector<std::int32_t>>& orders,
               ExactEntries* const* exact = nullptr) {
  std::vector<float> buf(std::max(kScanBlock, kScanLayoutRows));
  std::vector<std::int32_t> idx(buf.size());
  auto bound = [&](const TopK<float>& h) { return early_exit && h.full() ? h.worst() : kInf; };
  if (scan) {
    const std::int64_t R = kScanLayoutRows, nblk = scan_layout_blocks(n);
    std::vector<BoundScan<Code>> bscan;
    for (std::int64_t g = 0; exact && g < gq; ++g)
      bscan.emplace_back(tabs[g], orders[g].data(), *exact[g], scan, ids, M, K, heaps[g].k());
    for (std::int64_t b = nblk * part / nparts; b < nblk * (part + 1) / nparts; ++b) {
      const std::int64_t i0 = b * R, nb = std::min(R, n - i0);
      for (std::int64_t g = 0; g < gq; ++g) {
        if (exact) {
          bscan[g].block(b, nb, heaps[g], buf.data(), idx.data());
          continue;
        }
        const std::int32_t* order = early_exit ? orders[g].data() : nullptr;
        adc_segmajor(tabs[g], M, K, scan + b * M * R, nb, bound(heaps[g]), order, buf.data(),
                     idx.data());
        push_block(heaps[g], buf.data(), ids + i0, nb);
      }
    }
    for (std::int64_t g = 0; g < static_cast<std::int64_t>(bscan.size()); ++g)
      bscan[g].evaluate(heaps[g]);
    return;
  }
  const std::int64_t hi = n * (part + 1) / nparts;
  for (std::int64_t i0 = n * part / nparts; i0 < hi; i0 += kScanBlock) {
    const std::int64_t nb = std::min(kScanBlock, hi - i0);
    for (std::int64_t g = 0; g < gq; ++g) {
      adc(kn, tabs[g], M, K, codes + i0 * M, nb, n - i0, bound(heaps[g]), buf.data(), idx.data());
      push_block(heaps[g], buf.data(), ids + i0, nb);
    }
  }
}


// Interleaves the tables of gq <= kVLanes queries (tabs[q], M*K each) into
// the vertical layout; lanes q >= gq are zero.
void interleave_tables(const float* const* tabs, std::int64_t gq, std::int64_t MK, float* vt) {
  for (std::int64_t e = 0; e < MK; ++e) {
    float* dst = vt + e * kVLanes;
    for (std::int64_t q = 0; q < gq; ++q) dst[q] = tabs[q][e];
    for (std::int64_t q = gq; q < kVLanes; ++q) dst[q] = 0.0f;
  }
}

// Builds the vertical table of queries [q0, q0 + gq) from given tables or
// from the queries.
void vertical_table(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
                    const float* tables, std::int64_t q0, std::int64_t gq, float* vt) {
  const std::int64_t MK = cb.M * cb.K;
  std::vector<float> own;
  const float* tabs[kVLanes];
  if (tables) {
    for (std::int64_t q = 0; q < gq; ++q) tabs[q] = tables + (q0 + q) * MK;
  } else {
    own.resize(gq * MK);
    kn.table(cb, Q + q0 * cb.D, gq, cb.D, 0, cb.M, own.data(), MK);
    for (std::int64_t q = 0; q < gq; ++q) tabs[q] = own.data() + q * MK;
  }
  interleave_tables(tabs, gq, MK, vt);
}

// Scans rows [lo, hi) with one vertical table, pushing lane q into heaps[q].
template <class Code>
void scan_range_vertical(const detail::PQKernels& kn, const float* vt, std::int64_t gq,
                         std::int64_t M, std::int64_t K, const Code* codes, const index_t* ids,
                         std::int64_t lo, std::int64_t hi, TopK<float>* heaps, float* buf) {
  float thr[kVLanes];
  for (std::int64_t q = 0; q < gq; ++q) thr[q] = heaps[q].full() ? heaps[q].worst() : kInf;
  for (std::int64_t i0 = lo; i0 < hi; i0 += kScanBlock) {
    const std::int64_t nb = std::min(kScanBlock, hi - i0);
    vadc_kernel(kn, codes)(vt, M, K, codes + i0 * M, nb, buf);
    for (std::int64_t i = 0; i < nb; ++i) {
      const float* row = buf + i * kVLanes;
      for (std::int64_t q = 0; q < gq; ++q) {
        if (row[q] <= thr[q]) {  // <=: ties are settled by id inside push()
          heaps[q].push(row[q], ids[i0 + i]);
          if (heaps[q].full()) thr[q] = heaps[q].worst();
        }
      }
    }
  }
}

// Query groups for the vertical scan: at most kVLanes queries each, split
// evenly among threads when that keeps groups of at least `vmin`. Returns
// the group size, or 0 when groups would be smaller than `vmin` (per-query
// scans are then faster).
std::int64_t vertical_group_size(std::int64_t nq, int nt, std::int64_t vmin) {
  std::int64_t ngroups = (nq + kVLanes - 1) / kVLanes;
  if (ngroups > 1 && ngroups % nt) {
    const std::int64_t even = (ngroups / nt + 1) * nt;
    if (nq / even >= vmin) ngroups = even;
  }
  const std::int64_t gsize = (nq + ngroups - 1) / ngroups;
  return gsize >= vmin ? gsize : 0;
}

// k-NN through vertical tables, queries in groups of `gsize`; with fewer
// groups than threads each group's database is also split, and the per-part
// top-k lists are merged exactly.
template <class Code>
void search_vertical(const detail::PQKernels& kn, const PQCodebook& cb, const float* Q,
                     const float* tables, std::int64_t nq, std::int64_t gsize, const Code* codes,
                     const index_t* ids, std::int64_t n, std::int64_t k, index_t* out_ids,
                     float* out_dist, int nt) {
  const std::int64_t M = cb.M, K = cb.K, vsize = M * K * kVLanes;
  const std::int64_t ngroups = (nq + gsize - 1) / gsize;
  const std::int64_t nparts = ngroups >= nt ? 1 : std::max<std::int64_t>(1, nt / ngroups);
  ErrorCapture errors;
  if (nparts == 1) {
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (std::int64_t g = 0; g < ngroups; ++g) {
      errors.run([&] {
        const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
        AlignedFloats vt(vsize);
        std::vector<float> buf(kScanBlock * kVLanes);
        vertical_table(kn, cb, Q, tables, q0, gq, vt.data());
        std::vector<TopK<float>> heaps(gq, TopK<float>(k));
        scan_range_vertical(kn, vt.data(), gq, M, K, codes, ids, 0, n, heaps.data(), buf.data());
        for (std::int64_t q = 0; q < gq; ++q)
          heaps[q].extract_sorted(out_dist + (q0 + q) * k, out_ids + (q0 + q) * k, kInf);
      });
    }
    errors.rethrow();
    return;
  }
  AlignedFloats vts(ngroups * vsize);
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && ngroups > 1))
  for (std::int64_t g = 0; g < ngroups; ++g) {
    errors.run([&] {
      const std::int64_t q0 = g * gsize;
      vertical_table(kn, cb, Q, tables, q0, std::min(gsize, nq - q0), vts.data() + g * vsize);
    });
  }
  errors.rethrow();
  const std::int64_t ntasks = ngroups * nparts;
  std::vector<std::vector<TopK<float>>> local(ntasks);
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt))
  for (std::int64_t task = 0; task < ntasks; ++task) {
    errors.run([&] {
      const std::int64_t g = task / nparts, part = task % nparts;
      const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
      const std::int64_t lo = n * part / nparts, hi = n * (part + 1) / nparts;
      std::vector<float> buf(kScanBlock * kVLanes);
      local[task].assign(gq, TopK<float>(k));
      scan_range_vertical(kn, vts.data() + g * vsize, gq, M, K, codes, ids, lo, hi,
                          local[task].data(), buf.data());
    });
  }
  errors.rethrow();
  for (std::int64_t g = 0; g < ngroups; ++g) {
    const std::int64_t q0 = g * gsize, gq = std::min(gsize, nq - q0);
    for (std::int64_t q = 0; q < gq; ++q) {
      TopK<float> merged(k);
      for (std::int64_t part = 0; part < nparts; ++part) merged.merge(local[g * nparts + part][q]);
      merged.extract_sorted(out_dist + (q0 + q) * k, out_ids + (q0 + q) * k, kInf);
    }
  }
}
}  // namespace

template <class Code>
void pq_search(const PQCodebook& cb, const float* Q, const float* tables, std::int64_t nq,
               const Code* codes, const Code* scan, const index_t* ids, std::int64_t n,
               std::int64_t k, index_t* out_ids, float* out_dist, int num_threads) {
  check_codebook(cb);
  if (k < 0) throw std::invalid_argument("pq_search: k must be >= 0");
  if (!tables && !Q) throw std::invalid_argument("pq_search: need queries or tables");
  if (k == 0 || nq == 0) return;
  const detail::PQKernels kn = detail::pq_active_kernels();
  const std::int64_t M = cb.M, K = cb.K;
  const std::int64_t table_size = M * K;
  int nt = resolve_threads(num_threads);
  if (nq * n * M < kParallelMinLookups) nt = 1;
  // Built tables are sums of squares; given tables are checked once.
  const bool early_exit =
      !tables || std::all_of(tables, tables + nq * table_size, [](float v) { return v >= 0.0f; });
  // Per-query scans over the scan layout may read bound tables (pq.hpp).
  const bool bound_scan = scan && !tables && cb.has_bound_copy();
  if (nq > 1 && M * K * kVLanes * 4 <= kVTableMaxBytes) {
    const std::int64_t gsize = vertical_group_size(nq, nt, vertical_min_queries(M, K, scan != nullptr));
    if (gsize > 0) {
      search_vertical(kn, cb, Q, tables, nq, gsize, codes, ids, n, k, out_ids, out_dist, nt);
      return;
    }
  }

  if (nq >= nt) {
    // Parallel over groups of queries; each group scans the whole database
    // block by block so a code block is reused by every query of the group.
    const std::int64_t group = std::max<std::int64_t>(
        1, std::min<std::int64_t>(kMaxQueryGroup, kTableBudget / (table_size * 4)));
    const std::int64_t ngroups = (nq + group - 1) / group;
    ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1))
    for (std::int64_t g = 0; g < ngroups; ++g) {
      errors.run([&] {
        const std::int64_t q0 = g * group, gq = std::min(group, nq - q0);
        std::vector<const float*> tabs(gq);
        TableScratch own(tables ? 0 : (bound_scan ? 2 : 1) * gq * table_size);
        float* upper = own.data() + gq * table_size;  // bound_scan: upper bounds
        if (tables) {
          for (std::int64_t t = 0; t < gq; ++t) tabs[t] = tables + (q0 + t) * table_size;
        } else if (bound_scan) {
          for (std::int64_t t = 0; t < gq; ++t)
            kn.bound_table(cb, Q + (q0 + t) * cb.D, 0, M, own.data() + t * table_size,
                           upper + t * table_size);
        } else {
          kn.table(cb, Q + q0 * cb.D, gq, cb.D, 0, M, own.data(), table_size);
        }
        if (!tables)
          for (std::int64_t t = 0; t < gq; ++t) tabs[t] = own.data() + t * table_size;
        ExactScratch ex(kn, cb, bound_scan ? Q + q0 * cb.D : nullptr, bound_scan ? upper : nullptr,
                        bound_scan ? gq : 0);
        std::vector<TopK<float>> heaps(gq, TopK<float>(k));
        scan_part(kn, tabs.data(), gq, M, K, codes, scan, ids, n, 0, 1, heaps.data(), early_exit,
                  exit_orders(tabs.data(), gq, M, K, scan && early_exit), ex.get());
        for (std::int64_t t = 0; t < gq; ++t)
          heaps[t].extract_sorted(out_dist + (q0 + t) * k, out_ids + (q0 + t) * k, kInf);
      });
    }
    errors.rethrow();
    return;
  }

  // Fewer queries than threads: split the database, one top-k per thread and
  // query, merged afterwards (the (distance, id) order makes the merge exact).
  std::vector<const float*> tabs(nq);
  TableScratch own(tables ? 0 : (bound_scan ? 2 : 1) * nq * table_size);
  float* upper = own.data() + nq * table_size;  // bound_scan: upper bounds
  if (tables) {
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = tables + q * table_size;
  } else {
    if (bound_scan) {
      pq_build_bound_tables(cb, Q, nq, own.data(), upper, nt);
    } else {
      pq_build_tables(cb, Q, nq, own.data(), nt);
    }
    for (std::int64_t q = 0; q < nq; ++q) tabs[q] = own.data() + q * table_size;
  }
  const auto orders = exit_orders(tabs.data(), nq, M, K, scan && early_exit);
  std::vector<std::vector<TopK<float>>> local(nt);
  ErrorCapture errors;
PYSPEC_OMP(omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1))
  for (int t = 0; t < nt; ++t) {
    errors.run([&] {
      local[t].assign(nq, TopK<float>(k));
      // per thread: entries are written
      ExactScratch ex(kn, cb, Q, bound_scan ? upper : nullptr, bound_scan ? nq : 0);
      scan_part(kn, tabs.data(), nq, M, K, codes, scan, ids, n, t, nt, local[t].data(),
                early_exit, orders, ex.get());
    });
  }
  errors.rethrow();
  for (std::int64_t q = 0; q < nq; ++q) {
    TopK<float> merged(k);
    for (int t = 0; t < nt; ++t) merged.merge(local[t][q]);
    merged.extract_sorted(out_dist + q * k, out_ids + q * k, kInf);
  }
}

template <class Code>
void pq_scan_layout(const Code* codes, std::int64_t n, std::int64_t M, Code* scan,
                    int num_threads) {
  const std::int64_t R = kScanLayoutRows, nblk = scan_layout_blocks(n);
  [[maybe_unused]] const int nt = resolve_threads(num_threads);
PYSPEC_OMP(omp parallel for schedule(static) num_threads(nt) if (nt > 1 && nblk > 1))
  for (std::int64_t b = 0; b < nblk; ++b) {
    const std::int64_t i0 = b * R, nb = std::min(R, n - i0);
    Code* dst = scan + b * M * R;
    for (std::int64_t r = 0; r < nb; ++r) {
      const Code* src = codes + (i0 + r) * M;
      for (std::int64_t m = 0; m < M; ++m) dst[m * R + r] = src[m];
    }
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t r = nb; r < R; ++r) dst[m * R + r] = 0;
  }
}

bool pq_scan_layout_pays(std::int64_t M, std::int64_t K) { return M * K * 4 > 32 * 1024; }

template void pq_search<std::uint8_t>(const PQCodebook&, const float*, const float*,
                                      std::int64_t, const std::uint8_t*, const std::uint8_t*,
                                      const index_t*, std::int64_t, std::int64_t, index_t*,
                                      float*, int);
template void pq_search<std::uint16_t>(const PQCodebook&, const float*, const float*,
                                       std::int64_t, const std::uint16_t*, const std::uint16_t*,
                                       const index_t*, std::int64_t, std::int64_t, index_t*,
                                       float*, int);
template void pq_scan_layout<std::uint8_t>(const std::uint8_t*, std::int64_t, std::int64_t,
                                           std::uint8_t*, int);
template void pq_scan_layout<std::uint16_t>(const std::uint16_t*, std::int64_t, std::int64_t,
                                            std::uint16_t*, int);

}  // namespace pyspec
