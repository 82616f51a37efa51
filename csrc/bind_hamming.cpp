// Bindings of the Hamming family: convert, check shapes, release the GIL,
// forward. Array arguments are non-converting (.noconvert()): a wrong dtype or
// a non-C-contiguous array is a TypeError, never a hidden copy. The public
// wrapper is pyspec.index.hamming.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "hamming.hpp"
#include "mih.hpp"

namespace py = pybind11;

namespace pyspec {
namespace {

using Codes = py::array_t<word_t, py::array::c_style>;
using Ids = py::array_t<index_t, py::array::c_style>;

int code_words(const Codes& a, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + " must be 2-D (n, n_words)");
  const auto w = a.shape(1);
  if (w < 1 || w > kMaxCodeWords)
    throw std::invalid_argument(std::string(name) + ": n_words must be in [1, 8]");
  return static_cast<int>(w);
}

int check_pair(const Codes& queries, const Codes& codes) {
  const int w = code_words(codes, "codes");
  if (code_words(queries, "queries") != w)
    throw std::invalid_argument("queries and codes have different word counts");
  return w;
}

void check_ids(const Ids& ids, const Codes& codes) {
  if (ids.ndim() != 1 || ids.shape(0) != codes.shape(0))
    throw std::invalid_argument("ids must have shape (n_codes,)");
}

// Moves a std::vector into a 1-D NumPy array without copying: the array's
// base is a capsule that owns the vector.
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* owner = new std::vector<T>(std::move(v));
  py::capsule free_when_done(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(owner->size())}, owner->data(), free_when_done);
}

py::tuple knn(const Codes& queries, const Codes& codes, const Ids& ids, index_t k,
              std::int32_t pad_distance, int num_threads) {
  const int w = check_pair(queries, codes);
  check_ids(ids, codes);
  if (k < 0) throw std::invalid_argument("k must be >= 0");
  const index_t nq = queries.shape(0);
  py::array_t<std::int32_t> distances({nq, k});
  py::array_t<index_t> out_ids({nq, k});
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  std::int32_t* d_out = distances.mutable_data();
  index_t* i_out = out_ids.mutable_data();
  const index_t n = codes.shape(0);
  {
    py::gil_scoped_release release;
    hamming_knn(q, nq, c, id, n, w, k, pad_distance, num_threads, d_out, i_out);
  }
  return py::make_tuple(out_ids, distances);
}

py::tuple range(const Codes& queries, const Codes& codes, const Ids& ids, std::int32_t radius,
                int num_threads) {
  const int w = check_pair(queries, codes);
  check_ids(ids, codes);
  RangeHits hits;
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  const index_t nq = queries.shape(0);
  const index_t n = codes.shape(0);
  {
    py::gil_scoped_release release;
    hamming_range(q, nq, c, id, n, w, radius, num_threads, hits);
  }
  return py::make_tuple(to_numpy(std::move(hits.offsets)), to_numpy(std::move(hits.ids)),
                        to_numpy(std::move(hits.distances)));
}

py::array_t<std::int32_t> distances(const Codes& queries, const Codes& codes, int num_threads) {
  const int w = check_pair(queries, codes);
  const index_t nq = queries.shape(0);
  const index_t n = codes.shape(0);
  py::array_t<std::int32_t> out({nq, n});
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  std::int32_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    hamming_distances(q, nq, c, n, w, num_threads, o);
  }
  return out;
}

// -- multi-index hashing (mih.hpp) -------------------------------------------

using Widths = py::array_t<std::int32_t, py::array::c_style>;
using Table = py::array_t<std::uint32_t, py::array::c_style>;
using Work = py::array_t<std::int64_t>;

