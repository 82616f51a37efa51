// Bindings of the IVFPQ scan (ivfpq.hpp): check shapes, release the GIL,
// forward. Arrays are non-converting (.noconvert()): a wrong dtype or a
// non-C-contiguous array is a TypeError. Code values are not re-checked per
// search (O(n M)): the public wrapper, pyspec.index.ivfpq.IVFPQIndex,
// validates codes when they are added or loaded.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "ivfpq.hpp"

namespace py = pybind11;

namespace pyspec {
namespace {

void expect(bool ok, const std::string& what) { need(ok, "ivfpq_search: " + what); }

template <class Code>
py::tuple search(const Arr<float>& tables, const Arr<Code>& codes, const Arr<index_t>& ids,
                 const std::optional<Arr<float>>& code_terms, const Arr<index_t>& offsets,
                 const Arr<index_t>& probes, const std::optional<Arr<float>>& probe_terms,
                 index_t k, int num_threads) {
  expect(tables.ndim() == 3, "tables must be float32 (n_queries, M, K)");
  const index_t nq = tables.shape(0);
  const std::int64_t M = tables.shape(1), K = tables.shape(2);
  expect(M >= 1 && K >= 1, "tables need M >= 1 and K >= 1");
  expect(codes.ndim() == 2 && codes.shape(1) == M, "codes must have shape (n_codes, M)");
  const index_t n = codes.shape(0);
  expect(ids.ndim() == 1 && ids.shape(0) == n, "ids must have shape (n_codes,)");
  expect(!code_terms || (code_terms->ndim() == 1 && code_terms->shape(0) == n),
         "code_terms must have shape (n_codes,)");
  expect(offsets.ndim() == 1 && offsets.shape(0) >= 1, "offsets must have shape (n_lists + 1,)");
  expect(probes.ndim() == 2 && probes.shape(0) == nq,
         "probes must have shape (n_queries, n_probe)");
  expect(!probe_terms || (probe_terms->ndim() == 2 && probe_terms->shape(0) == nq &&
                          probe_terms->shape(1) == probes.shape(1)),
         "probe_terms must have the shape of probes");
  expect(k >= 0, "k must be >= 0");
  py::array_t<index_t> out_ids({nq, k});
  py::array_t<float> out_dist({nq, k});
  const float* t = tables.data();
  const Code* c = codes.data();
  const index_t* id = ids.data();
  const float* ct = code_terms ? code_terms->data() : nullptr;
  const index_t* off = offsets.data();
  const index_t* pr = probes.data();
  const float* pt = probe_terms ? probe_terms->data() : nullptr;
  index_t* i_out = out_ids.mutable_data();
  float* d_out = out_dist.mutable_data();
  const index_t n_lists = offsets.shape(0) - 1, n_probe = probes.shape(1);
  {
    py::gil_scoped_release release;
    ivfpq_search(t, nq, M, K, c, id, ct, n, off, n_lists, pr, pt, n_probe, k, num_threads, i_out,
                 d_out);
  }
  return py::make_tuple(out_ids, out_dist);
}

}  // namespace

void bind_ivfpq(py::module_& m) {
  const char* doc =
      "ADC k-NN over the probed inverted lists -> (ids int64 (nq, k), distances float32 "
      "(nq, k)); distance = (adc + code_terms[i]) + probe_terms[q, p]. "
      "Use pyspec.IVFPQIndex.search.";
  m.def("ivfpq_search", &search<std::uint8_t>, py::arg("tables").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(),
        py::arg("code_terms").noconvert(), py::arg("offsets").noconvert(),
        py::arg("probes").noconvert(), py::arg("probe_terms").noconvert(), py::arg("k"),
        py::arg("num_threads") = 0, doc);
  m.def("ivfpq_search", &search<std::uint16_t>, py::arg("tables").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(),
        py::arg("code_terms").noconvert(), py::arg("offsets").noconvert(),
        py::arg("probes").noconvert(), py::arg("probe_terms").noconvert(), py::arg("k"),
        py::arg("num_threads") = 0, doc);
}

}  // namespace pyspec
