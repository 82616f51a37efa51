// Bindings of the linalg family: conversion and forwarding only.
// Python wrappers with validation live in pyspec/linalg.py.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "bindings.hpp"
#include "linalg.hpp"

namespace py = pybind11;

namespace pyspec {

namespace {

using F32 = py::array_t<float, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;

void gram_accumulate_py(const F32& H, const std::optional<F32>& X, F64& G,
                        std::optional<F64>& C, int num_threads) {
  need(H.ndim() == 2 && G.ndim() == 2, "gram_accumulate: H and G must be 2-D");
  const index_t n = H.shape(0), L = H.shape(1);
  need(G.shape(0) == L && G.shape(1) == L, "gram_accumulate: G must be (L, L)");
  need(G.writeable(), "gram_accumulate: G must be writeable");
  const float* xp = nullptr;
  double* cp = nullptr;
  index_t D = 0;
  if (X) {
    need(C.has_value(), "gram_accumulate: C is required with X");
    need(X->ndim() == 2 && X->shape(0) == n, "gram_accumulate: X must be (n, D)");
    D = X->shape(1);
    need(C->ndim() == 2 && C->shape(0) == L && C->shape(1) == D,
         "gram_accumulate: C must be (L, D)");
    need(C->writeable(), "gram_accumulate: C must be writeable");
    xp = X->data();
    cp = C->mutable_data();
  }
  const float* hp = H.data();
  double* gp = G.mutable_data();
  py::gil_scoped_release release;
  gram_accumulate(hp, n, L, xp, D, gp, cp, num_threads);
}

F32 dense_forward_py(const F32& X, const F32& W, const std::optional<F32>& b, int activation,
                     int num_threads) {
  need(X.ndim() == 2 && W.ndim() == 2, "dense_forward: X and W must be 2-D");
  const index_t n = X.shape(0), d = X.shape(1), p = W.shape(1);
  need(W.shape(0) == d, "dense_forward: W must be (d, p)");
  need(!b || (b->ndim() == 1 && b->shape(0) == p), "dense_forward: b must be (p,)");
  need(activation >= 0 && activation <= 3, "dense_forward: unknown activation code");
  F32 out({n, p});
  const float* xp = X.data();
  const float* wp = W.data();
  const float* bp = b ? b->data() : nullptr;
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    dense_forward(xp, n, d, wp, p, bp, Activation(activation), op, num_threads);
  }
  return out;
}

py::tuple ridge_solve_batched_py(const std::vector<F64>& Gs, const std::vector<F64>& Cs,
                                 const F64& lambdas, double cond_limit, double rcond,
                                 int num_threads) {
  const size_t B = Gs.size();
  need(Cs.size() == B, "ridge_solve_batched: as many C as G matrices required");
  need(lambdas.ndim() == 1 && size_t(lambdas.shape(0)) == B,
       "ridge_solve_batched: lambdas must be (B,)");
  std::vector<RidgeSystem> systems(B);
  py::list betas;
  for (size_t i = 0; i < B; ++i) {
    const F64& G = Gs[i];
    const F64& C = Cs[i];
    need(G.ndim() == 2 && G.shape(0) == G.shape(1) && G.shape(0) >= 1,
         "ridge_solve_batched: each G must be square (L, L)");
    need(C.ndim() == 2 && C.shape(0) == G.shape(0), "ridge_solve_batched: each C must be (L, D)");
    F64 beta({C.shape(0), C.shape(1)});
    systems[i].G = G.data();
    systems[i].C = C.data();
    systems[i].beta = beta.mutable_data();
    systems[i].L = G.shape(0);
    systems[i].D = C.shape(1);
    systems[i].lambda = lambdas.data()[i];
    betas.append(beta);
  }
  {
    py::gil_scoped_release release;
    ridge_solve_batched(systems, cond_limit, rcond, num_threads);
  }
  py::array_t<int32_t> methods(B);
  py::array_t<int64_t> ranks(B);
  py::array_t<double> conds(B);
  for (size_t i = 0; i < B; ++i) {
    methods.mutable_data()[i] = systems[i].method;
    ranks.mutable_data()[i] = systems[i].rank;
    conds.mutable_data()[i] = systems[i].cond;
  }
  return py::make_tuple(betas, methods, ranks, conds);
}

py::tuple sym_eig_py(const F64& A, int num_threads) {
  need(A.ndim() == 2 && A.shape(0) == A.shape(1) && A.shape(0) >= 1,
       "sym_eig_jacobi: A must be square (L, L)");
  const index_t L = A.shape(0);
  F64 w(L);
  F64 V({L, L});
  const double* ap = A.data();
  double* wp = w.mutable_data();
  double* vp = V.mutable_data();
  {
    py::gil_scoped_release release;
    sym_eig_jacobi(ap, L, wp, vp, num_threads);
  }
  return py::make_tuple(w, V);
}

}  // namespace

void bind_linalg(py::module_& m) {
  m.def("linalg_backend", [] { return std::string(linalg_backend()); },
        "Matrix-product backend of the linalg kernels; see pyspec.show_config().");
  m.attr("gram_row_block") = kGramRowBlock;
  m.def("gram_accumulate", &gram_accumulate_py, py::arg("H").noconvert(),
        py::arg("X").noconvert() = py::none(), py::arg("G").noconvert(),
        py::arg("C").noconvert() = py::none(), py::arg("num_threads") = 0,
        "G += H^T H, C += H^T X in place; use pyspec.linalg.GramAccumulator.");
  m.def("dense_forward", &dense_forward_py, py::arg("X").noconvert(), py::arg("W").noconvert(),
        py::arg("b").noconvert() = py::none(), py::arg("activation") = 0,
        py::arg("num_threads") = 0, "g(X W + b); use pyspec.linalg.dense_forward.");
  m.def("ridge_solve_batched", &ridge_solve_batched_py, py::arg("Gs").noconvert(),
        py::arg("Cs").noconvert(), py::arg("lambdas").noconvert(), py::arg("cond_limit"),
        py::arg("rcond"), py::arg("num_threads") = 0,
        "Batched (G + lambda I) beta = C; use pyspec.linalg.ridge_solve.");
  m.def("sym_eig_jacobi", &sym_eig_py, py::arg("A").noconvert(), py::arg("num_threads") = 0,
        "Symmetric eigen-decomposition (Jacobi); use pyspec.linalg.eigh.");
}

}  // namespace pyspec