int table_count(const Widths& widths) {
  if (widths.ndim() != 1 || widths.shape(0) < 1 || widths.shape(0) > kMihMaxTables)
    throw std::invalid_argument("widths must have shape (n_tables,), 1 <= n_tables <= 64");
  for (py::ssize_t t = 0; t < widths.shape(0); ++t)
    if (widths.data()[t] < 1 || widths.data()[t] > kMihMaxWidth)
      throw std::invalid_argument("widths must be in [1, 24]");
  return static_cast<int>(widths.shape(0));
}

// Checks that offsets and rows have the sizes the widths and n_codes imply
// (their contents are checked by mih_check_tables when read from a file).
// The bit order (None: the identity) must list sum(widths) bits; its
// entries are checked by the kernels.
const std::int32_t* bit_order_of(const std::optional<Widths>& bit_order, const Widths& widths) {
  if (!bit_order) return nullptr;
  std::int64_t total = 0;
  for (py::ssize_t t = 0; t < widths.shape(0); ++t) total += widths.data()[t];
  if (bit_order->ndim() != 1 || bit_order->shape(0) != total)
    throw std::invalid_argument("bit_order must have shape (sum(widths),)");
  return bit_order->data();
}

MihTables tables_of(const Widths& widths, const Table& offsets, const Table& rows,
                    const std::optional<Widths>& bit_order, index_t n_codes) {
  const int m = table_count(widths);
  if (offsets.ndim() != 1 || offsets.shape(0) != mih_offsets_size(widths.data(), m))
    throw std::invalid_argument("offsets size does not match the widths");
  if (rows.ndim() != 2 || rows.shape(0) != m || rows.shape(1) != n_codes)
    throw std::invalid_argument("rows must have shape (n_tables, n_codes)");
  return MihTables{widths.data(), m, offsets.data(), rows.data(),
                   bit_order_of(bit_order, widths)};
}

py::tuple mih_build_tables(const Codes& codes, const Widths& widths, int num_threads,
                          const std::optional<Widths>& bit_order) {
  const int w = code_words(codes, "codes");
  const int m = table_count(widths);
  const std::int32_t* order = bit_order_of(bit_order, widths);
  const index_t n = codes.shape(0);
  Table offsets({static_cast<py::ssize_t>(mih_offsets_size(widths.data(), m))});
  Table rows({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(n)});
  const word_t* c = codes.data();
  const std::int32_t* wd = widths.data();
  std::uint32_t* o = offsets.mutable_data();
  std::uint32_t* r = rows.mutable_data();
  {
    py::gil_scoped_release release;
    mih_build(c, n, w, wd, m, order, num_threads, o, r);
  }
  return py::make_tuple(offsets, rows);
}

bool mih_check(const Widths& widths, index_t n_codes, const Table& offsets, const Table& rows) {
  const MihTables t = tables_of(widths, offsets, rows, std::nullopt, n_codes);
  py::gil_scoped_release release;
  return mih_check_tables(t.widths, t.n_tables, n_codes, t.offsets, t.rows);
}

py::tuple mih_knn_search(const Codes& queries, const Codes& codes, const Ids& ids,
                         const Widths& widths, const Table& offsets, const Table& rows,
                         index_t k, std::int32_t pad_distance, std::int64_t max_work,
                         int num_threads, const std::optional<Widths>& bit_order) {
  const int w = check_pair(queries, codes);
  check_ids(ids, codes);
  if (k < 0) throw std::invalid_argument("k must be >= 0");
  const index_t nq = queries.shape(0);
  const index_t n = codes.shape(0);
  const MihTables t = tables_of(widths, offsets, rows, bit_order, n);
  py::array_t<std::int32_t> distances({nq, k});
  py::array_t<index_t> out_ids({nq, k});
  Work work({nq});
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  std::int32_t* d_out = distances.mutable_data();
  index_t* i_out = out_ids.mutable_data();
  std::int64_t* w_out = work.mutable_data();
  {
    py::gil_scoped_release release;
    mih_knn(q, nq, c, id, n, w, t, k, pad_distance, max_work, num_threads, d_out, i_out, w_out);
  }
  return py::make_tuple(out_ids, distances, work);
}

