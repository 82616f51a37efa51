// Bindings of the inverted-file family (ivf.hpp): check shapes, release the
// GIL, forward. Arrays are non-converting (.noconvert()): a wrong dtype or a
// non-C-contiguous array is a TypeError. The public wrapper is
// pyspec.index.ivf.IVFHammingIndex.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "ivf.hpp"
#include "ivf_exact.hpp"

namespace py = pybind11;

namespace pyspec {
namespace {

using Words = py::array_t<word_t, py::array::c_style>;
using Int64 = py::array_t<index_t, py::array::c_style>;

void expect(bool ok, const std::string& what) { need(ok, "ivf_hamming_knn: " + what); }

py::tuple ivf_knn(const Words& queries, const Words& codes, const Int64& ids,
                  const Int64& offsets, const Int64& probes, index_t k,
                  std::int32_t pad_distance, int num_threads) {
  expect(queries.ndim() == 2 && codes.ndim() == 2, "queries and codes must be 2-D");
  const auto n_words = codes.shape(1);
  expect(n_words >= 1 && n_words <= kMaxCodeWords && queries.shape(1) == n_words,
         "queries and codes need the same word count in [1, 8]");
  expect(ids.ndim() == 1 && ids.shape(0) == codes.shape(0), "ids must have shape (n_codes,)");
  expect(offsets.ndim() == 1 && offsets.shape(0) >= 1, "offsets must have shape (n_lists + 1,)");
  expect(probes.ndim() == 2 && probes.shape(0) == queries.shape(0),
         "probes must have shape (n_queries, n_probe)");
  expect(k >= 0, "k must be >= 0");
  const index_t nq = queries.shape(0);
  py::array_t<std::int32_t> distances({nq, k});
  py::array_t<index_t> out_ids({nq, k});
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  const index_t* off = offsets.data();
  const index_t* pr = probes.data();
  std::int32_t* d_out = distances.mutable_data();
  index_t* i_out = out_ids.mutable_data();
  const index_t n = codes.shape(0);
  const index_t n_lists = offsets.shape(0) - 1;
  const index_t n_probe = probes.shape(1);
  {
    py::gil_scoped_release release;
    ivf_hamming_knn(q, nq, c, id, n, static_cast<int>(n_words), off, n_lists, pr, n_probe, k,
                    pad_distance, num_threads, d_out, i_out);
  }
  return py::make_tuple(out_ids, distances);
}

py::tuple ivf_knn_exact(const Words& queries, const Words& centroids, const Words& codes,
                        const Int64& ids, const Int64& offsets,
                        const py::array_t<std::int32_t, py::array::c_style>& radii,
                        const Int64& ring_base,
                        const py::array_t<std::uint32_t, py::array::c_style>& ring_rel,
                        int n_bits, index_t k,
                        std::int32_t pad_distance, int num_threads) {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("ivf_hamming_knn_exact: " + what);
  };
  if (queries.ndim() != 2 || codes.ndim() != 2 || centroids.ndim() != 2)
    fail("queries, centroids and codes must be 2-D");
  const auto n_words = codes.shape(1);
  if (n_words < 1 || n_words > kMaxCodeWords || queries.shape(1) != n_words ||
      centroids.shape(1) != n_words)
    fail("queries, centroids and codes need the same word count in [1, 8]");
  if (n_bits < 1 || n_bits > 64 * n_words) fail("n_bits must be in [1, 64 * n_words]");
  if (ids.ndim() != 1 || ids.shape(0) != codes.shape(0)) fail("ids must have shape (n_codes,)");
  if (offsets.ndim() != 1 || offsets.shape(0) != centroids.shape(0) + 1)
    fail("offsets must have shape (n_lists + 1,)");
  if (ring_base.ndim() != 1 || ring_base.shape(0) != centroids.shape(0) + 1 ||
      ring_rel.ndim() != 1)
    fail("ring_base must have shape (n_lists + 1,), ring_rel be 1-D");
  if (radii.ndim() != 2 || radii.shape(0) != centroids.shape(0) || radii.shape(1) != 2)
    fail("radii must have shape (n_lists, 2)");
  if (k < 0) fail("k must be >= 0");
  const index_t nq = queries.shape(0);
  py::array_t<std::int32_t> distances({nq, k});
  py::array_t<index_t> out_ids({nq, k});
  const word_t* q = queries.data();
  const word_t* cen = centroids.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  const index_t* off = offsets.data();
  const index_t* base = ring_base.data();
  const std::uint32_t* rel = ring_rel.data();
  const index_t n_rel = ring_rel.shape(0);
  const std::int32_t* rad = radii.data();
  std::int32_t* d_out = distances.mutable_data();
  index_t* i_out = out_ids.mutable_data();
  const index_t n = codes.shape(0);
  const index_t n_lists = centroids.shape(0);
  {
    py::gil_scoped_release release;
    ivf_hamming_knn_exact(q, nq, cen, n_lists, c, id, n, static_cast<int>(n_words), n_bits,
                          off, rad, base, rel, n_rel, k, pad_distance, num_threads, d_out, i_out);
  }
  return py::make_tuple(out_ids, distances);
}

}  // namespace

void bind_ivf(py::module_& m) {
  m.def("ivf_hamming_knn", &ivf_knn, py::arg("queries").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(),
        py::arg("offsets").noconvert(), py::arg("probes").noconvert(), py::arg("k"),
        py::arg("pad_distance"), py::arg("num_threads") = 0,
        "k-NN over the probed inverted lists -> (ids int64 (nq, k), distances int32 (nq, k)). "
        "Use pyspec.IVFHammingIndex.search.");
  m.def("ivf_hamming_knn_exact", &ivf_knn_exact, py::arg("queries").noconvert(),
        py::arg("centroids").noconvert(), py::arg("codes").noconvert(),
        py::arg("ids").noconvert(), py::arg("offsets").noconvert(),
        py::arg("radii").noconvert(), py::arg("ring_base").noconvert(),
        py::arg("ring_rel").noconvert(), py::arg("n_bits"),
        py::arg("k"), py::arg("pad_distance"), py::arg("num_threads") = 0,
        "Exact k-NN through ring-sorted inverted lists -> (ids int64 (nq, k), distances int32 "
        "(nq, k)). Use pyspec.IVFHammingIndex.search(exact=True).");
}

}  // namespace pyspec
