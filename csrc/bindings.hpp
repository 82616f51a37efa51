// Registration hooks for the pybind11 module, one per kernel family.
// Only bindings.cpp and bind_<family>.cpp include pybind11: splitting the
// module by family keeps each family's conversion code next to its siblings
// and lets families be developed without touching one shared file.
#pragma once

#include <pybind11/pybind11.h>

namespace pyspec {
void bind_hamming(pybind11::module_& m);
void bind_pq(pybind11::module_& m);
void bind_fastscan(pybind11::module_& m);
void bind_linalg(pybind11::module_& m);
void bind_ivf(pybind11::module_& m);
void bind_ivfpq(pybind11::module_& m);
}  // namespace pyspec