py::tuple mih_range_search(const Codes& queries, const Codes& codes, const Ids& ids,
                           const Widths& widths, const Table& offsets, const Table& rows,
                           std::int32_t radius, std::int64_t max_work, int num_threads,
                           const std::optional<Widths>& bit_order) {
  const int w = check_pair(queries, codes);
  check_ids(ids, codes);
  const index_t nq = queries.shape(0);
  const index_t n = codes.shape(0);
  const MihTables t = tables_of(widths, offsets, rows, bit_order, n);
  RangeHits hits;
  Work work({nq});
  const word_t* q = queries.data();
  const word_t* c = codes.data();
  const index_t* id = ids.data();
  std::int64_t* w_out = work.mutable_data();
  {
    py::gil_scoped_release release;
    mih_range(q, nq, c, id, n, w, t, radius, max_work, num_threads, hits, w_out);
  }
  return py::make_tuple(to_numpy(std::move(hits.offsets)), to_numpy(std::move(hits.ids)),
                        to_numpy(std::move(hits.distances)), work);
}

}  // namespace

void bind_hamming(py::module_& m) {
  m.def("hamming_knn", &knn, py::arg("queries").noconvert(), py::arg("codes").noconvert(),
        py::arg("ids").noconvert(), py::arg("k"), py::arg("pad_distance"),
        py::arg("num_threads") = 0,
        "k-NN over uint64 codes -> (ids int64 (nq, k), distances int32 (nq, k)). "
        "Use pyspec.HammingIndex.search.");
  m.def("hamming_range", &range, py::arg("queries").noconvert(), py::arg("codes").noconvert(),
        py::arg("ids").noconvert(), py::arg("radius"), py::arg("num_threads") = 0,
        "Range search -> (offsets, ids, distances) CSR. Use pyspec.HammingIndex.range_search.");
  m.def("hamming_distances", &distances, py::arg("queries").noconvert(),
        py::arg("codes").noconvert(), py::arg("num_threads") = 0,
        "Full int32 distance matrix (nq, n). Use pyspec.index.hamming.hamming_distances.");
  m.def("mih_build", &mih_build_tables, py::arg("codes").noconvert(),
        py::arg("widths").noconvert(), py::arg("num_threads") = 0,
        py::arg("bit_order").noconvert() = py::none(),
        "Multi-index hashing tables -> (offsets uint32, rows uint32 (m, n)). "
        "Use pyspec.HammingIndex(method='mih').");
  m.def("mih_check_tables", &mih_check, py::arg("widths").noconvert(), py::arg("n_codes"),
        py::arg("offsets").noconvert(), py::arg("rows").noconvert(),
        "True when MIH tables are structurally valid (bounds, monotone offsets).");
  m.def("mih_knn", &mih_knn_search, py::arg("queries").noconvert(), py::arg("codes").noconvert(),
        py::arg("ids").noconvert(), py::arg("widths").noconvert(),
        py::arg("offsets").noconvert(), py::arg("rows").noconvert(), py::arg("k"),
        py::arg("pad_distance"), py::arg("max_work") = 0, py::arg("num_threads") = 0,
        py::arg("bit_order").noconvert() = py::none(),
        "Exact k-NN by multi-index hashing -> (ids, distances, work). "
        "Use pyspec.HammingIndex.search.");
  m.def("mih_range", &mih_range_search, py::arg("queries").noconvert(),
        py::arg("codes").noconvert(), py::arg("ids").noconvert(), py::arg("widths").noconvert(),
        py::arg("offsets").noconvert(), py::arg("rows").noconvert(), py::arg("radius"),
        py::arg("max_work") = 0, py::arg("num_threads") = 0,
        py::arg("bit_order").noconvert() = py::none(),
        "Range search by multi-index hashing -> (offsets, ids, distances, work). "
        "Use pyspec.HammingIndex.range_search.");
}

}  // namespace pyspec
