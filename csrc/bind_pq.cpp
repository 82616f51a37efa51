// pybind11 bindings of the PQ kernels: convert, check shapes, release the
// GIL, forward. Public wrappers: pyspec.models.pq and pyspec.index.pq.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "pq.hpp"

namespace py = pybind11;

namespace pyspec {
namespace {

// Checks the PQ layout arrays (see pq.hpp) and returns a view of them.
PQCodebook make_codebook(const Arr<float>& ct, const Arr<float>& cnorm,
                         const Arr<std::int64_t>& bounds, std::int64_t K) {
  need(bounds.ndim() == 1 && bounds.shape(0) >= 2, "bounds: expected int64 (M+1,), M >= 1");
  PQCodebook cb{};
  cb.M = bounds.shape(0) - 1;
  cb.bounds = bounds.data();
  cb.D = cb.bounds[cb.M];
  cb.K = K;
  need(K >= 1 && K <= 65536, "n_centroids must be in [1, 65536]");
  need(cb.D >= 1 && ct.ndim() == 1 && ct.shape(0) % cb.D == 0, "ct: size must be Kp * D");
  cb.Kp = ct.shape(0) / cb.D;
  need(cb.Kp >= K && cb.Kp % kCentroidBlock == 0, "ct: Kp must be K rounded up to 32");
  need(cnorm.ndim() == 1 && cnorm.shape(0) == cb.M * cb.Kp, "cnorm: expected (M * Kp,)");
  cb.ct = ct.data();
  cb.cnorm = cnorm.data();
  return cb;
}

// Attaches the 8-bit bound copy (pq.hpp, "Bound tables"), given as the
// tuple (cq, bmean, bscale, berr, rows) that ProductQuantizer._bound_copy()
// builds; None leaves it off. The shapes, dtypes and scales are checked; the
// contents are trusted to be that copy of this codebook (private API).
void attach_bound_copy(PQCodebook& cb, const py::object& copy) {
  if (copy.is_none()) return;
  const auto t = copy.cast<py::tuple>();
  need(t.size() == 5, "bound_copy: expected (cq, bmean, bscale, berr, rows)");
  need(py::isinstance<Arr<std::int8_t>>(t[0]) && py::isinstance<Arr<float>>(t[1]) &&
           py::isinstance<Arr<float>>(t[2]) && py::isinstance<Arr<float>>(t[3]) &&
           py::isinstance<Arr<float>>(t[4]),
       "bound_copy: expected int8 and four float32 C-contiguous arrays");
  const auto cq = t[0].cast<Arr<std::int8_t>>();
  const auto bmean = t[1].cast<Arr<float>>(), bscale = t[2].cast<Arr<float>>();
  const auto berr = t[3].cast<Arr<float>>(), rows = t[4].cast<Arr<float>>();
  need(cq.ndim() == 1 && cq.shape(0) == cb.Kp * cb.D, "bound_copy: cq must have Kp * D values");
  need(bmean.ndim() == 1 && bmean.shape(0) == cb.D, "bound_copy: bmean must be (D,)");
  need(bscale.ndim() == 1 && bscale.shape(0) == cb.M, "bound_copy: bscale must be (M,)");
  need(berr.ndim() == 1 && berr.shape(0) == cb.M * cb.Kp, "bound_copy: berr must be (M * Kp,)");
  need(rows.ndim() == 2 && rows.shape(0) == cb.K && rows.shape(1) == cb.D,
       "bound_copy: rows must be (K, D)");
  for (std::int64_t m = 0; m < cb.M; ++m) {
    int e = 0;
    const float s = bscale.data()[m];
    need(std::frexp(s, &e) == 0.5f && e >= -39 && e <= 41,
         "bound_copy: bscale must hold powers of two in [2^-40, 2^40]");
  }
  // The tuple (held by the caller) keeps the arrays alive during the call.
  cb.cq = cq.data();
  cb.bmean = bmean.data();
  cb.bscale = bscale.data();
  cb.berr = berr.data();
  cb.rows = rows.data();
}

void check_rows(const Arr<float>& X, std::int64_t D, const char* name) {
  need(X.ndim() == 2 && X.shape(1) == D,
       std::string(name) + ": expected float32 (n, " + std::to_string(D) + ")");
}

template <class Code>
py::object encode(const Arr<float>& X, const Arr<float>& ct, const Arr<float>& cnorm,
                  const Arr<std::int64_t>& bounds, std::int64_t K, bool with_best,
                  int num_threads) {
  const PQCodebook cb = make_codebook(ct, cnorm, bounds, K);
  check_rows(X, cb.D, "X");
  const std::int64_t n = X.shape(0);
  Arr<Code> codes({n, cb.M});
  Arr<float> best(with_best ? std::vector<py::ssize_t>{n, cb.M} : std::vector<py::ssize_t>{0, 0});
  {
    py::gil_scoped_release release;
    pq_encode<Code>(cb, X.data(), n, codes.mutable_data(), with_best ? best.mutable_data() : nullptr,
                    num_threads);
  }
  if (with_best) return py::make_tuple(codes, best);
  return std::move(codes);
}

// The scan-layout copy of `codes` (pq.hpp), when given: its size must match.
// Its contents are trusted to be pq_scan_layout(codes) (private API).
template <class Code>
const Code* scan_layout_ptr(const std::optional<Arr<Code>>& scan, const Arr<Code>& codes) {
  if (!scan) return nullptr;
  const std::int64_t n = codes.shape(0), M = codes.shape(1);
  need(scan->ndim() == 1 && scan->shape(0) == scan_layout_blocks(n) * M * kScanLayoutRows,
       "scan_codes: expected pq_scan_layout(codes)");
  return scan->data();
}

template <class Code>
py::tuple search(const Arr<float>& Q, const Arr<float>& ct, const Arr<float>& cnorm,
                 const Arr<std::int64_t>& bounds, std::int64_t K, const Arr<Code>& codes,
                 const Arr<std::int64_t>& ids, std::int64_t k, int num_threads,
                 const std::optional<Arr<Code>>& scan_codes, const py::object& bound_copy) {
  PQCodebook cb = make_codebook(ct, cnorm, bounds, K);
  attach_bound_copy(cb, bound_copy);
  check_rows(Q, cb.D, "queries");
  need(codes.ndim() == 2 && codes.shape(1) == cb.M, "codes: expected (n, M)");
  need(ids.ndim() == 1 && ids.shape(0) == codes.shape(0), "ids: expected (n,)");
  need(k >= 0, "k must be >= 0");
  const Code* scan = scan_layout_ptr(scan_codes, codes);
  const std::int64_t nq = Q.shape(0);
  Arr<std::int64_t> out_ids({nq, k});
  Arr<float> out_dist({nq, k});
  {
    py::gil_scoped_release release;
    pq_search<Code>(cb, Q.data(), nullptr, nq, codes.data(), scan, ids.data(), codes.shape(0),
                    k, out_ids.mutable_data(), out_dist.mutable_data(), num_threads);
  }
  return py::make_tuple(out_ids, out_dist);
}

template <class Code>
py::tuple search_tables(const Arr<float>& tables, const Arr<Code>& codes,
                        const Arr<std::int64_t>& ids, std::int64_t k, int num_threads,
                        const std::optional<Arr<Code>>& scan_codes) {
  need(tables.ndim() == 3, "tables: expected float32 (nq, M, K)");
  const std::int64_t nq = tables.shape(0), M = tables.shape(1), K = tables.shape(2);
  need(M >= 1 && K >= 1 && K <= 65536, "tables: M and K must be >= 1 (K <= 65536)");
  need(K - 1 <= static_cast<std::int64_t>(std::numeric_limits<Code>::max()),
       "tables: K does not fit the code type");
  need(codes.ndim() == 2 && codes.shape(1) == M, "codes: expected (n, M)");
  need(ids.ndim() == 1 && ids.shape(0) == codes.shape(0), "ids: expected (n,)");
  need(k >= 0, "k must be >= 0");
  const Code* scan = scan_layout_ptr(scan_codes, codes);
  // A table-only codebook: one pixel per segment, never read (tables given).
  std::vector<std::int64_t> bounds(M + 1);
  for (std::int64_t m = 0; m <= M; ++m) bounds[m] = m;
  PQCodebook cb{nullptr, nullptr, bounds.data(), M, K,
                (K + kCentroidBlock - 1) / kCentroidBlock * kCentroidBlock, M};
  // Codes must index inside the table: checked here (cheap) because the scan
  // reads table[m][code] without bounds checks.
  const Code* c = codes.data();
  const std::int64_t total = codes.shape(0) * M;
  for (std::int64_t i = 0; i < total; ++i)
    if (static_cast<std::int64_t>(c[i]) >= K) throw std::out_of_range("codes: value >= K");
  Arr<std::int64_t> out_ids({nq, k});
  Arr<float> out_dist({nq, k});
  {
    py::gil_scoped_release release;
    pq_search<Code>(cb, nullptr, tables.data(), nq, codes.data(), scan, ids.data(),
                    codes.shape(0), k, out_ids.mutable_data(), out_dist.mutable_data(),
                    num_threads);
  }
  return py::make_tuple(out_ids, out_dist);
}

template <class Code>
Arr<Code> scan_layout(const Arr<Code>& codes, int num_threads) {
  need(codes.ndim() == 2 && codes.shape(1) >= 1, "codes: expected (n, M)");
  const std::int64_t n = codes.shape(0), M = codes.shape(1);
  Arr<Code> scan({scan_layout_blocks(n) * M * kScanLayoutRows});
  {
    py::gil_scoped_release release;
    pq_scan_layout<Code>(codes.data(), n, M, scan.mutable_data(), num_threads);
  }
  return scan;
}

template <class Code>
py::tuple accumulate(const Arr<float>& X, const Arr<Code>& codes, const Arr<std::int64_t>& bounds,
                     std::int64_t K, int num_threads) {
  need(bounds.ndim() == 1 && bounds.shape(0) >= 2, "bounds: expected int64 (M+1,)");
  const std::int64_t M = bounds.shape(0) - 1, D = bounds.data()[M];
  check_rows(X, D, "X");
  need(codes.ndim() == 2 && codes.shape(0) == X.shape(0) && codes.shape(1) == M,
       "codes: expected (n, M)");
  need(K >= 1, "n_centroids must be >= 1");
  Arr<double> sums({K, D});
  Arr<std::int64_t> counts({M, K});
  {
    py::gil_scoped_release release;
    pq_accumulate<Code>(X.data(), X.shape(0), D, bounds.data(), M, K, codes.data(),
                        sums.mutable_data(), counts.mutable_data(), num_threads);
  }
  return py::make_tuple(sums, counts);
}

void check_bounds(const Arr<std::int64_t>& bounds, std::int64_t D) {
  need(bounds.ndim() == 1 && bounds.shape(0) >= 2, "bounds: expected int64 (M+1,)");
  const std::int64_t* b = bounds.data();
  const std::int64_t M = bounds.shape(0) - 1;
  need(b[0] == 0 && b[M] == D, "bounds must run from 0 to D");
  for (std::int64_t m = 0; m < M; ++m) need(b[m + 1] > b[m], "bounds must increase");
}

// Checks a plain codebook (float32 (K, D)) against its bounds; returns Kp.
std::int64_t check_plain_codebook(const Arr<float>& codebook, const Arr<std::int64_t>& bounds) {
  need(codebook.ndim() == 2 && codebook.shape(0) >= 1 && codebook.shape(0) <= 65536,
       "codebook: expected float32 (K, D) with 1 <= K <= 65536");
  check_bounds(bounds, codebook.shape(1));
  const std::int64_t K = codebook.shape(0);
  return (K + kCentroidBlock - 1) / kCentroidBlock * kCentroidBlock;
}

py::tuple layout(const Arr<float>& codebook, const Arr<std::int64_t>& bounds) {
  const std::int64_t Kp = check_plain_codebook(codebook, bounds);
  const std::int64_t K = codebook.shape(0), D = codebook.shape(1), M = bounds.shape(0) - 1;
  Arr<float> ct({Kp * D}), cnorm({M * Kp});
  {
    py::gil_scoped_release release;
    pq_build_layout(codebook.data(), K, D, bounds.data(), M, Kp, ct.mutable_data(),
                    cnorm.mutable_data());
  }
  return py::make_tuple(ct, cnorm);
}

// The bound-copy tuple attach_bound_copy() reads, with the codebook itself
// as `rows` (no copy), or None when the codebook's values cannot be scaled.
py::object bound_copy(const Arr<float>& codebook, const Arr<std::int64_t>& bounds) {
  const std::int64_t Kp = check_plain_codebook(codebook, bounds);
  const std::int64_t K = codebook.shape(0), D = codebook.shape(1), M = bounds.shape(0) - 1;
  Arr<std::int8_t> cq({Kp * D});
  Arr<float> bmean({D}), bscale({M}), berr({M * Kp});
  bool ok;
  {
    py::gil_scoped_release release;
    ok = pq_build_bound_copy(codebook.data(), K, D, bounds.data(), M, Kp, cq.mutable_data(),
                             bmean.mutable_data(), bscale.mutable_data(), berr.mutable_data());
  }
  if (!ok) return py::none();
  return py::make_tuple(cq, bmean, bscale, berr, codebook);
}

}  // namespace

void bind_pq(py::module_& m) {
  m.def("pq_layout", &layout, py::arg("codebook").noconvert(), py::arg("bounds").noconvert(),
        "The kernels' blocked, padded centroids and squared norms (ct, cnorm) of a float32 "
        "(K, D) codebook; see csrc/pq.hpp.");
  m.def("pq_bound_copy", &bound_copy, py::arg("codebook").noconvert(),
        py::arg("bounds").noconvert(),
        "The 8-bit bound copy (cq, bmean, bscale, berr, codebook) of a float32 (K, D) "
        "codebook, or None when its values cannot be scaled; see csrc/pq.hpp.");
  m.def("pq_encode", &encode<std::uint8_t>, py::arg("X").noconvert(), py::arg("ct").noconvert(),
        py::arg("cnorm").noconvert(), py::arg("bounds").noconvert(), py::arg("n_centroids"),
        py::arg("with_best") = false, py::arg("num_threads") = 0,
        "Nearest centroid per segment, uint8 codes (K <= 256); see ProductQuantizer.encode.");
  m.def("pq_encode16", &encode<std::uint16_t>, py::arg("X").noconvert(),
        py::arg("ct").noconvert(), py::arg("cnorm").noconvert(), py::arg("bounds").noconvert(),
        py::arg("n_centroids"), py::arg("with_best") = false, py::arg("num_threads") = 0,
        "Nearest centroid per segment, uint16 codes; see ProductQuantizer.encode.");
  m.def(
      "pq_tables",
      [](const Arr<float>& Q, const Arr<float>& ct, const Arr<float>& cnorm,
         const Arr<std::int64_t>& bounds, std::int64_t K, int num_threads) {
        const PQCodebook cb = make_codebook(ct, cnorm, bounds, K);
        check_rows(Q, cb.D, "queries");
        const std::int64_t nq = Q.shape(0);
        Arr<float> tables({nq, cb.M, cb.K});
        {
          py::gil_scoped_release release;
          pq_build_tables(cb, Q.data(), nq, tables.mutable_data(), num_threads);
        }
        return tables;
      },
      py::arg("queries").noconvert(), py::arg("ct").noconvert(), py::arg("cnorm").noconvert(),
      py::arg("bounds").noconvert(), py::arg("n_centroids"), py::arg("num_threads") = 0,
      "ADC distance tables (nq, M, K); see ProductQuantizer.distance_tables.");
  for (const char* name : {"pq_search"}) {
    m.def(name, &search<std::uint8_t>, py::arg("queries").noconvert(), py::arg("ct").noconvert(),
          py::arg("cnorm").noconvert(), py::arg("bounds").noconvert(), py::arg("n_centroids"),
          py::arg("codes").noconvert(), py::arg("ids").noconvert(), py::arg("k"),
          py::arg("num_threads") = 0, py::arg("scan_codes").noconvert() = py::none(),
          py::arg("bound_copy") = py::none(),
          "ADC k-NN scan (uint8 codes); see PQIndex.search.");
    m.def(name, &search<std::uint16_t>, py::arg("queries").noconvert(),
          py::arg("ct").noconvert(), py::arg("cnorm").noconvert(), py::arg("bounds").noconvert(),
          py::arg("n_centroids"), py::arg("codes").noconvert(), py::arg("ids").noconvert(),
          py::arg("k"), py::arg("num_threads") = 0,
          py::arg("scan_codes").noconvert() = py::none(), py::arg("bound_copy") = py::none(),
          "ADC k-NN scan (uint16 codes); see PQIndex.search.");
  }
  m.def(
      "pq_bound_tables",
      [](const Arr<float>& Q, const Arr<float>& ct, const Arr<float>& cnorm,
         const Arr<std::int64_t>& bounds, std::int64_t K, const py::object& bound_copy,
         int num_threads) {
        PQCodebook cb = make_codebook(ct, cnorm, bounds, K);
        need(!bound_copy.is_none(), "bound_copy: required");
        attach_bound_copy(cb, bound_copy);
        check_rows(Q, cb.D, "queries");
        const std::int64_t nq = Q.shape(0);
        Arr<float> lower({nq, cb.M, cb.K}), upper({nq, cb.M, cb.K});
        {
          py::gil_scoped_release release;
          pq_build_bound_tables(cb, Q.data(), nq, lower.mutable_data(), upper.mutable_data(),
                                num_threads);
        }
        return py::make_tuple(lower, upper);
      },
      py::arg("queries").noconvert(), py::arg("ct").noconvert(), py::arg("cnorm").noconvert(),
      py::arg("bounds").noconvert(), py::arg("n_centroids"), py::arg("bound_copy"),
      py::arg("num_threads") = 0,
      "Lower and upper bounds of the ADC tables from the 8-bit codebook copy, two (nq, M, K).");
  m.def("pq_bound_copy_pays", &pq_bound_copy_pays, py::arg("padded_centroids"),
        py::arg("n_features"),
        "Whether a codebook of Kp x D floats is large enough for single-query searches to "
        "read the 8-bit bound copy.");
  m.def("pq_search_tables", &search_tables<std::uint8_t>, py::arg("tables").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(), py::arg("k"),
        py::arg("num_threads") = 0, py::arg("scan_codes").noconvert() = py::none(),
        "ADC k-NN scan from precomputed tables (uint8 codes).");
  m.def("pq_search_tables", &search_tables<std::uint16_t>, py::arg("tables").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(), py::arg("k"),
        py::arg("num_threads") = 0, py::arg("scan_codes").noconvert() = py::none(),
        "ADC k-NN scan from precomputed tables (uint16 codes).");
  m.def("pq_accumulate", &accumulate<std::uint8_t>, py::arg("X").noconvert(),
        py::arg("codes").noconvert(), py::arg("bounds").noconvert(), py::arg("n_centroids"),
        py::arg("num_threads") = 0, "k-means update sums and counts (uint8 codes).");
  m.def("pq_accumulate", &accumulate<std::uint16_t>, py::arg("X").noconvert(),
        py::arg("codes").noconvert(), py::arg("bounds").noconvert(), py::arg("n_centroids"),
        py::arg("num_threads") = 0, "k-means update sums and counts (uint16 codes).");
  m.def(
      "pq_scan_layout",
      [](const Arr<std::uint8_t>& codes, int num_threads) { return scan_layout(codes, num_threads); },
      py::arg("codes").noconvert(), py::arg("num_threads") = 0,
      "Segment-major copy of (n, M) uint8 codes for pq_search(scan_codes=...).");
  m.def(
      "pq_scan_layout",
      [](const Arr<std::uint16_t>& codes, int num_threads) { return scan_layout(codes, num_threads); },
      py::arg("codes").noconvert(), py::arg("num_threads") = 0,
      "Segment-major copy of (n, M) uint16 codes for pq_search(scan_codes=...).");
  m.def("pq_scan_layout_pays", &pq_scan_layout_pays, py::arg("n_segments"), py::arg("n_centroids"),
        "Whether per-query scans with these tables read the scan layout faster.");
  m.def("pq_set_scan_variant", &pq_set_scan_variant, py::arg("variant"),
        "ADC scan at AVX2/AVX-512 level: 0 interleaved, 1 gather, -1 the fixed rule "
        "(PYSPEC_PQ_SCAN, else interleaved).");
  m.def("pq_scan_variant", &pq_scan_variant, "ADC scan variant in use (0 interleaved, 1 gather).");
  m.def(
      "pq_kmeanspp",
      [](const Arr<float>& X, const Arr<std::int64_t>& bounds, std::int64_t K,
         const Arr<std::uint64_t>& seeds, int num_threads) {
        need(X.ndim() == 2, "X: expected float32 (n, D)");
        const std::int64_t n = X.shape(0), D = X.shape(1);
        check_bounds(bounds, D);
        const std::int64_t M = bounds.shape(0) - 1;
        need(seeds.ndim() == 1 && seeds.shape(0) == M, "seeds: expected uint64 (M,)");
        need(K >= 1 && K <= n, "n_centroids must be in [1, n]");
        Arr<float> centers({K, D});
        {
          py::gil_scoped_release release;
          pq_kmeanspp(X.data(), n, D, bounds.data(), M, K, seeds.data(), centers.mutable_data(),
                      num_threads);
        }
        return centers;
      },
      py::arg("X").noconvert(), py::arg("bounds").noconvert(), py::arg("n_centroids"),
      py::arg("seeds").noconvert(), py::arg("num_threads") = 0,
      "k-means++ seeding per segment; see ProductQuantizer.fit.");
}

}  // namespace pyspec
