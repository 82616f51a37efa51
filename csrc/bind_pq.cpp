#include "bindings.hpp"

namespace pyspec {
void bind_pq(pybind11::module_& m) { (void)m; }
}  // namespace pyspec
