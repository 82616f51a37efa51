// Registration hooks for the pybind11 module, one per kernel family.
// Only bindings.cpp and bind_<family>.cpp include pybind11: splitting the
// module by family keeps each family's conversion code next to its siblings
// and lets families be developed without touching one shared file.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

namespace pyspec {

// A C-contiguous array argument (pybind11 converts or refuses anything else).
template <class T>
using Arr = pybind11::array_t<T, pybind11::array::c_style>;

// An argument check of the bindings: std::invalid_argument (ValueError in Python).
inline void need(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

void bind_hamming(pybind11::module_& m);
void bind_pq(pybind11::module_& m);
void bind_fastscan(pybind11::module_& m);
void bind_linalg(pybind11::module_& m);
void bind_ivf(pybind11::module_& m);
void bind_ivfpq(pybind11::module_& m);
}  // namespace pyspec
