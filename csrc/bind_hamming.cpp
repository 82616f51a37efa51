#include "bindings.hpp"

namespace pyspec {
void bind_hamming(pybind11::module_& m) { (void)m; }
}  // namespace pyspec
