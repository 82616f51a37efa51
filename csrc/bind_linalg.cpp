#include "bindings.hpp"

namespace pyspec {
void bind_linalg(pybind11::module_& m) { (void)m; }
}  // namespace pyspec
