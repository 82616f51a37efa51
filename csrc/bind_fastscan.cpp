// pybind11 bindings of the 4-bit fast-scan PQ kernels (pq_fastscan.hpp):
// convert, check shapes, release the GIL, forward. Public wrapper:
// PQIndex(pq, fast_scan=True) (pyspec.index._fastscan).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "pq_fastscan.hpp"

namespace py = pybind11;

namespace pyspec {
namespace {

void check_codes(const Arr<std::uint8_t>& codes) {
  need(codes.ndim() == 2 && codes.shape(1) >= 1, "codes: expected uint8 (n, M), M >= 1");
}

// `packed` must be pq_fastscan_pack(codes) of n rows of M codes; its size
// is checked, its contents trusted (private API).
void check_packed(const Arr<std::uint8_t>& packed, std::int64_t n, std::int64_t M) {
  need(packed.ndim() == 1 && packed.shape(0) == fastscan_blocks(n) * fastscan_pairs(M) * 32,
       "packed: expected pq_fastscan_pack(codes)");
}

Arr<std::uint8_t> pack(const Arr<std::uint8_t>& codes, int num_threads) {
  check_codes(codes);
  const std::int64_t n = codes.shape(0), M = codes.shape(1);
  const std::uint8_t* c = codes.data();
  for (std::int64_t i = 0; i < n * M; ++i) need(c[i] < kFastScanK, "codes: values must be < 16");
  Arr<std::uint8_t> packed({fastscan_blocks(n) * fastscan_pairs(M) * 32});
  {
    py::gil_scoped_release release;
    pq_fastscan_pack(c, n, M, packed.mutable_data(), num_threads);
  }
  return packed;
}

Arr<std::uint8_t> unpack(const Arr<std::uint8_t>& packed, std::int64_t n, std::int64_t M) {
  need(n >= 0 && M >= 1, "n must be >= 0 and M >= 1");
  check_packed(packed, n, M);
  Arr<std::uint8_t> codes({n, M});
  pq_fastscan_unpack(packed.data(), n, M, codes.mutable_data());
  return codes;
}

void check_tables(const Arr<float>& tables) {
  need(tables.ndim() == 3 && tables.shape(1) >= 1 && tables.shape(2) >= 1 &&
           tables.shape(2) <= kFastScanK,
       "tables: expected float32 (nq, M, K) with 1 <= K <= 16");
}

py::tuple quantise(const Arr<float>& tables, int group, const std::optional<Arr<float>>& kth) {
  check_tables(tables);
  const std::int64_t nq = tables.shape(0), M = tables.shape(1), K = tables.shape(2);
  fastscan_levels(M, group);  // checks the group
  need(!kth || (kth->ndim() == 1 && kth->shape(0) == nq), "kth_bound: expected float32 (nq,)");
  Arr<std::uint8_t> q({nq, M, kFastScanK});
  Arr<float> offsets({nq, M}), inv({nq});
  Arr<std::int32_t> margin({nq});
  Arr<std::uint16_t> thr0({nq});
  pq_fastscan_quantise(tables.data(), nq, M, K, group, kth ? kth->data() : nullptr,
                       q.mutable_data(), offsets.mutable_data(), inv.mutable_data(),
                       margin.mutable_data(), thr0.mutable_data());
  return py::make_tuple(q, offsets, inv, margin, thr0);
}

Arr<std::uint16_t> sums(const Arr<std::uint8_t>& packed, std::int64_t n,
                        const Arr<std::uint8_t>& q, int group, bool saturate, int num_threads) {
  need(q.ndim() == 3 && q.shape(1) >= 1 && q.shape(2) == kFastScanK,
       "q: expected uint8 (nq, M, 16)");
  const std::int64_t nq = q.shape(0), M = q.shape(1);
  need(n >= 0, "n must be >= 0");
  check_packed(packed, n, M);
  const int levels = fastscan_levels(M, group);
  for (std::int64_t i = 0; i < q.size(); ++i)
    need(q.data()[i] <= levels, "q: entries must be <= fastscan_levels(M, group)");
  Arr<std::uint16_t> out({nq, n});
  {
    py::gil_scoped_release release;
    pq_fastscan_sums(packed.data(), n, M, q.data(), nq, group, saturate, out.mutable_data(),
                     num_threads);
  }
  return out;
}

py::tuple search(const Arr<float>& tables, const Arr<std::uint8_t>& codes,
                 const Arr<std::uint8_t>& packed, const Arr<std::int64_t>& ids, std::int64_t k,
                 int num_threads, int group, bool return_candidates) {
  check_tables(tables);
  check_codes(codes);
  const std::int64_t nq = tables.shape(0), M = tables.shape(1), K = tables.shape(2);
  const std::int64_t n = codes.shape(0);
  need(codes.shape(1) == M, "codes: expected (n, M) with the tables' M");
  need(ids.ndim() == 1 && ids.shape(0) == n, "ids: expected (n,)");
  need(k >= 0, "k must be >= 0");
  check_packed(packed, n, M);
  if (group != 0) fastscan_levels(M, group);  // checks the group; 0 = the default
  Arr<std::int64_t> out_ids({nq, k}), n_cand({nq});
  Arr<float> out_dist({nq, k});
  std::vector<std::vector<std::int64_t>> cand;
  {
    py::gil_scoped_release release;
    pq_fastscan_search(tables.data(), nq, M, K, codes.data(), packed.data(), ids.data(), n, k,
                       group, out_ids.mutable_data(), out_dist.mutable_data(),
                       n_cand.mutable_data(), return_candidates ? &cand : nullptr, num_threads);
  }
  if (!return_candidates) return py::make_tuple(out_ids, out_dist, n_cand);
  py::list rows;
  for (const auto& c : cand) {
    Arr<std::int64_t> a({static_cast<py::ssize_t>(c.size())});
    std::copy(c.begin(), c.end(), a.mutable_data());
    rows.append(a);
  }
  return py::make_tuple(out_ids, out_dist, n_cand, rows);
}

}  // namespace

void bind_fastscan(py::module_& m) {
  m.def("pq_fastscan_pack", &pack, py::arg("codes").noconvert(), py::arg("num_threads") = 0,
        "Codes (n, M) uint8 < 16 in the fast-scan layout (csrc/pq_fastscan.hpp).");
  m.def("pq_fastscan_unpack", &unpack, py::arg("packed").noconvert(), py::arg("n"),
        py::arg("n_segments"), "Inverse of pq_fastscan_pack.");
  m.def("pq_fastscan_levels", &fastscan_levels, py::arg("n_segments"), py::arg("group") = 1,
        "Largest quantised table entry for M segments and a byte-sum group.");
  m.def("pq_fastscan_quantise", &quantise, py::arg("tables").noconvert(), py::arg("group") = 1,
        py::arg("kth_bound").noconvert() = py::none(),
        "Quantised tables of float ADC tables (nq, M, K <= 16): (q (nq, M, 16) uint8, "
        "offsets (nq, M), inv_scale (nq,), margin (nq,), thr0 (nq,) uint16).");
  m.def("pq_fastscan_sums", &sums, py::arg("packed").noconvert(), py::arg("n"),
        py::arg("q").noconvert(), py::arg("group") = 1, py::arg("saturate") = false,
        py::arg("num_threads") = 0,
        "Quantised sums (nq, n) uint16 of every packed row for byte tables q (nq, M, 16); "
        "saturate=True: min(sum, 255) from the search's byte path.");
  m.def("pq_fastscan_search", &search, py::arg("tables").noconvert(),
        py::arg("codes").noconvert(), py::arg("packed").noconvert(), py::arg("ids").noconvert(),
        py::arg("k"), py::arg("num_threads") = 0, py::arg("group") = 0,
        py::arg("return_candidates") = false,
        "Fast-scan k-NN: (ids (nq, k), distances (nq, k), n_candidates (nq,)[, candidate "
        "rows per query]); distances are the float ADC sums of pq_search.");
}

}  // namespace pyspec
